//! [`Tail`]: this process's one reader of the streams its sessions follow,
//! feeding the local hub, so that a message appended anywhere (another
//! replica, a publisher process, this process) reaches the sessions here in
//! the log's one order.
//!
//! One blocking `XREAD` for all followed streams, on a connection of its
//! own (a blocked connection can carry nothing else). When the set changes
//! the `XREAD` is interrupted with `CLIENT UNBLOCK` from the command
//! connection and issued again; changes that come meanwhile join the next
//! one, so a burst of new followers costs one round trip, not one each.
//!
//! # Where a newly followed stream starts
//!
//! A session subscribes to the hub **before** it reads the log, and reports
//! (through [`Tail::report`]) the log's end as its read saw it. Every entry
//! after that end must reach the hub after the subscription. So the tail
//! reads a stream from a cursor at or below every such report, except where
//! it has already delivered the entries in between (`delivered`): those
//! were appended after the session's read, so delivered after its
//! subscription. Until a report comes, a query of the stream's end places
//! the cursor; a later, lower report moves it back (the hub drops what it
//! has seen). Once the tail delivers, `cursor == delivered` and reports cost
//! nothing.
//!
//! After its connection comes back, the tail checks each stream's epoch: one
//! that changed while it was away is read from the new epoch's start.

use std::{collections::HashMap, convert::Infallible, sync::Arc, time::Duration};

use parking_lot::Mutex;
use redis::{Client, Value, aio::MultiplexedConnection};
use tokio::sync::Notify;
use wsdrain_core::resume::{Entry, Epoch, Tap};

use crate::{
    Failure,
    config::Config,
    link::{self, AbortOnDrop, Link, jitter},
    metrics,
    script::{self, Id},
};

/// The tail's handle: what the log's `watch`, `unwatch` and reads tell it.
pub(crate) struct Tail {
    shared: Arc<Shared>,
    _task: AbortOnDrop,
}

struct Shared {
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Default)]
struct State {
    streams: HashMap<Arc<str>, Follow>,
    /// The streams or a cursor changed since the `XREAD` in flight was
    /// issued: interrupt it.
    changed: bool,
}

struct Follow {
    tap: Tap,
    /// Where the next `XREAD` starts; `None` until placed.
    cursor: Option<Id>,
    /// The last entry handed to the hub.
    delivered: Id,
}

impl Tail {
    pub(crate) fn start(client: Client, config: Arc<Config>, link: Arc<Link>) -> Tail {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
        });
        let task = tokio::spawn(run(client, config, link, shared.clone()));
        Tail {
            shared,
            _task: AbortOnDrop(task),
        }
    }

    /// Sessions here follow `stream` from now on.
    pub(crate) fn watch(&self, stream: &str, tap: &Tap) {
        let mut state = self.shared.state.lock();
        state.streams.insert(
            stream.into(),
            Follow {
                tap: tap.clone(),
                cursor: None,
                delivered: Id::ZERO,
            },
        );
        state.changed = true;
        drop(state);
        self.shared.wake.notify_one();
    }

    /// No session here follows `stream` any more. The `XREAD` in flight may
    /// still return some of it; nobody receives that.
    pub(crate) fn unwatch(&self, stream: &str) {
        self.shared.state.lock().streams.remove(stream);
    }

    /// A session of `stream` read the log up to its end, `end`.
    pub(crate) fn report(&self, stream: &str, end: Id) {
        let mut state = self.shared.state.lock();
        let Some(follow) = state.streams.get_mut(stream) else {
            return;
        };
        let Some(cursor) = rewound(follow.cursor, end, follow.delivered) else {
            return;
        };
        follow.cursor = Some(cursor);
        state.changed = true;
        drop(state);
        self.shared.wake.notify_one();
    }
}

/// Where the cursor must go for a session whose read saw the log end at
/// `end`, given what was `delivered`; `None` to stay. Entries after
/// `delivered` were delivered after that read, so the session has them.
fn rewound(cursor: Option<Id>, end: Id, delivered: Id) -> Option<Id> {
    let safe = end.max(delivered);
    match cursor {
        Some(cursor) if cursor <= safe => None,
        _ => Some(safe),
    }
}

/// Connects while streams are followed, and reads them.
async fn run(client: Client, config: Arc<Config>, link: Arc<Link>, shared: Arc<Shared>) {
    let mut backoff = config.reconnect_min;
    loop {
        while shared.state.lock().streams.is_empty() {
            shared.wake.notified().await;
        }
        let e = match connect(&client, &config).await {
            Ok((mut conn, id)) => {
                metrics::connected("tail", true);
                backoff = config.reconnect_min;
                let Err(e) = follow(&mut conn, id, &config, &link, &shared).await;
                metrics::connected("tail", false);
                e
            }
            Err(e) => e,
        };
        metrics::error("tail");
        tracing::warn!(target: "wsdrain::redis", error = %e, "redis log tail failed; reconnecting");
        // Back as soon as Redis is: appends go to the log again from then
        // on, and only the tail delivers them here.
        let link_now = link.generation();
        tokio::select! {
            () = tokio::time::sleep(jitter(backoff)) => {}
            () = link.up_after(link_now) => {}
        }
        backoff = (backoff * 2).min(config.reconnect_max);
    }
}

