//! Strategy `cascade`: ask the cheapest model first and escalate to the next
//! cheapest only when the reply declines to answer or the call fails.
//!
//! - Order: ascending `price-in-per-mtok + price-out-per-mtok`, ties by name
//!   (then pool position). Every route sends the whole question.
//! - No calls yet: route to the cheapest model.
//! - After a call: escalate to the cheapest model not yet called when the
//!   last call failed or its reply is a refusal (see
//!   [`switchyard_plugin_sdk::pool::is_refusal`]: "I don't know", "not sure",
//!   "unknown", an empty reply, ...), provided the turn budget allows another
//!   route (`turn + 1 < max-turns`) and fewer than `max-escalations`
//!   escalations were made. Otherwise answer with the last successful
//!   non-refusal reply, else the last successful reply, else "I don't know"
//!   (always trimmed, never tagged).
//! - A model counts as called when a call names it or one of its aliases
//!   (case-insensitively), so a cascade never asks the same model twice.
//!
//! Settings: `max-escalations` (a whole number >= 0, default unlimited).
//! Unknown settings are `unsupported`; a bad value, an empty pool or a
//! descriptor with a negative/NaN price or size is `invalid-input`. The first
//! decision on a turn that only allows an answer answers "I don't know".
//! Never panics.

// The generated export glue passes the WIT arguments flattened.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({ world: "strategy", path: "../../../wit" });

use switchyard::plugin::types::{ErrorKind, ModelDescriptor, Route, RoutedCall};
use switchyard_plugin_sdk::pool::{self, DONT_KNOW};
use switchyard_plugin_sdk::settings::Settings;

/// The only setting this strategy understands.
const MAX_ESCALATIONS: &str = "max-escalations";

switchyard_plugin_sdk::pool_views!();
switchyard_plugin_sdk::plugin_errors!("cascade");

/// Reads `max-escalations`: `None` means unlimited.
fn max_escalations(settings: &[Setting]) -> Result<Option<usize>, PluginError> {
    let pairs: Vec<(&str, f64)> = settings.iter().map(|s| (s.name.as_str(), s.value)).collect();
    let parsed = Settings::parse(&pairs, &[MAX_ESCALATIONS]).map_err(settings_error)?;
    let value = parsed.get_or(MAX_ESCALATIONS, f64::INFINITY);
    if value.is_infinite() {
        return Ok(None);
    }
    if !(value >= 0.0 && value.fract() == 0.0) {
        return Err(error(
            ErrorKind::InvalidInput,
            format!("setting `{MAX_ESCALATIONS}` must be a whole number >= 0, got {value}"),
        ));
    }
    // Float-to-int casts saturate, so a huge value just means "unlimited".
    Ok(Some(value as usize))
}

/// Whether `call` went to `model`, by name or alias, ignoring ASCII case
/// (aliases resolve case-insensitively, so a case variant is the same model).
fn called(model: &ModelDescriptor, call: &RoutedCall) -> bool {
    call.model.eq_ignore_ascii_case(&model.name) || model.aliases.iter().any(|a| call.model.eq_ignore_ascii_case(a))
}

/// The strategy's decision for `state`; see the module docs.
pub fn decide_cascade(state: &RoutingState, settings: &[Setting]) -> Result<Action, PluginError> {
    let max_escalations = max_escalations(settings)?;
    let pool = candidates(&state.pool);
    pool::validate(&pool).map_err(|e| error(ErrorKind::InvalidInput, e))?;
    let can_route = state.turn.saturating_add(1) < state.max_turns;
    let route_to = |i: usize| Action::Route(Route { model: state.pool[i].name.clone(), query: state.question.clone() });
    let order = pool::cheapest_first(&pool);

    let Some(last) = state.calls.last() else {
        return Ok(match order.first() {
            Some(&i) if can_route => route_to(i),
            _ => Action::Answer(DONT_KNOW.into()),
        });
    };

    let unsatisfied = last.error.is_some() || pool::is_refusal(&last.reply);
    // Every call after the first was an escalation.
    let escalations = state.calls.len() - 1;
    let may_escalate = can_route && max_escalations.is_none_or(|max| escalations < max);
    if unsatisfied && may_escalate {
        let next = order.iter().copied().find(|&i| !state.calls.iter().any(|c| called(&state.pool[i], c)));
        if let Some(i) = next {
            return Ok(route_to(i));
        }
    }

    let calls = outcomes(&state.calls);
    let answer =
        pool::last_informative_reply(&calls).or_else(|| pool::last_successful_reply(&calls)).unwrap_or(DONT_KNOW);
    Ok(Action::Answer(answer.into()))
}

struct Cascade;

impl Guest for Cascade {
    fn decide(state: RoutingState, settings: Vec<Setting>) -> Result<Action, PluginError> {
        decide_cascade(&state, &settings)
    }
}

