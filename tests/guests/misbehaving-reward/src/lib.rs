//! A reward plugin that misbehaves on request: the first golden answer says
//! how. Everything else gets a well-formed, valid breakdown, so the same
//! component shows both a contained failure and a normal next call.
//!
//! - "loop": spins forever (deadline)
//! - "alloc": allocates until memory runs out (memory cap)
//! - "panic": panics (trap)
//! - "recurse": recurses without bound (wasm stack overflow)
//! - "recurse-big-frames": recurses with frames on Rust's shadow stack
//!   (runs off linear memory: a trap)
//! - "oversize": returns an 8 MiB answer (output cap)

wit_bindgen::generate!({ world: "reward", path: "../../../wit" });

use std::hint::black_box;

struct Misbehaving;

#[allow(unconditional_recursion)] // the point of this guest
fn recurse(depth: u64) -> u64 {
    // `black_box` keeps the optimiser from turning this into a loop. The
    // frame lives in wasm locals, so this exhausts the engine's wasm stack.
    recurse(black_box(depth + 1)) + depth
}

#[allow(unconditional_recursion)] // the point of this guest
fn recurse_big_frames(depth: u64, pad: [u64; 64]) -> u64 {
    // Arrays live on Rust's shadow stack in linear memory: overflowing it
    // runs off the bottom of memory, an out-of-bounds trap, not a wasm
    // stack overflow. Must be contained all the same.
    black_box(&pad);
    recurse_big_frames(depth + 1, black_box(pad)) + depth
}

fn behave(input: &ScoringInput) -> RewardBreakdown {
    let mode = input.golden_answers.first().map(String::as_str).unwrap_or("");
    let mut answer = Some(String::from("fine"));
    match mode {
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = black_box(n.wrapping_add(1));
            }
        }
        "alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                                // Capacity only: each step grows memory without writing it,
                // so the bomb hits the cap fast even on a loaded machine.
                hoard.push(Vec::with_capacity(1 << 20));
                black_box(&hoard);
            }
        }
        "panic" => panic!("misbehaving-reward was asked to panic"),
        "recurse" => {
            black_box(recurse(0));
        }
        "recurse-big-frames" => {
            black_box(recurse_big_frames(0, [7; 64]));
        }
        "oversize" => answer = Some("x".repeat(8 << 20)),
        _ => {}
    }
    RewardBreakdown {
        format: 0.0,
        format_errors: Vec::new(),
        answer,
        exact_match: 1.0,
        f1: 1.0,
        outcome: 1.0,
        raw_cost: 0.0,
        cost_score: 1.0,
        total: 1.0,
    }
}

impl Guest for Misbehaving {
    fn score(input: ScoringInput, _params: RewardParams) -> Result<RewardBreakdown, PluginError> {
        Ok(behave(&input))
    }

    fn score_batch(inputs: Vec<ScoringInput>, _params: RewardParams) -> Result<Vec<RewardBreakdown>, PluginError> {
        Ok(inputs.iter().map(behave).collect())
    }
}

export!(Misbehaving);
