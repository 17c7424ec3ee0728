//! The simulated world: the offline gym and the embedded default.
//!
//! `world` (seeded knowledge graph) -> `questions` (templates, gold answers,
//! parser, splits) -> `models` (simulated LLMs answering from their
//! knowledge of the world) -> `serve` (an OpenAI-compatible endpoint).

pub mod models;
pub mod questions;
pub mod world;
