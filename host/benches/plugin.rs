//! Plugin call costs: a fresh store + instantiate + reward call, the same
//! call on a warm instance, and a minimal host->guest call (token-price cost
//! on a warm instance). Criterion measures; then each path is timed call by
//! call to print p50/p99 (the targets are stated as p50).
//!
//! Run: `make bench` (or `cargo bench -p switchyard --bench plugin`) after
//! `scripts/setup` has built plugins/dist/.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use criterion::Criterion;
use switchyard::plugin::types::*;
use switchyard::plugin::{Cost, Plugin, Reward, Runtime, RuntimeConfig};

fn component(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist").join(format!("{name}.wasm"));
    assert!(path.exists(), "{} missing: run scripts/setup", path.display());
    path
}

fn model(name: &str) -> ModelDescriptor {
    ModelDescriptor {
        name: name.into(),
        aliases: vec![],
        price_in_per_mtok: 0.2,
        price_out_per_mtok: 0.6,
        latency_ms: 400,
        context_tokens: 32768,
        size_b: Some(8.0),
        strengths: vec!["geography".into()],
        example_scores: vec![],
    }
}

/// A typical two-call trajectory, as the engine records it.
fn input() -> ScoringInput {
    let seg = |author, text: &str| Segment { author, text: text.into() };
    let call = |q: &str, r: &str| RoutedCall {
        model: "small".into(),
        query: q.into(),
        reply: r.into(),
        usage: Usage { input_tokens: 40, output_tokens: 12 },
        cost: 0.000_01,
        latency_ms: 300,
        error: None,
    };
    ScoringInput {
        trajectory: Trajectory {
            question: "Which river flows through the capital of Veloria?".into(),
            segments: vec![
                seg(
                    Author::Router,
                    "<think>Capital first.</think>\n<search>small: What is the capital of Veloria?</search>\n",
                ),
                seg(Author::Host, "<information>Karsk is the capital of Veloria.</information>\n"),
                seg(
                    Author::Router,
                    "<think>Now the river.</think>\n<search>large: Which river flows through Karsk?</search>\n",
                ),
                seg(Author::Host, "<information>The Amsel flows through Karsk.</information>\n"),
                seg(Author::Router, "<think>Done.</think>\n<answer>Amsel</answer>"),
            ],
            calls: vec![
                call("What is the capital of Veloria?", "Karsk"),
                call("Which river flows through Karsk?", "Amsel"),
            ],
            pool: vec![model("small"), model("large")],
        },
        golden_answers: vec!["the Amsel".into()],
    }
}

fn percentiles(name: &str, mut f: impl FnMut()) {
    const N: usize = 20_000;
    for _ in 0..1000 {
        f();
    }
    let mut samples: Vec<u128> = (0..N)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos()
        })
        .collect();
    samples.sort_unstable();
    let at = |q: f64| samples[((N as f64 - 1.0) * q) as usize] as f64 / 1000.0;
    println!("{name:<44} p50 {:>7.2} us   p90 {:>7.2} us   p99 {:>7.2} us   (n={N})", at(0.5), at(0.9), at(0.99));
}

fn main() {
    let runtime = Runtime::new(RuntimeConfig { cache_dir: None, ..RuntimeConfig::default() }).expect("runtime");
    println!("pooling allocator: {}", runtime.pooling());
    let reward = Plugin::<Reward>::load(&runtime, &component("router-r1")).expect("router-r1 loads");
    let cost = Plugin::<Cost>::load(&runtime, &component("token-price")).expect("token-price loads");
    let (input, params) =
        (input(), RewardParams { alpha: 0.5, metric: Metric::ExactMatch, cost_bounds: CostBounds::Fixed((0.0, 0.01)) });
    assert_eq!(reward.score(&input, &params).unwrap().exact_match, 1.0);
    let mut warm_reward = reward.warm();
    let mut warm_cost = cost.warm();
    let (m, usage) = (model("small"), Usage { input_tokens: 100, output_tokens: 20 });

    let mut c = Criterion::default().configure_from_args();
    c.bench_function("reward/fresh-store+instantiate+score", |b| {
        b.iter(|| reward.score(black_box(&input), &params).unwrap())
    });
    c.bench_function("reward/warm-instance-score", |b| {
        b.iter(|| warm_reward.score(black_box(&input), &params).unwrap())
    });
    c.bench_function("cost/warm-instance-call", |b| b.iter(|| warm_cost.cost(black_box(&m), usage, 300, &[]).unwrap()));
    c.final_summary();

    println!("\nper-call latency percentiles:");
    percentiles("reward: fresh store + instantiate + score", || {
        black_box(reward.score(&input, &params).unwrap());
    });
    percentiles("reward: warm instance, score", || {
        black_box(warm_reward.score(&input, &params).unwrap());
    });
    percentiles("cost: fresh store + instantiate + call", || {
        black_box(cost.cost(&m, usage, 300, &[]).unwrap());
    });
    percentiles("cost: warm instance, call (host->guest overhead)", || {
        black_box(warm_cost.cost(&m, usage, 300, &[]).unwrap());
    });
}
