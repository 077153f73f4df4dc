//! Dropping the `SignalListener` gives SIGTERM and SIGINT back their default
//! action: real signals to a real process (examples/signals.rs).
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    io::{BufRead, BufReader},
    os::unix::process::ExitStatusExt,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::Duration,
};

use nix::{sys::signal::Signal, unistd::Pid};

/// Kills the process if the test fails before it exits.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `signals <mode>`, waits for its `ready` line, sends `signal`, and
/// returns how it ended (`None`: still running 10 s later).
fn signalled(mode: &str, signal: Signal) -> Option<ExitStatus> {
    let child = Command::new(common::example("signals"))
        .arg(mode)
        .stdin(Stdio::piped()) // held open: the process waits for it to close
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = Reaper(child);
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "{mode}");
    // Kept open until the end: `Child::wait` would close it, and the process
    // would end on its own.
    let stdin = child.0.stdin.take();
    let pid = Pid::from_raw(child.0.id() as i32);
    nix::sys::signal::kill(pid, signal).unwrap();
    // Wait on another thread, so the wait can be bounded without polling.
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(child.0.wait().unwrap());
        drop(child);
    });
    let status = rx.recv_timeout(Duration::from_secs(10)).ok();
    if status.is_none() {
        // Still running: the signal was swallowed. End it so the waiter returns.
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
    }
    waiter.join().unwrap();
    drop(stdin);
    status
}

#[test]
fn a_signal_after_the_listener_is_dropped_ends_the_process_as_without_wsdrain() {
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        let without = signalled("none", signal);
        assert_eq!(
            without.and_then(|s| s.signal()),
            Some(signal as i32),
            "a process without wsdrain: {without:?}"
        );
        let after_drop = signalled("drop", signal);
        assert_eq!(
            after_drop.and_then(|s| s.signal()),
            Some(signal as i32),
            "{signal} after the listener was dropped: {after_drop:?} (None: still running)"
        );
        assert_eq!(after_drop, without, "{signal}");
    }
}
