//! Training and export behaviour, one module per subject, linked into one binary.

mod cli;
mod common;
mod export_parity;
mod import;
mod lora;
mod training;
