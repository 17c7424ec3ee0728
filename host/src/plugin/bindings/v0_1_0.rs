//! Bindings for `switchyard:plugin@0.1.0`: one `bindgen!` per world, all
//! sharing the hand-written [`crate::plugin::types`] so values cross worlds
//! (and reach the engine and server) without conversion.

/// The WIT package version these bindings implement.
pub const VERSION: &str = "0.1.0";

/// The package the `types` interface lives in, with its version.
pub const TYPES_INTERFACE: &str = "switchyard:plugin/types@0.1.0";

pub mod reward {
    wasmtime::component::bindgen!({
        world: "reward",
        path: "../wit",
        with: { "switchyard:plugin/types": crate::plugin::types },
    });
}

pub mod cost {
    wasmtime::component::bindgen!({
        world: "cost",
        path: "../wit",
        with: { "switchyard:plugin/types": crate::plugin::types },
    });
}

pub mod adapter {
    wasmtime::component::bindgen!({
        world: "adapter",
        path: "../wit",
        with: { "switchyard:plugin/types": crate::plugin::types },
    });
}

pub mod learned_strategy {
    wasmtime::component::bindgen!({
        world: "learned-strategy",
        path: "../wit",
        with: { "switchyard:plugin/types": crate::plugin::types },
    });
}

pub mod strategy {
    wasmtime::component::bindgen!({
        world: "strategy",
        path: "../wit",
        with: { "switchyard:plugin/types": crate::plugin::types },
    });
}
