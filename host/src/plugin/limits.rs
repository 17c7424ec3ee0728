//! Per-kind sandbox limits and the store state that enforces memory caps.
//!
//! Invariant: a guest can never grow a memory or table past its kind's cap;
//! the attempt traps (not `-1`), and the store remembers it so the host
//! reports `OutOfMemory` rather than a generic trap.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime::ResourceLimiter;

/// Which world a plugin implements; each kind has its own limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Reward,
    Cost,
    Adapter,
    Strategy,
    /// A strategy with a parameter file (the learned single-round routers).
    LearnedStrategy,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Reward, Kind::Cost, Kind::Adapter, Kind::Strategy, Kind::LearnedStrategy];

    /// The WIT world name.
    pub fn world(self) -> &'static str {
        match self {
            Kind::Reward => "reward",
            Kind::Cost => "cost",
            Kind::Adapter => "adapter",
            Kind::Strategy => "strategy",
            Kind::LearnedStrategy => "learned-strategy",
        }
    }

    /// The functions the world requires a component to export.
    pub fn required_exports(self) -> &'static [&'static str] {
        match self {
            Kind::Reward => &["score", "score-batch"],
            Kind::Cost => &["cost"],
            Kind::Adapter => &["auth", "build-request", "parse-response", "parse-stream-event"],
            // Same export name as `strategy`: the signature tells them apart at link time.
            Kind::Strategy | Kind::LearnedStrategy => &["decide"],
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.world())
    }
}

/// The limits every call of one kind of plugin runs under.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// CPU time per call, on the calling thread (enforced by epoch interruption; see `deadline`).
    #[serde(with = "millis")]
    pub deadline: Duration,
    /// Maximum linear memory per instance, in bytes.
    pub memory_bytes: usize,
    /// Maximum size of a returned value, in bytes (see `GuestOutput`).
    pub output_bytes: usize,
    /// Maximum length of a plugin error's message, in bytes; longer messages
    /// are cut at a character boundary and marked as truncated.
    pub error_bytes: usize,
}

impl Limits {
    /// Defaults per kind: rewards may score a batch; costs are arithmetic;
    /// adapters parse provider bodies (up to a few MiB); strategies decide;
    /// learned strategies also decode their parameter file (a few MiB) per call.
    /// Error messages are for people: adapters may quote an upstream error
    /// body (16 KiB), the others explain themselves in 4 KiB.
    pub fn default_for(kind: Kind) -> Limits {
        const MIB: usize = 1 << 20;
        const KIB: usize = 1 << 10;
        let (deadline_ms, memory_bytes, output_bytes, error_bytes) = match kind {
            Kind::Reward => (500, 64 * MIB, 4 * MIB, 4 * KIB),
            Kind::Cost => (20, 16 * MIB, 64, 4 * KIB),
            Kind::Adapter => (200, 64 * MIB, 8 * MIB, 16 * KIB),
            Kind::Strategy => (100, 32 * MIB, 64 * KIB, 4 * KIB),
            Kind::LearnedStrategy => (250, 128 * MIB, 64 * KIB, 4 * KIB),
        };
        Limits { deadline: Duration::from_millis(deadline_ms), memory_bytes, output_bytes, error_bytes }
    }

    /// Bytes wasmtime may copy out of the guest for one call's result
    /// (hostcall fuel): the larger of the two caps, plus room for the
    /// result's fixed-size parts. Lifting stops at this, before the host
    /// allocates, so an oversize value is refused without being copied.
    pub fn copy_budget(&self) -> usize {
        self.output_bytes.max(self.error_bytes).saturating_add(64 * 1024)
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Data of one call's `Store`: the memory cap and what the guest tried.
pub struct StoreState {
    memory_cap: usize,
    /// Set when the guest tried to grow a memory past `memory_cap`.
    pub(crate) memory_exceeded: Option<usize>,
    /// The calling thread's CPU time when the running call was armed (see `deadline`).
    pub(crate) armed_at: Option<std::time::Duration>,
}

impl StoreState {
    pub fn new(memory_cap: usize) -> Self {
        StoreState { memory_cap, memory_exceeded: None, armed_at: None }
    }
}

/// Small fixed caps on tables and instances: our guests need a handful.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl ResourceLimiter for StoreState {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.memory_exceeded = Some(desired);
            // An error (rather than `Ok(false)`) traps instead of letting the
            // guest see -1 and carry on in a degraded state.
            wasmtime::bail!("memory limit of {} bytes exceeded", self.memory_cap);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            wasmtime::bail!("table limit of {MAX_TABLE_ELEMENTS} elements exceeded");
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}
