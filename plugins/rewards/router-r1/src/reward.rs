//! Router-R1's reward: format, outcome and cost combined hierarchically
//! (ROUTER_R1.md §3).
//!
//! Invariants:
//! - A pure function of (the batch, the params): the cost normaliser uses
//!   fixed bounds or percentiles of this batch only, so a reward does not
//!   depend on the order of trajectories or of batches.
//! - Results are in input order; `score` is `score_batch` of one input.
//! - total = -1 when the format fails; else f (= 0) without an answer or with
//!   outcome 0; else outcome * (1 - alpha) + alpha * c. Every breakdown field
//!   is filled in every case (EM, F1 and c are reported even when the format
//!   fails, for diagnosis).
//! - Bad params or inputs are `invalid-input` errors, never panics or NaNs.

use switchyard_plugin_sdk::normalize;

use crate::format;
use crate::switchyard::plugin::types::{CostBounds, ErrorKind, Metric};
use crate::{PluginError, RewardBreakdown, RewardParams, ScoringInput};

fn invalid(message: String) -> PluginError {
    PluginError { kind: ErrorKind::InvalidInput, message }
}

/// Checks `params`; the error says which value is wrong and why.
pub fn validate(params: &RewardParams) -> Result<(), PluginError> {
    if !(0.0..=1.0).contains(&params.alpha) {
        return Err(invalid(format!("alpha must be in [0, 1], got {}", params.alpha)));
    }
    match params.cost_bounds {
        CostBounds::Fixed((lo, hi)) => {
            if !(lo.is_finite() && hi.is_finite()) {
                return Err(invalid(format!("fixed cost bounds must be finite, got ({lo}, {hi})")));
            }
        }
        CostBounds::BatchPercentiles((lo, hi)) => {
            if !((0.0..=100.0).contains(&lo) && (0.0..=100.0).contains(&hi) && lo <= hi) {
                return Err(invalid(format!(
                    "cost percentiles must satisfy 0 <= lower <= upper <= 100, got ({lo}, {hi})"
                )));
            }
        }
    }
    Ok(())
}

/// Sum of the calls' costs; every cost must be finite and non-negative.
pub fn raw_cost(input: &ScoringInput) -> Result<f64, String> {
    let mut sum = 0.0;
    for (k, call) in input.trajectory.calls.iter().enumerate() {
        if !(call.cost.is_finite() && call.cost >= 0.0) {
            return Err(format!("call #{} has an invalid cost {}", k + 1, call.cost));
        }
        sum += call.cost;
    }
    if sum.is_finite() { Ok(sum) } else { Err(String::from("the summed cost is not finite")) }
}

/// The `p`-th percentile (0..=100) of ascending `sorted`, as numpy's default
/// (`method="linear"`) computes it, including its lerp, so the bounds agree
/// with a Python reimplementation to the last bit. None when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let virtual_index = (last as f64) * (p / 100.0);
    let below = virtual_index.floor();
    let gamma = virtual_index - below;
    // `as` saturates, and both ends are clamped as numpy clamps them.
    let i = (below as usize).min(last);
    let a = *sorted.get(i)?;
    let b = *sorted.get((i + 1).min(last))?;
    let diff = b - a;
    Some(if gamma >= 0.5 { b - diff * (1.0 - gamma) } else { a + diff * gamma })
}

/// Cost score c in [0, 1] (1 = cheapest) of sqrt(raw) `s` between `lo` and
/// `hi`; a degenerate interval is a step at `lo`.
pub fn cost_score(s: f64, lo: f64, hi: f64) -> f64 {
    if hi <= lo { if s <= lo { 1.0 } else { 0.0 } } else { 1.0 - ((s - lo) / (hi - lo)).clamp(0.0, 1.0) }
}

/// The hierarchical combination of ROUTER_R1.md §3.
pub fn combine(format: f64, has_answer: bool, outcome: f64, alpha: f64, c: f64) -> f64 {
    if format < 0.0 {
        -1.0
    } else if !has_answer || outcome == 0.0 {
        format
    } else {
        outcome * (1.0 - alpha) + alpha * c
    }
}

