//! The `switchyard` binary's author-facing commands, run for real.

mod cli;
mod template;
