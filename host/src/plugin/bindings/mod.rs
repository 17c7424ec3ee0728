//! Generated bindings, one module per WIT package version (as Zed's extension
//! host does). A new contract version gets a new module beside this one, and
//! the loader picks the module from the version a component was built against.

pub mod v0_1_0;
