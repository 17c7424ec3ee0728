//! The Router-R1 turn loop.
//!
//! Up to `max_turns` routed turns: the policy writes a turn; a search is
//! sent to the pool and the reply inserted as an information block; an
//! answer ends the episode. Then one final turn in which routing is not
//! allowed. The loop stops early when the trajectory exceeds the context
//! limit or the policy writes no action.
//!
//! Invariants: every router `<search>` is followed by exactly one host
//! `<information>` block; a trajectory's segments alternate router/host as
//! written; the loop does not depend on which policy drives it.

use std::time::Instant;

use serde::Serialize;

use super::policy::{Episode, Policy, PolicyError};
use super::protocol::{self, Step};
use crate::backend::Pool;
use crate::config::EngineConfig;
use crate::plugin::types::{Author, Segment, Trajectory};

/// Why an episode ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    Answered,
    /// Routed turns and the final turn passed without an answer.
    NoAnswer,
    /// The trajectory outgrew `max_context_chars`.
    ContextLimit,
    /// The policy wrote a turn with no action.
    NoAction,
}

/// A finished episode: the trajectory and its accounting.
#[derive(Clone, Debug, Serialize)]
pub struct Trace {
    pub policy: String,
    pub question: String,
    pub answer: Option<String>,
    pub stop: StopReason,
    pub turns: u32,
    pub trajectory: Trajectory,
    /// Sum of the calls' costs (from the cost component), US dollars.
    pub cost: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub latency_ms: u64,
}

impl Trace {
    pub fn text(&self) -> String {
        protocol::render(&self.trajectory.segments)
    }

    /// Distinct models called, in first-call order.
    pub fn models_called(&self) -> Vec<&str> {
        let mut models: Vec<&str> = Vec::new();
        for c in &self.trajectory.calls {
            if !models.contains(&c.model.as_str()) {
                models.push(&c.model);
            }
        }
        models
    }
}

/// Run one episode of `policy` on `question` over `pool`.
pub async fn run(
    config: &EngineConfig,
    policy: &dyn Policy,
    pool: &Pool,
    question: &str,
) -> Result<Trace, PolicyError> {
    let started = Instant::now();
    let mut episode = Episode {
        question: question.to_string(),
        pool: pool.descriptors(),
        segments: Vec::new(),
        calls: Vec::new(),
        turn: 0,
        max_turns: config.max_turns,
        final_turn: false,
    };
    let mut answer = None;
    let mut stop = StopReason::NoAnswer;
    let mut context_chars = 0usize;
    let mut out_of_context = false;
    for turn in 0..=config.max_turns {
        episode.turn = turn;
        // Past the context limit the router still gets its final,
        // routing-free turn (as the reference does after truncation).
        episode.final_turn = turn == config.max_turns || out_of_context;
        let text = cut_at_stop(policy.next_turn(&episode).await?);
        context_chars += text.chars().count();
        let step = protocol::parse_turn(&text);
        episode.segments.push(Segment { author: Author::Router, text: text.clone() });
        let observation = match step {
            Step::Answer(a) => {
                answer = Some(a);
                stop = StopReason::Answered;
                break;
            }
            Step::Search { .. } if episode.final_turn => {
                protocol::error_information("the routing budget is spent; no more calls on the final turn")
            }
            Step::Search { name, query } => {
                let call = pool.route(&name, &query).await;
                // Unresolved names are one label, not one series per typo.
                let label = if pool.resolve(&name).is_some() { call.model.as_str() } else { "unknown" };
                record_call_metrics(policy.name(), label, &call);
                let block = match &call.error {
                    None => protocol::information_block(&call.reply, config.observation_cap_chars),
                    Some(error) => protocol::error_information(error),
                };
                episode.calls.push(call);
                block
            }
            // Keep searches and information blocks paired even when the
            // search was malformed; the reward's format check judges it.
            Step::Malformed(reason) if text.contains(protocol::SEARCH_OPEN) => protocol::error_information(&reason),
            Step::Malformed(_) | Step::Continue => {
                stop = StopReason::NoAction;
                break;
            }
        };
        context_chars += observation.chars().count();
        episode.segments.push(Segment { author: Author::Host, text: observation });
        if episode.final_turn {
            break;
        }
        if context_chars > config.max_context_chars {
            stop = StopReason::ContextLimit;
            out_of_context = true;
        }
    }
    // fold from +0.0: an empty f64 `sum()` is -0.0, which prints as a negative cost.
    let cost = episode.calls.iter().map(|c| c.cost).fold(0.0, |a, b| a + b);
    let input_tokens = episode.calls.iter().map(|c| u64::from(c.usage.input_tokens)).sum();
    let output_tokens = episode.calls.iter().map(|c| u64::from(c.usage.output_tokens)).sum();
    Ok(Trace {
        policy: policy.name().to_string(),
        question: question.to_string(),
        answer,
        stop,
        turns: episode.turn + 1,
        trajectory: Trajectory {
            question: episode.question,
            segments: episode.segments,
            calls: episode.calls,
            pool: episode.pool,
        },
        cost,
        input_tokens,
        output_tokens,
        latency_ms: started.elapsed().as_millis().try_into().unwrap_or(u64::MAX),
    })
}

/// Policies should stop at a stop string; anything after it is dropped so
/// one turn holds at most one action.
fn cut_at_stop(mut text: String) -> String {
    let end = protocol::STOP_STRINGS.iter().filter_map(|s| text.find(s).map(|i| i + s.len())).min();
    if let Some(end) = end {
        text.truncate(end);
    }
    text
}

fn record_call_metrics(policy: &str, model: &str, call: &crate::plugin::types::RoutedCall) {
    let model = model.to_string();
    let labels = [("model", model.clone()), ("policy", policy.to_string())];
    metrics::counter!("switchyard_routed_calls_total", &labels).increment(1);
    metrics::counter!("switchyard_tokens_total", "model" => model.clone(), "direction" => "input")
        .increment(u64::from(call.usage.input_tokens));
    metrics::counter!("switchyard_tokens_total", "model" => model.clone(), "direction" => "output")
        .increment(u64::from(call.usage.output_tokens));
    metrics::counter!("switchyard_cost_microdollars_total", "model" => model.clone())
        .increment((call.cost * 1e6).round() as u64);
    if call.error.is_some() {
        metrics::counter!("switchyard_routed_call_errors_total", "model" => model.clone()).increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_after_the_first_stop_string_is_dropped() {
        assert_eq!(cut_at_stop("<search>a: b</search> junk <answer>x</answer>".into()), "<search>a: b</search>");
        assert_eq!(cut_at_stop("<think>x</think>".into()), "<think>x</think>");
    }
}
