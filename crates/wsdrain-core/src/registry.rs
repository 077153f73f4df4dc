//! The session registry: who is live, and each one's close signal.
//!
//! A session is anything that can be told "close now, with this hint" and that
//! ends: a WebSocket today, an SSE stream later. Register and unregister are
//! O(1) under one short lock; an idle session costs one slot and one small
//! shared signal, and no timer or task.

use std::{
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use futures_util::task::AtomicWaker;
use wsdrain_protocol::CloseHint;

/// One session's "your turn to close" signal, set once by the scheduler.
#[derive(Debug, Default)]
pub(crate) struct SessionSignal {
    /// 0 while open; `hint_ms + 1` once the turn came.
    turn: AtomicU64,
    /// Set at the forced end.
    forced: AtomicBool,
    /// Registered during Closing with `ClosingUpgrades::TryAgainLater`: its
    /// Close says 1013, at once.
    try_again: AtomicBool,
    /// The task that runs the session (it owns the close).
    task: AtomicWaker,
}

impl SessionSignal {
    pub(crate) fn fire(&self, hint: CloseHint) {
        let v = hint.retry_after_ms().saturating_add(1).max(1);
        if self
            .turn
            .compare_exchange(0, v, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.task.wake();
        }
    }

    /// Marks the forced end and wakes the session's task.
    fn force(&self) {
        if !self.forced.swap(true, Ordering::AcqRel) {
            self.task.wake();
        }
    }

    pub(crate) fn mark_try_again(&self) {
        self.try_again.store(true, Ordering::Release);
    }

    #[inline]
    pub(crate) fn is_try_again(&self) -> bool {
        self.try_again.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn is_forced(&self) -> bool {
        self.forced.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn register_task(&self, cx: &Context<'_>) {
        self.task.register(cx.waker());
    }

    #[inline]
    pub(crate) fn turn(&self) -> Option<CloseHint> {
        match self.turn.load(Ordering::Acquire) {
            0 => None,
            v => Some(CloseHint::from_millis(v - 1)),
        }
    }

    pub(crate) fn poll_turn(&self, cx: &mut Context<'_>) -> Poll<CloseHint> {
        if let Some(h) = self.turn() {
            return Poll::Ready(h);
        }
        self.register_task(cx);
        match self.turn() {
            Some(h) => Poll::Ready(h),
            None => Poll::Pending,
        }
    }
}

enum Slot {
    Live(Arc<SessionSignal>),
    Free(usize),
}

struct Slots {
    slots: Vec<Slot>,
    free_head: usize,
    live: usize,
    /// Set when Closing began: later registrations are closed at once.
    closing: bool,
    /// Set at the forced end: later ends are not counted as outcomes.
    forced: bool,
}

const NONE: usize = usize::MAX;

/// Why a session could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refused {
    /// The drain is closing sessions: new upgrades go to other servers.
    Closing,
    /// [`DrainPolicy::max_sessions`](crate::DrainPolicy::max_sessions)
    /// sessions are live.
    MaxSessions,
    /// The drain reached its forced end: nothing new may start.
    Ended,
}

impl Refused {
    /// Lowercase name for logs and metrics: `closing`, `max_sessions`, `ended`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Refused::Closing => "closing",
            Refused::MaxSessions => "max_sessions",
            Refused::Ended => "ended",
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Closing => f.write_str("the server is shutting down"),
            Refused::MaxSessions => f.write_str("the server is at its session limit"),
            Refused::Ended => f.write_str("the server is shutting down"),
        }
    }
}

impl std::error::Error for Refused {}

/// What registering a session found.
pub(crate) struct Registered {
    pub(crate) key: usize,
    pub(crate) signal: Arc<SessionSignal>,
    /// Closing had already begun: the caller fires the signal at once.
    pub(crate) late: bool,
}