async fn connect(
    client: &Client,
    config: &Config,
) -> Result<(MultiplexedConnection, i64), Failure> {
    // A lost connection fails the `XREAD` always in flight on it.
    let mut conn = link::open(client, config, "wsdrain-tail", || {}).await?;
    let id = redis::cmd("CLIENT").arg("ID").clone();
    match link::call(&mut conn, &id, config.command_timeout).await? {
        Value::Int(id) => Ok((conn, id)),
        _ => Err(Failure::Reply(script::BadReply("CLIENT ID"))),
    }
}

/// Reads the followed streams until the connection fails.
async fn follow(
    conn: &mut MultiplexedConnection,
    client_id: i64,
    config: &Config,
    link: &Link,
    shared: &Shared,
) -> Result<Infallible, Failure> {
    // After a (re)connection, every stream's epoch is checked once.
    let mut check_all = true;
    loop {
        place(conn, config, shared, check_all).await?;
        check_all = false;
        let (cmd, issued) = {
            let mut state = shared.state.lock();
            state.changed = false;
            xread(config, &state)
        };
        if issued.is_empty() {
            shared.wake.notified().await;
            continue;
        }
        let limit = config.tail_block + config.command_timeout;
        let reply = tokio::select! {
            reply = link::call(conn, &cmd, limit) => reply?,
            never = interrupt(link, client_id, shared) => match never {},
        };
        deliver(reply, &issued, config, shared)?;
    }
}

/// Places the cursors of streams that have none (at the log's end), and,
/// with `all`, moves every cursor whose epoch changed to the new epoch's
/// start: one pipeline of `HMGET`s.
async fn place(
    conn: &mut MultiplexedConnection,
    config: &Config,
    shared: &Shared,
    all: bool,
) -> Result<(), Failure> {
    let todo: Vec<Arc<str>> = {
        let state = shared.state.lock();
        state
            .streams
            .iter()
            .filter(|(_, f)| all || f.cursor.is_none())
            .map(|(s, _)| s.clone())
            .collect()
    };
    if todo.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for stream in &todo {
        let [meta, _] = config.keys(stream);
        pipe.cmd("HMGET").arg(meta).arg("ms").arg("last");
    }
    let replies = tokio::time::timeout(
        config.command_timeout,
        pipe.query_async::<Vec<Vec<Option<u64>>>>(conn),
    )
    .await
    .map_err(|_| Failure::Timeout)??;
    let mut state = shared.state.lock();
    for (stream, reply) in todo.iter().zip(replies) {
        let Some(follow) = state.streams.get_mut(stream) else {
            continue;
        };
        let end = match reply.as_slice() {
            [Some(ms), Some(last)] => Some(Id {
                ms: *ms,
                seq: *last,
            }),
            _ => None,
        };
        follow.cursor = match (follow.cursor, end) {
            // No history yet: whatever comes is new.
            (None, None) => Some(Id::ZERO),
            (None, Some(end)) => Some(end),
            (Some(cursor), Some(end)) if cursor.ms != end.ms => Some(Id { ms: end.ms, seq: 0 }),
            (cursor, _) => cursor,
        };
    }
    Ok(())
}

/// The `XREAD` of every placed stream, and what it was issued with.
fn xread(config: &Config, state: &State) -> (redis::Cmd, Vec<(Arc<str>, Id)>) {
    let issued: Vec<(Arc<str>, Id)> = state
        .streams
        .iter()
        .filter_map(|(s, f)| Some((s.clone(), f.cursor?)))
        .collect();
    let mut cmd = redis::cmd("XREAD");
    let block = u64::try_from(config.tail_block.as_millis()).unwrap_or(u64::MAX);
    cmd.arg("COUNT")
        .arg(config.tail_count)
        .arg("BLOCK")
        .arg(block);
    cmd.arg("STREAMS");
    for (stream, _) in &issued {
        let [_, log] = config.keys(stream);
        cmd.arg(log);
    }
    for (_, id) in &issued {
        cmd.arg(id.to_string());
    }
    (cmd, issued)
}

