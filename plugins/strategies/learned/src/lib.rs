//! Strategy `learned`: the single-round learned routers of the evaluation —
//! KNN over question features, or an MLP classifier — with parameters from a
//! file (`parameters = "…safetensors"` in the policy's configuration; the
//! host passes the bytes, `switchyard learned train` writes them). Which of
//! the two it is comes from the file.
//!
//! - It predicts each pool model's exact match on the question, sends the
//!   whole question to the best one (highest prediction minus `cost-weight`
//!   times its cost relative to the dearest candidate), then answers with the
//!   reply ([`switchyard_plugin_sdk::pool::single_round`]).
//! - Settings: `cost-weight` (>= 0, default 0); `k`, the neighbours of a KNN
//!   file (a whole number >= 1, default 10). Unknown settings (and `k` with an
//!   MLP file) are `unsupported`; bad values and bad files `invalid-input`;
//!   a pool with none of the file's models is `invalid-input`. Never panics.

// The generated export glue passes the WIT arguments flattened.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({ world: "learned-strategy", path: "../../../wit" });

use switchyard::plugin::types::{ErrorKind, ModelDescriptor, Route, RoutedCall};
use switchyard_plugin_sdk::learned::{Kind, Params};
use switchyard_plugin_sdk::pool::{self, Decision};
use switchyard_plugin_sdk::settings::{Settings, SettingsError};

const K: &str = "k";
const COST_WEIGHT: &str = "cost-weight";

switchyard_plugin_sdk::pool_views!();
switchyard_plugin_sdk::plugin_errors!("learned");

/// `k` and `cost-weight`, checked against the file's kind.
fn read_settings(settings: &[Setting], kind: Kind) -> Result<(usize, f64), PluginError> {
    let pairs: Vec<(&str, f64)> = settings.iter().map(|s| (s.name.as_str(), s.value)).collect();
    let known: &[&str] = match kind {
        Kind::Knn => &[K, COST_WEIGHT],
        Kind::Mlp => &[COST_WEIGHT],
    };
    let parsed = Settings::parse(&pairs, known).map_err(settings_error)?;
    let k = parsed.whole_number_or(K, 10).map_err(settings_error)?;
    if k == 0 {
        return Err(settings_error(SettingsError::Invalid(format!("setting `{K}` must be at least 1"))));
    }
    let cost_weight = parsed.get_or(COST_WEIGHT, 0.0);
    if cost_weight < 0.0 {
        return Err(error(ErrorKind::InvalidInput, format!("setting `{COST_WEIGHT}` must be >= 0, got {cost_weight}")));
    }
    Ok((k.min(usize::MAX as u64) as usize, cost_weight))
}

pub fn decide_learned(state: &RoutingState, parameters: &[u8], settings: &[Setting]) -> Result<Action, PluginError> {
    let params =
        Params::from_bytes(parameters).map_err(|e| error(ErrorKind::InvalidInput, format!("parameters: {e}")))?;
    let (k, cost_weight) = read_settings(settings, params.kind())?;
    let names: Vec<&str> = state.pool.iter().map(|m| m.name.as_str()).collect();
    // Chosen before the flow so that a pool the file cannot serve is an error, not "I don't know".
    let choice = if state.calls.is_empty() {
        Some(params.choose(&state.question, &names, k, cost_weight).map_err(|e| error(ErrorKind::InvalidInput, e))?)
    } else {
        None
    };
    let calls = outcomes(&state.calls);
    match pool::single_round(&candidates(&state.pool), &calls, state.turn, state.max_turns, |_| choice) {
        Ok(Decision::Route(i)) => {
            Ok(Action::Route(Route { model: state.pool[i].name.clone(), query: state.question.clone() }))
        }
        Ok(Decision::Answer(answer)) => Ok(Action::Answer(answer.into())),
        Err(e) => Err(error(ErrorKind::InvalidInput, e)),
    }
}

struct Learned;

impl Guest for Learned {
    fn decide(state: RoutingState, parameters: Vec<u8>, settings: Vec<Setting>) -> Result<Action, PluginError> {
        decide_learned(&state, &parameters, &settings)
    }
}

