//! The plugin runtime: WebAssembly components implementing the worlds of
//! `wit/` (`reward`, `cost`, `adapter`, `strategy`, `learned-strategy`), run sandboxed.
//!
//! Data flow: [`Runtime`] (one engine, epoch ticker, compile cache) ->
//! [`Plugin<W>`] (a component checked against world `W` and
//! pre-instantiated at load) -> one fresh store per call.
//!
//! Sandbox guarantees: no WASI and no host imports at all; a deadline per kind
//! in CPU time of the calling thread (epoch interruption, see `deadline`); memory cap per kind (traps on growth); output
//! size cap per kind; traps become typed [`Error`]s and never affect the next
//! call. See `limits`, `sandbox`.

pub mod bindings;
pub mod build;
mod cache;
pub mod deadline;
pub mod error;
pub mod limits;
pub mod loader;
pub mod runtime;
pub mod sandbox;
pub mod types;
pub mod world;

pub use error::Error;
pub use limits::{Kind, Limits};
pub use loader::PluginInfo;
pub use runtime::{Runtime, RuntimeConfig};
pub use sandbox::Warm;
pub use world::{Adapter, Cost, LearnedStrategy, Plugin, Reward, Strategy, World};