/// Ends the blocked `XREAD` once the followed set changed: `CLIENT UNBLOCK`,
/// again a few times if it came before the `XREAD` blocked. Never returns;
/// the `XREAD`'s reply ends the wait.
async fn interrupt(link: &Link, client_id: i64, shared: &Shared) -> Infallible {
    loop {
        shared.wake.notified().await;
        if shared.state.lock().changed {
            break;
        }
    }
    let unblock = redis::cmd("CLIENT").arg("UNBLOCK").arg(client_id).clone();
    for pause in [0, 1, 2, 4, 8, 16, 32, 64, 128] {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if matches!(link.command(&unblock).await, Ok(Value::Int(1))) {
            break;
        }
    }
    std::future::pending().await
}

/// Hands an `XREAD` reply's entries to the hub, in order, and moves the
/// cursors.
fn deliver(
    reply: Value,
    issued: &[(Arc<str>, Id)],
    config: &Config,
    shared: &Shared,
) -> Result<(), Failure> {
    let streams = match reply {
        Value::Nil => return Ok(()),
        Value::Array(streams) => streams,
        Value::Map(streams) => streams
            .into_iter()
            .map(|(k, v)| Value::Array(vec![k, v]))
            .collect(),
        _ => return Err(Failure::Reply(script::BadReply("XREAD"))),
    };
    let mut out = Vec::new();
    for item in streams {
        let Value::Array(pair) = item else {
            return Err(Failure::Reply(script::BadReply("XREAD")));
        };
        let mut pair = pair.into_iter();
        let (Some(Value::BulkString(key)), Some(Value::Array(items))) = (pair.next(), pair.next())
        else {
            return Err(Failure::Reply(script::BadReply("XREAD")));
        };
        let Some(stream) = config.stream_of(&key) else {
            continue;
        };
        let Some((stream, sent)) = issued.iter().find(|(s, _)| &**s == stream) else {
            continue;
        };
        let (last, entries) = entries(stream, items);
        let Some(last) = last else { continue };
        let mut state = shared.state.lock();
        let Some(follow) = state.streams.get_mut(stream) else {
            continue;
        };
        follow.delivered = follow.delivered.max(last);
        // Moved back meanwhile (a report, an epoch check): read from there.
        if follow.cursor == Some(*sent) {
            follow.cursor = Some(last);
        }
        out.push((follow.tap.clone(), stream.clone(), entries));
    }
    for (tap, stream, entries) in out {
        for entry in entries {
            tap.deliver(&stream, entry);
        }
    }
    Ok(())
}

/// The entries of one stream of an `XREAD` reply, and the last id read. An
/// entry that is not one of ours is skipped (its seq then shows as a gap,
/// which sessions fill from the log or resync over).
fn entries(stream: &str, items: Vec<Value>) -> (Option<Id>, Vec<Entry>) {
    let mut last = None;
    let mut entries = Vec::with_capacity(items.len());
    let mut epoch: Option<Epoch> = None;
    for item in items {
        let (id, f) = match script::split_entry(item) {
            Ok(parts) => parts,
            Err(e) => {
                tracing::warn!(target: "wsdrain::redis", stream, error = %e, "unreadable entry skipped");
                continue;
            }
        };
        last = Some(id);
        let payload = match script::fields(f) {
            Ok((Some(e), payload)) => {
                if epoch.as_ref().is_none_or(|x| x.as_str().as_bytes() != e) {
                    epoch = std::str::from_utf8(&e)
                        .ok()
                        .and_then(|e| Epoch::new(e).ok());
                }
                payload
            }
            Ok((None, _)) => {
                tracing::warn!(target: "wsdrain::redis", stream, %id, "entry without an epoch skipped");
                continue;
            }
            Err(e) => {
                tracing::warn!(target: "wsdrain::redis", stream, %id, error = %e, "unreadable entry skipped");
                continue;
            }
        };
        match &epoch {
            Some(epoch) => entries.push(Entry::new(stream, epoch.clone(), id.seq, &payload)),
            None => {
                tracing::warn!(target: "wsdrain::redis", stream, %id, "entry with a bad epoch skipped")
            }
        }
    }
    (last, entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn id(seq: u64) -> Id {
        Id { ms: 7, seq }
    }

    #[test]
    fn reports_move_the_cursor_back_only_over_what_was_not_delivered() {
        // Not placed yet: the report places it.
        assert_eq!(rewound(None, id(5), Id::ZERO), Some(id(5)));
        // Placed by a query after the session's read: back to the read.
        assert_eq!(rewound(Some(id(9)), id(5), Id::ZERO), Some(id(5)));
        // Partly delivered since: back to what was delivered only.
        assert_eq!(rewound(Some(id(9)), id(5), id(7)), Some(id(7)));
        // Delivering: reports cost nothing.
        assert_eq!(rewound(Some(id(9)), id(5), id(9)), None);
        assert_eq!(rewound(Some(id(9)), id(12), id(9)), None);
        // A newer epoch's read: its ids are above, nothing to move.
        assert_eq!(rewound(Some(id(9)), Id { ms: 8, seq: 1 }, Id::ZERO), None);
    }
}
