//! [`DrainReport`]: what a drain did, how, and how long it took.

use std::{fmt, time::Duration};

use crate::{drain::DrainCause, policy::Readable};

/// Why the forced end came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForcedBy {
    /// The deadline (`grace_period − deadline_margin`) passed.
    Deadline,
    /// A second SIGTERM/SIGINT, or [`DrainController::force`](crate::DrainController::force).
    SecondTrigger,
}

impl ForcedBy {
    /// `deadline` or `second trigger`, as in the `forced end` log line.
    pub const fn as_str(self) -> &'static str {
        match self {
            ForcedBy::Deadline => "deadline",
            ForcedBy::SecondTrigger => "second trigger",
        }
    }
}

impl fmt::Display for ForcedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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

/// One line: `drain by SIGTERM in 3.217ms: 1 session at closing, 1 clean,
/// 0 closed by peer, 0 timed out, 0 ended, 0 forced, 0 upgrades refused`,
/// then `; forced end at the deadline` or `; forced end by a second trigger`
/// when it came.
impl fmt::Display for DrainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: u64| if n == 1 { "" } else { "s" };
        let at_closing = self.sessions_at_closing as u64;
        write!(
            f,
            "drain by {} in {}: {at_closing} session{} at closing, {} clean, {} closed by peer, \
             {} timed out, {} ended, {} forced, {} upgrade{} refused",
            self.cause,
            Readable(self.total),
            plural(at_closing),
            self.closed_clean,
            self.closed_by_peer,
            self.timed_out,
            self.ended,
            self.forced,
            self.refused_upgrades,
            plural(self.refused_upgrades),
        )?;
        match self.forced_by {
            Some(ForcedBy::Deadline) => f.write_str("; forced end at the deadline"),
            Some(ForcedBy::SecondTrigger) => f.write_str("; forced end by a second trigger"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn report(sessions: usize, refused: u64, forced_by: Option<ForcedBy>) -> DrainReport {
        DrainReport {
            cause: DrainCause::Signal("SIGTERM"),
            sessions_at_closing: sessions,
            closed_clean: sessions as u64,
            closed_by_peer: 0,
            timed_out: 0,
            ended: 0,
            forced: 0,
            refused_upgrades: refused,
            forced_by,
            draining_for: Duration::ZERO,
            closing_for: Duration::from_micros(3_217),
            total: Duration::from_nanos(3_217_384),
        }
    }

    #[test]
    fn one_readable_line_with_plurals_and_the_forced_end_in_words() {
        assert_eq!(
            report(1, 1, None).to_string(),
            "drain by SIGTERM in 3.217ms: 1 session at closing, 1 clean, 0 closed by peer, \
             0 timed out, 0 ended, 0 forced, 1 upgrade refused"
        );
        assert_eq!(
            report(0, 2, Some(ForcedBy::SecondTrigger)).to_string(),
            "drain by SIGTERM in 3.217ms: 0 sessions at closing, 0 clean, 0 closed by peer, \
             0 timed out, 0 ended, 0 forced, 2 upgrades refused; forced end by a second trigger"
        );
        let mut late = report(3, 0, Some(ForcedBy::Deadline));
        late.total = Duration::from_secs(28);
        late.cause = DrainCause::Manual;
        assert_eq!(
            late.to_string(),
            "drain by begin() in 28s: 3 sessions at closing, 3 clean, 0 closed by peer, \
             0 timed out, 0 ended, 0 forced, 0 upgrades refused; forced end at the deadline"
        );
        assert_eq!(ForcedBy::SecondTrigger.to_string(), "second trigger");
    }
}
