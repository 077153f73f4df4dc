//! axum integration of wsdrain.
//!
//! * [`GracefulUpgrade`]: the extractor, a drop-in for axum's `WebSocketUpgrade`;
//! * [`GracefulSocket`]: the socket it hands to your handler, which closes
//!   itself with `Close(1001, "going away; retry-after-ms=N")` when the drain
//!   gives it its turn;
//! * [`ResumableUpgrade`] and [`ResumableSocket`]: the same for routes whose
//!   sessions resume (`wsdrain.resume.v1`): the socket delivers the streams
//!   it follows, replayed from where the client stopped, then live;
//! * [`serve`]: `axum::serve` joined with the drain, HTTP/1.1 and HTTP/2
//!   (GOAWAY when Closing begins, RFC 8441 WebSockets), the listener open
//!   until the drain ends.
//!
//! Unlike `axum::serve(..).with_graceful_shutdown(..)` alone, which stops
//! watching a connection the moment it is upgraded (so every client sees
//! 1006), sessions here are registered, closed one by one with a hint, and
//! waited for, with a forced end that always comes.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod admin;
mod resume;
mod serve;
mod socket;
mod upgrade;

pub use admin::AdminConfig;
pub use resume::{ResumableSocket, ResumableUpgrade, ResumableUpgradeRejection};
pub use serve::{Accepted, Connections, Sniffed, serve};
pub use socket::{Axum, Error, GracefulSocket};
pub use upgrade::{GracefulUpgrade, GracefulUpgradeRejection};
