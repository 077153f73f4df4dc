#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use wsdrain_core::{
    AlwaysReady, ClosingUpgrades, Drain, DrainBody, DrainCause, DrainController, DrainLayer,
    DrainPolicy, DrainPolicyBuilder, DrainReport, DrainService, DrainStream, DrainTrigger,
    ForcedBy, Phase, PolicyError, ReadinessCheck, Refused, ResponseFuture, SessionBody,
    SessionGuard, SessionOutcome, SignalListener, SseFarewell, Status, StreamPredicate, Transport,
    UpgradeClaim, is_upgrade_request, policy, resume, ws,
};
pub use wsdrain_protocol as protocol;
pub use wsdrain_protocol::CloseHint;

/// axum integration: `GracefulUpgrade`, `GracefulSocket`, `serve` and the
/// admin endpoint.
#[cfg(feature = "axum")]
pub use wsdrain_axum as axum;
#[cfg(feature = "axum")]
pub use wsdrain_axum::{GracefulSocket, GracefulUpgrade, ResumableSocket, ResumableUpgrade, serve};

/// The reconnecting client that honours close hints.
#[cfg(feature = "client")]
pub use wsdrain_client as client;

/// The Redis Streams log of resumable sessions, for fleets.
#[cfg(feature = "redis")]
pub use wsdrain_redis as redis;

/// tokio-tungstenite integration: drained sessions for servers that accept
/// with tokio-tungstenite directly or through hyper's upgrade.
#[cfg(feature = "tungstenite")]
pub use wsdrain_tungstenite as tungstenite;
