//! Per-step metrics (JSON lines) and their curves (PNG, plotters).
//!
//! Invariant: a metrics line is appended and flushed before the step's checkpoint is
//! written, and a resumed run first drops lines past its checkpoint, so the file never
//! holds a step twice.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;
use serde_json::{Map, Value};

pub struct MetricsLog {
    file: std::fs::File,
}

impl MetricsLog {
    /// Open for appending, keeping only lines with `step <= keep_through`.
    pub fn open(path: &Path, keep_through: u64) -> anyhow::Result<MetricsLog> {
        let kept: Vec<String> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                serde_json::from_str::<Value>(l)
                    .ok()
                    .and_then(|v| v["step"].as_u64())
                    .is_some_and(|s| s <= keep_through)
            })
            .map(str::to_string)
            .collect();
        let mut file = std::fs::File::create(path).with_context(|| format!("opening {}", path.display()))?;
        for l in kept {
            writeln!(file, "{l}")?;
        }
        Ok(MetricsLog { file })
    }

    pub fn write(&mut self, record: &Map<String, Value>) -> anyhow::Result<()> {
        writeln!(self.file, "{}", Value::Object(record.clone()))?;
        self.file.flush()?;
        Ok(())
    }
}

/// One metric's (step, value) points.
pub type Series = (String, Vec<(f64, f64)>);

/// Read `metrics.jsonl` into (step, value) series per key.
pub fn read_series(path: &Path) -> anyhow::Result<Vec<Series>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut series: Vec<Series> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line).with_context(|| format!("{}:{}", path.display(), n + 1))?;
        let Some(step) = v["step"].as_f64() else { continue };
        if let Value::Object(map) = v {
            for (k, x) in map {
                let Some(x) = x.as_f64() else { continue };
                if k == "step" || !x.is_finite() {
                    continue;
                }
                match series.iter_mut().find(|(name, _)| *name == k) {
                    Some((_, points)) => points.push((step, x)),
                    None => series.push((k, vec![(step, x)])),
                }
            }
        }
    }
    Ok(series)
}

/// One PNG per metric (those present in `keys`, or all when `keys` is empty) under `out`.
pub fn plot(metrics: &Path, out: &Path, title: &str, keys: &[&str]) -> anyhow::Result<Vec<std::path::PathBuf>> {
    switchyard::eval::plot::register_font()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut written = Vec::new();
    for (name, points) in read_series(metrics)? {
        if !keys.is_empty() && !keys.contains(&name.as_str()) || points.is_empty() {
            continue;
        }
        let path = out.join(format!("{name}.png"));
        draw(&path, &format!("{title}: {name}"), &name, &points)
            .with_context(|| format!("plotting {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn draw(path: &Path, caption: &str, label: &str, points: &[(f64, f64)]) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (x0, x1) = points.iter().fold((f64::MAX, f64::MIN), |(a, b), (x, _)| (a.min(*x), b.max(*x)));
    let (y0, y1) = points.iter().fold((f64::MAX, f64::MIN), |(a, b), (_, y)| (a.min(*y), b.max(*y)));
    let pad = ((y1 - y0) * 0.05).max(1e-9);
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1.max(x0 + 1.0), (y0 - pad)..(y1 + pad))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart.configure_mesh().x_desc("step").y_desc(label).draw().map_err(|e| anyhow::anyhow!("{e}"))?;
    chart.draw_series(LineSeries::new(points.iter().copied(), &BLUE)).map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