export!(Cascade);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard::plugin::types::Usage;

    fn model(name: &str, price_in: f64, price_out: f64) -> ModelDescriptor {
        ModelDescriptor {
            name: name.into(),
            aliases: vec![],
            price_in_per_mtok: price_in,
            price_out_per_mtok: price_out,
            latency_ms: 100,
            context_tokens: 8192,
            size_b: None,
            strengths: vec![],
            example_scores: vec![],
        }
    }

    fn ok(model: &str, reply: &str) -> RoutedCall {
        RoutedCall {
            model: model.into(),
            query: "Who wrote Dune?".into(),
            reply: reply.into(),
            usage: Usage { input_tokens: 10, output_tokens: 5 },
            cost: 0.0,
            latency_ms: 1,
            error: None,
        }
    }

    fn failed(model: &str) -> RoutedCall {
        RoutedCall { reply: String::new(), error: Some("HTTP 503".into()), ..ok(model, "") }
    }

    /// Pool order by price: small (0.3) < medium (2.0) < large (20.0).
    fn pool() -> Vec<ModelDescriptor> {
        vec![model("large", 5.0, 15.0), model("small", 0.1, 0.2), model("medium", 0.5, 1.5)]
    }

    fn state(calls: Vec<RoutedCall>) -> RoutingState {
        let turn = calls.len() as u32;
        RoutingState { question: "Who wrote Dune?".into(), pool: pool(), calls, turn, max_turns: 8 }
    }

    fn max_esc(n: f64) -> Vec<Setting> {
        vec![Setting { name: MAX_ESCALATIONS.into(), value: n }]
    }

    fn routed(action: Action) -> String {
        match action {
            Action::Route(r) => {
                assert_eq!(r.query, "Who wrote Dune?");
                r.model
            }
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
    fn starts_with_the_cheapest() {
        assert_eq!(routed(decide_cascade(&state(vec![]), &[]).unwrap()), "small");
    }

    #[test]
    fn answers_as_soon_as_a_reply_is_confident() {
        let a = decide_cascade(&state(vec![ok("small", " Frank Herbert ")]), &[]).unwrap();
        assert_eq!(answered(a), "Frank Herbert");
    }

    #[test]
    fn escalates_on_refusal_and_on_failure_in_price_order() {
        let s = state(vec![ok("small", "I don't know.")]);
        assert_eq!(routed(decide_cascade(&s, &[]).unwrap()), "medium");
        let s = state(vec![ok("small", "Unknown"), failed("medium")]);
        assert_eq!(routed(decide_cascade(&s, &[]).unwrap()), "large");
        let s = state(vec![ok("small", "not sure"), failed("medium"), ok("large", "Frank Herbert")]);
        assert_eq!(answered(decide_cascade(&s, &[]).unwrap()), "Frank Herbert");
    }

    #[test]
    fn exhausted_pool_answers_best_available() {
        // All refused or failed: fall back to the last successful reply.
        let s = state(vec![ok("small", "I cannot answer that"), ok("medium", "No information."), failed("large")]);
        assert_eq!(answered(decide_cascade(&s, &[]).unwrap()), "No information.");
        // Nothing succeeded at all.
        let s = state(vec![failed("small"), failed("medium"), failed("large")]);
        assert_eq!(answered(decide_cascade(&s, &[]).unwrap()), DONT_KNOW);
    }

    #[test]
    fn prefers_an_earlier_informative_reply_over_a_later_refusal() {
        // Reachable when the host replays calls this cascade did not make.
        let mut s = state(vec![ok("medium", "Frank Herbert"), ok("small", "I don't know")]);
        s.max_turns = 3;
        assert_eq!(answered(decide_cascade(&s, &[]).unwrap()), "Frank Herbert");
    }

    #[test]
    fn turn_budget_stops_escalation() {
        let mut s = state(vec![ok("small", "I don't know")]);
        s.max_turns = 2; // turn 1 is the last: only an answer is accepted.
        assert_eq!(answered(decide_cascade(&s, &[]).unwrap()), "I don't know");
        let mut s = state(vec![]);
        s.max_turns = 1;
        assert_eq!(answered(decide_cascade(&s, &[]).unwrap()), DONT_KNOW);
    }

    #[test]
    fn max_escalations_limits_routes() {
        let one_refusal = state(vec![failed("small")]);
        assert_eq!(answered(decide_cascade(&one_refusal, &max_esc(0.0)).unwrap()), DONT_KNOW);
        assert_eq!(routed(decide_cascade(&one_refusal, &max_esc(1.0)).unwrap()), "medium");
        let two = state(vec![failed("small"), ok("medium", "unsure? not sure")]);
        assert_eq!(answered(decide_cascade(&two, &max_esc(1.0)).unwrap()), "unsure? not sure");
        assert_eq!(routed(decide_cascade(&two, &max_esc(1e300)).unwrap()), "large");
    }

    #[test]
    fn never_calls_a_model_twice_matching_aliases() {
        let mut s = state(vec![ok("SMALL-ALIAS", "I don't know")]);
        s.pool[1].aliases = vec!["small-alias".into()];
        assert_eq!(routed(decide_cascade(&s, &[]).unwrap()), "medium");
        let s = state(vec![ok("Medium", "I don't know"), ok("small", "I don't know")]);
        assert_eq!(routed(decide_cascade(&s, &[]).unwrap()), "large");
    }

    #[test]
    fn bad_settings_and_pools_are_rejected() {
        for v in [-1.0, 0.5, f64::NAN] {
            let err = decide_cascade(&state(vec![]), &max_esc(v)).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidInput, "{v}");
        }
        let err = decide_cascade(&state(vec![]), &[Setting { name: "max-escalation".into(), value: 1.0 }]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unsupported);
        let mut s = state(vec![]);
        s.pool.clear();
        assert_eq!(decide_cascade(&s, &[]).unwrap_err().kind, ErrorKind::InvalidInput);
        s.pool = vec![model("x", -1.0, 0.0)];
        assert_eq!(decide_cascade(&s, &[]).unwrap_err().kind, ErrorKind::InvalidInput);
    }
}
