//! Backends: the model pool the router calls. One shared reqwest client
//! (connection pooling); per model an adapter component that builds the
//! provider's HTTP request and parses its reply, a concurrency limit, a
//! timeout, retries with backoff and an optional fallback model.
//!
//! Invariants:
//! - Credentials are added by the host after the adapter built the request;
//!   a component never sees an API key, and a request is only sent to the
//!   model's configured endpoint (the adapter cannot redirect it): see
//!   `outbound` for the rules, checked on parsed URLs and headers.
//! - Guest code (adapters, the cost component) runs on the blocking pool,
//!   never on the async workers that serve `/healthz` and other requests.
//! - A reply is bounded before the adapter sees it, and what the adapter
//!   makes of it is checked (usage within the request's and the model's
//!   limits); a malformed or cut reply is retried like a 5xx.
//! - Every call's cost comes from the configured cost component.
//! - A routed call never fails the episode: failures are recorded in the
//!   `RoutedCall` and shown to the router as an explicit error text.

mod call;
pub mod outbound;
mod pool;
mod sse;

pub use call::{BackendError, CallOutcome, ItemStream, StreamItem};
pub use pool::{Backend, Pool, ROUTED_CALL_SYSTEM_PROMPT};
pub use sse::SseParser;
