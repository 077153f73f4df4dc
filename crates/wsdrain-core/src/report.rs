//! [`DrainReport`]: what a drain did, how, and how long it took.

use std::{fmt, time::Duration};

use crate::drain::DrainCause;

/// Why the forced end came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForcedBy {
    /// The deadline (`grace_period − deadline_margin`) passed.
    Deadline,
    /// A second SIGTERM/SIGINT, or [`DrainController::force`](crate::DrainController::force).
    SecondTrigger,
}

/// The summary of one drain, returned by
/// [`DrainController::run`](crate::DrainController::run) and logged at `info`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// What started the drain.
    pub cause: DrainCause,
    /// Live sessions when Closing began (0 if the forced end skipped it).
    pub sessions_at_closing: usize,
    /// Sessions closed with a complete handshake after our Close.
    pub closed_clean: u64,
    /// Sessions the peer closed first during the drain.
    pub closed_by_peer: u64,
    /// Sessions whose peer did not answer our Close within `close_timeout`.
    pub timed_out: u64,
    /// Sessions the application ended itself during the drain.
    pub ended: u64,
    /// Sessions still live at the forced end, dropped.
    pub forced: u64,
    /// Upgrades refused with 503 during Closing.
    pub refused_upgrades: u64,
    /// Set when the drain ended by force.
    pub forced_by: Option<ForcedBy>,
    /// Draining → Closing.
    pub draining_for: Duration,
    /// Closing → Closed.
    pub closing_for: Duration,
    /// First trigger → Closed.
    pub total: Duration,
}

impl DrainReport {
    /// True when no session was forced and the forced end did not come.
    pub fn is_clean(&self) -> bool {
        self.forced_by.is_none() && self.forced == 0
    }
}

impl fmt::Display for DrainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "drain by {} in {:?}: {} sessions at closing, {} clean, {} closed by peer, {} timed out, {} ended, {} forced, {} upgrades refused",
            self.cause,
            self.total,
            self.sessions_at_closing,
            self.closed_clean,
            self.closed_by_peer,
            self.timed_out,
            self.ended,
            self.forced,
            self.refused_upgrades,
        )?;
        if let Some(by) = self.forced_by {
            write!(f, " (forced end: {by:?})")?;
        }
        Ok(())
    }
}
