//! The I/O-free heart of edgehook.
//!
//! Everything that decides what happens to a webhook lives here: signature
//! verification for every provider, dedupe keys and event types, trigger
//! configuration and its validation, identifiers, the ingest decision, the run
//! state machine and the signing of outbound dispatches. It has no `worker`, no
//! tokio and no clock: every function that needs the time takes it as an
//! argument, so the same code runs natively under `cargo test` and inside the
//! Worker on wasm32, where reading the system clock would trap. Nor does it parse URLs itself:
//! the adapter passes a WHATWG parser in ([`weburl`]).
//!
//! The wire types of the management API ([`api`]) live here too, so that the
//! Worker that writes them and the backfill that reads them cannot drift apart.

pub mod alarm;
pub mod api;
pub mod dispatch;
pub mod encoding;
pub mod error;
pub mod filter;
pub mod frames;
pub mod headers;
pub mod id;
pub mod ingest;
pub mod limit;
pub mod provider;
pub mod query;
pub mod route;
pub mod run;
pub mod schema;
pub mod secret;
pub mod stats;
pub mod time;
pub mod trigger;
pub mod verify;
pub mod weburl;

pub use error::{ConfigError, VerifyError};
pub use headers::HeaderList;
pub use secret::Secret;
pub use time::Timestamp;