export!(Learned);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard::plugin::types::Usage;
    use switchyard_plugin_sdk::learned::{Body, FEATURE_DIM};

    fn model(name: &str, price: f64) -> ModelDescriptor {
        ModelDescriptor {
            name: name.into(),
            aliases: vec![],
            price_in_per_mtok: price,
            price_out_per_mtok: price,
            latency_ms: 100,
            context_tokens: 8192,
            size_b: None,
            strengths: vec![],
            example_scores: vec![],
        }
    }

    /// A KNN file: "city" questions were answered by `small`, "river" ones by `big`.
    fn knn_file() -> Vec<u8> {
        let examples: [(&str, &[f32]); 2] =
            [("In which city was Ann born?", &[1.0, 0.0]), ("How long is the Tor river?", &[0.0, 1.0])];
        Params::knn(vec!["small".into(), "big".into()], vec![1e-5, 9e-5], examples).to_bytes().unwrap()
    }

    fn state(question: &str, calls: Vec<RoutedCall>) -> RoutingState {
        RoutingState {
            question: question.into(),
            pool: vec![model("big", 9.0), model("small", 1.0)],
            calls,
            turn: 0,
            max_turns: 4,
        }
    }

    fn setting(name: &str, value: f64) -> Setting {
        Setting { name: name.into(), value }
    }

    fn routed(action: Action) -> String {
        match action {
            Action::Route(r) => r.model,
            Action::Answer(a) => panic!("expected a route, got the answer {a:?}"),
        }
    }

    #[test]
    fn routes_to_the_model_the_neighbours_say() {
        let file = knn_file();
        let k1 = [setting(K, 1.0)];
        assert_eq!(routed(decide_learned(&state("In which city was Bo born?", vec![]), &file, &k1).unwrap()), "small");
        assert_eq!(routed(decide_learned(&state("How long is the Ylo river?", vec![]), &file, &k1).unwrap()), "big");
        let cheap = [setting(K, 1.0), setting(COST_WEIGHT, 3.0)];
        assert_eq!(
            routed(decide_learned(&state("How long is the Ylo river?", vec![]), &file, &cheap).unwrap()),
            "small"
        );
    }

    #[test]
    fn answers_with_the_reply_after_the_call() {
        let call = RoutedCall {
            model: "big".into(),
            query: "q".into(),
            reply: "Paris\nmore".into(),
            usage: Usage { input_tokens: 1, output_tokens: 1 },
            cost: 0.0,
            latency_ms: 1,
            error: None,
        };
        let mut s = state("How long is the Ylo river?", vec![call]);
        s.turn = 1;
        match decide_learned(&s, &knn_file(), &[]).unwrap() {
            Action::Answer(a) => assert_eq!(a, "Paris"),
            Action::Route(r) => panic!("routed again to {}", r.model),
        }
    }

    #[test]
    fn bad_inputs_are_errors_of_the_right_kind() {
        let file = knn_file();
        let s = state("q", vec![]);
        let err = decide_learned(&s, b"garbage", &[]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert!(err.message.starts_with("learned: parameters:"), "{}", err.message);
        assert_eq!(decide_learned(&s, &file, &[setting("kk", 1.0)]).unwrap_err().kind, ErrorKind::Unsupported);
        assert_eq!(decide_learned(&s, &file, &[setting(K, 0.0)]).unwrap_err().kind, ErrorKind::InvalidInput);
        assert_eq!(decide_learned(&s, &file, &[setting(K, 1.5)]).unwrap_err().kind, ErrorKind::InvalidInput);
        assert_eq!(decide_learned(&s, &file, &[setting(COST_WEIGHT, -1.0)]).unwrap_err().kind, ErrorKind::InvalidInput);
        let mut other = s.clone();
        other.pool = vec![model("unknown", 1.0)];
        let err = decide_learned(&other, &file, &[]).unwrap_err();
        assert!(err.message.contains("none of the parameter file's models"), "{}", err.message);
        // `k` means nothing to an MLP file.
        let h = 2;
        let mlp = Params {
            models: vec!["big".into()],
            cost: vec![1e-5],
            body: Body::Mlp {
                hidden: h,
                w1: vec![0.0; FEATURE_DIM * h],
                b1: vec![0.0; h],
                w2: vec![0.0; h],
                b2: vec![0.0],
            },
        }
        .to_bytes()
        .unwrap();
        assert_eq!(routed(decide_learned(&s, &mlp, &[]).unwrap()), "big");
        assert_eq!(decide_learned(&s, &mlp, &[setting(K, 3.0)]).unwrap_err().kind, ErrorKind::Unsupported);
    }
}
