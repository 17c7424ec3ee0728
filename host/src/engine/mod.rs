//! The routing engine: the Router-R1 tag protocol, policies, and the turn
//! loop that runs a policy over the model pool and records the trajectory.
//!
//! Data flow: server -> `run::run(policy, pool, question)` -> policy writes a
//! turn -> `protocol` parses it -> `backend::Pool` makes the call -> the
//! reply goes back into the episode as an information block.

pub mod answer_spans;
pub mod grammar;
pub mod policy;
pub mod protocol;
pub mod protocol_grammar;
pub mod run;

pub use policy::{Decider, Episode, Policy, PolicyError, ScriptedPolicy, StrategyPolicy};
pub use run::{StopReason, Trace, run};
