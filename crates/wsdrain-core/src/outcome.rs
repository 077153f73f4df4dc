//! [`SessionOutcome`]: how one session ended.

/// How one session ended, for the [`DrainReport`](crate::DrainReport).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionOutcome {
    /// The application ended it (its handler returned) without a drain close.
    Ended,
    /// The peer closed first (Close frame or end of stream).
    PeerClosed,
    /// We sent our Close and the peer answered: a clean closing handshake.
    Clean,
    /// We sent our Close and the peer did not answer within `close_timeout`.
    TimedOut,
    /// Dropped at the forced end.
    Forced,
}

impl SessionOutcome {
    /// Lowercase name for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            SessionOutcome::Ended => "ended",
            SessionOutcome::PeerClosed => "peer_closed",
            SessionOutcome::Clean => "clean",
            SessionOutcome::TimedOut => "timed_out",
            SessionOutcome::Forced => "forced",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}
