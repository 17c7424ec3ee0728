//! Exports `score` and `score-batch` with signatures that do not match the
//! `reward` world: the host must refuse it at load, naming the export.

wit_bindgen::generate!({ world: "reward", path: "wit" });

struct Mismatched;

impl Guest for Mismatched {
    fn score(x: u32) -> u32 {
        x
    }

    fn score_batch(xs: Vec<u32>) -> Vec<u32> {
        xs
    }
}

export!(Mismatched);
