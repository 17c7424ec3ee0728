//! Helpers shared by Switchyard's reference plugins. Plain Rust, no bindings:
//! each plugin generates its own bindings for its world, and passes plain
//! values in here, so this crate is unit-tested natively.
#![no_std]
extern crate alloc;

pub mod http;
pub mod learned;
pub mod normalize;
pub mod pool;
pub mod settings;
