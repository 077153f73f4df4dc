//! SIGTERM / SIGINT through signal-hook: the first starts the drain, the
//! second forces the end.

use std::{io, sync::Arc, thread};

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use signal_hook::{
    consts::{SIGINT, SIGTERM},
    iterator::{Handle, Signals},
};

use crate::{DrainController, drain::DrainCause, drain::Shared};

/// Keeps the signal handlers installed; dropping it stops listening (the
/// signals then no longer reach the drain).
///
/// Created by [`DrainController::listen_for_signals`].
#[derive(Debug)]
#[must_use = "signals are only handled while the listener is kept"]
pub struct SignalListener {
    handle: Handle,
}

impl Drop for SignalListener {
    fn drop(&mut self) {
        self.handle.close();
    }
}

fn name(signal: i32) -> &'static str {
    match signal {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        _ => "signal",
    }
}

fn on_signal(shared: &Shared, signal: i32) {
    let cause = DrainCause::Signal(name(signal));
    if shared.begin(cause) {
        tracing::info!(target: "wsdrain", signal = name(signal), "drain begins");
    } else {
        tracing::warn!(target: "wsdrain", signal = name(signal), "second signal: forced end");
        shared.force(cause);
    }
}

impl DrainController {
    /// Installs SIGTERM and SIGINT handlers (signal-hook) that drive this
    /// controller: the first signal begins the drain, the next one forces the
    /// end. Needs no runtime: call it first thing in `main`, so a SIGTERM that
    /// arrives during start-up is not lost.
    ///
    /// The handlers run on a small dedicated thread; readiness turns 503 on
    /// that thread, without waiting for the async runtime.
    ///
    /// # Errors
    ///
    /// If the handlers cannot be registered or the thread cannot start.
    pub fn listen_for_signals(&self) -> io::Result<SignalListener> {
        // signal-hook installs the OS handler before it publishes the action
        // that forwards the signal; a SIGTERM in that gap would be lost.
        // Blocked on this thread meanwhile, it stays pending instead, and is
        // delivered (to the new handler) when the mask is restored.
        let mut blocked = SigSet::empty();
        blocked.add(Signal::SIGTERM);
        blocked.add(Signal::SIGINT);
        let mut previous = SigSet::empty();
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&blocked), Some(&mut previous))
            .map_err(io::Error::from)?;
        let signals = Signals::new([SIGTERM, SIGINT]);
        pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous), None).map_err(io::Error::from)?;
        let mut signals = signals?;
        let handle = signals.handle();
        let shared: Arc<Shared> = self.shared().clone();
        thread::Builder::new()
            .name("wsdrain-signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    on_signal(&shared, signal);
                }
            })?;
        Ok(SignalListener { handle })
    }
}
