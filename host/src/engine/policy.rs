//! Policies: what writes the router's side of a trajectory.
//!
//! A policy produces the router's text for one turn, stopping after
//! `</search>` or `</answer>` (see `protocol::STOP_STRINGS`). Text
//! generators (the ONNX router) do that natively; a strategy component
//! decides an action, which is rendered as protocol text — so every policy
//! yields the same kind of trajectory, scored by the same reward.

use futures_util::future::BoxFuture;

use std::sync::Arc;

use crate::plugin::types::{Action, ModelDescriptor, RoutedCall, RoutingState, Segment, Setting};
use crate::plugin::{LearnedStrategy, Plugin, Strategy};

/// Everything a policy may look at when writing its next turn.
#[derive(Clone, Debug)]
pub struct Episode {
    pub question: String,
    pub pool: Vec<ModelDescriptor>,
    /// The trajectory so far (router and host segments, in order).
    pub segments: Vec<Segment>,
    pub calls: Vec<RoutedCall>,
    /// Zero-based turn index.
    pub turn: u32,
    /// Routed turns allowed; the turn after them is the final one.
    pub max_turns: u32,
    /// On the final turn routing is not allowed: the policy must answer.
    pub final_turn: bool,
}

/// Why a policy could not produce its turn.
#[derive(Debug, thiserror::Error)]
#[error("policy `{policy}`: {message}")]
pub struct PolicyError {
    pub policy: String,
    pub message: String,
}

pub trait Policy: Send + Sync {
    /// The name clients use for it (e.g. `switchyard/cheapest`).
    fn name(&self) -> &str;

    /// The router's text for the current turn of `episode`.
    fn next_turn<'a>(&'a self, episode: &'a Episode) -> BoxFuture<'a, Result<String, PolicyError>>;
}

/// The component behind a strategy policy.
#[derive(Clone)]
pub enum Decider {
    Plain(Plugin<Strategy>),
    /// A learned strategy and the bytes of its parameter file (read once, shared).
    Learned {
        plugin: Plugin<LearnedStrategy>,
        parameters: Arc<[u8]>,
    },
}

impl Decider {
    fn name(&self) -> &str {
        match self {
            Decider::Plain(p) => p.name(),
            Decider::Learned { plugin, .. } => plugin.name(),
        }
    }

    fn decide(&self, state: &RoutingState, settings: &[Setting]) -> Result<Action, crate::plugin::Error> {
        match self {
            Decider::Plain(p) => p.decide(state, settings),
            Decider::Learned { plugin, parameters } => plugin.decide(state, parameters, settings),
        }
    }

    /// One decision on a placeholder question over `pool`, to surface bad settings or
    /// parameters when a configuration loads.
    pub fn probe(&self, pool: &[ModelDescriptor], settings: &[Setting]) -> Result<Action, crate::plugin::Error> {
        let state = RoutingState {
            question: "Which model should answer this?".into(),
            pool: pool.to_vec(),
            calls: vec![],
            turn: 0,
            max_turns: 2,
        };
        self.decide(&state, settings)
    }
}

/// A strategy component as a policy.
pub struct StrategyPolicy {
    name: String,
    strategy: Decider,
    settings: Vec<Setting>,
}

impl StrategyPolicy {
    pub fn new(name: impl Into<String>, strategy: impl Into<Decider>, settings: Vec<Setting>) -> Self {
        StrategyPolicy { name: name.into(), strategy: strategy.into(), settings }
    }

    fn decide(strategy: &Decider, settings: &[Setting], name: &str, episode: &Episode) -> Result<String, PolicyError> {
        let error = |message: String| PolicyError { policy: name.to_string(), message };
        let state = RoutingState {
            question: episode.question.clone(),
            pool: episode.pool.clone(),
            calls: episode.calls.clone(),
            turn: episode.turn,
            // The final turn is the strategy's last: it must answer there.
            max_turns: episode.max_turns + 1,
        };
        let action = strategy.decide(&state, settings).map_err(|e| error(e.to_string()))?;
        let plugin = strategy.name();
        Ok(match action {
            Action::Route(route) => {
                // The name goes into `<search>name: query</search>` verbatim.
                let model = route.model.trim();
                if model.is_empty() || model.contains([':', '<', '>', '\n', '\r']) {
                    return Err(error(format!("strategy `{plugin}` returned an invalid model name {:?}", route.model)));
                }
                format!(
                    "<think>Strategy {plugin} asks {model}.</think>\n<search>{model}: {}</search>",
                    one_line(&route.query)
                )
            }
            Action::Answer(answer) => {
                format!("<think>Strategy {plugin} answers.</think>\n<answer>{}</answer>", one_line(&answer))
            }
        })
    }
}

impl From<Plugin<Strategy>> for Decider {
    fn from(p: Plugin<Strategy>) -> Self {
        Decider::Plain(p)
    }
}

/// Tag text from a strategy must not forge protocol structure.
fn one_line(text: &str) -> String {
    super::protocol::neutralise(text.trim())
}

impl Policy for StrategyPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn next_turn<'a>(&'a self, episode: &'a Episode) -> BoxFuture<'a, Result<String, PolicyError>> {
        // Guest code runs off the async workers (it may take up to its deadline).
        let (strategy, settings, name, episode) =
            (self.strategy.clone(), self.settings.clone(), self.name.clone(), episode.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || Self::decide(&strategy, &settings, &name, &episode))
                .await
                .map_err(|e| PolicyError { policy: self.name.clone(), message: format!("strategy task failed: {e}") })?
        })
    }
}

/// Replays fixed turn texts, in order (tests, demos, replaying recorded
/// trajectories). After the script ends it writes nothing.
pub struct ScriptedPolicy {
    name: String,
    turns: Vec<String>,
}

impl ScriptedPolicy {
    pub fn new(name: impl Into<String>, turns: Vec<String>) -> Self {
        ScriptedPolicy { name: name.into(), turns }
    }
}

impl Policy for ScriptedPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn next_turn<'a>(&'a self, episode: &'a Episode) -> BoxFuture<'a, Result<String, PolicyError>> {
        let text = self.turns.get(episode.turn as usize).cloned().unwrap_or_default();
        Box::pin(async move { Ok(text) })
    }
}
