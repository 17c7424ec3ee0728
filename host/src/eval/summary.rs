//! Aggregates of scored records: overall, per dataset, per hop count and per
//! domain, as JSON and as a markdown table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::record::Record;

/// Metrics over a set of scored records (failed ones are only counted).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Metrics {
    pub questions: usize,
    /// Episodes that errored (policy or reward failure); not in the means.
    pub errors: usize,
    pub em: f64,
    pub f1: f64,
    pub reward: f64,
    /// Mean cost per question, US dollars.
    pub cost: f64,
    pub calls: f64,
    pub format_failure_rate: f64,
    pub latency_p50_ms: u64,
    pub latency_p95_ms: u64,
    /// Per model, the fraction of questions that called it at least once.
    pub model_use: BTreeMap<String, f64>,
}

impl Metrics {
    /// The cells every report table shares: questions, EM, F1, µ$ per question, calls,
    /// format failures (markdown, joined by ` | `).
    pub fn cells(&self) -> String {
        format!(
            "{} | {:.3} | {:.3} | {:.1} | {:.2} | {:.1}%",
            self.questions,
            self.em,
            self.f1,
            self.cost * 1e6,
            self.calls,
            self.format_failure_rate * 100.0
        )
    }

    pub fn of<'a>(records: impl IntoIterator<Item = &'a Record>) -> Metrics {
        let (mut scored, mut errors) = (Vec::new(), 0);
        for r in records {
            if r.error.is_some() {
                errors += 1;
            } else {
                scored.push(r);
            }
        }
        let n = scored.len();
        let mean =
            |f: &dyn Fn(&Record) -> f64| if n == 0 { 0.0 } else { scored.iter().map(|r| f(r)).sum::<f64>() / n as f64 };
        let mut latencies: Vec<u64> = scored.iter().map(|r| r.latency_ms).collect();
        latencies.sort_unstable();
        let mut model_use: BTreeMap<String, f64> = BTreeMap::new();
        for model in scored.iter().flat_map(|r| &r.models) {
            *model_use.entry(model.clone()).or_default() += 1.0 / n as f64;
        }
        Metrics {
            questions: n,
            errors,
            em: mean(&|r| r.em),
            f1: mean(&|r| r.f1),
            reward: mean(&|r| r.reward),
            cost: mean(&|r| r.cost),
            calls: mean(&|r| r.calls as f64),
            format_failure_rate: mean(&|r| f64::from(u8::from(!r.format_ok))),
            latency_p50_ms: percentile(&latencies, 0.50),
            latency_p95_ms: percentile(&latencies, 0.95),
            model_use,
        }
    }
}

/// Nearest-rank percentile of sorted values (0 when empty).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Which of `points` (cost, accuracy) are on the Pareto frontier: no other
/// point is at least as cheap and at least as accurate, and better in one.
pub fn pareto(points: &[(f64, f64)]) -> Vec<bool> {
    points.iter().map(|&(c, a)| !points.iter().any(|&(c2, a2)| c2 <= c && a2 >= a && (c2 < c || a2 > a))).collect()
}

/// A markdown table comparing policies on one slice: EM, cost, calls, and
/// whether each is on the cost/EM Pareto frontier.
pub fn comparison(summaries: &[Summary]) -> String {
    let on = pareto(&summaries.iter().map(|s| (s.overall.cost, s.overall.em)).collect::<Vec<_>>());
    let mut out =
        String::from("| policy | questions | EM | F1 | µ$ / question | calls | format failures | on the frontier |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for (s, on) in summaries.iter().zip(on) {
        let m = &s.overall;
        let _ = writeln!(out, "| `{}` | {} | {} |", s.policy, m.cells(), if on { "yes" } else { "" });
    }
    out
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub policy: String,
    pub overall: Metrics,
    pub by_dataset: BTreeMap<String, Metrics>,
    /// Keyed by hop count ("1", "2", ...; "?" when the dataset does not say).
    pub by_hops: BTreeMap<String, Metrics>,
    pub by_domain: BTreeMap<String, Metrics>,
}

impl Summary {
    pub fn of(policy: &str, records: &[Record]) -> Summary {
        let group = |key: &dyn Fn(&Record) -> String| {
            let mut groups: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
            for r in records {
                groups.entry(key(r)).or_default().push(r);
            }
            groups.into_iter().map(|(k, v)| (k, Metrics::of(v))).collect()
        };
        Summary {
            policy: policy.to_string(),
            overall: Metrics::of(records),
            by_dataset: group(&|r| r.dataset.clone()),
            by_hops: group(&|r| r.hops.map_or_else(|| "?".into(), |h| h.to_string())),
            by_domain: group(&|r| r.domain.clone().unwrap_or_else(|| "?".into())),
        }
    }

    /// The slices the breakdown tables show: overall first, then each breakdown that has
    /// more than one group.
    pub fn slices(&self) -> Vec<(String, &Metrics)> {
        let mut slices = vec![("**all**".to_string(), &self.overall)];
        for (prefix, groups) in [("dataset", &self.by_dataset), ("hops", &self.by_hops), ("domain", &self.by_domain)] {
            if groups.len() > 1 {
                slices.extend(groups.iter().map(|(k, m)| (format!("{prefix} {k}"), m)));
            }
        }
        slices
    }

