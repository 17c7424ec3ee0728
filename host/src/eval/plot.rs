//! Report plots (plotters): accuracy against cost, one labelled point per
//! policy, with the Pareto frontier drawn through the points on it; written
//! as PNG and SVG from the same drawing code.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::summary::pareto;

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("no DejaVu Sans font for plot labels (looked in {0:?}); install fonts-dejavu-core")]
    NoFont(&'static [&'static str]),
    #[error("{path}: {message}")]
    Draw { path: PathBuf, message: String },
}

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Register DejaVu Sans as plotters' `sans-serif` (the bitmap backend draws text with
/// ab_glyph and has no system font lookup). Idempotent.
pub fn register_font() -> Result<(), PlotError> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        let Some(bytes) = FONT_PATHS.iter().find_map(|p| std::fs::read(p).ok()) else { return false };
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
    });
    if ok { Ok(()) } else { Err(PlotError::NoFont(FONT_PATHS)) }
}

/// One policy on the plot: name, cost in US dollars per question, accuracy.
#[derive(Clone, Debug)]
pub struct Point {
    pub label: String,
    pub cost: f64,
    pub accuracy: f64,
}

/// Write `<stem>.png` and `<stem>.svg`: accuracy (`y_label`) against cost per question
/// in micro-dollars, the frontier as a line. Returns the two paths.
pub fn frontier(points: &[Point], title: &str, y_label: &str, stem: &Path) -> Result<Vec<PathBuf>, PlotError> {
    register_font()?;
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |e: String| PlotError::Draw { path: path.clone(), message: e }
    };
    draw(BitMapBackend::new(&png, (960, 640)).into_drawing_area(), points, title, y_label).map_err(err(&png))?;
    draw(SVGBackend::new(&svg, (960, 640)).into_drawing_area(), points, title, y_label).map_err(err(&svg))?;
    Ok(vec![png, svg])
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    points: &[Point],
    title: &str,
    y_label: &str,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let micro: Vec<(f64, f64)> = points.iter().map(|p| (p.cost * 1e6, p.accuracy)).collect();
    let x_max = micro.iter().map(|p| p.0).fold(0.0, f64::max).max(1e-3) * 1.35;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, 0.0..1.0f64)
        .map_err(e)?;
    chart.configure_mesh().x_desc("cost per question (µ$)").y_desc(y_label).draw().map_err(e)?;
    let on = pareto(&micro);
    let mut frontier: Vec<(f64, f64)> = micro.iter().zip(&on).filter(|(_, on)| **on).map(|(p, _)| *p).collect();
    frontier.sort_by(|a, b| a.0.total_cmp(&b.0));
    chart
        .draw_series(LineSeries::new(frontier, RED.stroke_width(2)))
        .map_err(e)?
        .label("Pareto frontier")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    // Each point with its label just to its right.
    chart
        .draw_series(micro.iter().zip(&on).zip(points).map(|((&(x, y), on), p)| {
            EmptyElement::at((x, y))
                + Circle::new((0, 0), 5, if *on { RED.filled() } else { BLUE.filled() })
                + Text::new(p.label.clone(), (8, -6), ("sans-serif", 14).into_font())
        }))
        .map_err(e)?;
    chart.configure_series_labels().background_style(WHITE).border_style(BLACK).draw().map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_png_and_svg_with_every_label() {
        // scripts/setup installs the font; without it this fails rather than pass vacuously.
        let dir = tempfile::tempdir().unwrap();
        let points = vec![
            Point { label: "cheap".into(), cost: 1e-5, accuracy: 0.2 },
            Point { label: "dear".into(), cost: 1e-4, accuracy: 0.8 },
            Point { label: "dominated".into(), cost: 2e-4, accuracy: 0.5 },
        ];
        let written = frontier(&points, "test", "EM", &dir.path().join("frontier")).unwrap();
        assert_eq!(written.len(), 2);
        let png = std::fs::read(&written[0]).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let svg = std::fs::read_to_string(&written[1]).unwrap();
        for label in ["cheap", "dear", "dominated", "Pareto frontier"] {
            assert!(svg.contains(label), "{label} missing from the SVG");
        }
    }
}