/// Scores `inputs` in order; batch-relative cost bounds use exactly these.
pub fn score_batch(inputs: &[ScoringInput], params: &RewardParams) -> Result<Vec<RewardBreakdown>, PluginError> {
    validate(params)?;
    let mut raws = Vec::with_capacity(inputs.len());
    for (k, input) in inputs.iter().enumerate() {
        raws.push(raw_cost(input).map_err(|m| invalid(format!("input #{}: {m}", k + 1)))?);
    }
    let roots: Vec<f64> = raws.iter().map(|r| r.sqrt()).collect();
    let (lo, hi) = match params.cost_bounds {
        CostBounds::Fixed(bounds) => bounds,
        CostBounds::BatchPercentiles((p_lo, p_hi)) => {
            let mut sorted = roots.clone();
            sorted.sort_by(f64::total_cmp);
            // An empty batch has no bounds and nothing to score.
            let lo = percentile(&sorted, p_lo).unwrap_or(0.0);
            let hi = percentile(&sorted, p_hi).unwrap_or(0.0);
            (lo, hi)
        }
    };

    let mut out = Vec::with_capacity(inputs.len());
    for (k, ((input, raw), root)) in inputs.iter().zip(&raws).zip(&roots).enumerate() {
        let traj = &input.trajectory;
        let check =
            format::check_format(&traj.segments, &traj.pool).map_err(|m| invalid(format!("input #{}: {m}", k + 1)))?;
        let answer = format::last_answer(&traj.segments);
        let (exact_match, f1) = match &answer {
            Some(a) => (normalize::exact_match(a, &input.golden_answers), normalize::f1(a, &input.golden_answers)),
            None => (0.0, 0.0),
        };
        let outcome = match params.metric {
            Metric::ExactMatch => exact_match,
            Metric::F1 => f1,
        };
        let format = check.score();
        let c = cost_score(*root, lo, hi);
        out.push(RewardBreakdown {
            format,
            total: combine(format, answer.is_some(), outcome, params.alpha, c),
            format_errors: check.errors,
            answer,
            exact_match,
            f1,
            outcome,
            raw_cost: *raw,
            cost_score: c,
        });
    }
    Ok(out)
}