    /// A markdown section: one table of metrics, overall first, then each breakdown; then
    /// which models each slice called.
    pub fn markdown(&self) -> String {
        let mut out = format!("### `{}`\n\n", self.policy);
        out.push_str(
            "| slice | questions | EM | F1 | µ$ / question | calls | format failures | p50 ms | p95 ms | errors |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
        let slices = self.slices();
        for (name, m) in &slices {
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} |",
                m.cells(),
                m.latency_p50_ms,
                m.latency_p95_ms,
                m.errors
            );
        }
        let models: Vec<&String> = self.overall.model_use.keys().collect();
        if !models.is_empty() {
            out.push_str("\nQuestions calling each model:\n\n| slice |");
            for model in &models {
                let _ = write!(out, " {model} |");
            }
            out.push_str("\n|---|");
            out.push_str(&"---|".repeat(models.len()));
            out.push('\n');
            for (name, m) in &slices {
                let _ = write!(out, "| {name} |");
                for model in &models {
                    let share = m.model_use.get(*model).copied().unwrap_or(0.0);
                    let _ = write!(out, " {:.0}% |", share * 100.0);
                }
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::dataset::Item;

    fn record(id: &str, hops: u8, em: f64, cost: f64, latency_ms: u64, format_ok: bool) -> Record {
        let item = Item {
            id: id.into(),
            dataset: "d".into(),
            question: "q".into(),
            golden_answers: vec!["a".into()],
            hops: Some(hops),
            domain: Some("geo".into()),
        };
        Record {
            em,
            f1: em,
            cost,
            latency_ms,
            format_ok,
            calls: 1,
            error: None,
            ..Record::failed(&item, "p", String::new())
        }
    }

    #[test]
    fn the_frontier_keeps_only_undominated_points() {
        // (cost, EM): b dominates a; c is pricier but better; d ties c's EM at a higher cost.
        let points = [(2.0, 0.5), (1.0, 0.6), (3.0, 0.9), (4.0, 0.9), (1.0, 0.6)];
        assert_eq!(pareto(&points), [false, true, true, false, true]);
        assert!(pareto(&[]).is_empty());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!((percentile(&v, 0.5), percentile(&v, 0.95), percentile(&v, 1.0)), (50, 95, 100));
        assert_eq!((percentile(&[7], 0.95), percentile(&[], 0.5)), (7, 0));
    }

    #[test]
    fn groups_and_excludes_errors_from_means() {
        let mut records = vec![
            record("1", 1, 1.0, 2e-6, 10, true),
            record("2", 2, 0.0, 4e-6, 30, false),
            record("3", 2, 1.0, 6e-6, 20, true),
        ];
        let mut failed = record("4", 2, 1.0, 1.0, 999, true);
        failed.error = Some("backend down".into());
        records.push(failed);
        let s = Summary::of("p", &records);
        assert_eq!((s.overall.questions, s.overall.errors), (3, 1));
        assert!((s.overall.em - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.overall.cost - 4e-6).abs() < 1e-15);
        assert!((s.overall.format_failure_rate - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!((s.overall.latency_p50_ms, s.overall.latency_p95_ms), (20, 30));
        assert_eq!(s.by_hops["2"].questions, 2);
        assert_eq!(s.by_hops["2"].errors, 1);
        assert!((s.by_hops["2"].em - 0.5).abs() < 1e-12);
        let md = s.markdown();
        assert!(md.contains("| **all** | 3 | 0.667 |") && md.contains("| hops 2 | 2 | 0.500 |"), "{md}");
        assert!(!md.contains("dataset d"), "a single dataset needs no breakdown row");
        assert!(!md.contains("Questions calling each model"), "no calls, no model table");
    }

    #[test]
    fn model_use_counts_questions_per_model_per_slice() {
        let with = |id: &str, hops: u8, models: &[&str]| Record {
            models: models.iter().map(|m| m.to_string()).collect(),
            ..record(id, hops, 1.0, 1e-6, 10, true)
        };
        let mut failed = with("4", 2, &["b"]);
        failed.error = Some("timeout".into());
        let records = [with("1", 1, &["a"]), with("2", 2, &["a", "b"]), with("3", 2, &[]), failed];
        let s = Summary::of("p", &records);
        assert_eq!(s.overall.model_use.len(), 2);
        assert!((s.overall.model_use["a"] - 2.0 / 3.0).abs() < 1e-12, "errored questions are not counted");
        assert!((s.overall.model_use["b"] - 1.0 / 3.0).abs() < 1e-12);
        assert!((s.by_hops["2"].model_use["b"] - 0.5).abs() < 1e-12);
        assert!(!s.by_hops["1"].model_use.contains_key("b"));
        let md = s.markdown();
        assert!(md.contains("| slice | a | b |"), "{md}");
        assert!(md.contains("| **all** | 67% | 33% |") && md.contains("| hops 1 | 100% | 0% |"), "{md}");
    }
}
