//! A reconnecting WebSocket client that honours wsdrain close hints.
//!
//! A draining wsdrain server closes each session with `Close(1001, "going
//! away; retry-after-ms=N")` and refuses new upgrades with `503` and
//! `Retry-After` (see `docs/PROTOCOL.md`). This client listens:
//!
//! | what ended the connection | what the client does |
//! |---|---|
//! | Close 1001, 1012 or 1013 with a hint *h* | waits `h + random(0, max(hint_jitter, h/50))`, reconnects; not counted as a failure |
//! | upgrade refused with `Retry-After` (503, 429, ...) | waits that long plus the same jitter |
//! | 1001/1012 without a hint | full-jitter backoff from 5 s (`going_away_base`) |
//! | 1006 (no Close frame), refused/reset TCP, 1011, 1013 without a hint, 5xx | full-jitter backoff: `random(0, min(cap, base·2^attempt))` |
//! | 1000, 1008, 4000–4999 (configurable), 401/403/other 4xx on the upgrade | stops ([`Event::GaveUp`]) |
//!
//! Defaults: `base` 250 ms, `cap` 30 s, `stable_after` 30 s (the failure
//! count resets only after a connection stayed up that long), `hint_jitter`
//! 50 ms, 5 s backoff base after a 1001/1012 without a hint (RFC 6455
//! §7.2.3); [`RetryPolicy::builder`] changes them ([`Reconnect::policy`]). The decision and the backoff are pure functions in [`retry`].
//! `docs/CLIENTS.md` in the repository explains the defaults, and the browser
//! module that follows the same rules.
//!
//! # Make-before-break
//!
//! A wsdrain server with the drain notice on (`WSDRAIN_NOTICE_LEAD`) sends
//! `{"type":"wsdrain.reconnect","close_in_ms":N}` a lead before a session's
//! Close. The client then opens its next connection to the same request at
//! once, moves sends to it as soon as it is open ([`Event::Connected`]),
//! keeps reading the old one until its Close (or closes it with 1000 if the
//! server overstays the lead by `close_timeout`), and reports
//! [`Event::Handover`] with the overlap. If the new connection fails
//! ([`Event::HandoverFailed`]) it stays on the old one and reconnects as its
//! Close advises. The notice is an [`Event::DrainNotice`], not a message.
//! A notice on a connection that a handover opened less than `stable_after`
//! ago waits the backoff first (a Close meanwhile is followed by its hint),
//! so a server that notices every new connection cannot chain handovers.
//! [`Client::send`] documents what is guaranteed for messages.
//!
//! # Production settings
//!
//! * Any request tungstenite's `IntoClientRequest` takes (headers such as
//!   `Authorization`, subprotocols), or [`Reconnect::header`];
//!   [`Reconnect::websocket_config`]; [`Reconnect::connect_timeout`].
//! * `wss://` with rustls on the ring provider, no OpenSSL. Features:
//!   `rustls-webpki-roots` (default: Mozilla's roots compiled in),
//!   `rustls-native-roots` (the system's roots), `rustls` (no roots: give
//!   [`Reconnect::tls_config`], e.g. [`tls::config_with_roots`]).
//! * A failed attempt says where it failed ([`FailedAt`]: DNS, TCP, TLS,
//!   HTTP status with `Retry-After`, handshake, timeout).
//! * Opt-in health probe ([`Reconnect::health_check`]): before reconnecting,
//!   once the hint or backoff has passed, GET the same origin's `/readyz`
//!   until it answers 200 ([`Event::NotReady`] meanwhile), so a restarting
//!   server costs no failed handshakes.
//!
//! # API in short
//!
//! * [`Reconnect::new(url)`](Reconnect::new), builder methods (`policy`
//!   with a [`RetryPolicy`], `handover`, `health_check`, timeouts, ...), then
//!   [`spawn()`](Reconnect::spawn) → `(Client, Events)`.
//! * [`Events`] is a [`Stream`](futures_util::Stream) of [`Event`]:
//!   `Connected`, `Message`, `Closed` (code, reason, parsed hint, `clean`),
//!   `ConnectFailed` (stage, HTTP status, `Retry-After`), `Reconnecting`
//!   (delay and why), `DrainNotice`, `Handover`, `HandoverFailed`,
//!   `NotReady`, `GaveUp` (then the stream ends). Dropping it stops the
//!   client. [`Event`] is `#[non_exhaustive]`: match with a `_` arm.
//! * [`Client::send`] writes on the open connection and returns its
//!   [`ConnectionId`] once the message is flushed. The write runs in the
//!   client's task, queued per connection, so a server that stops reading
//!   holds up nothing else, and one that takes no byte for
//!   [`write_timeout`](Reconnect::write_timeout) (10 s) has its connection
//!   ended and replaced. A message that was not written comes back
//!   ([`SendError::NotConnected`], [`SendError::Unsent`]); one cut short
//!   is reported ([`SendError::Failed`]); none is resent on its own. Every
//!   send that returned `Ok(id)` was written before `Event::Closed` for `id`
//!   was emitted, so an application always knows which connection carried
//!   a message and when that connection ended. [`Client::close`] stops for
//!   good.
//! * Every transition is logged with `tracing` (`info` for connected, closed,
//!   reconnecting, gave up; `warn` for failed attempts).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use wsdrain_client::{Event, Message, Reconnect, RetryPolicy, SendError};
//!
//! # async fn run() -> Result<(), wsdrain_client::RetryPolicyError> {
//! let policy = RetryPolicy::builder().cap(Duration::from_secs(10)).build()?;
//! let (client, mut events) = Reconnect::new("ws://127.0.0.1:3000/ws")
//!     .policy(policy)
//!     .spawn();
//! while let Some(event) = events.next().await {
//!     match event {
//!         Event::Connected { connection } => {
//!             match client.send(Message::text("hello")).await {
//!                 Ok(id) => assert_eq!(id, connection),
//!                 Err(SendError::NotConnected(_)) => {} // closed meanwhile
//!                 Err(e) => eprintln!("{e}"),
//!             }
//!         }
//!         Event::Message { message, .. } => println!("got {message}"),
//!         Event::Closed(closed) => println!("closed {} hint {:?}", closed.code, closed.hint),
//!         Event::Reconnecting { delay, wait } => println!("retry in {delay:?} ({wait})"),
//!         Event::ConnectFailed(failed) => println!("attempt failed: {}", failed.error),
//!         Event::Handover(h) => println!("moved {} -> {} ({:?} overlap)", h.from, h.to, h.overlap),
//!         Event::GaveUp(why) => println!("gave up: {why:?}"),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Unlike Python `websockets`' `connect()` iterator, which reconnects at once
//! after an established connection closes, this client waits for the hint, so
//! a fleet of clients does not return in one burst.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
pub mod retry;
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub mod tls;

pub use client::{
    Client, Closed, ConnectFailed, ConnectionId, Event, Events, FailedAt, GiveUp, Handover,
    NotReady, Reconnect, Resumed, Resync, SendError, StreamMessage,
};
pub use retry::{Decision, Outcome, RetryPolicy, RetryPolicyBuilder, RetryPolicyError, Wait};
pub use tokio_tungstenite::tungstenite::{self, Message};
pub use wsdrain_protocol::resume::ResyncReason;
