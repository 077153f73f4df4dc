//! The wsdrain wire format: the close hint, the drain notice, and the resume protocol.
//!
//! When a server drains its WebSocket sessions (for example on `SIGTERM` during a
//! Kubernetes rolling deploy) it closes each one with a Close frame whose code is
//! [`code::GOING_AWAY`] (1001), or [`code::SERVICE_RESTART`] (1012) as an option,
//! and whose reason carries a *retry-after hint*: how long the client should wait
//! before it reconnects. An upgrade it accepts while closing may get the same
//! reason at once with [`code::TRY_AGAIN_LATER`] (1013); clients honour the
//! hint of all three codes alike.
//!
//! # The reason format
//!
//! ```text
//! going away; retry-after-ms=1500
//! ```
//!
//! * A short human text (the first segment, which may be absent), then
//!   `;`-separated `key=value` parameters.
//! * Parameter keys are lowercase `[a-z0-9-]+`. The one defined today is
//!   [`RETRY_AFTER_MS`] (`retry-after-ms`), whose value is a decimal number of
//!   milliseconds that fits in a `u64`.
//! * Parsers ignore parameters they do not know, so the format can grow (for
//!   example a future `v=1`).
//! * The whole reason is printable ASCII and at most [`MAX_REASON_LEN`] (123)
//!   bytes: a Close frame payload is at most 125 bytes (RFC 6455 §5.5), two of
//!   which are the code. Peers such as Python `websockets` and Node `ws` fail the
//!   connection with 1006 on a longer reason, and the hint is lost, so
//!   [`CloseHint::encode`] enforces the limit for any text.
//! * Any language can read the hint with one regex: `/retry-after-ms=(\d+)/`.
//!
//! With the opt-in drain notice, the server first sends a text message,
//! `{"type":"wsdrain.reconnect","close_in_ms":N}` ([`encode_notice`],
//! [`parse_notice`]), so that a client can open its next connection before
//! the Close.
//!
//! A rejected WebSocket upgrade carries the same advice in HTTP terms: status
//! `503`, `Retry-After: <seconds>` (see [`CloseHint::retry_after_header_secs`] and
//! [`parse_retry_after_header`]) and `Connection: close`.
//!
//! The [`resume`] module is the opt-in resume protocol (`wsdrain.resume.v1`):
//! the resume point, the framed messages and the controls that let a
//! client's streams outlive its connection.
//!
//! The full specification, written for client authors in any language, is
//! `docs/PROTOCOL.md` in the repository.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use wsdrain_protocol::{CloseHint, MAX_REASON_LEN, check_close_code, code};
//!
//! // Server side: build the Close reason.
//! let hint = CloseHint::from_millis(1500);
//! let reason = hint.to_reason();
//! assert_eq!(reason, "going away; retry-after-ms=1500");
//! assert!(reason.len() <= MAX_REASON_LEN);
//! assert!(check_close_code(code::GOING_AWAY).is_ok());
//!
//! // Any text is sanitised and truncated so the hint always fits.
//! let long = hint.encode(&"deploying é ".repeat(40));
//! assert!(long.is_ascii() && long.len() <= MAX_REASON_LEN);
//! assert!(long.ends_with("; retry-after-ms=1500"));
//!
//! // Client side: read it back; unknown parameters are ignored.
//! let got = CloseHint::parse("going away;retry-after-ms=1500 ; v=2").unwrap();
//! assert_eq!(got.retry_after(), Duration::from_millis(1500));
//! assert_eq!(CloseHint::parse("bye"), None);
//!
//! // The same advice on a rejected upgrade: `Retry-After` in whole seconds, rounded up.
//! assert_eq!(hint.retry_after_header_secs(), 2);
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod check;
pub mod code;
mod hint;
mod json;
mod notice;
pub mod resume;
mod retry_after;

pub use check::{CloseCodeError, check_close_code};
pub use hint::CloseHint;
pub use notice::{MAX_NOTICE_LEAD_MS, NOTICE_TYPE, encode_notice, parse_notice};
pub use retry_after::parse_retry_after_header;

/// The longest Close reason, in bytes, that an encoder may send.
///
/// A Close frame's payload is at most 125 bytes (RFC 6455 §5.5); the first two
/// are the close code, which leaves 123 for the UTF-8 reason.
pub const MAX_REASON_LEN: usize = 123;

/// The human text that [`CloseHint::to_reason`] puts before the parameters.
pub const DEFAULT_TEXT: &str = "going away";

/// The key of the retry-after parameter: `retry-after-ms=<milliseconds>`.
///
/// Its meaning will not change in future versions of the format.
pub const RETRY_AFTER_MS: &str = "retry-after-ms";
