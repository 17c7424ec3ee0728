//! Shared fixtures for the workspace-level tests: where the built components
//! are, runtimes with test limits, and small valid inputs.
//!
//! Components are built by `scripts/setup` (the README's test command runs
//! it first): reference plugins into plugins/dist/, misbehaving guests into
//! tests/guests/dist/.

pub mod backend;
pub mod router;
pub mod server;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use switchyard::plugin::types::*;
use switchyard::plugin::{Kind, Limits, Runtime, RuntimeConfig};

/// Held by the tests that load the machine on purpose (the fault load test,
/// spinning guests), so that two of them never run at once and their
/// latency bounds measure the host, not each other.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

fn component(dir: &str, name: &str) -> PathBuf {
    let path = repo_root().join(dir).join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `scripts/setup` (or `make setup`) to build the components",
        path.display()
    );
    path
}

/// A reference plugin from plugins/dist/.
pub fn plugin(name: &str) -> PathBuf {
    component("plugins/dist", name)
}

/// A misbehaving guest from tests/guests/dist/.
pub fn guest(name: &str) -> PathBuf {
    component("tests/guests/dist", name)
}

/// The epoch tick of test runtimes: coarse enough that a busy 2-core CI
/// machine does not turn scheduling delays into extra ticks.
pub const TEST_TICK: Duration = Duration::from_millis(10);

/// The reward deadline of test runtimes.
pub const TEST_REWARD_DEADLINE: Duration = Duration::from_millis(100);

/// A runtime with test limits, no disk cache unless `cache_dir` is given.
pub fn runtime_with(pooling: bool, cache_dir: Option<PathBuf>) -> Arc<Runtime> {
    let mut config = RuntimeConfig { tick: TEST_TICK, cache_dir, pooling, ..RuntimeConfig::default() };
    config.limits.insert(
        Kind::Reward,
        Limits {
            deadline: TEST_REWARD_DEADLINE,
            memory_bytes: 32 << 20,
            output_bytes: 1 << 20,
            ..Limits::default_for(Kind::Reward)
        },
    );
    Runtime::new(config).expect("runtime starts")
}

pub fn runtime() -> Arc<Runtime> {
    runtime_with(true, None)
}

/// The three-model pool used across tests.
pub fn pool() -> Vec<ModelDescriptor> {
    let model = |name: &str, aliases: &[&str], price_in: f64, price_out: f64, size: Option<f64>| ModelDescriptor {
        name: name.into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        price_in_per_mtok: price_in,
        price_out_per_mtok: price_out,
        latency_ms: 500,
        context_tokens: 32768,
        size_b: size,
        strengths: vec!["geography".into()],
        example_scores: vec![ExampleScore { benchmark: "one-hop-em".into(), score: 0.5 }],
    };
    vec![
        model("small-geo", &["sg"], 0.1, 0.2, Some(7.0)),
        model("mid-general", &[], 0.3, 0.6, Some(27.0)),
        model("large-reasoner", &["lr"], 0.9, 1.2, Some(70.0)),
    ]
}

pub fn call(model: &str, query: &str, reply: &str, cost: f64) -> RoutedCall {
    RoutedCall {
        model: model.into(),
        query: query.into(),
        reply: reply.into(),
        usage: Usage { input_tokens: 30, output_tokens: 10 },
        cost,
        latency_ms: 300,
        error: None,
    }
}

/// A well-formed two-call trajectory answering `answer`.
pub fn trajectory(answer: &str) -> Trajectory {
    let router = |t: &str| Segment { author: Author::Router, text: t.into() };
    let host = |t: &str| Segment { author: Author::Host, text: t.into() };
    Trajectory {
        question: "Which river flows through the capital of Veloria?".into(),
        segments: vec![
            router(
                "<think>Find the capital first.</think>\n<search>small-geo: What is the capital of Veloria?</search>\n",
            ),
            host("<information>Karsk.</information>\n"),
            router("<think>Now its river.</think>\n<search>sg: Which river flows through Karsk?</search>\n"),
            host("<information>The Amsel.</information>\n"),
            router(&format!("<think>Done.</think>\n<answer>{answer}</answer>")),
        ],
        calls: vec![
            call("small-geo", "What is the capital of Veloria?", "Karsk.", 0.000_005),
            call("small-geo", "Which river flows through Karsk?", "The Amsel.", 0.000_005),
        ],
        pool: pool(),
    }
}

pub fn scoring_input(answer: &str, golds: &[&str]) -> ScoringInput {
    ScoringInput { trajectory: trajectory(answer), golden_answers: golds.iter().map(|g| g.to_string()).collect() }
}

pub fn params(alpha: f64) -> RewardParams {
    RewardParams { alpha, metric: Metric::ExactMatch, cost_bounds: CostBounds::Fixed((0.0, 0.01)) }
}
