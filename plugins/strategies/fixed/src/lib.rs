//! Strategy `fixed`: the "one model alone" baseline. Sends the whole question
//! to the pool model at position `model` (0-based, in configuration order)
//! and answers with its reply — one policy per pool model gives the
//! single-model rows of an evaluation.
//!
//! - Settings: `model` (a whole number, default 0). Unknown settings are
//!   `unsupported`; a non-whole or negative value, or one past the end of the
//!   pool, is `invalid-input` (a config naming a model that is not there is
//!   an error, not a silent fallback).
//! - The flow is [`switchyard_plugin_sdk::pool::single_round`]: route once,
//!   then answer with the last successful reply, else "I don't know".
//!   Never panics.

// The generated export glue passes the WIT arguments flattened.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({ world: "strategy", path: "../../../wit" });

use switchyard::plugin::types::{ErrorKind, ModelDescriptor, Route, RoutedCall};
use switchyard_plugin_sdk::pool::{self, Decision};
use switchyard_plugin_sdk::settings::Settings;

const MODEL: &str = "model";

switchyard_plugin_sdk::pool_views!();

switchyard_plugin_sdk::plugin_errors!("fixed");

/// The pool position the settings name.
fn position(settings: &[Setting], pool_len: usize) -> Result<usize, PluginError> {
    let pairs: Vec<(&str, f64)> = settings.iter().map(|s| (s.name.as_str(), s.value)).collect();
    let parsed = Settings::parse(&pairs, &[MODEL]).map_err(settings_error)?;
    let i = parsed.whole_number_or(MODEL, 0).map_err(settings_error)? as usize;
    if i >= pool_len {
        return Err(error(
            ErrorKind::InvalidInput,
            format!("setting `{MODEL}` = {i}, but the pool has {pool_len} models"),
        ));
    }
    Ok(i)
}

pub fn decide_fixed(state: &RoutingState, settings: &[Setting]) -> Result<Action, PluginError> {
    // A position past the end is a configuration error, not a silent "I don't know".
    let chosen = position(settings, state.pool.len())?;
    let calls = outcomes(&state.calls);
    match pool::single_round(&candidates(&state.pool), &calls, state.turn, state.max_turns, |_| Some(chosen)) {
        Ok(Decision::Route(i)) => {
            Ok(Action::Route(Route { model: state.pool[i].name.clone(), query: state.question.clone() }))
        }
        Ok(Decision::Answer(answer)) => Ok(Action::Answer(answer.into())),
        Err(e) => Err(error(ErrorKind::InvalidInput, e)),
    }
}

struct Fixed;

impl Guest for Fixed {
    fn decide(state: RoutingState, settings: Vec<Setting>) -> Result<Action, PluginError> {
        decide_fixed(&state, &settings)
    }
}

export!(Fixed);

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str) -> ModelDescriptor {
        ModelDescriptor {
            name: name.into(),
            aliases: vec![],
            price_in_per_mtok: 1.0,
            price_out_per_mtok: 1.0,
            latency_ms: 100,
            context_tokens: 8192,
            size_b: None,
            strengths: vec![],
            example_scores: vec![],
        }
    }

    fn decide(model_setting: Option<f64>) -> Result<Action, PluginError> {
        let state = RoutingState {
            question: "Who wrote Dune?".into(),
            pool: vec![model("a"), model("b"), model("c")],
            calls: vec![],
            turn: 0,
            max_turns: 4,
        };
        let settings: Vec<Setting> =
            model_setting.map(|v| Setting { name: MODEL.into(), value: v }).into_iter().collect();
        decide_fixed(&state, &settings)
    }

    #[test]
    fn routes_the_whole_question_to_the_configured_position() {
        for (setting, want) in [(None, "a"), (Some(1.0), "b"), (Some(2.0), "c")] {
            match decide(setting).unwrap() {
                Action::Route(r) => assert_eq!((r.model.as_str(), r.query.as_str()), (want, "Who wrote Dune?")),
                Action::Answer(a) => panic!("expected a route, got {a:?}"),
            }
        }
    }

    #[test]
    fn bad_positions_and_unknown_settings_are_errors() {
        for bad in [3.0, -1.0, 0.5] {
            assert_eq!(decide(Some(bad)).unwrap_err().kind, ErrorKind::InvalidInput, "{bad}");
        }
        assert!(decide(Some(3.0)).unwrap_err().message.contains("pool has 3 models"));
        let state = RoutingState { question: "q".into(), pool: vec![model("a")], calls: vec![], turn: 0, max_turns: 4 };
        let err = decide_fixed(&state, &[Setting { name: "modle".into(), value: 0.0 }]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unsupported);
    }
}
