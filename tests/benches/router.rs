//! ONNX Runtime (the host's policy runtime) against tch (the training crate's decoder) on the
//! same weights, in one run: decode tokens/s and time to first token for 1, 8 and 32
//! concurrent requests, on the CPU, one intra-op thread each.
//!
//! `cargo bench -p switchyard-tests --bench router [-- --keep <dir>]` builds two random
//! routers with the test tokenizer (`tiny`: hidden 32, 2 layers, the test fixture; `small`:
//! hidden 128, 4 layers, `Config::tiny`), exports them, and prints a table. Both sides
//! generate exactly `NEW_TOKENS` tokens per request (the weights are the looping kind: greedy
//! decoding repeats a token and never stops early; stop ids are cleared on the tch side).
//! Each cell is the median of `REPEATS` runs.
//!
//! - ONNX Runtime: the requests are submitted at once to one `Generator` (max batch 32), each
//!   from its own thread, as concurrent server requests would be; time to first token is per
//!   request, from submission.
//! - tch: one batched `generate` call over the same prompts (left-padded, as the training
//!   crate's rollouts batch); its time to first token is that of a `max_new_tokens = 1` call
//!   on the same batch.
//!
//! `--keep <dir>` copies the `tiny` export there (for `cargo bench -p switchyard --bench policy`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use switchyard::policy::{GenerateOptions, Model, ModelOptions, Sampling, SessionOptions, StopSet};
use switchyard_tests::router;
use switchyard_train::generate::{Sampling as TchSampling, TurnInput, generate};
use switchyard_train::model::{Config, Transformer};
use switchyard_train::tokenizer::RouterTokenizer;

const NEW_TOKENS: usize = 64;
const CONCURRENCY: [usize; 3] = [1, 8, 32];
/// Each cell is run this many times and the median run reported (the CPU is shared).
const REPEATS: usize = 3;

struct Row {
    tokens_per_s: f64,
    ttft: Duration,
}

/// The run with the median throughput.
fn median(mut runs: Vec<Row>) -> Row {
    runs.sort_by(|a, b| a.tokens_per_s.total_cmp(&b.tokens_per_s));
    runs.swap_remove(runs.len() / 2)
}

fn prompts(n: usize) -> Vec<String> {
    let corpus = router::corpus();
    // Router prompts (every other corpus text), different questions and lengths.
    corpus.iter().step_by(2).take(n).cloned().collect()
}

fn ort_run(dir: &Path, tokenizer: &RouterTokenizer, n: usize) -> Row {
    let options = ModelOptions {
        session: SessionOptions { intra_threads: Some(1), ..SessionOptions::default() },
        label: "bench".into(),
        ..ModelOptions::default()
    };
    let model = Model::load(dir, &options).expect("the export loads");
    let generate_options = GenerateOptions {
        max_new_tokens: NEW_TOKENS,
        sampling: Sampling::GREEDY,
        seed: 0,
        stop: StopSet::new(vec![], vec![]),
        grammar: None,
    };
    let contexts: Vec<Vec<u32>> =
        prompts(n).iter().map(|p| tokenizer.encode(p).unwrap().iter().map(|&t| t as u32).collect()).collect();
    // Warm up (allocations, ONNX Runtime's first-run costs).
    model.generator.generate_blocking(contexts[0].clone(), generate_options.clone()).unwrap();
    let started = Instant::now();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = contexts
            .iter()
            .map(|c| {
                let (model, c, o) = (&model, c.clone(), generate_options.clone());
                s.spawn(move || model.generator.generate_blocking(c, o).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wall = started.elapsed();
    let tokens: usize = results.iter().map(|g| g.tokens.len()).sum();
    assert_eq!(tokens, n * NEW_TOKENS, "every request generated its budget");
    let ttft = results.iter().map(|g| g.time_to_first_token).sum::<Duration>() / n as u32;
    Row { tokens_per_s: tokens as f64 / wall.as_secs_f64(), ttft }
}

fn tch_run(model: &Transformer, tokenizer: &RouterTokenizer, n: usize) -> Row {
    let contexts: Vec<TurnInput> = prompts(n).iter().map(|p| TurnInput::new(tokenizer.encode(p).unwrap())).collect();
    generate(model, tokenizer, &contexts[..1], &TchSampling::greedy(4)).unwrap();
    let started = Instant::now();
    generate(model, tokenizer, &contexts, &TchSampling::greedy(1)).unwrap();
    let ttft = started.elapsed();
    let started = Instant::now();
    let out = generate(model, tokenizer, &contexts, &TchSampling::greedy(NEW_TOKENS)).unwrap();
    let wall = started.elapsed();
    let tokens: usize = out.iter().map(|g| g.tokens.len()).sum();
    assert_eq!(tokens, n * NEW_TOKENS, "every row generated its budget");
    Row { tokens_per_s: tokens as f64 / wall.as_secs_f64(), ttft }
}

fn main() {
    let keep: Option<PathBuf> = {
        let args: Vec<String> = std::env::args().collect();
        // Relative to the repository (cargo runs benches in the package's directory).
        args.iter()
            .position(|a| a == "--keep")
            .and_then(|i| args.get(i + 1))
            .map(|d| switchyard_tests::repo_root().join(d))
    };
    tch::set_num_threads(1);
    println!("decode on CPU, 1 intra-op thread per runtime, {NEW_TOKENS} new tokens per request, greedy");
    println!(
        "{:<7} {:>5} | {:>12} {:>10} | {:>12} {:>10} | {:>9}",
        "model", "conc", "ORT tok/s", "ORT TTFT", "tch tok/s", "tch TTFT", "ORT/tch"
    );
    let tiny = router::looping();
    // A bigger decoder on the same tokenizer: Config::tiny's sizes (hidden 128, 4 layers).
    let small = router::build_with(3, 1.0, Config::tiny);
    for (name, fixture) in [("tiny", tiny), ("small", &small)] {
        let (export, model) = (&fixture.export, fixture.model());
        let mut tch_tokenizer = fixture.tokenizer();
        // Both sides stop only at the budget.
        tch_tokenizer.stop_ids.clear();
        for n in CONCURRENCY {
            let ort = median((0..REPEATS).map(|_| ort_run(export, &tch_tokenizer, n)).collect());
            let tch = median((0..REPEATS).map(|_| tch_run(&model, &tch_tokenizer, n)).collect());
            println!(
                "{:<7} {:>5} | {:>12.0} {:>8.2}ms | {:>12.0} {:>8.2}ms | {:>8.2}x",
                name,
                n,
                ort.tokens_per_s,
                ort.ttft.as_secs_f64() * 1e3,
                tch.tokens_per_s,
                tch.ttft.as_secs_f64() * 1e3,
                ort.tokens_per_s / tch.tokens_per_s
            );
        }
    }
    if let Some(dir) = keep {
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&tiny.export).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
        println!("the tiny export is in {}", dir.display());
    }
}
