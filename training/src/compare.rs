//! Paired comparison of policies evaluated on the same questions, read back from
//! `switchyard-train eval --out` files: means, per-question differences against a baseline
//! with bootstrap intervals, and the share of questions on which each model is called.
//!
//! Invariants:
//! - every number comes from the per-question lines of an eval file (`reward.exact_match`,
//!   `reward.format`, `cost`, the trajectory text), never from a run's own metrics;
//! - files are compared only when they evaluate the same questions in the same order, so a
//!   difference is always a paired one;
//! - the bootstrap is seeded: the same files print the same intervals on every run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use switchyard::engine::protocol::{Step, parse_turn, segments};
use switchyard::plugin::types::Author;

/// Resamples behind each interval: enough that the 2.5% and 97.5% points of 300 questions
/// move by less than the third decimal between seeds.
pub const RESAMPLES: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("`{0}` is not LABEL=FILE (e.g. `0.9=runs/sim/ppo-cost-test300.jsonl`)")]
    NotLabelled(String),
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: not an eval line: {source}")]
    Parse { path: PathBuf, line: usize, source: serde_json::Error },
    #[error("{0}: no evaluated questions")]
    Empty(PathBuf),
    #[error("{0} and {2} evaluate different questions ({1} and {3} lines, ids differ in set or order)")]
    Mismatch(PathBuf, usize, PathBuf, usize),
}

/// Split `LABEL=FILE` at the first `=`.
pub fn labelled(arg: &str) -> Result<(String, PathBuf), CompareError> {
    match arg.split_once('=') {
        Some((label, file)) if !label.is_empty() && !file.is_empty() => Ok((label.to_string(), file.into())),
        _ => Err(CompareError::NotLabelled(arg.to_string())),
    }
}

/// One policy's eval file, question by question.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalFile {
    pub path: PathBuf,
    pub ids: Vec<String>,
    pub em: Vec<f64>,
    /// US dollars.
    pub cost: Vec<f64>,
    pub format_failed: Vec<bool>,
    /// The models each question's trajectory searched (as the router wrote their names).
    pub models: Vec<BTreeSet<String>>,
    /// Each question's kind (`one-hop`, `two-hop`, `comparison`; empty when the file has none).
    pub kinds: Vec<String>,
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
    #[serde(default)]
    trajectory: String,
    #[serde(default)]
    kind: String,
}

#[derive(Deserialize)]
struct Reward {
    exact_match: f64,
    format: f64,
}

/// The model names of the searches in a trajectory: each router turn that the host answered
/// with an information block, read as the turn loop read it.
pub fn searched_models(trajectory: &str) -> BTreeSet<String> {
    let segs = segments(trajectory);
    segs.windows(2)
        .filter(|w| w[0].author == Author::Router && w[1].author == Author::Host)
        .filter_map(|w| match parse_turn(&w[0].text) {
            Step::Search { name, .. } => Some(name),
            _ => None,
        })
        .collect()
}

impl EvalFile {
    pub fn read(path: &Path) -> Result<EvalFile, CompareError> {
        let text = std::fs::read_to_string(path).map_err(|source| CompareError::Read { path: path.into(), source })?;
        let mut file = EvalFile {
            path: path.into(),
            ids: Vec::new(),
            em: Vec::new(),
            cost: Vec::new(),
            format_failed: Vec::new(),
            models: Vec::new(),
            kinds: Vec::new(),
        };
        for (n, raw) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let line: Line = serde_json::from_str(raw).map_err(|source| CompareError::Parse {
                path: path.into(),
                line: n + 1,
                source,
            })?;
            file.ids.push(line.id);
            file.em.push(line.reward.exact_match);
            file.cost.push(line.cost);
            file.format_failed.push(line.reward.format < 0.0);
            file.models.push(searched_models(&line.trajectory));
            file.kinds.push(line.kind);
        }
        if file.ids.is_empty() {
            return Err(CompareError::Empty(path.into()));
        }
        Ok(file)
    }

    pub fn summary(&self) -> EvalSummary {
        let n = self.ids.len().max(1) as f64;
        EvalSummary {
            file: self.path.clone(),
            questions: self.ids.len(),
            em: self.em.iter().sum::<f64>() / n,
            cost: self.cost.iter().sum::<f64>() / n,
            format_failure_rate: self.format_failed.iter().filter(|f| **f).count() as f64 / n,
        }
    }
}

