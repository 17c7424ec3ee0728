//! One evaluated question: what the policy did and how the reward scored it.
//! A traces file is JSONL of these, in completion order.

use serde::{Deserialize, Serialize};

use super::dataset::Item;
use crate::engine::Trace;
use crate::plugin::types::RewardBreakdown;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub dataset: String,
    pub policy: String,
    pub question: String,
    pub golden_answers: Vec<String>,
    #[serde(default)]
    pub hops: Option<u8>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub answer: Option<String>,
    #[serde(default)]
    pub em: f64,
    #[serde(default)]
    pub f1: f64,
    /// Whether the reward's format gate accepted the trajectory.
    #[serde(default)]
    pub format_ok: bool,
    #[serde(default)]
    pub format_errors: Vec<String>,
    #[serde(default)]
    pub reward: f64,
    /// US dollars, from the cost component.
    #[serde(default)]
    pub cost: f64,
    #[serde(default)]
    pub calls: usize,
    /// Distinct models called, in first-call order.
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default)]
    pub stop: Option<String>,
    #[serde(default)]
    pub trajectory: String,
    /// Set when the episode or its scoring failed; such a record is not
    /// scored and a resumed run tries the question again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Record {
    pub fn scored(item: &Item, trace: &Trace, reward: &RewardBreakdown) -> Record {
        Record {
            answer: trace.answer.clone(),
            em: reward.exact_match,
            f1: reward.f1,
            format_ok: reward.format >= 0.0,
            format_errors: reward.format_errors.clone(),
            reward: reward.total,
            cost: trace.cost,
            calls: trace.trajectory.calls.len(),
            models: trace.models_called().into_iter().map(String::from).collect(),
            latency_ms: trace.latency_ms,
            stop: serde_json::to_value(trace.stop).ok().and_then(|v| v.as_str().map(String::from)),
            trajectory: trace.text(),
            ..Record::unscored(item, &trace.policy)
        }
    }

    pub fn failed(item: &Item, policy: &str, error: String) -> Record {
        Record { error: Some(error), ..Record::unscored(item, policy) }
    }

    /// The question's own fields, nothing run yet.
    fn unscored(item: &Item, policy: &str) -> Record {
        Record {
            id: item.id.clone(),
            dataset: item.dataset.clone(),
            policy: policy.to_string(),
            question: item.question.clone(),
            golden_answers: item.golden_answers.clone(),
            hops: item.hops,
            domain: item.domain.clone(),
            answer: None,
            em: 0.0,
            f1: 0.0,
            format_ok: false,
            format_errors: Vec::new(),
            reward: 0.0,
            cost: 0.0,
            calls: 0,
            models: Vec::new(),
            latency_ms: 0,
            stop: None,
            trajectory: String::new(),
            error: None,
        }
    }
}