/// Scores one input (batch-relative bounds then use this input alone).
pub fn score(input: ScoringInput, params: &RewardParams) -> Result<RewardBreakdown, PluginError> {
    score_batch(core::slice::from_ref(&input), params)?
        .pop()
        .ok_or_else(|| invalid(String::from("internal: no result for one input")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{good, input, params, r};

    const CHEAP: CostBounds = CostBounds::Fixed((0.0, 0.1));

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    fn one(inp: ScoringInput, p: &RewardParams) -> RewardBreakdown {
        score(inp, p).expect("valid input")
    }

    #[test]
    fn correct_answer_without_cost() {
        let b =
            one(input(good("the Paris!"), &[0.0025], &["London", "Paris"]), &params(0.0, Metric::ExactMatch, CHEAP));
        assert_eq!(b.format, 0.0);
        assert!(b.format_errors.is_empty());
        assert_eq!(b.answer.as_deref(), Some("the Paris!"));
        assert_eq!((b.exact_match, b.f1, b.outcome), (1.0, 1.0, 1.0));
        assert!(close(b.raw_cost, 0.0025));
        assert!(close(b.cost_score, 0.5));
        assert_eq!(b.total, 1.0);
    }

    #[test]
    fn wrong_answer_scores_zero() {
        let b = one(input(good("Lyon"), &[0.0], &["Paris"]), &params(0.9, Metric::ExactMatch, CHEAP));
        assert_eq!((b.exact_match, b.outcome, b.total), (0.0, 0.0, 0.0));
        assert_eq!(b.cost_score, 1.0);
    }

    #[test]
    fn format_failure_overrides_everything() {
        let segs = vec![r("Paris <answer>Paris</answer>")];
        let b = one(input(segs, &[], &["Paris"]), &params(0.5, Metric::ExactMatch, CHEAP));
        assert_eq!(b.format, -1.0);
        assert!(!b.format_errors.is_empty());
        // Still reported for diagnosis.
        assert_eq!((b.exact_match, b.outcome), (1.0, 1.0));
        assert_eq!(b.total, -1.0);
    }

    #[test]
    fn no_answer() {
        let b = one(input(vec![r("<think>hmm</think>")], &[], &["Paris"]), &params(0.0, Metric::F1, CHEAP));
        assert_eq!(b.answer, None);
        assert_eq!((b.exact_match, b.f1, b.outcome), (0.0, 0.0, 0.0));
        assert_eq!(b.total, -1.0);
        // With a valid format (not reachable through the checker, which
        // demands an answer) the total is the format score.
        assert_eq!(combine(0.0, false, 1.0, 0.5, 1.0), 0.0);
    }

    #[test]
    fn f1_metric_and_alpha_combination() {
        // F1("Paris France", "Paris") = 2/3; sqrt(0.0025) = 0.05 -> c = 0.5.
        let b = one(input(good("Paris France"), &[0.0025], &["Paris"]), &params(0.6, Metric::F1, CHEAP));
        assert_eq!(b.exact_match, 0.0);
        assert!(close(b.f1, 2.0 / 3.0));
        assert_eq!(b.outcome, b.f1);
        assert!(close(b.total, (2.0 / 3.0) * 0.4 + 0.6 * 0.5));
        // EM with alpha: (1 - alpha) + alpha * c.
        let b = one(input(good("Paris"), &[0.0025], &["Paris"]), &params(0.5, Metric::ExactMatch, CHEAP));
        assert!(close(b.total, 0.75));
        // alpha = 1 rewards only cheapness (once correct).
        let b = one(input(good("Paris"), &[0.0], &["Paris"]), &params(1.0, Metric::ExactMatch, CHEAP));
        assert_eq!(b.total, 1.0);
    }

    #[test]
    fn raw_cost_is_the_sum_of_calls() {
        let inp = input(good("x"), &[0.001, 0.002, 0.0005], &["x"]);
        assert!(close(raw_cost(&inp).unwrap(), 0.0035));
        assert_eq!(raw_cost(&input(good("x"), &[], &["x"])).unwrap(), 0.0);
        assert!(raw_cost(&input(good("x"), &[-0.1], &["x"])).unwrap_err().contains("call #1"));
        assert!(raw_cost(&input(good("x"), &[0.0, f64::NAN], &["x"])).unwrap_err().contains("call #2"));
        assert!(raw_cost(&input(good("x"), &[f64::MAX, f64::MAX], &["x"])).is_err());
    }

    #[test]
    fn fixed_cost_bounds() {
        assert_eq!(cost_score(0.0, 0.0, 0.1), 1.0);
        assert!(close(cost_score(0.05, 0.0, 0.1), 0.5));
        assert_eq!(cost_score(0.1, 0.0, 0.1), 0.0);
        assert_eq!(cost_score(0.5, 0.0, 0.1), 0.0);
        assert_eq!(cost_score(0.01, 0.02, 0.1), 1.0);
        // Degenerate interval: a step at `lo`.
        assert_eq!(cost_score(0.2, 0.2, 0.2), 1.0);
        assert_eq!(cost_score(0.21, 0.2, 0.2), 0.0);
        assert_eq!(cost_score(0.1, 0.2, 0.1), 1.0);
        assert_eq!(cost_score(0.3, 0.2, 0.1), 0.0);
    }

    #[test]
    fn percentiles_follow_numpy_linear() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert!(close(percentile(&v, 5.0).unwrap(), 1.15));
        assert!(close(percentile(&v, 95.0).unwrap(), 3.85));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 100.0), Some(4.0));
        assert_eq!(percentile(&v, 50.0), Some(2.5));
        assert_eq!(percentile(&[7.0], 5.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        // numpy: np.percentile([0, 0.1, 0.2, 0.3], 95) == 0.285
        assert!(close(percentile(&[0.0, 0.1, 0.2, 0.3], 95.0).unwrap(), 0.285));
    }

    #[test]
    fn batch_percentiles_are_order_independent() {
        let costs = [0.0, 0.01, 0.04, 0.09]; // sqrt: 0, 0.1, 0.2, 0.3
        let p = params(0.5, Metric::ExactMatch, CostBounds::BatchPercentiles((0.0, 100.0)));
        let make = |order: &[usize]| -> Vec<ScoringInput> {
            order.iter().map(|&i| input(good("Paris"), &[costs[i]], &["Paris"])).collect()
        };
        let forward = score_batch(&make(&[0, 1, 2, 3]), &p).unwrap();
        let cs: Vec<f64> = forward.iter().map(|b| b.cost_score).collect();
        let want = [1.0, 2.0 / 3.0, 1.0 / 3.0, 0.0];
        assert!(cs.iter().zip(want).all(|(a, b)| close(*a, b)), "{cs:?}");
        // Results are in input order, and each trajectory's reward is the
        // same whatever the order of the batch.
        let shuffled = score_batch(&make(&[2, 0, 3, 1]), &p).unwrap();
        for (pos, &i) in [2usize, 0, 3, 1].iter().enumerate() {
            assert_eq!(shuffled[pos].raw_cost, forward[i].raw_cost);
            assert_eq!(shuffled[pos].cost_score, forward[i].cost_score);
            assert_eq!(shuffled[pos].total, forward[i].total);
        }
    }

    #[test]
    fn batch_results_keep_input_order() {
        let inputs = vec![
            input(good("Paris"), &[], &["Paris"]),
            input(vec![r("nope")], &[], &["Paris"]),
            input(good("Lyon"), &[], &["Paris"]),
        ];
        let out = score_batch(&inputs, &params(0.0, Metric::ExactMatch, CHEAP)).unwrap();
        let totals: Vec<f64> = out.iter().map(|b| b.total).collect();
        assert_eq!(totals, vec![1.0, -1.0, 0.0]);
        assert!(score_batch(&[], &params(0.0, Metric::ExactMatch, CHEAP)).unwrap().is_empty());
        let pct = CostBounds::BatchPercentiles((5.0, 95.0));
        assert!(score_batch(&[], &params(0.0, Metric::ExactMatch, pct)).unwrap().is_empty());
    }

    #[test]
    fn single_score_with_batch_percentiles_is_cheapest() {
        let p = params(0.5, Metric::ExactMatch, CostBounds::BatchPercentiles((5.0, 95.0)));
        let b = one(input(good("Paris"), &[0.5], &["Paris"]), &p);
        assert_eq!(b.cost_score, 1.0);
        assert_eq!(b.total, 1.0);
    }

    #[test]
    fn params_are_validated() {
        let bad = [
            params(-0.1, Metric::ExactMatch, CHEAP),
            params(1.1, Metric::ExactMatch, CHEAP),
            params(f64::NAN, Metric::ExactMatch, CHEAP),
            params(0.0, Metric::ExactMatch, CostBounds::Fixed((0.0, f64::INFINITY))),
            params(0.0, Metric::ExactMatch, CostBounds::Fixed((f64::NAN, 1.0))),
            params(0.0, Metric::ExactMatch, CostBounds::BatchPercentiles((-1.0, 50.0))),
            params(0.0, Metric::ExactMatch, CostBounds::BatchPercentiles((50.0, 101.0))),
            params(0.0, Metric::ExactMatch, CostBounds::BatchPercentiles((60.0, 40.0))),
            params(0.0, Metric::ExactMatch, CostBounds::BatchPercentiles((f64::NAN, 40.0))),
        ];
        for p in &bad {
            let err = score(input(good("x"), &[], &["x"]), p).unwrap_err();
            assert!(matches!(err.kind, ErrorKind::InvalidInput), "{err:?}");
            assert!(err.message.contains("alpha") || err.message.contains("cost"), "{}", err.message);
        }
        assert!(validate(&params(0.0, Metric::F1, CostBounds::BatchPercentiles((50.0, 50.0)))).is_ok());
        assert!(validate(&params(1.0, Metric::F1, CostBounds::Fixed((0.3, 0.1)))).is_ok());
    }

    #[test]
    fn bad_inputs_are_errors_naming_the_input() {
        let p = params(0.0, Metric::ExactMatch, CHEAP);
        let err = score_batch(&[input(good("x"), &[], &["x"]), input(good("x"), &[f64::NAN], &["x"])], &p).unwrap_err();
        assert!(err.message.starts_with("input #2: call #1"), "{}", err.message);
        let mut segs = good("x");
        segs[1].text = String::from("not information");
        let err = score(input(segs, &[], &["x"]), &p).unwrap_err();
        assert!(matches!(err.kind, ErrorKind::InvalidInput));
        assert!(err.message.contains("host segment"), "{}", err.message);
    }
}
