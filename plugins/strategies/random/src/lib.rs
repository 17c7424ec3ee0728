//! Strategy `random`: the chance baseline. Sends the whole question to a pool
//! model drawn uniformly at random and answers with its reply.
//!
//! - The draw is a hash of the question and the `seed` setting (a whole
//!   number, default 0), so the same question gets the same model on every
//!   run — evaluations are repeatable — while different seeds give
//!   independent draws.
//! - The flow is [`switchyard_plugin_sdk::pool::single_round`]. Unknown
//!   settings are `unsupported`, a bad seed or pool is `invalid-input`.
//!   Never panics.

// The generated export glue passes the WIT arguments flattened.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({ world: "strategy", path: "../../../wit" });

use switchyard::plugin::types::{ErrorKind, ModelDescriptor, Route, RoutedCall};
use switchyard_plugin_sdk::pool::{self, Candidate, Decision};
use switchyard_plugin_sdk::settings::Settings;

const SEED: &str = "seed";

switchyard_plugin_sdk::pool_views!();

switchyard_plugin_sdk::plugin_errors!("random");

fn seed(settings: &[Setting]) -> Result<u64, PluginError> {
    let pairs: Vec<(&str, f64)> = settings.iter().map(|s| (s.name.as_str(), s.value)).collect();
    let parsed = Settings::parse(&pairs, &[SEED]).map_err(settings_error)?;
    parsed.whole_number_or(SEED, 0).map_err(settings_error)
}

/// FNV-1a over the question, mixed with the seed by splitmix64's finaliser.
fn draw(question: &str, seed: u64, n: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in question.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = h ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z % n as u64) as usize
}

pub fn decide_random(state: &RoutingState, settings: &[Setting]) -> Result<Action, PluginError> {
    let seed = seed(settings)?;
    let calls = outcomes(&state.calls);
    let choose = |pool: &[Candidate]| Some(draw(&state.question, seed, pool.len()));
    match pool::single_round(&candidates(&state.pool), &calls, state.turn, state.max_turns, choose) {
        Ok(Decision::Route(i)) => {
            Ok(Action::Route(Route { model: state.pool[i].name.clone(), query: state.question.clone() }))
        }
        Ok(Decision::Answer(answer)) => Ok(Action::Answer(answer.into())),
        Err(e) => Err(error(ErrorKind::InvalidInput, e)),
    }
}

struct Random;

impl Guest for Random {
    fn decide(state: RoutingState, settings: Vec<Setting>) -> Result<Action, PluginError> {
        decide_random(&state, &settings)
    }
}

export!(Random);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_repeatable_and_cover_the_pool_uniformly() {
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            let q = format!("question {i}?");
            let d = draw(&q, 7, 4);
            assert_eq!(d, draw(&q, 7, 4));
            counts[d] += 1;
        }
        assert!(counts.iter().all(|&c| (850..1150).contains(&c)), "{counts:?}");
        let differ = (0..200).filter(|i| draw(&format!("q{i}"), 1, 4) != draw(&format!("q{i}"), 2, 4)).count();
        assert!(differ > 100, "seeds give independent draws: {differ}");
    }

    #[test]
    fn bad_settings_and_pools_are_errors() {
        let state = RoutingState { question: "q".into(), pool: vec![], calls: vec![], turn: 0, max_turns: 4 };
        assert_eq!(decide_random(&state, &[]).unwrap_err().kind, ErrorKind::InvalidInput);
        let bad = [Setting { name: SEED.into(), value: -1.0 }];
        assert_eq!(decide_random(&state, &bad).unwrap_err().kind, ErrorKind::InvalidInput);
        let unknown = [Setting { name: "sed".into(), value: 1.0 }];
        assert_eq!(decide_random(&state, &unknown).unwrap_err().kind, ErrorKind::Unsupported);
    }
}