/// The live sessions.
pub(crate) struct Registry {
    inner: Mutex<Slots>,
    live: AtomicUsize,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            inner: Mutex::new(Slots {
                slots: Vec::new(),
                free_head: NONE,
                live: 0,
                closing: false,
                forced: false,
            }),
            live: AtomicUsize::new(0),
        }
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        // A panic while holding this lock leaves the slots consistent (every
        // mutation is a single assignment), so poisoning is not an error here.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a session, unless `limit` sessions are live already or the
    /// forced end came (a session then could never be forced).
    pub(crate) fn register(&self, limit: Option<usize>) -> Result<Registered, Refused> {
        let signal = Arc::new(SessionSignal::default());
        let mut s = self.lock();
        if s.forced {
            return Err(Refused::Ended);
        }
        if limit.is_some_and(|max| s.live >= max) {
            return Err(Refused::MaxSessions);
        }
        let key = if s.free_head != NONE {
            let key = s.free_head;
            s.free_head = match s.slots[key] {
                Slot::Free(next) => next,
                Slot::Live(_) => NONE,
            };
            s.slots[key] = Slot::Live(signal.clone());
            key
        } else {
            s.slots.push(Slot::Live(signal.clone()));
            s.slots.len() - 1
        };
        s.live += 1;
        self.live.store(s.live, Ordering::Release);
        Ok(Registered {
            key,
            signal,
            late: s.closing,
        })
    }

    /// Removes `key`; returns (live sessions left, whether the forced end came).
    pub(crate) fn unregister(&self, key: usize) -> (usize, bool) {
        let mut s = self.lock();
        let head = s.free_head;
        if let Some(slot @ Slot::Live(_)) = s.slots.get_mut(key) {
            *slot = Slot::Free(head);
            s.free_head = key;
            s.live -= 1;
        }
        self.live.store(s.live, Ordering::Release);
        (s.live, s.forced)
    }

    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Marks Closing and returns every live session's signal. Registrations
    /// after this see `late == true`, under the same lock, so none escapes.
    pub(crate) fn begin_closing(&self) -> Vec<Arc<SessionSignal>> {
        let mut s = self.lock();
        s.closing = true;
        s.slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::Live(sig) => Some(sig.clone()),
                Slot::Free(_) => None,
            })
            .collect()
    }

    /// Marks the forced end, tells every live session, and returns how many
    /// were still live at that instant.
    pub(crate) fn force(&self) -> usize {
        let mut s = self.lock();
        s.closing = true;
        s.forced = true;
        for slot in &s.slots {
            if let Slot::Live(signal) = slot {
                signal.force();
            }
        }
        s.live
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn slots_are_reused_and_counted() {
        let r = Registry::default();
        let a = r.register(None).unwrap();
        let b = r.register(Some(2)).unwrap();
        assert_eq!(r.live(), 2);
        assert_eq!(r.register(Some(2)).err(), Some(Refused::MaxSessions));
        assert_eq!(r.unregister(a.key), (1, false));
        let c = r.register(Some(2)).unwrap();
        assert_eq!(c.key, a.key, "freed slot is reused");
        assert_eq!(r.live(), 2);
        r.unregister(b.key);
        r.unregister(c.key);
        assert_eq!(r.live(), 0);
        // Unregistering twice is harmless.
        assert_eq!(r.unregister(c.key), (0, false));
    }

    #[test]
    fn closing_snapshot_and_late_registrations() {
        let r = Registry::default();
        let a = r.register(None).unwrap();
        let _b = r.register(None).unwrap();
        r.unregister(a.key);
        let snap = r.begin_closing();
        assert_eq!(snap.len(), 1);
        assert!(r.register(None).unwrap().late);
        assert_eq!(r.force(), 2);
        assert!(r.unregister(0).1);
        assert_eq!(
            r.register(None).err(),
            Some(Refused::Ended),
            "nothing registers after the forced end"
        );
    }

    #[test]
    fn signal_fires_once_with_its_hint() {
        let s = SessionSignal::default();
        assert_eq!(s.turn(), None);
        s.fire(CloseHint::from_millis(0));
        s.fire(CloseHint::from_millis(7));
        assert_eq!(s.turn(), Some(CloseHint::from_millis(0)));
        let t = SessionSignal::default();
        t.fire(CloseHint::from_millis(u64::MAX));
        assert_eq!(t.turn(), Some(CloseHint::from_millis(u64::MAX - 1)));
    }
}
