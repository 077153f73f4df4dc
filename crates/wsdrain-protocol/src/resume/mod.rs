//! The resume protocol (`wsdrain.resume.v1`): sessions that survive their
//! connection, with no message missed and none delivered twice.
//!
//! A client opts in by offering the subprotocol [`SUBPROTOCOL`] and, when it
//! reconnects, by naming where it stopped in the upgrade's query:
//! `?wsdrain-resume=prices@3fKq9Zt2.57,user/alice@Hw81LmQa.12` ([`Position`],
//! [`point_from_query`]). On a route the application made resumable the
//! server selects the subprotocol; every data frame it sends then starts with
//! a one-line ASCII header ([`Frame`]):
//!
//! * `m <stream> <seq>\n<payload>`: a message of a stream; `seq` is
//!   contiguous within the stream's epoch (1, 2, 3, …);
//! * `p\n<payload>`: an application message outside any stream;
//! * `c\n<json>`: a [`Control`]: how a stream starts on this connection
//!   (`wsdrain.follow`, `wsdrain.resumed`, `wsdrain.resync`), or the drain
//!   notice (`wsdrain.reconnect`).
//!
//! A client that does not offer the subprotocol sees exactly the bytes it
//! would see without resume. The client's rule, per stream: deliver iff `seq
//! == last + 1`, drop `seq <= last`, anything else is a protocol error.
//!
//! The full specification, for client authors in any language, is the
//! "Resumable sessions" part of `docs/PROTOCOL.md` in the repository.
//!
//! # Example
//!
//! ```
//! use wsdrain_protocol::resume::{
//!     Control, Frame, Position, ResyncReason, encode_point, parse_frame, point_from_query,
//!     write_message_header,
//! };
//!
//! // Client: where it stopped, in the upgrade's query.
//! let point = vec![Position::new("prices", "3fKq9Zt2", 57)?];
//! let query = format!("wsdrain-resume={}", encode_point(&point));
//! assert_eq!(query, "wsdrain-resume=prices@3fKq9Zt2.57");
//!
//! // Server: reads it back.
//! assert_eq!(point_from_query(&query)?, Some(point));
//!
//! // Server: a message of a stream, header and payload in one buffer.
//! let mut frame = Vec::new();
//! write_message_header(&mut frame, "prices", 58);
//! frame.extend_from_slice(b"{\"px\":101.5}");
//! assert_eq!(frame, b"m prices 58\n{\"px\":101.5}");
//!
//! // Client: reads frames.
//! assert_eq!(
//!     parse_frame(&frame)?,
//!     Frame::Message { stream: "prices", seq: 58, payload: b"{\"px\":101.5}" }
//! );
//! let control = Control::Resync(
//!     Position::new("prices", "3fKq9Zt2", 80)?,
//!     ResyncReason::Expired,
//! );
//! let text = control.to_frame();
//! assert_eq!(
//!     text,
//!     "c\n{\"type\":\"wsdrain.resync\",\"stream\":\"prices\",\"epoch\":\"3fKq9Zt2\",\"after\":80,\"reason\":\"expired\"}"
//! );
//! assert_eq!(parse_frame(text.as_bytes())?, Frame::Control(control));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod control;
mod frame;
mod json;
mod names;
mod point;

pub use control::{Control, ControlError, ResyncReason, types};
pub use frame::{
    CONTROL_PREFIX, Frame, FrameError, PLAIN_PREFIX, message_header_len, parse_frame,
    write_message_header,
};
pub use names::{NameError, check_epoch, check_stream};
pub use point::{PointError, Position, encode_point, offers_resume, parse_point, point_from_query};

/// The subprotocol a client offers (`Sec-WebSocket-Protocol`) to resume.
pub const SUBPROTOCOL: &str = "wsdrain.resume.v1";

/// The query parameter that carries the resume point.
pub const QUERY_KEY: &str = "wsdrain-resume";

/// The longest stream name, in bytes.
pub const MAX_STREAM_LEN: usize = 128;

/// The longest epoch, in bytes.
pub const MAX_EPOCH_LEN: usize = 32;

/// The most streams one resume point may name. 64 positions of ordinary
/// length keep the URL under the 8 KiB that common proxies accept.
pub const MAX_POINT_STREAMS: usize = 64;

/// The longest message header: `m `, a stream name, a space, a `u64`, `\n`.
pub const MAX_HEADER_LEN: usize = 2 + MAX_STREAM_LEN + 1 + 20 + 1;
