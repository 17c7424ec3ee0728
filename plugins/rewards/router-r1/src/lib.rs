//! Reward plugin `router-r1`: Router-R1's rule-based reward (ROUTER_R1.md
//! §3) with this project's fixes: only router-written text is judged, names
//! resolve exactly (name or alias, case-insensitive), a query may contain
//! colons, answers inside information blocks never count, and the cost
//! normaliser is a pure function of the batch and the params.
//!
//! The logic lives in plain modules, unit-tested natively: [`format`] (format
//! rules and answer extraction) and [`reward`] (metrics, cost, combination).

// wit-bindgen's generated export shims take the flattened record fields as
// arguments; that code is not ours to restructure.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({ world: "reward", path: "../../../wit" });

pub mod format;
pub mod reward;
#[cfg(test)]
mod test_support;

struct RouterR1;

impl Guest for RouterR1 {
    fn score(input: ScoringInput, params: RewardParams) -> Result<RewardBreakdown, PluginError> {
        reward::score(input, &params)
    }

    fn score_batch(inputs: Vec<ScoringInput>, params: RewardParams) -> Result<Vec<RewardBreakdown>, PluginError> {
        reward::score_batch(&inputs, &params)
    }
}

export!(RouterR1);
