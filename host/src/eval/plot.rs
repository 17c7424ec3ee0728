//! Report plots (plotters), each written as PNG and SVG from the same drawing code:
//! accuracy against cost, one labelled point per policy, with the Pareto frontier drawn
//! through the points on it; the same axes for an alpha sweep (policies trained at several
//! cost coefficients, joined in alpha order); and which models a policy calls, per slice of
//! the questions.

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
    render(
        stem,
        (960, 640),
        |area| draw_frontier(area, points, title, y_label),
        |area| draw_frontier(area, points, title, y_label),
    )
}

/// One policy of an alpha sweep: the cost coefficient it was trained with, its cost in US
/// dollars per question and its accuracy.
#[derive(Clone, Debug)]
pub struct SweepPoint {
    pub alpha: f64,
    pub cost: f64,
    pub accuracy: f64,
}

/// Write `<stem>.png` and `<stem>.svg`: the sweep's policies joined in alpha order (the
/// curve alpha moves a policy along) and `references` (e.g. the policy before RL) as unjoined
/// points. Unlike [`frontier`], the axes are zoomed to the points, so that small moves stay
/// visible: read the tick labels before reading distances. Returns the two paths.
pub fn alpha_sweep(
    sweep: &[SweepPoint],
    references: &[Point],
    title: &str,
    y_label: &str,
    stem: &Path,
) -> Result<Vec<PathBuf>, PlotError> {
    let mut sweep = sweep.to_vec();
    sweep.sort_by(|a, b| a.alpha.total_cmp(&b.alpha));
    render(
        stem,
        (960, 640),
        |area| draw_sweep(area, &sweep, references, title, y_label),
        |area| draw_sweep(area, &sweep, references, title, y_label),
    )
}

/// One bar of a model-use plot: a label (policy and slice) and, per model, the fraction of
/// its questions that called that model.
#[derive(Clone, Debug)]
pub struct UseRow {
    pub label: String,
    pub model_use: Vec<(String, f64)>,
}

/// Write `<stem>.png` and `<stem>.svg`: a horizontal bar per row, split in proportion to the
/// rows' `model_use` (so each model's share of the models the row's questions called, a model
/// counted once per question), one colour per model. Returns the two paths.
pub fn model_use(rows: &[UseRow], title: &str, stem: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let height = 120 + 28 * rows.len().max(1) as u32;
    render(stem, (1100, height), |area| draw_model_use(area, rows, title), |area| draw_model_use(area, rows, title))
}

/// Draw the same figure to `<stem>.png` and `<stem>.svg` (plotters' backends are distinct
/// types, so the caller passes its generic drawing function twice).
fn render(
    stem: &Path,
    size: (u32, u32),
    png: impl FnOnce(DrawingArea<BitMapBackend, Shift>) -> Result<(), String>,
    svg: impl FnOnce(DrawingArea<SVGBackend, Shift>) -> Result<(), String>,
) -> Result<Vec<PathBuf>, PlotError> {
    register_font()?;
    let png_path = stem.with_extension("png");
    let svg_path = stem.with_extension("svg");
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |e: String| PlotError::Draw { path: path.clone(), message: e }
    };
    png(BitMapBackend::new(&png_path, size).into_drawing_area()).map_err(err(&png_path))?;
    svg(SVGBackend::new(&svg_path, size).into_drawing_area()).map_err(err(&svg_path))?;
    Ok(vec![png_path, svg_path])
}

