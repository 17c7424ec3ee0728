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
//!
//! The flow is [`switchyard_plugin_sdk::pool::single_round`] (shared with
//! `cheapest`); this crate adds the choice rule and the WIT types.

// The generated export glue passes the WIT arguments flattened.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({ world: "strategy", path: "../../../wit" });

use switchyard::plugin::types::{ErrorKind, ModelDescriptor, Route, RoutedCall};
use switchyard_plugin_sdk::pool::{self, Decision};

switchyard_plugin_sdk::pool_views!();

/// The strategy's decision for `state`; see the module docs.
pub fn decide_largest(state: &RoutingState, settings: &[Setting]) -> Result<Action, PluginError> {
    if let Some(s) = settings.first() {
        return Err(PluginError {
            kind: ErrorKind::Unsupported,
            message: format!("largest takes no settings, got `{}`", s.name),
        });
    }
    let calls = outcomes(&state.calls);
    match pool::single_round(&candidates(&state.pool), &calls, state.turn, state.max_turns, pool::largest) {
        Ok(Decision::Route(i)) => {
            Ok(Action::Route(Route { model: state.pool[i].name.clone(), query: state.question.clone() }))
        }
        Ok(Decision::Answer(answer)) => Ok(Action::Answer(answer.into())),
        Err(e) => Err(PluginError { kind: ErrorKind::InvalidInput, message: format!("largest: {e}") }),
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

    fn state(pool: Vec<ModelDescriptor>, calls: Vec<RoutedCall>) -> RoutingState {
        RoutingState { question: "Who wrote Dune?".into(), pool, calls, turn: 0, max_turns: 4 }
    }

    fn routed_to(pool: Vec<ModelDescriptor>) -> String {
        match decide_largest(&state(pool, vec![]), &[]).unwrap() {
            Action::Route(r) => r.model,
            Action::Answer(a) => panic!("expected a route, got answer {a:?}"),
        }
    }

    #[test]
    fn a_known_size_beats_an_unknown_one_however_pricey() {
        let p = vec![
            model("small", 0.1, 0.2, Some(8.0)),
            model("mystery", 10.0, 30.0, None),
            model("big", 1.0, 1.0, Some(70.0)),
        ];
        assert_eq!(routed_to(p), "big");
    }

    #[test]
    fn all_unknown_sizes_fall_back_to_output_price_then_name() {
        let p = vec![model("b", 5.0, 1.0, None), model("c", 0.0, 4.0, None), model("a", 0.0, 4.0, None)];
        assert_eq!(routed_to(p), "a");
    }

    #[test]
    fn decide_maps_the_shared_flow_to_wit_types() {
        let pool = || {
            vec![
                model("qwen-7b", 0.1, 0.2, Some(7.0)),
                model("llama-70b", 0.9, 0.9, Some(70.0)),
                model("mystery-pro", 10.0, 30.0, None),
                model("mixtral-8x7b", 0.6, 0.6, Some(46.7)),
            ]
        };
        match decide_largest(&state(pool(), vec![]), &[]).unwrap() {
            Action::Route(r) => assert_eq!((r.model.as_str(), r.query.as_str()), ("llama-70b", "Who wrote Dune?")),
            Action::Answer(a) => panic!("expected a route, got answer {a:?}"),
        }

        let call = RoutedCall {
            model: "qwen-7b".into(),
            query: "Who wrote Dune?".into(),
            reply: "  Frank Herbert\n".into(),
            usage: Usage { input_tokens: 1, output_tokens: 1 },
            cost: 0.0,
            latency_ms: 1,
            error: None,
        };
        let answer = decide_largest(&state(pool(), vec![call]), &[]).unwrap();
        assert!(matches!(answer, Action::Answer(ref a) if a == "Frank Herbert"), "{answer:?}");

        let err = decide_largest(&state(vec![], vec![]), &[]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert!(err.message.starts_with("largest: "), "{}", err.message);
        let err = decide_largest(&state(pool(), vec![]), &[Setting { name: "k".into(), value: 1.0 }]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unsupported);
    }
}
