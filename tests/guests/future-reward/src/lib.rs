//! Built against `switchyard:plugin@0.2.0`: the host (0.1.x) must refuse it
//! at load with a message naming both versions.

wit_bindgen::generate!({ world: "reward", path: "wit" });

struct Future;

impl Guest for Future {
    fn score(_question: String, params: RewardParams) -> f64 {
        params.alpha
    }

    fn score_batch(questions: Vec<String>, params: RewardParams) -> Vec<f64> {
        questions.iter().map(|_| params.alpha).collect()
    }
}

export!(Future);
