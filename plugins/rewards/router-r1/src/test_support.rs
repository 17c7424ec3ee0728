//! Builders for unit tests: trajectories, pools and params.

use crate::switchyard::plugin::types::{
    Author, CostBounds, Metric, ModelDescriptor, RoutedCall, Segment, Trajectory, Usage,
};
use crate::{RewardParams, ScoringInput};

pub fn r(text: &str) -> Segment {
    Segment { author: Author::Router, text: text.to_string() }
}

/// A host-inserted information block holding `reply`.
pub fn info(reply: &str) -> Segment {
    Segment { author: Author::Host, text: format!("\n<information>{reply}</information>\n") }
}

pub fn model(name: &str, aliases: &[&str]) -> ModelDescriptor {
    ModelDescriptor {
        name: name.to_string(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        price_in_per_mtok: 0.1,
        price_out_per_mtok: 0.3,
        latency_ms: 500,
        context_tokens: 8192,
        size_b: Some(7.0),
        strengths: Vec::new(),
        example_scores: Vec::new(),
    }
}

pub fn pool() -> Vec<ModelDescriptor> {
    vec![
        model("Qwen2.5-7B-Instruct", &["qwen-7b"]),
        model("LLaMA-3.1-8B-Instruct", &[]),
        model("Mixtral-8x22B-Instruct", &["mixtral"]),
    ]
}

/// A well-formed two-turn trajectory answering `answer`.
pub fn good(answer: &str) -> Vec<Segment> {
    vec![
        r(
            "<think>I need the capital of France.</think>\n<search>Qwen2.5-7B-Instruct: What is the capital of France?</search>",
        ),
        info("Paris is the capital of France."),
        r(&format!("\n<think>The reply says Paris.</think>\n<answer>{answer}</answer>")),
    ]
}

pub fn call(cost: f64) -> RoutedCall {
    RoutedCall {
        model: "Qwen2.5-7B-Instruct".to_string(),
        query: "q".to_string(),
        reply: "r".to_string(),
        usage: Usage { input_tokens: 10, output_tokens: 20 },
        cost,
        latency_ms: 100,
        error: None,
    }
}

pub fn input(segments: Vec<Segment>, costs: &[f64], golds: &[&str]) -> ScoringInput {
    ScoringInput {
        trajectory: Trajectory {
            question: "What is the capital of France?".to_string(),
            segments,
            calls: costs.iter().map(|&c| call(c)).collect(),
            pool: pool(),
        },
        golden_answers: golds.iter().map(|g| g.to_string()).collect(),
    }
}

pub fn params(alpha: f64, metric: Metric, cost_bounds: CostBounds) -> RewardParams {
    RewardParams { alpha, metric, cost_bounds }
}
