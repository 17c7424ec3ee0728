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
//! - "nan", "huge-total", "inf-cost", "f1-out-of-range": a breakdown with a
//!   NaN total, a total of 1e308 (finite, but a batch's mean overflows), an
//!   infinite raw cost, an F1 of 1.5 (the host's range checks)
//! - "empty-strings": 600,000 empty format errors (counted per element)
//! - "aliased": 2,500 format errors that all point at one 1 MiB buffer: 2.5 GB
//!   if the host copied them all (hostcall fuel stops the copy)
//! - "huge-error": refuses with a 20 MiB message (bounded before it is copied)
//! - "long-error": refuses with a 40 KiB message (cut to the error cap)

wit_bindgen::generate!({ world: "reward", path: "../../../wit" });

use std::hint::black_box;
use switchyard::plugin::types::ErrorKind;

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

/// `n` strings that share one buffer of `len` bytes. Never dropped: the host
/// refuses the value before the guest's post-return would free them.
fn aliased(n: usize, len: usize) -> Vec<String> {
    let buffer = std::mem::ManuallyDrop::new("a".repeat(len));
    let ptr = buffer.as_ptr() as *mut u8;
    // SAFETY (of a sort): the point of this guest is to break the rules; the
    // strings are only read, by the host's lift, and never freed.
    (0..n).map(|_| unsafe { String::from_raw_parts(ptr, len, len) }).collect()
}

fn behave(input: &ScoringInput) -> Result<RewardBreakdown, PluginError> {
    let mode = input.golden_answers.first().map(String::as_str).unwrap_or("");
    let mut answer = Some(String::from("fine"));
    let mut format_errors = Vec::new();
    let (mut total, mut raw_cost, mut f1) = (1.0, 0.0, 1.0);
    let mut format = 0.0;
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
        "nan" => total = f64::NAN,
        "huge-total" => total = 1e308,
        "inf-cost" => raw_cost = f64::INFINITY,
        "f1-out-of-range" => f1 = 1.5,
        "empty-strings" => {
            format = -1.0;
            format_errors = vec![String::new(); 600_000];
        }
        "aliased" => {
            format = -1.0;
            format_errors = aliased(2_500, 1 << 20);
        }
        "huge-error" => {
            return Err(PluginError { kind: ErrorKind::InvalidInput, message: "e".repeat(20 << 20) });
        }
        "long-error" => {
            return Err(PluginError { kind: ErrorKind::InvalidInput, message: "é".repeat(20 << 10) });
        }
        _ => {}
    }
    Ok(RewardBreakdown {
        format,
        format_errors,
        answer,
        exact_match: 1.0,
        f1,
        outcome: 1.0,
        raw_cost,
        cost_score: 1.0,
        total,
    })
}

impl Guest for Misbehaving {
    fn score(input: ScoringInput, _params: RewardParams) -> Result<RewardBreakdown, PluginError> {
        behave(&input)
    }

    fn score_batch(inputs: Vec<ScoringInput>, _params: RewardParams) -> Result<Vec<RewardBreakdown>, PluginError> {
        inputs.iter().map(behave).collect()
    }
}

export!(Misbehaving);
