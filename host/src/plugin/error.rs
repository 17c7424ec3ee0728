//! Typed plugin errors. Every variant names the plugin involved, so an
//! operator reading a log line knows which component to fix.

use std::path::PathBuf;
use std::time::Duration;

use super::types::PluginError;

/// What went wrong loading or calling a plugin.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read plugin file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("plugin file {path} is not a regular file ({what}): a component must be a .wasm file")]
    NotAFile { path: PathBuf, what: &'static str },

    #[error("plugin file {path} is {size} bytes, over the limit of {limit} bytes for a component")]
    FileTooLarge { path: PathBuf, size: u64, limit: u64 },

    #[error("plugin `{plugin}` is not a valid WebAssembly component: {reason}")]
    Invalid { plugin: String, reason: String },

    #[error(
        "plugin `{plugin}` was built against {found}, but this host provides \
         switchyard:plugin@{host}: rebuild it against the host's wit/ folder"
    )]
    IncompatibleVersion { plugin: String, found: String, host: &'static str },

    #[error("plugin `{plugin}` does not implement world `{world}`: {reason}")]
    IncompatibleWorld { plugin: String, world: &'static str, reason: String },

    #[error(
        "plugin `{plugin}` imports `{import}`, which this host does not provide: \
         plugins get no WASI or other host functions"
    )]
    ForbiddenImport { plugin: String, import: String },

    #[error("plugin `{plugin}` exceeded its deadline of {deadline:?}")]
    DeadlineExceeded { plugin: String, deadline: Duration },

    #[error("plugin `{plugin}` exceeded its memory limit of {limit} bytes (tried to grow to {requested} bytes)")]
    OutOfMemory { plugin: String, limit: usize, requested: usize },

    #[error("plugin `{plugin}` overflowed its stack (unbounded recursion?)")]
    StackOverflow { plugin: String },

    #[error("plugin `{plugin}` trapped (a panic or an invalid operation): {message}")]
    Trap { plugin: String, message: String },

    #[error("plugin `{plugin}` returned at least {size} bytes, over its output limit of {limit} bytes")]
    OversizeOutput { plugin: String, size: usize, limit: usize },

    #[error("plugin `{plugin}` returned an invalid value: {reason}")]
    InvalidOutput { plugin: String, reason: String },

    #[error("plugin `{plugin}` refused the call ({:?}): {}", .error.kind, .error.message)]
    Rejected { plugin: String, error: PluginError },

    #[error("plugin runtime: {0}")]
    Runtime(String),
}

impl Error {
    /// A short, stable label for metrics and logs (`plugin_errors_total{type=...}`).
    pub fn label(&self) -> &'static str {
        match self {
            Error::Read { .. } => "read",
            Error::NotAFile { .. } => "not-a-file",
            Error::FileTooLarge { .. } => "file-too-large",
            Error::Invalid { .. } => "invalid",
            Error::IncompatibleVersion { .. } => "incompatible-version",
            Error::IncompatibleWorld { .. } => "incompatible-world",
            Error::ForbiddenImport { .. } => "forbidden-import",
            Error::DeadlineExceeded { .. } => "deadline",
            Error::OutOfMemory { .. } => "out-of-memory",
            Error::StackOverflow { .. } => "stack-overflow",
            Error::Trap { .. } => "trap",
            Error::OversizeOutput { .. } => "oversize-output",
            Error::InvalidOutput { .. } => "invalid-output",
            Error::Rejected { .. } => "rejected",
            Error::Runtime(_) => "runtime",
        }
    }
}
