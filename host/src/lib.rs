//! Switchyard: a Router-R1 LLM router with sandboxed WebAssembly plugins.
//!
//! Modules, in the direction data flows: `cli` (the binary's commands) ->
//! `plugin` (the sandboxed component runtime that rewards, costs, backend
//! adapters and routing strategies run in).

pub mod cli;
pub mod plugin;
