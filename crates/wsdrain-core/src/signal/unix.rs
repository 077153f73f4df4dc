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
    // The default action only while no listener is alive (this one counts
    // once registered), set before the mask lets a pending signal in.
    defaults.set_restore(registered.is_err() && defaults.live == 0);
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous), None).map_err(io::Error::from)?;
    let mut signals = registered?;
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
            let none_left = defaults.live == 0;
            defaults.set_restore(none_left);
            Err(e)
        }
    }
}

impl Defaults {
    fn set_restore(&self, default_action: bool) {
        if let Some(restore) = &self.restore {
            restore.store(default_action, Ordering::SeqCst);
        }
    }
}

/// Registers the default-action stand-ins (once per process, switched off
/// until the first listener is gone) and this listener's signals.
fn register(defaults: &mut Defaults) -> io::Result<Signals> {
    if defaults.restore.is_none() {
        let restore = Arc::new(AtomicBool::new(false));
        // Kept even if what follows fails: signal-hook keeps its OS handler
        // once installed, and without a stand-in the signal would do nothing.
        flag::register_conditional_default(SIGTERM, restore.clone())?;
        defaults.restore = Some(restore.clone());
        flag::register_conditional_default(SIGINT, restore)?;
    }
    Signals::new([SIGTERM, SIGINT])
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut defaults = DEFAULTS.lock().unwrap_or_else(PoisonError::into_inner);
        defaults.live = defaults.live.saturating_sub(1);
        if defaults.live == 0 {
            // From here on a signal ends the process, before it reaches the
            // closing listener.
            defaults.set_restore(true);
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
