//! The core of wsdrain: the drain controller and its policy, the session
//! registry and close scheduler, signal handling, and the tower layer that
//! serves `/readyz` and `/livez` and gates HTTP during a drain.
//!
//! It knows nothing of axum or WebSockets: a session is anything that can be
//! told to close with a hint, and that ends. `wsdrain-axum` puts WebSockets
//! on it. [`resume`] lets a session's streams outlive its connection (a log,
//! a replay, and live delivery without a hole), for any stack and any log.
//!
//! # Example
//!
//! ```
//! use wsdrain_core::{DrainController, DrainLayer, DrainPolicy};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let controller = DrainController::new(DrainPolicy::from_env()?);
//! let _signals = controller.listen_for_signals()?;
//! // `layer` wraps any tower service (an axum Router, a hyper service ...).
//! let layer = DrainLayer::new(controller.drain());
//! # let _ = layer;
//! # Ok(()) }
//! ```
//!
//! The timeline, with the defaults for a 30 s grace period:
//!
//! | phase | `/readyz` | `/livez` | plain HTTP | new upgrade | live sessions |
//! |---|---|---|---|---|---|
//! | Serving | 200 | 200 | normal | accepted | normal |
//! | Draining (first SIGTERM) | 503 | 200 | `Connection: close` | accepted | normal |
//! | Closing (+`drain_delay`, 5 s) | 503 | 200 | `Connection: close` | 503 + `Retry-After` | closed one by one over `close_window` (12 s) with `Close(1001, hint)` |
//! | Closed (all gone, or deadline) | 503 | 200 | listener closes | — | stragglers dropped |
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod controller;
mod drain;
mod layer;
pub mod metrics;
mod outcome;
mod phase;
pub mod policy;
mod registry;
mod report;
pub mod resume;
mod schedule;
mod signal;
mod transport;
pub mod ws;

pub use body::{DrainBody, SessionBody, SseFarewell};
pub use controller::{DrainController, DrainTrigger};
pub use drain::{Drain, DrainCause, SessionGuard, Status};
pub use layer::{
    AlwaysReady, DrainLayer, DrainService, DrainStream, ReadinessCheck, ResponseFuture,
    StreamPredicate, UpgradeClaim, is_upgrade_request,
};
pub use outcome::SessionOutcome;
pub use phase::Phase;
pub use policy::{ClosingUpgrades, DrainPolicy, DrainPolicyBuilder, PolicyError};
pub use registry::Refused;
pub use report::{DrainReport, ForcedBy};
pub use signal::SignalListener;
pub use transport::Transport;
pub use wsdrain_protocol as protocol;
