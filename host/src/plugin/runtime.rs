//! The plugin runtime: one wasmtime `Engine` for the process, an epoch
//! ticker that drives every deadline, the on-disk compile cache, and the
//! per-kind limits.
//!
//! Invariants:
//! - One `Engine` per `Runtime`; every component is compiled by it, and
//!   cached artifacts are keyed by its compatibility hash.
//! - The ticker thread lives exactly as long as the `Runtime`.
//! - The pooling allocator is used when the machine grants its virtual
//!   memory reservation; otherwise the on-demand allocator (logged once).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use super::cache::CompileCache;
use super::error::Error;
use super::limits::{Kind, Limits};

/// How to build a [`Runtime`].
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Epoch tick: deadlines are enforced to within about two ticks.
    pub tick: Duration,
    /// Limits per plugin kind.
    pub limits: HashMap<Kind, Limits>,
    /// Where compiled components are cached; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// Try the pooling allocator (falls back when the machine refuses it).
    pub pooling: bool,
    /// Most instances alive at once (pooling slots).
    pub max_instances: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            tick: Duration::from_millis(2),
            limits: Kind::ALL.into_iter().map(|k| (k, Limits::default_for(k))).collect(),
            cache_dir: default_cache_dir(),
            pooling: true,
            max_instances: 256,
        }
    }
}

/// `$SWITCHYARD_CACHE_DIR`, else `$XDG_CACHE_HOME/switchyard/components`,
/// else `~/.cache/switchyard/components`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SWITCHYARD_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("switchyard").join("components"))
}

/// The process-wide plugin runtime. Cheap to share behind an `Arc`.
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) cache: Option<CompileCache>,
    limits: HashMap<Kind, Limits>,
    tick: Duration,
    pooling: bool,
    epoch: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Arc<Runtime>, Error> {
        if config.tick.is_zero() {
            return Err(Error::Runtime("epoch tick must be positive".into()));
        }
        let max_memory = config.limits.values().map(|l| l.memory_bytes).max().unwrap_or(64 << 20);
        let (engine, pooling) = if config.pooling {
            match Engine::new(&engine_config(Some(pooling_config(config.max_instances, max_memory)))) {
                Ok(engine) => (engine, true),
                Err(e) => {
                    tracing::warn!("pooling allocator unavailable ({e:#}); using on-demand instance allocation");
                    (on_demand_engine()?, false)
                }
            }
        } else {
            (on_demand_engine()?, false)
        };
        let cache = match &config.cache_dir {
            Some(dir) => Some(CompileCache::open(dir.clone(), &engine)?),
            None => None,
        };

        let epoch = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (engine, epoch, stop, tick) = (engine.clone(), epoch.clone(), stop.clone(), config.tick);
            std::thread::Builder::new()
                .name("switchyard-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                        epoch.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .map_err(|e| Error::Runtime(format!("cannot start the epoch ticker thread: {e}")))?
        };

        let mut limits = config.limits;
        for kind in Kind::ALL {
            limits.entry(kind).or_insert_with(|| Limits::default_for(kind));
        }
        Ok(Arc::new(Runtime { engine, cache, limits, tick: config.tick, pooling, epoch, stop, ticker: Some(ticker) }))
    }

    /// A runtime with default limits and the default cache directory.
    pub fn with_defaults() -> Result<Arc<Runtime>, Error> {
        Runtime::new(RuntimeConfig::default())
    }

    pub fn limits(&self, kind: Kind) -> Limits {
        self.limits[&kind]
    }

    pub fn tick(&self) -> Duration {
        self.tick
    }

    /// Whether the pooling allocator is in use.
    pub fn pooling(&self) -> bool {
        self.pooling
    }

    /// Epoch ticks elapsed since the runtime started (a diagnostic: deadlines count CPU time).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
    }
}

fn engine_config(pooling: Option<PoolingAllocationConfig>) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.cranelift_opt_level(OptLevel::Speed);
    // Guests get 512 KiB of wasm stack: deep enough for real plugins, and an
    // unbounded recursion hits it in microseconds.
    config.max_wasm_stack(512 * 1024);
    // Copy data segments into a fresh instance instead of mapping them
    // copy-on-write: our components' data is a few KiB, and CoW faults in a
    // multi-threaded server cost TLB shootdowns on every instantiation.
    config.memory_init_cow(false);
    if let Some(pool) = pooling {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

fn pooling_config(max_instances: u32, max_memory: usize) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::default();
    // A Rust component is one main module plus a few adapter shims.
    pool.total_component_instances(max_instances)
        .total_core_instances(max_instances.saturating_mul(4))
        .total_memories(max_instances)
        .total_tables(max_instances.saturating_mul(2))
        .max_memory_size(max_memory)
        // Return slots' pages to the kernel in batches: one madvise (and one
        // TLB shootdown) per batch instead of per call.
        .decommit_batch_size(32);
    pool
}

fn on_demand_engine() -> Result<Engine, Error> {
    Engine::new(&engine_config(None)).map_err(|e| Error::Runtime(format!("cannot create the wasm engine: {e:#}")))
}
