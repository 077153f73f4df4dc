//! The phases of a drain.

use std::fmt;

/// Where a server is on the shutdown timeline.
///
/// Phases only move forward: `Serving → Draining → Closing → Closed`
/// (a forced end may skip `Closing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Phase {
    /// Normal operation: readiness is 200, upgrades are accepted.
    Serving = 0,
    /// A drain began: readiness is 503 so load balancers stop routing here,
    /// but everything is still served while they notice.
    Draining = 1,
    /// Sessions are being closed, each at its own moment; new upgrades get 503.
    Closing = 2,
    /// Every session is gone, or the forced end came. The listener closes.
    Closed = 3,
}

impl Phase {
    /// The lowercase name used in the readiness body and in logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Serving => "serving",
            Phase::Draining => "draining",
            Phase::Closing => "closing",
            Phase::Closed => "closed",
        }
    }

    pub(crate) const fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Serving,
            1 => Phase::Draining,
            2 => Phase::Closing,
            _ => Phase::Closed,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
