//! Running guest code: one fresh `Store` per call, with the kind's memory
//! cap, CPU deadline and output cap, and traps turned into typed errors.
//!
//! Invariants:
//! - A store that trapped is dropped, never reused (see [`Warm`]).
//! - A failing call leaves nothing behind: the next call gets a new store
//!   from the same pre-instantiated component.
//! - What a guest returns is bounded before it is copied: each call's store
//!   carries hostcall fuel of `Limits::copy_budget` bytes, so lifting an
//!   oversize result (aliased strings, millions of empty list elements, a
//!   40 MB error message) stops inside wasmtime with `OversizeOutput`.
//! - A value that reaches the host is within its kind's output cap, its error
//!   message within `error_bytes` (cut with a note), and its fields within
//!   the WIT's documented ranges (`GuestOutput::validate`), or the call fails.

use std::sync::Arc;

use wasmtime::{Store, Trap};

use super::deadline;
use super::error::Error;
use super::limits::{Limits, StoreState};
use super::loader::PluginInfo;
use super::runtime::Runtime;
use super::types::{GuestOutput, PluginError};

/// A new store for one call of a plugin with `limits`.
pub(crate) fn new_store(runtime: &Runtime, limits: &Limits) -> Store<StoreState> {
    let mut store = Store::new(&runtime.engine, StoreState::new(limits.memory_bytes));
    store.limiter(|state| state);
    store.set_hostcall_fuel(limits.copy_budget());
    deadline::install(&mut store, limits.deadline, runtime.tick());
    store
}

/// Arm the deadline, run `f`, and map the outcome. The store is left in an
/// unknown state when this returns an error other than `Rejected`.
pub(crate) fn run<R: GuestOutput>(
    runtime: &Runtime,
    info: &PluginInfo,
    store: &mut Store<StoreState>,
    f: impl FnOnce(&mut Store<StoreState>) -> wasmtime::Result<Result<R, PluginError>>,
) -> Result<R, Error> {
    let limits = runtime.limits(info.kind);
    deadline::arm(store, limits.deadline, runtime.tick());
    let result = outcome(info, &limits, store, f);
    if let Err(e) = &result {
        metrics::counter!("switchyard_plugin_errors_total", "type" => e.label(), "kind" => info.kind.world(), "plugin" => info.name.clone())
            .increment(1);
    }
    result
}

fn outcome<R: GuestOutput>(
    info: &PluginInfo,
    limits: &Limits,
    store: &mut Store<StoreState>,
    f: impl FnOnce(&mut Store<StoreState>) -> wasmtime::Result<Result<R, PluginError>>,
) -> Result<R, Error> {
    match f(store) {
        Ok(Ok(value)) => {
            let size = value.output_size();
            if size > limits.output_bytes {
                return Err(Error::OversizeOutput { plugin: info.name.clone(), size, limit: limits.output_bytes });
            }
            value.validate().map_err(|reason| Error::InvalidOutput { plugin: info.name.clone(), reason })?;
            Ok(value)
        }
        Ok(Err(mut error)) => {
            truncate_message(&mut error.message, limits.error_bytes);
            Err(Error::Rejected { plugin: info.name.clone(), error })
        }
        Err(err) => Err(classify(info, limits, store.data(), err)),
    }
}

/// Cut `message` to at most `limit` bytes (at a character boundary) and say
/// how much was dropped, so an operator knows the text is not whole.
fn truncate_message(message: &mut String, limit: usize) {
    if message.len() <= limit {
        return;
    }
    let mut end = limit;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let dropped = message.len() - end;
    message.truncate(end);
    message.push_str(&format!(" [... {dropped} more bytes truncated by the host]"));
}

/// The text of wasmtime's error when a result needs more hostcall fuel than
/// the store has. The error type is private, so it is recognised by its text;
/// the sandbox tests fail if a wasmtime upgrade changes it.
const HOSTCALL_FUEL_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

fn classify(info: &PluginInfo, limits: &Limits, state: &StoreState, err: wasmtime::Error) -> Error {
    let plugin = info.name.clone();
    if let Some(requested) = state.memory_exceeded {
        return Error::OutOfMemory { plugin, limit: limits.memory_bytes, requested };
    }
    if format!("{err:#}").contains(HOSTCALL_FUEL_EXHAUSTED) {
        // Lifting stopped at the copy budget: the exact size is unknown.
        return Error::OversizeOutput { plugin, size: limits.copy_budget(), limit: limits.output_bytes };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Error::DeadlineExceeded { plugin, deadline: limits.deadline },
        Some(Trap::StackOverflow) => Error::StackOverflow { plugin },
        Some(trap) => Error::Trap { plugin, message: trap.to_string() },
        None => Error::Trap { plugin, message: format!("{err:#}") },
    }
}

/// Makes a new instance of a plugin in a store.
pub(crate) type Instantiate<I> = Box<dyn Fn(&mut Store<StoreState>) -> wasmtime::Result<I> + Send + Sync>;

/// A plugin instance kept alive across calls, for hot loops (batch scoring,
/// benchmarks). After any trap the instance is discarded and the next call
/// instantiates a fresh one: a trapped store is never reused.
pub struct Warm<I> {
    runtime: Arc<Runtime>,
    info: Arc<PluginInfo>,
    slot: Option<(Store<StoreState>, I)>,
    instantiate: Instantiate<I>,
}

impl<I> Warm<I> {
    pub(crate) fn new(runtime: Arc<Runtime>, info: Arc<PluginInfo>, instantiate: Instantiate<I>) -> Self {
        Warm { runtime, info, slot: None, instantiate }
    }

    /// Run `f` on the warm instance, instantiating one if needed.
    pub(crate) fn call<R: GuestOutput>(
        &mut self,
        f: impl FnOnce(&I, &mut Store<StoreState>) -> wasmtime::Result<Result<R, PluginError>>,
    ) -> Result<R, Error> {
        let (mut store, instance) = match self.slot.take() {
            Some(slot) => slot,
            None => {
                let limits = self.runtime.limits(self.info.kind);
                let mut store = new_store(&self.runtime, &limits);
                deadline::arm(&mut store, limits.deadline, self.runtime.tick());
                let instance = (self.instantiate)(&mut store)
                    .map_err(|e| classify(&self.info, &self.runtime.limits(self.info.kind), store.data(), e))?;
                (store, instance)
            }
        };
        let result = run(&self.runtime, &self.info, &mut store, |s| f(&instance, s));
        // Keep the instance only if the guest finished normally and its value
        // was lifted whole (a clean return, a refusal, or a value refused for
        // its contents). An oversize value may have stopped mid-lift.
        if matches!(result, Ok(_) | Err(Error::Rejected { .. }) | Err(Error::InvalidOutput { .. })) {
            self.slot = Some((store, instance));
        }
        result
    }

    /// Whether an instance is currently alive (false after a trap).
    pub fn is_alive(&self) -> bool {
        self.slot.is_some()
    }
}
