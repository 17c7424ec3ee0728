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

/// The mean of one metric over a window of steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub first_step: u64,
    /// The last step with a point (below `first_step + every - 1` for a partial last window).
    pub last_step: u64,
    pub mean: f64,
    pub points: usize,
}

/// Means of a series over consecutive windows of `every` steps: steps 1..=every, then
/// every+1..=2*every, and so on (step 0, the check before training, is left out). A window
/// without points is skipped.
pub fn window_means(points: &[(f64, f64)], every: u64) -> Vec<Window> {
    let every = every.max(1);
    let mut windows: Vec<Window> = Vec::new();
    for &(step, value) in points {
        if step < 1.0 || !value.is_finite() {
            continue;
        }
        let step = step as u64;
        let first_step = (step - 1) / every * every + 1;
        match windows.iter_mut().find(|w| w.first_step == first_step) {
            Some(w) => {
                w.last_step = w.last_step.max(step);
                w.mean += value;
                w.points += 1;
            }
            None => windows.push(Window { first_step, last_step: step, mean: value, points: 1 }),
        }
    }
    windows.sort_by_key(|w| w.first_step);
    for w in &mut windows {
        w.mean /= w.points as f64;
    }
    windows
}

/// A markdown table per metric: one row per labelled run, one column per window of `every`
/// steps, each cell the window's mean (see [`window_means`]).
pub fn window_tables(runs: &[(String, Vec<Series>)], keys: &[String], every: u64) -> String {
    let mut out = String::new();
    for key in keys {
        let rows: Vec<(&str, Vec<Window>)> = runs
            .iter()
            .map(|(label, series)| {
                let points = series.iter().find(|(k, _)| k == key).map(|(_, p)| p.as_slice()).unwrap_or(&[]);
                (label.as_str(), window_means(points, every))
            })
            .collect();
        // Columns: every window any run has, each spanning to the last step any run reached.
        let mut columns: Vec<(u64, u64)> = Vec::new();
        for w in rows.iter().flat_map(|(_, windows)| windows) {
            match columns.iter_mut().find(|c| c.0 == w.first_step) {
                Some(c) => c.1 = c.1.max(w.last_step),
                None => columns.push((w.first_step, w.last_step)),
            }
        }
        columns.sort();
        out.push_str(&format!("\n{key}, mean per window of {every} steps:\n\n| run |"));
        for (first, last) in &columns {
            out.push_str(&format!(" {first}-{last} |"));
        }
        out.push_str("\n|---|");
        out.push_str(&"---|".repeat(columns.len()));
        for (label, windows) in &rows {
            out.push_str(&format!("\n| {label} |"));
            for (first, _) in &columns {
                match windows.iter().find(|w| w.first_step == *first) {
                    Some(w) => out.push_str(&format!(" {:.3} |", w.mean)),
                    None => out.push_str(" |"),
                }
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_consecutive_steps_and_skip_the_step_zero_check() {
        let points = [(0.0, 100.0), (1.0, 1.0), (2.0, 3.0), (3.0, 5.0), (4.0, 7.0), (5.0, 9.0)];
        let w = |first_step, last_step, mean, points| Window { first_step, last_step, mean, points };
        assert_eq!(window_means(&points, 2), vec![w(1, 2, 2.0, 2), w(3, 4, 6.0, 2), w(5, 5, 9.0, 1)]);
        // Sparse series (periodic checks) land in the window of their step.
        assert_eq!(window_means(&[(25.0, 0.5), (50.0, 0.7)], 25), vec![w(1, 25, 0.5, 1), w(26, 50, 0.7, 1)]);
    }

    #[test]
    fn tables_align_runs_of_different_lengths_by_window() {
        let a = ("a".to_string(), vec![("kl".to_string(), vec![(1.0, 0.5), (2.0, 1.5), (3.0, 2.0)])]);
        let b = ("b".to_string(), vec![("kl".to_string(), vec![(1.0, 1.0)])]);
        let table = window_tables(&[a, b], &["kl".to_string()], 2);
        assert!(table.contains("| run | 1-2 | 3-3 |"), "{table}");
        assert!(table.contains("| a | 1.000 | 2.000 |"), "{table}");
        assert!(table.contains("| b | 1.000 | |"), "{table}");
    }
}
