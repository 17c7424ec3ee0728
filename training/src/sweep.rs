//! The alpha sweep: where policies trained at several cost coefficients land on test
//! questions, read back from `switchyard-train eval --out` files and drawn with the host's
//! report plot (EM against cost, joined in alpha order).
//!
//! Invariant: every number comes from the per-question lines of an eval file (the mean of
//! `reward.exact_match`, `cost` and the format failures), never from a run's own metrics, so
//! the sweep compares policies on exactly the questions they were evaluated on.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("`{0}` is not LABEL=FILE (e.g. `0.9=runs/sim/ppo-cost-test300.jsonl`)")]
    NotLabelled(String),
    #[error("`{0}` is not an alpha in [0, 1]")]
    BadAlpha(String),
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: not an eval line: {source}")]
    Parse { path: PathBuf, line: usize, source: serde_json::Error },
    #[error("{0}: no evaluated questions")]
    Empty(PathBuf),
    #[error("{0} and {2} evaluate different questions ({1} and {3} lines, ids differ in set or order)")]
    Mismatch(PathBuf, usize, PathBuf, usize),
}

/// Split `LABEL=FILE`.
pub fn labelled(arg: &str) -> Result<(String, PathBuf), SweepError> {
    match arg.split_once('=') {
        Some((label, file)) if !label.is_empty() && !file.is_empty() => Ok((label.to_string(), file.into())),
        _ => Err(SweepError::NotLabelled(arg.to_string())),
    }
}

/// Parse the alpha of an `ALPHA=FILE` argument.
pub fn alpha(label: &str) -> Result<f64, SweepError> {
    label.parse::<f64>().ok().filter(|a| (0.0..=1.0).contains(a)).ok_or_else(|| SweepError::BadAlpha(label.into()))
}

/// A policy's means over one eval file.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalSummary {
    pub file: PathBuf,
    pub questions: usize,
    pub em: f64,
    /// US dollars per question.
    pub cost: f64,
    pub format_failure_rate: f64,
}

#[derive(Deserialize)]
struct Line {
    id: String,
    cost: f64,
    reward: Reward,
}

#[derive(Deserialize)]
struct Reward {
    exact_match: f64,
    format: f64,
}

/// Means of an eval file; also returns its question ids in order.
pub fn summarise(path: &Path) -> Result<(EvalSummary, Vec<String>), SweepError> {
    let text = std::fs::read_to_string(path).map_err(|source| SweepError::Read { path: path.into(), source })?;
    let (mut em, mut cost, mut failures, mut ids) = (0.0, 0.0, 0.0, Vec::new());
    for (n, raw) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let line: Line =
            serde_json::from_str(raw).map_err(|source| SweepError::Parse { path: path.into(), line: n + 1, source })?;
        em += line.reward.exact_match;
        cost += line.cost;
        failures += f64::from(u8::from(line.reward.format < 0.0));
        ids.push(line.id);
    }
    if ids.is_empty() {
        return Err(SweepError::Empty(path.into()));
    }
    let n = ids.len() as f64;
    let summary = EvalSummary {
        file: path.into(),
        questions: ids.len(),
        em: em / n,
        cost: cost / n,
        format_failure_rate: failures / n,
    };
    Ok((summary, ids))
}

/// Summaries of several eval files, which must cover the same questions in the same order.
pub fn summarise_all(paths: &[PathBuf]) -> Result<Vec<EvalSummary>, SweepError> {
    let mut out: Vec<EvalSummary> = Vec::with_capacity(paths.len());
    let mut first: Option<Vec<String>> = None;
    for path in paths {
        let (summary, ids) = summarise(path)?;
        match &first {
            Some(expected) if *expected != ids => {
                return Err(SweepError::Mismatch(out[0].file.clone(), expected.len(), path.clone(), ids.len()));
            }
            Some(_) => {}
            None => first = Some(ids),
        }
        out.push(summary);
    }
    Ok(out)
}

/// A markdown table: one row per labelled summary.
pub fn table(rows: &[(String, &EvalSummary)]) -> String {
    let mut out = String::from(
        "| policy | questions | EM | µ$ / question | format failures | file |\n|---|---|---|---|---|---|\n",
    );
    for (label, s) in rows {
        out.push_str(&format!(
            "| {label} | {} | {:.3} | {:.1} | {:.1}% | `{}` |\n",
            s.questions,
            s.em,
            s.cost * 1e6,
            s.format_failure_rate * 100.0,
            s.file.display()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, em: f64, cost: f64, format: f64) -> String {
        serde_json::json!({"id": id, "cost": cost, "reward": {"exact_match": em, "format": format, "total": em}})
            .to_string()
    }

    #[test]
    fn an_eval_file_is_summarised_from_its_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let text = [line("q1", 1.0, 2e-5, 0.0), line("q2", 0.0, 4e-5, -1.0), String::new()].join("\n");
        std::fs::write(&path, text).unwrap();
        let (s, ids) = summarise(&path).unwrap();
        assert_eq!(ids, ["q1", "q2"]);
        assert_eq!((s.questions, s.em, s.format_failure_rate), (2, 0.5, 0.5));
        assert!((s.cost - 3e-5).abs() < 1e-15);
        assert!(table(&[("alpha = 0".into(), &s)]).contains("| alpha = 0 | 2 | 0.500 | 30.0 | 50.0% |"));
    }

    #[test]
    fn bad_arguments_and_files_are_named_errors() {
        assert!(matches!(labelled("runs/x.jsonl"), Err(SweepError::NotLabelled(_))));
        assert_eq!(labelled("0.9=a=b.jsonl").unwrap(), ("0.9".to_string(), PathBuf::from("a=b.jsonl")));
        assert!(matches!(alpha("1.5"), Err(SweepError::BadAlpha(_))));
        assert!(matches!(alpha("warm-up"), Err(SweepError::BadAlpha(_))));
        assert_eq!(alpha("0.9").unwrap(), 0.9);

        let dir = tempfile::tempdir().unwrap();
        let (a, b, bad, empty) =
            (dir.path().join("a"), dir.path().join("b"), dir.path().join("bad"), dir.path().join("empty"));
        std::fs::write(&a, line("q1", 1.0, 1e-5, 0.0)).unwrap();
        std::fs::write(&b, line("q9", 1.0, 1e-5, 0.0)).unwrap();
        std::fs::write(&bad, "{\"id\": \"q1\"}\n").unwrap();
        std::fs::write(&empty, "\n").unwrap();
        assert!(matches!(summarise_all(&[a.clone(), b]), Err(SweepError::Mismatch(..))));
        let e = summarise(&bad).unwrap_err();
        assert!(matches!(e, SweepError::Parse { line: 1, .. }), "{e}");
        assert!(matches!(summarise(&empty), Err(SweepError::Empty(_))));
        assert!(matches!(summarise(&dir.path().join("missing")), Err(SweepError::Read { .. })));
        assert_eq!(summarise_all(&[a.clone(), a]).unwrap().len(), 2);
    }
}
