//! SIGTERM and SIGINT through signal-hook, read on a dedicated thread; their
//! default action restored when no listener is left.

use std::{
    io,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
};

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use signal_hook::{
    consts::{SIGINT, SIGTERM},
    flag,
    iterator::{Handle, Signals},
    low_level,
};

use crate::drain::Shared;

/// The live listeners, and the switch of the default-action handlers that
/// stand in for "no handler" once the last listener is gone.
struct Defaults {
    live: usize,
    /// Registered with the first listener, for the life of the process
    /// (signal-hook cannot give a signal back to the OS): `true` makes SIGTERM
    /// and SIGINT take their default action, `false` leaves them to the
    /// listeners.
    restore: Option<Arc<AtomicBool>>,
}

static DEFAULTS: Mutex<Defaults> = Mutex::new(Defaults {
    live: 0,
    restore: None,
});

#[derive(Debug)]
pub(super) struct Listener {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

fn name(signal: i32) -> &'static str {
    match signal {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        _ => "signal",
    }
}

pub(super) fn listen(shared: Arc<Shared>) -> io::Result<Listener> {
    let mut defaults = DEFAULTS.lock().unwrap_or_else(PoisonError::into_inner);
    // signal-hook installs the OS handler before it publishes the action
    // that forwards the signal; a SIGTERM in that gap would be lost. Blocked
    // on this thread meanwhile, it stays pending instead, and is delivered
    // (to the new handler) when the mask is restored.
    let mut blocked = SigSet::empty();
    blocked.add(Signal::SIGTERM);
    blocked.add(Signal::SIGINT);
    let mut previous = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&blocked), Some(&mut previous))
        .map_err(io::Error::from)?;
    let registered = register(&mut defaults);
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous), None).map_err(io::Error::from)?;
    let (mut signals, restore) = registered?;
    let handle = signals.handle();
    let spawned = thread::Builder::new()
        .name("wsdrain-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                super::on_signal(&shared, name(signal));
            }
        });
    match spawned {
        Ok(thread) => {
            defaults.live += 1;
            Ok(Listener {
                handle,
                thread: Some(thread),
            })
        }
        Err(e) => {
            // The signals went down with the closure; back to what was before.
            restore.store(defaults.live == 0, Ordering::SeqCst);
            Err(e)
        }
    }
}

/// Registers the default-action stand-ins (once per process) and this
/// listener's signals, and hands the signals to the listener.
fn register(defaults: &mut Defaults) -> io::Result<(Signals, Arc<AtomicBool>)> {
    let restore = match &defaults.restore {
        Some(restore) => restore.clone(),
        None => {
            let restore = Arc::new(AtomicBool::new(false));
            let term = flag::register_conditional_default(SIGTERM, restore.clone())?;
            if let Err(e) = flag::register_conditional_default(SIGINT, restore.clone()) {
                low_level::unregister(term);
                return Err(e);
            }
            defaults.restore = Some(restore.clone());
            restore
        }
    };
    let signals = Signals::new([SIGTERM, SIGINT])?;
    restore.store(false, Ordering::SeqCst);
    Ok((signals, restore))
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut defaults = DEFAULTS.lock().unwrap_or_else(PoisonError::into_inner);
        defaults.live = defaults.live.saturating_sub(1);
        if defaults.live == 0
            && let Some(restore) = &defaults.restore
        {
            // From here on a signal ends the process, before it reaches
            // the closing listener.
            restore.store(true, Ordering::SeqCst);
        }
        drop(defaults);
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            // Returns at once: `forever` ends when the handle is closed; the
            // signals are unregistered as the thread drops them.
            let _ = thread.join();
        }
    }
}
