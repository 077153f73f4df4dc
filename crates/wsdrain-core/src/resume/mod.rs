//! Resumable sessions: streams of messages that outlive their connection,
//! with no message missed and none delivered twice.
//!
//! The wire protocol (`wsdrain.resume.v1`) is in
//! [`wsdrain_protocol::resume`] and `docs/PROTOCOL.md`. Here is the server
//! side:
//!
//! * [`Log`]: where a stream's messages are kept (per stream an [`Epoch`]
//!   and a contiguous seq, bounded history), with the in-memory
//!   `MemoryLog` for one process; a Redis Streams log for fleets lives in
//!   its own crate;
//! * [`Tap`]: where a log shared with other processes delivers their
//!   appends to this process's sessions.
//!
//! The server keeps nothing per disconnected client: the client carries its
//! position, so a client that never comes back costs nothing.

mod config;
mod entry;
mod feed;
mod follower;
mod hub;
mod log;
mod memory;
mod point;
mod socket;
#[cfg(test)]
mod tests;

pub use config::ConfigError;
pub use entry::{Entry, Epoch, Payload};
pub use feed::{
    DEFAULT_HUB_CAPACITY, DEFAULT_REPLAY_BATCH, Feed, FeedBuilder, PublishError, Published,
};
pub use log::{Head, Log, LogError, Read, Tap};
pub use memory::{
    DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_STREAMS, MemoryLog, MemoryLogBuilder,
};
pub use point::ResumePoint;
pub use socket::{FollowError, Followed, ResumableSocket, ResumeStack};
pub use wsdrain_protocol::resume::{PointError, Position, ResyncReason, SUBPROTOCOL};
