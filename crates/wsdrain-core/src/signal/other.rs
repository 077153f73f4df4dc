//! Without Unix signals: Ctrl-C through `tokio::signal::ctrl_c`, on a
//! dedicated thread with its own small runtime. The first Ctrl-C begins the
//! drain, the second forces the end.

use std::{
    io,
    sync::Arc,
    thread::{self, JoinHandle},
};

use tokio_util::sync::CancellationToken;

use crate::drain::Shared;

#[derive(Debug)]
pub(super) struct Listener {
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

pub(super) fn listen(shared: Arc<Shared>) -> io::Result<Listener> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let thread = thread::Builder::new()
        .name("wsdrain-signals".into())
        .spawn(move || {
            runtime.block_on(async {
                loop {
                    tokio::select! {
                        () = stopped.cancelled() => break,
                        pressed = tokio::signal::ctrl_c() => {
                            if pressed.is_err() {
                                break;
                            }
                            super::on_signal(&shared, "Ctrl-C");
                        }
                    }
                }
            });
        })?;
    Ok(Listener {
        stop,
        thread: Some(thread),
    })
}

impl Drop for Listener {
    fn drop(&mut self) {
        // With no receiver left, tokio's console handler declines the event
        // and Ctrl-C takes its default action again.
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
