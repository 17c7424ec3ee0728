//! The policy runtime's batching, measured: decode tokens/s and time to first token for 1, 8
//! and 32 concurrent requests, with the decoder batching them (`max_batch` 32) and without
//! (`max_batch` 1: one request at a time, in arrival order), on the CPU.
//!
//! `cargo bench -p switchyard --bench policy` runs on the model directory named by
//! `SWITCHYARD_BENCH_ROUTER`, else `models/router-r1`; without either it says how to get one
//! (`cargo bench -p switchyard-tests --bench router -- --keep target/bench-router` exports the
//! tests' tiny router, and compares ONNX Runtime with tch on the same weights).
//! `SWITCHYARD_BENCH_THREADS` sets ONNX Runtime's intra-op threads (default 1).
//!
//! Every request generates exactly `NEW_TOKENS` tokens (no stop conditions), greedy, from a
//! prompt of `PROMPT_TOKENS` tokens cut from the same text at different offsets.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use switchyard::policy::{GenerateOptions, Model, ModelOptions, Sampling, SessionOptions, StopSet};

const NEW_TOKENS: usize = 64;
const PROMPT_TOKENS: usize = 160;
/// Each cell is run this many times and the median run reported (the CPU may be shared).
const REPEATS: usize = 3;

fn main() {
    let dir =
        std::env::var_os("SWITCHYARD_BENCH_ROUTER").map(PathBuf::from).unwrap_or_else(|| "models/router-r1".into());
    let dir = if dir.is_relative() && !dir.exists() { PathBuf::from("..").join(&dir) } else { dir };
    if !dir.join("model.onnx").is_file() {
        println!(
            "policy bench skipped: no model.onnx in {} (set SWITCHYARD_BENCH_ROUTER, or run \
             `cargo bench -p switchyard-tests --bench router -- --keep target/bench-router` and point it there)",
            dir.display()
        );
        return;
    }
    let threads = std::env::var("SWITCHYARD_BENCH_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(1);
    println!(
        "{}: {NEW_TOKENS} new tokens per request, {PROMPT_TOKENS}-token prompts, greedy, {threads} intra-op thread(s)",
        dir.display()
    );
    println!(
        "{:>10} {:>5} | {:>10} {:>12} {:>12} {:>10}",
        "max_batch", "conc", "tok/s", "TTFT mean", "TTFT max", "mean batch"
    );
    for max_batch in [1, 32] {
        let options = ModelOptions {
            session: SessionOptions { intra_threads: Some(threads), ..SessionOptions::default() },
            max_batch,
            label: "bench".into(),
        };
        let model = match Model::load(&dir, &options) {
            Ok(model) => model,
            Err(e) => {
                println!("policy bench: {e}");
                std::process::exit(1);
            }
        };
        let text =
            "Which river flows through the capital of Veloria? Ask the models below, over several rounds. ".repeat(40);
        let ids = model.tokenizer.encode(&text).expect("the tokenizer encodes");
        let generate = GenerateOptions {
            max_new_tokens: NEW_TOKENS,
            sampling: Sampling::GREEDY,
            seed: 0,
            stop: StopSet::new(vec![], vec![]),
            grammar: None,
        };
        let prompt = |i: usize| ids[i % 17..i % 17 + PROMPT_TOKENS.min(ids.len() - 17)].to_vec();
        model.generator.generate_blocking(prompt(0), generate.clone()).expect("warm-up");
        for n in [1, 8, 32] {
            let mut runs: Vec<Run> = (0..REPEATS).map(|_| run(&model, n, &prompt, &generate)).collect();
            runs.sort_by(|a, b| a.tokens_per_s.total_cmp(&b.tokens_per_s));
            let r = &runs[runs.len() / 2];
            println!(
                "{:>10} {:>5} | {:>10.0} {:>10.2}ms {:>10.2}ms {:>10.1}",
                max_batch,
                n,
                r.tokens_per_s,
                r.ttft_mean.as_secs_f64() * 1e3,
                r.ttft_max.as_secs_f64() * 1e3,
                r.mean_batch
            );
        }
    }
}

struct Run {
    tokens_per_s: f64,
    ttft_mean: Duration,
    ttft_max: Duration,
    mean_batch: f64,
}

/// `n` requests at once, each from its own thread.
fn run(model: &Model, n: usize, prompt: &dyn Fn(usize) -> Vec<u32>, generate: &GenerateOptions) -> Run {
    let before = model.generator.stats();
    let started = Instant::now();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (p, o) = (prompt(i), generate.clone());
                s.spawn(move || model.generator.generate_blocking(p, o).expect("generation"))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("no panic")).collect()
    });
    let wall = started.elapsed().as_secs_f64();
    let after = model.generator.stats();
    let tokens: usize = results.iter().map(|g| g.tokens.len()).sum();
    let ttft: Vec<Duration> = results.iter().map(|g| g.time_to_first_token).collect();
    let steps = (after.step_passes - before.step_passes).max(1);
    Run {
        tokens_per_s: tokens as f64 / wall,
        ttft_mean: ttft.iter().sum::<Duration>() / n as u32,
        ttft_max: ttft.iter().max().copied().unwrap_or_default(),
        mean_batch: (after.step_rows - before.step_rows) as f64 / steps as f64,
    }
}
