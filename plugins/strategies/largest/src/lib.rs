//! Strategy `largest`: a single-round baseline that sends the whole question
//! to the largest model in the pool and answers with its reply.
//!
//! - Largest = greatest `size-b`; models without a size rank below any with
//!   one; ties (and an all-unknown pool) go to the higher output price, then
//!   to the alphabetically first name.
//! - First decision (no calls yet): route the question to that model, unless
//!   the turn budget only allows an answer (`turn + 1 >= max-turns`), in which
//!   case it answers "I don't know" rather than make a refused route.
//! - Later decisions: answer with the last successful non-empty reply,
//!   trimmed, or "I don't know" when no call succeeded.
//!
//! Takes no settings (any is `unsupported`); an empty pool or a descriptor
//! with a negative/NaN price or size is `invalid-input`. Never panics.

// The generated export glue passes the WIT arguments flattened.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({ world: "strategy", path: "../../../wit" });

use switchyard::plugin::types::{ErrorKind, ModelDescriptor, Route, RoutedCall};
use switchyard_plugin_sdk::pool::{self, Candidate, DONT_KNOW, Outcome};

/// The pool as the shared ordering helpers see it.
fn candidates(pool: &[ModelDescriptor]) -> Vec<Candidate<'_>> {
    pool.iter()
        .map(|m| Candidate {
            name: &m.name,
            price_in: m.price_in_per_mtok,
            price_out: m.price_out_per_mtok,
            size_b: m.size_b,
        })
        .collect()
}

fn outcomes(calls: &[RoutedCall]) -> Vec<Outcome<'_>> {
    calls.iter().map(|c| Outcome { reply: &c.reply, failed: c.error.is_some() }).collect()
}

/// The strategy's decision for `state`; see the module docs.
pub fn decide_largest(state: &RoutingState, settings: &[Setting]) -> Result<Action, PluginError> {
    if let Some(s) = settings.first() {
        return Err(PluginError {
            kind: ErrorKind::Unsupported,
            message: format!("largest takes no settings, got `{}`", s.name),
        });
    }
    let pool = candidates(&state.pool);
    pool::validate(&pool)
        .map_err(|e| PluginError { kind: ErrorKind::InvalidInput, message: format!("largest: {e}") })?;
    if !state.calls.is_empty() {
        let answer = pool::last_successful_reply(&outcomes(&state.calls)).unwrap_or(DONT_KNOW);
        return Ok(Action::Answer(answer.into()));
    }
    // The host refuses a route on the last turn, so answer instead.
    if state.turn.saturating_add(1) >= state.max_turns {
        return Ok(Action::Answer(DONT_KNOW.into()));
    }
    match pool::largest(&pool) {
        Some(i) => Ok(Action::Route(Route { model: state.pool[i].name.clone(), query: state.question.clone() })),
        // Unreachable after validate, but an answer is better than a panic.
        None => Ok(Action::Answer(DONT_KNOW.into())),
    }
}

struct Largest;

impl Guest for Largest {
    fn decide(state: RoutingState, settings: Vec<Setting>) -> Result<Action, PluginError> {
        decide_largest(&state, &settings)
    }
}

export!(Largest);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard::plugin::types::Usage;

    fn model(name: &str, price_in: f64, price_out: f64, size_b: Option<f64>) -> ModelDescriptor {
        ModelDescriptor {
            name: name.into(),
            aliases: vec![],
            price_in_per_mtok: price_in,
            price_out_per_mtok: price_out,
            latency_ms: 100,
            context_tokens: 8192,
            size_b,
            strengths: vec![],
            example_scores: vec![],
        }
    }

    fn call(model: &str, reply: &str, error: Option<&str>) -> RoutedCall {
        RoutedCall {
            model: model.into(),
            query: "q".into(),
            reply: reply.into(),
            usage: Usage { input_tokens: 1, output_tokens: 1 },
            cost: 0.0,
            latency_ms: 1,
            error: error.map(Into::into),
        }
    }

    fn state(pool: Vec<ModelDescriptor>, calls: Vec<RoutedCall>) -> RoutingState {
        RoutingState { question: "Who wrote Dune?".into(), pool, calls, turn: 0, max_turns: 4 }
    }

    fn pool() -> Vec<ModelDescriptor> {
        vec![
            model("qwen-7b", 0.1, 0.2, Some(7.0)),
            model("llama-70b", 0.9, 0.9, Some(70.0)),
            model("mystery-pro", 10.0, 30.0, None),
            model("mixtral-8x7b", 0.6, 0.6, Some(46.7)),
        ]
    }

    fn routed(action: Action) -> (String, String) {
        match action {
            Action::Route(r) => (r.model, r.query),
            Action::Answer(a) => panic!("expected a route, got answer {a:?}"),
        }
    }

    fn answered(action: Action) -> String {
        match action {
            Action::Answer(a) => a,
            Action::Route(r) => panic!("expected an answer, got route to {}", r.model),
        }
    }

    #[test]
    fn routes_whole_question_to_largest_known_size() {
        let (model, query) = routed(decide_largest(&state(pool(), vec![]), &[]).unwrap());
        assert_eq!(model, "llama-70b");
        assert_eq!(query, "Who wrote Dune?");
    }

    #[test]
    fn all_unknown_sizes_fall_back_to_output_price_then_name() {
        let p = vec![model("b", 5.0, 1.0, None), model("c", 0.0, 4.0, None), model("a", 0.0, 4.0, None)];
        assert_eq!(routed(decide_largest(&state(p, vec![]), &[]).unwrap()).0, "a");
    }

    #[test]
    fn answers_with_last_successful_reply_trimmed() {
        let calls = vec![call("llama-70b", "  Frank Herbert\n", None)];
        assert_eq!(answered(decide_largest(&state(pool(), calls), &[]).unwrap()), "Frank Herbert");
    }

    #[test]
    fn failed_calls_give_dont_know() {
        let calls = vec![call("llama-70b", "", Some("timeout"))];
        assert_eq!(answered(decide_largest(&state(pool(), calls), &[]).unwrap()), DONT_KNOW);
    }

    #[test]
    fn last_turn_answers_instead_of_routing() {
        let mut s = state(pool(), vec![]);
        s.turn = 3;
        assert_eq!(answered(decide_largest(&s, &[]).unwrap()), DONT_KNOW);
        s.max_turns = 0;
        s.turn = u32::MAX;
        assert_eq!(answered(decide_largest(&s, &[]).unwrap()), DONT_KNOW);
    }

    #[test]
    fn rejects_empty_pool_bad_descriptors_and_settings() {
        let err = decide_largest(&state(vec![], vec![]), &[]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        let err = decide_largest(&state(vec![model("x", f64::NAN, 0.0, None)], vec![]), &[]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        let err = decide_largest(&state(pool(), vec![]), &[Setting { name: "k".into(), value: 1.0 }]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unsupported);
    }
}