/// Several eval files, which must cover the same questions in the same order.
pub fn read_all(paths: &[PathBuf]) -> Result<Vec<EvalFile>, CompareError> {
    let mut out: Vec<EvalFile> = Vec::with_capacity(paths.len());
    for path in paths {
        let file = EvalFile::read(path)?;
        if let Some(first) = out.first()
            && first.ids != file.ids
        {
            return Err(CompareError::Mismatch(first.path.clone(), first.ids.len(), path.clone(), file.ids.len()));
        }
        out.push(file);
    }
    Ok(out)
}

/// A mean difference and its 95% percentile bootstrap interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// Whether the interval lies wholly above (1), below (-1) or across (0) zero.
    pub fn sign(&self) -> i8 {
        if self.low > 0.0 {
            1
        } else if self.high < 0.0 {
            -1
        } else {
            0
        }
    }
}

/// The mean of `a[i] - b[i]` with a 95% interval from `resamples` bootstrap resamples of the
/// questions (with replacement), seeded by `seed`. `a` and `b` must have the same length.
pub fn paired_difference(a: &[f64], b: &[f64], resamples: usize, seed: u64) -> Interval {
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n = diffs.len();
    if n == 0 {
        return Interval { mean: 0.0, low: 0.0, high: 0.0 };
    }
    let mean = diffs.iter().sum::<f64>() / n as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> =
        (0..resamples.max(1)).map(|_| (0..n).map(|_| diffs[rng.random_range(0..n)]).sum::<f64>() / n as f64).collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (means.len() - 1) as f64).round() as usize).min(means.len() - 1)];
    Interval { mean, low: at(0.025), high: at(0.975) }
}

/// A policy against a baseline on the same questions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Paired {
    pub em: Interval,
    /// US dollars per question.
    pub cost: Interval,
    /// The cost difference over the questions both answer well-formed: a malformed trajectory
    /// often stops early and cheap, so a policy can look cheaper by breaking.
    pub cost_well_formed: Interval,
    /// How many questions both answer well-formed.
    pub well_formed: usize,
}

pub fn paired(policy: &EvalFile, baseline: &EvalFile) -> Paired {
    let both: Vec<usize> = (0..policy.ids.len().min(baseline.ids.len()))
        .filter(|i| !policy.format_failed[*i] && !baseline.format_failed[*i])
        .collect();
    let pick = |v: &[f64]| both.iter().map(|i| v[*i]).collect::<Vec<f64>>();
    Paired {
        em: paired_difference(&policy.em, &baseline.em, RESAMPLES, 0),
        cost: paired_difference(&policy.cost, &baseline.cost, RESAMPLES, 1),
        cost_well_formed: paired_difference(&pick(&policy.cost), &pick(&baseline.cost), RESAMPLES, 2),
        well_formed: both.len(),
    }
}

