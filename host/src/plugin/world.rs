//! Typed plugin handles, one per world: `Plugin<Reward>`, `Plugin<Cost>`,
//! `Plugin<Adapter>`, `Plugin<Strategy>`, `Plugin<LearnedStrategy>`. A handle is a pre-instantiated
//! component; every call gets a fresh store (see `sandbox`). Handles are
//! cheap to clone and safe to share between threads.

use std::path::Path;
use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::bindings::v0_1_0::{adapter, cost, learned_strategy, reward, strategy};
use super::error::Error;
use super::limits::{Kind, StoreState};
use super::loader::{self, PluginInfo};
use super::runtime::Runtime;
use super::sandbox::{self, Warm};
use super::types::*;

/// A WIT world a plugin can be loaded as.
pub trait World: 'static {
    const KIND: Kind;
    /// The bindings' pre-instantiated form.
    type Pre: Clone + Send + Sync + 'static;
    /// The bindings' instance form.
    type Instance: 'static;
    fn pre(pre: InstancePre<StoreState>) -> wasmtime::Result<Self::Pre>;
    fn instantiate(pre: &Self::Pre, store: &mut Store<StoreState>) -> wasmtime::Result<Self::Instance>;
}

macro_rules! world {
    ($marker:ident, $kind:expr, $module:ident :: $pre:ident, $instance:ident) => {
        #[doc = concat!("Marker for the `", stringify!($module), "` world.")]
        pub enum $marker {}
        impl World for $marker {
            const KIND: Kind = $kind;
            type Pre = $module::$pre<StoreState>;
            type Instance = $module::$instance;
            fn pre(pre: InstancePre<StoreState>) -> wasmtime::Result<Self::Pre> {
                $module::$pre::new(pre)
            }
            fn instantiate(pre: &Self::Pre, store: &mut Store<StoreState>) -> wasmtime::Result<Self::Instance> {
                pre.instantiate(store)
            }
        }
    };
}

world!(Reward, Kind::Reward, reward::RewardPre, Reward);
world!(Cost, Kind::Cost, cost::CostPre, Cost);
world!(Adapter, Kind::Adapter, adapter::AdapterPre, Adapter);
world!(Strategy, Kind::Strategy, strategy::StrategyPre, Strategy);
world!(LearnedStrategy, Kind::LearnedStrategy, learned_strategy::LearnedStrategyPre, LearnedStrategy);

/// A loaded plugin of world `W`.
pub struct Plugin<W: World> {
    runtime: Arc<Runtime>,
    info: Arc<PluginInfo>,
    pre: W::Pre,
}

impl<W: World> Clone for Plugin<W> {
    fn clone(&self) -> Self {
        Plugin { runtime: self.runtime.clone(), info: self.info.clone(), pre: self.pre.clone() }
    }
}

impl<W: World> Plugin<W> {
    /// Load the component file at `path` as world `W`.
    pub fn load(runtime: &Arc<Runtime>, path: &Path) -> Result<Self, Error> {
        let bytes = loader::read(path)?;
        Self::from_bytes(runtime, &loader::plugin_name(path), &bytes)
    }

    /// Load a component from memory, naming it `name` in errors.
    pub fn from_bytes(runtime: &Arc<Runtime>, name: &str, bytes: &[u8]) -> Result<Self, Error> {
        let inspected = loader::inspect(runtime, name, bytes, W::KIND)?;
        let instance_pre = loader::link(runtime, &inspected)?;
        let pre = W::pre(instance_pre).map_err(|e| loader::mismatch(&inspected.info, e))?;
        Ok(Plugin { runtime: runtime.clone(), info: Arc::new(inspected.info), pre })
    }

    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// One call in a fresh store.
    fn call<R: GuestOutput>(
        &self,
        f: impl FnOnce(&W::Instance, &mut Store<StoreState>) -> wasmtime::Result<Result<R, PluginError>>,
    ) -> Result<R, Error> {
        let mut store = sandbox::new_store(&self.runtime, &self.runtime.limits(W::KIND));
        sandbox::run(&self.runtime, &self.info, &mut store, |store| {
            let instance = W::instantiate(&self.pre, store)?;
            f(&instance, store)
        })
    }

    /// An instance kept across calls (discarded after a trap).
    pub fn warm(&self) -> Warm<W::Instance> {
        let pre = self.pre.clone();
        Warm::new(self.runtime.clone(), self.info.clone(), Box::new(move |store| W::instantiate(&pre, store)))
    }
}

/// Functions that cannot fail inside the guest still return through the
/// same path; this lifts them into the `Result<_, PluginError>` shape.
fn infallible<T>(r: wasmtime::Result<T>) -> wasmtime::Result<Result<T, PluginError>> {
    r.map(Ok)
}

impl Plugin<Reward> {
    pub fn score(&self, input: &ScoringInput, params: &RewardParams) -> Result<RewardBreakdown, Error> {
        self.call(|i, s| i.call_score(s, input, *params))
    }

    pub fn score_batch(&self, inputs: &[ScoringInput], params: &RewardParams) -> Result<Vec<RewardBreakdown>, Error> {
        self.call(|i, s| i.call_score_batch(s, inputs, *params))
    }
}

impl Warm<reward::Reward> {
    pub fn score(&mut self, input: &ScoringInput, params: &RewardParams) -> Result<RewardBreakdown, Error> {
        self.call(|i, s| i.call_score(s, input, *params))
    }
}

impl Plugin<Cost> {
    pub fn cost(
        &self,
        model: &ModelDescriptor,
        usage: Usage,
        latency_ms: u32,
        settings: &[Setting],
    ) -> Result<f64, Error> {
        self.call(|i, s| i.call_cost(s, model, usage, latency_ms, settings))
    }
}

impl Warm<cost::Cost> {
    pub fn cost(
        &mut self,
        model: &ModelDescriptor,
        usage: Usage,
        latency_ms: u32,
        settings: &[Setting],
    ) -> Result<f64, Error> {
        self.call(|i, s| i.call_cost(s, model, usage, latency_ms, settings))
    }
}

impl Plugin<Adapter> {
    pub fn auth(&self) -> Result<AuthScheme, Error> {
        self.call(|i, s| infallible(i.call_auth(s)))
    }

    pub fn build_request(&self, request: &ChatRequest, base_url: &str) -> Result<HttpRequest, Error> {
        self.call(|i, s| i.call_build_request(s, request, base_url))
    }

    pub fn parse_response(&self, response: &HttpResponse) -> Result<Completion, Error> {
        self.call(|i, s| i.call_parse_response(s, response))
    }

    pub fn parse_stream_event(&self, event: &str, data: &str) -> Result<StreamEvent, Error> {
        self.call(|i, s| i.call_parse_stream_event(s, event, data))
    }
}

impl Warm<adapter::Adapter> {
    /// Parse the events of one stream on one instance (cheaper than a store per event).
    pub fn parse_stream_event(&mut self, event: &str, data: &str) -> Result<StreamEvent, Error> {
        self.call(|i, s| i.call_parse_stream_event(s, event, data))
    }
}

impl Plugin<Strategy> {
    pub fn decide(&self, state: &RoutingState, settings: &[Setting]) -> Result<Action, Error> {
        self.call(|i, s| i.call_decide(s, state, settings))
    }
}

impl Plugin<LearnedStrategy> {
    /// Decide with `parameters`, the bytes of the policy's parameter file.
    pub fn decide(&self, state: &RoutingState, parameters: &[u8], settings: &[Setting]) -> Result<Action, Error> {
        self.call(|i, s| i.call_decide(s, state, parameters, settings))
    }
}
