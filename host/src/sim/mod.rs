//! The simulated world: the offline gym and the embedded default.
//!
//! `world` (seeded knowledge graph) -> `questions` (templates, gold answers,
//! parser, splits) -> `models` (simulated LLMs answering from their
//! knowledge of the world) -> `serve` (an OpenAI-compatible endpoint) ->
//! `embedded` (the default pool `switchyard serve` runs without a config);
//! `synthetic` draws random model profiles for training a router to read
//! descriptors.

pub mod embedded;
pub mod models;
pub mod questions;
pub mod serve;
pub mod synthetic;
pub mod teacher;
pub mod world;