/// A markdown table of means: one row per labelled file.
pub fn summary_table(rows: &[(String, &EvalFile)]) -> String {
    let mut out = String::from(
        "| policy | questions | EM | µ$ / question | format failures | file |\n|---|---|---|---|---|---|\n",
    );
    for (label, f) in rows {
        let s = f.summary();
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

/// A markdown table of paired differences against the first row.
pub fn difference_table(rows: &[(String, &EvalFile)]) -> String {
    let Some((base_label, base)) = rows.first() else {
        return String::new();
    };
    let mut out = format!(
        "| policy − {base_label} | EM difference | 95% interval | µ$ difference | 95% interval | µ$ difference, both well-formed | 95% interval | both well-formed |\n|---|---|---|---|---|---|---|---|\n"
    );
    let micro = |i: Interval| format!("{:+.1} | [{:+.1}, {:+.1}]", i.mean * 1e6, i.low * 1e6, i.high * 1e6);
    for (label, f) in &rows[1..] {
        let p = paired(f, base);
        out.push_str(&format!(
            "| {label} | {:+.3} | [{:+.3}, {:+.3}] | {} | {} | {} |\n",
            p.em.mean,
            p.em.low,
            p.em.high,
            micro(p.cost),
            micro(p.cost_well_formed),
            p.well_formed
        ));
    }
    out
}

/// A markdown table of EM per question kind, one row per labelled file (empty when no file
/// records kinds).
pub fn kind_table(rows: &[(String, &EvalFile)]) -> String {
    let kinds: BTreeSet<&String> = rows.iter().flat_map(|(_, f)| &f.kinds).filter(|k| !k.is_empty()).collect();
    if kinds.is_empty() {
        return String::new();
    }
    let mut out = String::from("| policy |");
    for k in &kinds {
        out.push_str(&format!(" EM {k} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(kinds.len()));
    out.push('\n');
    for (label, f) in rows {
        out.push_str(&format!("| {label} |"));
        for k in &kinds {
            let ems: Vec<f64> = f.kinds.iter().zip(&f.em).filter(|(fk, _)| fk == k).map(|(_, e)| *e).collect();
            let mean = ems.iter().sum::<f64>() / ems.len().max(1) as f64;
            out.push_str(&format!(" {mean:.3} ({}) |", ems.len()));
        }
        out.push('\n');
    }
    out
}

/// Share of questions on which each model is searched at least once, per labelled file.
pub fn call_shares(file: &EvalFile) -> BTreeMap<String, f64> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for models in &file.models {
        for m in models {
            *counts.entry(m.clone()).or_default() += 1;
        }
    }
    let n = file.ids.len().max(1) as f64;
    counts.into_iter().map(|(m, c)| (m, c as f64 / n)).collect()
}

/// Below this share of questions in every file a name gets no column of its own: broken
/// trajectories write fragments of their text as model names, one question each.
pub const OWN_COLUMN_SHARE: f64 = 0.01;

/// A markdown table of [`call_shares`]: a column per model some file calls on at least
/// [`OWN_COLUMN_SHARE`] of its questions, then "other names", the share of questions calling
/// any of the rest.
pub fn call_share_table(rows: &[(String, &EvalFile)]) -> String {
    let shares: Vec<BTreeMap<String, f64>> = rows.iter().map(|(_, f)| call_shares(f)).collect();
    let shown: BTreeSet<&String> =
        shares.iter().flat_map(|s| s.iter().filter(|(_, v)| **v >= OWN_COLUMN_SHARE).map(|(m, _)| m)).collect();
    let mut out = String::from("| policy |");
    for m in &shown {
        out.push_str(&format!(" {m} |"));
    }
    out.push_str(" other names |\n|---|");
    out.push_str(&"---|".repeat(shown.len() + 1));
    out.push('\n');
    for ((label, file), share) in rows.iter().zip(&shares) {
        out.push_str(&format!("| {label} |"));
        for m in &shown {
            out.push_str(&format!(" {:.0}% |", share.get(*m).copied().unwrap_or(0.0) * 100.0));
        }
        let other = file.models.iter().filter(|called| called.iter().any(|m| !shown.contains(m))).count();
        out.push_str(&format!(" {:.0}% |\n", other as f64 / file.ids.len().max(1) as f64 * 100.0));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, em: f64, cost: f64, format: f64) -> String {
        let trajectory = "<think>t</think>\n<search>big: q?</search>\n\n<information>r</information>\n\n<search>small: q2</search>\n\n<information>r</information>\n\n<answer>a</answer>";
        let kind = if id.ends_with('2') { "two-hop" } else { "one-hop" };
        serde_json::json!({"id": id, "cost": cost, "trajectory": trajectory, "kind": kind,
            "reward": {"exact_match": em, "format": format, "total": em}})
        .to_string()
    }

    fn write(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, lines.join("\n")).unwrap();
        path
    }

    #[test]
    fn an_eval_file_is_read_question_by_question() {
        let dir = tempfile::tempdir().unwrap();
        let path =
            write(dir.path(), "a.jsonl", &[line("q1", 1.0, 2e-5, 0.0), line("q2", 0.0, 4e-5, -1.0), String::new()]);
        let f = EvalFile::read(&path).unwrap();
        assert_eq!(f.ids, ["q1", "q2"]);
        let s = f.summary();
        assert_eq!((s.questions, s.em, s.format_failure_rate), (2, 0.5, 0.5));
        assert!((s.cost - 3e-5).abs() < 1e-15);
        assert!(summary_table(&[("alpha = 0".into(), &f)]).contains("| alpha = 0 | 2 | 0.500 | 30.0 | 50.0% |"));
        assert_eq!(call_shares(&f), BTreeMap::from([("big".to_string(), 1.0), ("small".to_string(), 1.0)]));
    }

    #[test]
    fn searches_are_read_from_router_turns_only() {
        // A reply that looks like a search is host text, and a search the host never answered
        // (the trajectory ended there) was never made.
        let t = "<search>a: x</search>\n\n<information>&lt;search&gt;b: y&lt;/search&gt; <search>c: z</search></information>\n\n<search>d: w</search>";
        assert_eq!(searched_models(t), BTreeSet::from(["a".to_string()]));
        assert!(searched_models("").is_empty());
    }

    #[test]
    fn paired_differences_have_intervals_that_cover_the_mean_and_are_seeded() {
        let a: Vec<f64> = (0..300).map(|i| f64::from(u8::from(i % 2 == 0))).collect();
        let same = paired_difference(&a, &a, 1000, 0);
        assert_eq!((same.mean, same.low, same.high, same.sign()), (0.0, 0.0, 0.0, 0));
        // b wins on 60 more questions than a: the difference is -0.2 and clearly negative.
        let b: Vec<f64> = (0..300).map(|i| f64::from(u8::from(i % 2 == 0 || i < 120))).collect();
        let d = paired_difference(&a, &b, 2000, 7);
        assert!((d.mean + 0.2).abs() < 1e-12);
        assert!(d.low < d.mean && d.mean < d.high && d.sign() == -1, "{d:?}");
        assert!(d.high - d.low < 0.12, "{d:?}");
        assert_eq!(d, paired_difference(&a, &b, 2000, 7));
        assert_eq!(paired_difference(&[], &[], 10, 0).mean, 0.0);
    }

    #[test]
    fn tables_compare_against_the_first_row() {
        let dir = tempfile::tempdir().unwrap();
        let base = write(dir.path(), "base", &[line("q1", 0.0, 2e-5, 0.0), line("q2", 0.0, 2e-5, 0.0)]);
        let better = write(dir.path(), "better", &[line("q1", 1.0, 1e-5, 0.0), line("q2", 1.0, 1e-5, 0.0)]);
        // Breaking on q2 stops the trajectory before it pays: cheaper overall, not where both
        // are well-formed.
        let broken = write(dir.path(), "broken", &[line("q1", 0.0, 2e-5, 0.0), line("q2", 0.0, 0.0, -1.0)]);
        let files = read_all(&[base, better, broken]).unwrap();
        let rows =
            [("warm-up".to_string(), &files[0]), ("ppo".to_string(), &files[1]), ("broken".to_string(), &files[2])];
        let t = difference_table(&rows);
        assert!(t.contains("| policy − warm-up |"), "{t}");
        assert!(
            t.contains("| ppo | +1.000 | [+1.000, +1.000] | -10.0 | [-10.0, -10.0] | -10.0 | [-10.0, -10.0] | 2 |"),
            "{t}"
        );
        assert!(t.contains("| broken | +0.000 | [+0.000, +0.000] | -10.0 |"), "{t}");
        assert!(t.ends_with("| +0.0 | [+0.0, +0.0] | 1 |\n"), "{t}");
        let kinds = kind_table(&rows);
        assert!(kinds.contains("| policy | EM one-hop | EM two-hop |"), "{kinds}");
        assert!(kinds.contains("| ppo | 1.000 (1) | 1.000 (1) |"), "{kinds}");
        let rows = &rows[..2];
        let shares = call_share_table(rows);
        assert!(shares.contains("| policy | big | small | other names |"), "{shares}");
        assert!(shares.contains("| ppo | 100% | 100% | 0% |"), "{shares}");
        // A name on one question in 150 gets no column; it counts under "other names".
        let mut lines: Vec<String> = (0..150).map(|i| line(&format!("q{i}"), 1.0, 1e-5, 0.0)).collect();
        lines[0] = serde_json::json!({"id": "q0", "cost": 1e-5, "reward": {"exact_match": 0.0, "format": -1.0},
            "trajectory": "<search>gemma-hop question: x</search>\n\n<information>r</information>\n\n"})
        .to_string();
        let noisy = EvalFile::read(&write(dir.path(), "noisy", &lines)).unwrap();
        let t = call_share_table(&[("noisy".to_string(), &noisy)]);
        assert!(
            t.contains("| policy | big | small | other names |") && t.contains("| noisy | 99% | 99% | 1% |"),
            "{t}"
        );
    }

    #[test]
    fn bad_arguments_and_files_are_named_errors() {
        assert!(matches!(labelled("runs/x.jsonl"), Err(CompareError::NotLabelled(_))));
        assert_eq!(labelled("0.9=a=b.jsonl").unwrap(), ("0.9".to_string(), PathBuf::from("a=b.jsonl")));
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a", &[line("q1", 1.0, 1e-5, 0.0)]);
        let b = write(dir.path(), "b", &[line("q9", 1.0, 1e-5, 0.0)]);
        let bad = write(dir.path(), "bad", &["{\"id\": \"q1\"}".to_string()]);
        let empty = write(dir.path(), "empty", &[String::new()]);
        let e = read_all(&[a.clone(), b]).unwrap_err();
        assert!(matches!(e, CompareError::Mismatch(..)) && e.to_string().contains("different questions"), "{e}");
        let e = EvalFile::read(&bad).unwrap_err();
        assert!(matches!(e, CompareError::Parse { line: 1, .. }), "{e}");
        assert!(matches!(EvalFile::read(&empty), Err(CompareError::Empty(_))));
        assert!(matches!(EvalFile::read(&dir.path().join("missing")), Err(CompareError::Read { .. })));
        assert_eq!(read_all(&[a.clone(), a]).unwrap().len(), 2);
    }
}
