//! Evaluation: a dataset of questions through a policy, every trajectory
//! scored by the reward component (the same one training and the server
//! use), per-question traces and summaries. `switchyard eval` drives it.

pub mod dataset;
pub mod plot;
pub mod record;
pub mod runner;
pub mod summary;

pub use dataset::{DatasetError, Item};
pub use record::Record;
pub use runner::{EvalError, EvalRun};
pub use summary::{Metrics, Summary};
