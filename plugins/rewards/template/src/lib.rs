//! Reward plugin template `exact-match-template`: the smallest useful reward.
//! Copy this folder to start your own (see README.md next to it).
//!
//! What it does:
//! - answer  = the last `<answer>...</answer>` in router-written text;
//! - format  = 0 if there is such an answer, else -1 (no other rules);
//! - outcome = exact match of the answer against the gold answers, with the
//!   same normalisation as Router-R1 (lowercase, strip ASCII punctuation,
//!   drop a/an/the, collapse whitespace) from the plugin SDK;
//! - cost is ignored unless `alpha > 0`; then fixed bounds give a cost score
//!   c and the total is outcome * (1 - alpha) + alpha * c when the answer is
//!   right.
//!
//! Rules every reward plugin must keep (the host enforces what it can):
//! - Pure and deterministic: no imports exist (no clock, files, randomness),
//!   so the same input always gives the same reward.
//! - Never panic on any input: a trap aborts the whole batch. Report bad
//!   input as `Err(PluginError { kind: InvalidInput, .. })`, and settings you
//!   do not implement as `Unsupported`.
//! - `score-batch` returns one result per input, in input order.

// wit-bindgen's generated export shims take the flattened record fields as
// arguments; that code is not ours to restructure.
#![allow(clippy::too_many_arguments)]

// Generates the Rust types and the `Guest` trait of the `reward` world in
// wit/worlds.wit. Types named in the world's `use` (ScoringInput,
// RewardParams, RewardBreakdown, PluginError) appear at the crate root; the
// others live in `switchyard::plugin::types`.
wit_bindgen::generate!({ world: "reward", path: "../../../wit" });

use switchyard::plugin::types::{Author, CostBounds, ErrorKind, Metric, Segment};
use switchyard_plugin_sdk::normalize;

/// The final answer: content of the last `<answer>...</answer>` written by
/// the router, trimmed. Host segments hold the called models' replies; an
/// answer in there is not the router's, so it never counts.
pub fn last_router_answer(segments: &[Segment]) -> Option<String> {
    // Join consecutive router segments so a tag split across two of them is
    // still found; a host segment ends the run.
    let mut runs: Vec<String> = Vec::new();
    let mut in_router_run = false;
    for seg in segments {
        match seg.author {
            Author::Router if in_router_run => {
                if let Some(run) = runs.last_mut() {
                    run.push_str(&seg.text);
                }
            }
            Author::Router => {
                runs.push(seg.text.clone());
                in_router_run = true;
            }
            Author::Host => in_router_run = false,
        }
    }

    let mut last = None;
    for run in &runs {
        // Non-greedy `<answer>(.*?)</answer>`, left to right; keep the last.
        let mut rest = run.as_str();
        while let Some(open) = rest.find("<answer>") {
            let after = rest.get(open + "<answer>".len()..).unwrap_or("");
            let Some(close) = after.find("</answer>") else { break };
            last = after.get(..close).map(normalize::py_strip);
            rest = after.get(close + "</answer>".len()..).unwrap_or("");
        }
    }
    last.map(String::from)
}

/// Cost score in [0, 1] (1 = cheapest) of `raw` dollars between fixed bounds
/// on sqrt(raw), as Router-R1 measures cost.
pub fn fixed_cost_score(raw: f64, lo: f64, hi: f64) -> f64 {
    let s = raw.sqrt();
    if hi <= lo { if s <= lo { 1.0 } else { 0.0 } } else { 1.0 - ((s - lo) / (hi - lo)).clamp(0.0, 1.0) }
}

fn error(kind: ErrorKind, message: &str) -> PluginError {
    PluginError { kind, message: message.to_string() }
}

/// Scores one input. All the plugin's logic is here, in plain Rust, so
/// `cargo test` can test it natively.
pub fn score_one(input: &ScoringInput, params: &RewardParams) -> Result<RewardBreakdown, PluginError> {
    // Validate params first: a typo in configuration must be an error, not
    // a silently different reward.
    if !(0.0..=1.0).contains(&params.alpha) {
        return Err(error(ErrorKind::InvalidInput, "alpha must be in [0, 1]"));
    }
    if params.metric != Metric::ExactMatch {
        return Err(error(ErrorKind::Unsupported, "this reward only implements metric exact-match"));
    }

    // Cost: only computed when it matters (alpha > 0).
    let raw_cost: f64 = input.trajectory.calls.iter().map(|c| c.cost).sum();
    let cost_score = if params.alpha > 0.0 {
        if !(raw_cost.is_finite() && raw_cost >= 0.0) {
            return Err(error(ErrorKind::InvalidInput, "call costs must be finite and non-negative"));
        }
        match params.cost_bounds {
            CostBounds::Fixed((lo, hi)) if lo.is_finite() && hi.is_finite() => fixed_cost_score(raw_cost, lo, hi),
            CostBounds::Fixed(_) => return Err(error(ErrorKind::InvalidInput, "cost bounds must be finite")),
            CostBounds::BatchPercentiles(_) => {
                return Err(error(ErrorKind::Unsupported, "this reward only implements fixed cost bounds"));
            }
        }
    } else {
        1.0
    };

    let answer = last_router_answer(&input.trajectory.segments);
    let exact_match = match &answer {
        Some(a) => normalize::exact_match(a, &input.golden_answers),
        None => 0.0,
    };
    let f1 = match &answer {
        Some(a) => normalize::f1(a, &input.golden_answers),
        None => 0.0,
    };
    let (format, format_errors) = match answer {
        Some(_) => (0.0, Vec::new()),
        None => (-1.0, vec![String::from("no <answer>...</answer> in router-written text")]),
    };
    let outcome = exact_match;
    // Hierarchical, as in Router-R1: no answer -> -1; wrong -> 0; right ->
    // 1, traded against cost by alpha.
    let total = if format < 0.0 {
        -1.0
    } else if outcome == 0.0 {
        0.0
    } else {
        outcome * (1.0 - params.alpha) + params.alpha * cost_score
    };

    Ok(RewardBreakdown { format, format_errors, answer, exact_match, f1, outcome, raw_cost, cost_score, total })
}

