//! The alpha sweep: where policies trained at several cost coefficients land on test
//! questions, read back from `switchyard-train eval --out` files ([`crate::compare`]) and drawn
//! with the host's report plot (EM against cost, joined in alpha order).
//!
//! Invariant: a point's alpha is the one its label states, checked to lie in [0, 1]; its EM and
//! cost are the means of its eval file, never a run's own metrics.

use switchyard::eval::plot::SweepPoint;

use crate::compare::{CompareError, EvalFile};

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("`{0}` is not an alpha in [0, 1]")]
    BadAlpha(String),
    #[error(transparent)]
    Compare(#[from] CompareError),
}

/// Parse the alpha of an `ALPHA=FILE` argument.
pub fn alpha(label: &str) -> Result<f64, SweepError> {
    label.parse::<f64>().ok().filter(|a| (0.0..=1.0).contains(a)).ok_or_else(|| SweepError::BadAlpha(label.into()))
}

/// The plotted point of a file labelled with its alpha.
pub fn point(label: &str, file: &EvalFile) -> Result<SweepPoint, SweepError> {
    let s = file.summary();
    Ok(SweepPoint { alpha: alpha(label)?, cost: s.cost, accuracy: s.em })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_takes_its_alpha_from_the_label_and_its_numbers_from_the_file() {
        assert!(matches!(alpha("1.5"), Err(SweepError::BadAlpha(_))));
        assert!(matches!(alpha("warm-up"), Err(SweepError::BadAlpha(_))));
        assert_eq!(alpha("0.9").unwrap(), 0.9);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let line = |id: &str, em: f64| {
            serde_json::json!({"id": id, "cost": 4e-5, "reward": {"exact_match": em, "format": 0.0}}).to_string()
        };
        std::fs::write(&path, [line("q1", 1.0), line("q2", 0.0)].join("\n")).unwrap();
        let file = EvalFile::read(&path).unwrap();
        let p = point("0.5", &file).unwrap();
        assert_eq!((p.alpha, p.accuracy), (0.5, 0.5));
        assert!((p.cost - 4e-5).abs() < 1e-15);
        assert!(matches!(point("2", &file), Err(SweepError::BadAlpha(_))));
    }
}