fn draw_model_use<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    rows: &[UseRow],
    title: &str,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    // One colour per model, stable across rows: models in name order.
    let mut models: Vec<&str> = rows.iter().flat_map(|r| r.model_use.iter().map(|(m, _)| m.as_str())).collect();
    models.sort_unstable();
    models.dedup();
    let colour = |model: &str| Palette99::pick(models.iter().position(|m| *m == model).unwrap_or(0));
    let n = rows.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(330)
        // Room on the right for the legend.
        .build_cartesian_2d(0.0..1.4f64, (0..n).into_segmented())
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("share of the models called (each counted once per question)")
        .x_labels(6)
        .x_label_formatter(&|x| if *x <= 1.0 + 1e-9 { format!("{:.0}%", x * 100.0) } else { String::new() })
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => rows.get(*i).map(|r| r.label.clone()).unwrap_or_default(),
            _ => String::new(),
        })
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(e)?;
    for model in &models {
        // Each row's bar: segments in model order, widths normalised to the row's total use.
        let bars: Vec<Rectangle<_>> = rows
            .iter()
            .enumerate()
            .filter_map(|(i, row)| {
                let total: f64 = row.model_use.iter().map(|(_, u)| u).sum();
                let own = row.model_use.iter().find(|(m, _)| m == model)?.1;
                if total <= 0.0 || own <= 0.0 {
                    return None;
                }
                let before: f64 =
                    row.model_use.iter().filter(|(m, _)| m.as_str() < *model).map(|(_, u)| u).sum::<f64>() / total;
                let (y0, y1) = (SegmentValue::Exact(i), SegmentValue::Exact(i + 1));
                Some(Rectangle::new([(before, y0), (before + own / total, y1)], colour(model).filled()))
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(e)?
            .label(*model)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour(model).filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE)
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

fn draw_frontier<DB: DrawingBackend>(
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

/// `lo..hi` widened by `pad` of its span on each side (and to at least `min_span`).
fn padded(values: impl Iterator<Item = f64> + Clone, pad: f64, min_span: f64) -> std::ops::Range<f64> {
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let hi = values.fold(f64::NEG_INFINITY, f64::max);
    if !(lo.is_finite() && hi.is_finite()) {
        return 0.0..1.0;
    }
    let span = (hi - lo).max(min_span);
    let mid = (lo + hi) / 2.0;
    (mid - span * (0.5 + pad))..(mid + span * (0.5 + pad))
}

/// The sweep's colour: a darker green than plotters' `GREEN`, readable on white.
const SWEEP: RGBColor = RGBColor(0, 128, 0);

fn draw_sweep<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    sweep: &[SweepPoint],
    references: &[Point],
    title: &str,
    y_label: &str,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let curve: Vec<(f64, f64)> = sweep.iter().map(|p| (p.cost * 1e6, p.accuracy)).collect();
    let refs: Vec<(f64, f64)> = references.iter().map(|p| (p.cost * 1e6, p.accuracy)).collect();
    let all = curve.iter().chain(&refs);
    // At least 2 µ$ and 0.02 of accuracy across, so one point is not a degenerate axis.
    let x = padded(all.clone().map(|p| p.0), 0.25, 2.0);
    let y = padded(all.map(|p| p.1), 0.25, 0.02);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)
        .map_err(e)?;
    chart.configure_mesh().x_desc("cost per question (µ$)").y_desc(y_label).draw().map_err(e)?;
    chart
        .draw_series(LineSeries::new(curve.clone(), SWEEP.stroke_width(2)))
        .map_err(e)?
        .label("alpha sweep (joined in alpha order)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], SWEEP.stroke_width(2)));
    chart
        .draw_series(curve.iter().zip(sweep).map(|(&(x, y), p)| {
            EmptyElement::at((x, y))
                + Circle::new((0, 0), 5, SWEEP.filled())
                + Text::new(format!("alpha = {}", p.alpha), (8, -6), ("sans-serif", 14).into_font())
        }))
        .map_err(e)?;
    chart
        .draw_series(refs.iter().zip(references).map(|(&(x, y), p)| {
            EmptyElement::at((x, y))
                + Circle::new((0, 0), 5, BLUE.filled())
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

    #[test]
    fn an_alpha_sweep_labels_every_alpha_and_reference() {
        let dir = tempfile::tempdir().unwrap();
        // Out of alpha order on purpose, and close together: the axes must zoom in.
        let sweep = vec![
            SweepPoint { alpha: 0.9, cost: 80.3e-6, accuracy: 0.38 },
            SweepPoint { alpha: 0.0, cost: 81.6e-6, accuracy: 0.41 },
        ];
        let reference = vec![Point { label: "warm-up".into(), cost: 81.7e-6, accuracy: 0.417 }];
        let written = alpha_sweep(&sweep, &reference, "sweep", "EM", &dir.path().join("sweep")).unwrap();
        assert_eq!(&std::fs::read(&written[0]).unwrap()[1..4], b"PNG");
        let svg = std::fs::read_to_string(&written[1]).unwrap();
        for label in ["alpha = 0.9", "alpha = 0", "warm-up", "alpha sweep"] {
            assert!(svg.contains(label), "{label} missing from the SVG");
        }
        // A single point still gets a drawable range.
        alpha_sweep(&sweep[..1], &[], "one", "EM", &dir.path().join("one")).unwrap();
    }

    #[test]
    fn padding_widens_a_range_around_its_middle() {
        let r = padded([1.0, 3.0].into_iter(), 0.25, 0.0);
        assert!((r.start - 0.5).abs() < 1e-12 && (r.end - 3.5).abs() < 1e-12, "{r:?}");
        let one = padded([5.0].into_iter(), 0.0, 2.0);
        assert_eq!(one, 4.0..6.0);
        assert_eq!(padded(std::iter::empty(), 0.1, 1.0), 0.0..1.0);
    }

    #[test]
    fn model_use_names_every_row_and_model() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![
            UseRow { label: "router · all".into(), model_use: vec![("big".into(), 0.5), ("small".into(), 0.75)] },
            UseRow { label: "router · domain arts".into(), model_use: vec![("held-out".into(), 1.0)] },
        ];
        let written = model_use(&rows, "calls", &dir.path().join("models")).unwrap();
        assert_eq!(&std::fs::read(&written[0]).unwrap()[1..4], b"PNG");
        let svg = std::fs::read_to_string(&written[1]).unwrap();
        for label in ["router · all", "router · domain arts", "big", "small", "held-out"] {
            assert!(svg.contains(label), "{label} missing from the SVG");
        }
        // An empty plot is still a plot, not an error.
        model_use(&[], "none", &dir.path().join("empty")).unwrap();
    }
}