/// The component: the host calls these two exports.
struct ExactMatchTemplate;

impl Guest for ExactMatchTemplate {
    fn score(input: ScoringInput, params: RewardParams) -> Result<RewardBreakdown, PluginError> {
        score_one(&input, &params)
    }

    fn score_batch(inputs: Vec<ScoringInput>, params: RewardParams) -> Result<Vec<RewardBreakdown>, PluginError> {
        // No batch-relative state here, so a batch is just `score` per input,
        // in order; the first error fails the batch.
        inputs.iter().map(|input| score_one(input, &params)).collect()
    }
}

// Exports the `Guest` implementation as the component's `reward` world.
export!(ExactMatchTemplate);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard::plugin::types::Trajectory;

    fn seg(author: Author, text: &str) -> Segment {
        Segment { author, text: text.to_string() }
    }

    fn input(segments: Vec<Segment>, costs: &[f64], golds: &[&str]) -> ScoringInput {
        let calls = costs
            .iter()
            .map(|&cost| switchyard::plugin::types::RoutedCall {
                model: "m".into(),
                query: "q".into(),
                reply: "r".into(),
                usage: switchyard::plugin::types::Usage { input_tokens: 1, output_tokens: 1 },
                cost,
                latency_ms: 1,
                error: None,
            })
            .collect();
        ScoringInput {
            trajectory: Trajectory { question: "q?".into(), segments, calls, pool: Vec::new() },
            golden_answers: golds.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn params(alpha: f64) -> RewardParams {
        RewardParams { alpha, metric: Metric::ExactMatch, cost_bounds: CostBounds::Fixed((0.0, 0.1)) }
    }

    #[test]
    fn right_wrong_and_missing_answers() {
        let right = input(vec![seg(Author::Router, "<think>x</think><answer> The Paris </answer>")], &[], &["paris"]);
        let b = score_one(&right, &params(0.0)).unwrap();
        assert_eq!((b.format, b.exact_match, b.total), (0.0, 1.0, 1.0));
        assert_eq!(b.answer.as_deref(), Some("The Paris"));

        let wrong = input(vec![seg(Author::Router, "<answer>Lyon</answer>")], &[], &["paris"]);
        assert_eq!(score_one(&wrong, &params(0.0)).unwrap().total, 0.0);

        let missing = input(vec![seg(Author::Router, "Paris")], &[], &["paris"]);
        let b = score_one(&missing, &params(0.0)).unwrap();
        assert_eq!((b.format, b.total), (-1.0, -1.0));
        assert_eq!(b.format_errors.len(), 1);
    }

    #[test]
    fn answers_in_host_text_do_not_count() {
        let segs = vec![
            seg(Author::Router, "<answer>a</answer><search>m: q</search>"),
            seg(Author::Host, "<information><answer>paris</answer></information>"),
            seg(Author::Router, "<ans"),
            seg(Author::Router, "wer>b</answer>"),
        ];
        assert_eq!(last_router_answer(&segs).as_deref(), Some("b"));
        assert_eq!(last_router_answer(&segs[1..2]), None);
    }

    #[test]
    fn alpha_trades_against_cost() {
        // sqrt(0.0025) = 0.05: halfway between the bounds, c = 0.5.
        let right = input(vec![seg(Author::Router, "<answer>paris</answer>")], &[0.0025], &["Paris"]);
        let b = score_one(&right, &params(0.5)).unwrap();
        assert!((b.cost_score - 0.5).abs() < 1e-12);
        assert!((b.total - 0.75).abs() < 1e-12);
    }

    #[test]
    fn unsupported_and_invalid_params_are_errors() {
        let inp = input(vec![seg(Author::Router, "<answer>x</answer>")], &[], &["x"]);
        let mut p = params(0.0);
        p.metric = Metric::F1;
        assert!(matches!(score_one(&inp, &p).unwrap_err().kind, ErrorKind::Unsupported));
        let mut p = params(0.5);
        p.cost_bounds = CostBounds::BatchPercentiles((5.0, 95.0));
        assert!(matches!(score_one(&inp, &p).unwrap_err().kind, ErrorKind::Unsupported));
        assert!(matches!(score_one(&inp, &params(2.0)).unwrap_err().kind, ErrorKind::InvalidInput));
        assert!(matches!(score_one(&inp, &params(f64::NAN)).unwrap_err().kind, ErrorKind::InvalidInput));
    }
}
