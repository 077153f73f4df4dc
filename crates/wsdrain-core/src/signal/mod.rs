//! SIGTERM / SIGINT: the first starts the drain, the second forces the end.
//!
//! On Unix through signal-hook on a small thread ([`unix`]); elsewhere
//! through `tokio::signal::ctrl_c` ([`other`]).

use std::{io, sync::Arc};

use crate::{DrainController, drain::DrainCause, drain::Shared};

#[cfg(not(unix))]
mod other;
#[cfg(unix)]
mod unix;

#[cfg(not(unix))]
use other as imp;
#[cfg(unix)]
use unix as imp;

/// Keeps the signal handlers of [`DrainController::listen_for_signals`].
///
/// Dropping it stops listening and gives SIGTERM and SIGINT back their
/// default action: the next one ends the process, as it would in a process
/// without wsdrain. (With several listeners, when the last one is dropped.)
/// So keep it for as long as a signal should drain: `let _ =
/// controller.listen_for_signals()` drops it at once.
///
/// On Unix the default action comes from signal-hook's emulation of the
/// default handler, which runs before any other signal-hook or
/// `tokio::signal` handler of the same signal: a process that also handles
/// SIGTERM/SIGINT itself should keep the listener, and a process started with
/// SIGINT ignored (`nohup`, a background job) is ended by it after the drop.
#[derive(Debug)]
#[must_use = "signals reach the drain only while the listener is kept; dropping it restores their default action"]
pub struct SignalListener {
    _inner: imp::Listener,
}

fn on_signal(shared: &Shared, name: &'static str) {
    let cause = DrainCause::Signal(name);
    if shared.begin(cause) {
        tracing::info!(target: "wsdrain", signal = name, "drain begins");
    } else {
        tracing::warn!(target: "wsdrain", signal = name, "second signal: forced end");
        shared.force(cause);
    }
}

impl DrainController {
    /// Installs SIGTERM and SIGINT handlers that drive this controller: the
    /// first signal begins the drain, the next one forces the end. Needs no
    /// runtime. The handlers run on a small dedicated thread; readiness turns
    /// 503 on that thread, without waiting for the async runtime.
    ///
    /// # What is kept, and from when
    ///
    /// A signal that arrives before this call takes its default action (the
    /// process ends), as in any process. Every signal that arrives after it
    /// returns reaches the drain, even before the runtime is built or the
    /// listener is bound: a pod signalled while it is still starting drains.
    ///
    /// During the call there is a window of microseconds in which signal-hook
    /// has installed its OS handler but not yet published the action behind
    /// it; a signal handled then is lost (neither drain nor exit). The call
    /// blocks SIGTERM and SIGINT on its own thread for that time, so such a
    /// signal waits and is then handled, *provided no other thread exists*
    /// that could take it instead. So call it in a plain `fn main`, before the
    /// tokio runtime (and its worker threads) is built:
    ///
    /// ```no_run
    /// use wsdrain_core::{DrainController, DrainPolicy};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let controller = DrainController::new(DrainPolicy::from_env()?);
    ///     // The only thread so far: no SIGTERM from here on is lost.
    ///     let _signals = controller.listen_for_signals()?;
    ///     let runtime = tokio::runtime::Runtime::new()?;
    ///     runtime.block_on(async {
    ///         // Bind, serve, and `controller.run().await` (or `wsdrain::serve`).
    ///         # let _ = controller.run().await;
    ///     });
    ///     Ok(())
    /// }
    /// ```
    ///
    /// Called inside `#[tokio::main]` it works the same once it has returned;
    /// only a signal landing inside that window may be taken by a worker
    /// thread and lost.
    ///
    /// Without Unix signals (Windows), only Ctrl-C is handled, through
    /// `tokio::signal::ctrl_c` on the dedicated thread; the same two-step rule
    /// applies, and a Ctrl-C before that thread has registered takes the
    /// default action.
    ///
    /// # Errors
    ///
    /// If the handlers cannot be registered or the thread cannot start.
    pub fn listen_for_signals(&self) -> io::Result<SignalListener> {
        let shared: Arc<Shared> = self.shared().clone();
        Ok(SignalListener {
            _inner: imp::listen(shared)?,
        })
    }
}
