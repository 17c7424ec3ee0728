//! Shared fixtures: a small simulated environment, a tokenizer trained on its corpus, a tiny
//! model. Each test builds its own (they are cheap) so tests stay independent.

#![allow(dead_code)]

use switchyard_train::env::{EnvOptions, Environment};
use switchyard_train::model::{Config, Transformer};
use switchyard_train::sft;
use switchyard_train::tokenizer::RouterTokenizer;

pub fn env() -> Environment {
    Environment::new(EnvOptions { questions: 400, ..Default::default() }, None)
        .expect("the environment needs the built plugins: run scripts/setup")
}

pub fn tokenizer(env: &Environment) -> RouterTokenizer {
    RouterTokenizer::train(sft::corpus(env).unwrap().into_iter(), 700).unwrap()
}

pub fn tiny_model(vocab: usize, seed: i64) -> Transformer {
    tch::manual_seed(seed);
    let config = Config {
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        ..Config::tiny(vocab as i64)
    };
    Transformer::new(config, tch::Device::Cpu).unwrap()
}

/// Torch's random generator is global to the process and tests run on parallel threads:
/// tests that compare seeded runs hold this for their whole duration.
pub fn torch_rng() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
