//! Imports a host function (`wall-clock-now`) the host does not provide:
//! the host must refuse it at load, naming the import.

wit_bindgen::generate!({ world: "reward", path: "wit", generate_all });

struct Importing;

fn breakdown(total: f64) -> RewardBreakdown {
    RewardBreakdown {
        format: 0.0,
        format_errors: Vec::new(),
        answer: None,
        exact_match: 0.0,
        f1: 0.0,
        outcome: 0.0,
        raw_cost: 0.0,
        cost_score: 1.0,
        total,
    }
}

impl Guest for Importing {
    fn score(_input: ScoringInput, _params: RewardParams) -> Result<RewardBreakdown, PluginError> {
        Ok(breakdown(wall_clock_now() as f64))
    }

    fn score_batch(inputs: Vec<ScoringInput>, _params: RewardParams) -> Result<Vec<RewardBreakdown>, PluginError> {
        Ok(inputs.iter().map(|_| breakdown(wall_clock_now() as f64)).collect())
    }
}

export!(Importing);
