//! The SSE clients: `EventSource`-like readers of the sse example's feed,
//! written to the WHATWG reconnection rules, on raw HTTP/1.1 so that a cut
//! stream (no terminating chunk) is told apart from a clean end.
//!
//! * A request carries `Accept: text/event-stream` and, after the first
//!   event, `Last-Event-ID`.
//! * A `200` with `text/event-stream` opens the stream; any other answer
//!   *fails the connection*: a browser's `EventSource` gives up for good, and
//!   so does this client (counted in `gave_up`).
//! * The stream ending (cleanly or not), or a network error before the
//!   answer, *reestablishes the connection* after the reconnection time: 3 s
//!   (Chromium's default) until a `retry:` field sets it.
//!
//! An end is *clean* when the chunked body ends with its terminating chunk
//! and a `retry:` came in its last block; *other* when it ends cleanly
//! without one; *abnormal* when it is cut. Events are numbered by the server;
//! a gap in the ids is events *lost*, a repeat a duplicate.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::watch,
};

use crate::clients::{ClientLog, Connected};

/// Chromium's reconnection time before any `retry:` field.
const DEFAULT_RETRY: Duration = Duration::from_secs(3);

/// The SSE line parser's state (WHATWG "interpret an event stream").
#[derive(Debug, Default)]
struct Parser {
    line: Vec<u8>,
    last_cr: bool,
    data: bool,
    /// The `event:` field of the block being read (`message` when empty).
    event: String,
    id_buf: Option<String>,
    /// Event ids dispatched from the last block parsed.
    dispatched: Vec<u64>,
    retry: Option<u64>,
    /// A `retry:` came since the last event was dispatched.
    retry_in_last_block: bool,
}

impl Parser {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.last_cr && b == b'\n' {
                self.last_cr = false;
                continue;
            }
            self.last_cr = b == b'\r';
            if b == b'\r' || b == b'\n' {
                let line = std::mem::take(&mut self.line);
                self.line_done(&line);
            } else {
                self.line.push(b);
            }
        }
    }

    fn line_done(&mut self, line: &[u8]) {
        if line.is_empty() {
            // Only `message` events count: what `onmessage` sees (the
            // farewell `event: drain` carries the previous id).
            let message = self.event.is_empty() || self.event == "message";
            if self.data && message {
                if let Some(id) = self.id_buf.as_deref().and_then(|i| i.parse().ok()) {
                    self.dispatched.push(id);
                }
                self.retry_in_last_block = false;
            }
            self.data = false;
            self.event.clear();
            return;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.find(':') {
            Some(0) => return, // a comment
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (&line[..], ""),
        };
        match field {
            "data" => self.data = true,
            "event" => self.event = value.to_string(),
            "id" if !value.contains('\0') => self.id_buf = Some(value.to_string()),
            "retry" => {
                if let Ok(ms) = value.parse() {
                    self.retry = Some(ms);
                    self.retry_in_last_block = true;
                }
            }
            _ => {}
        }
    }
}

/// How one connection ended.
enum End {
    /// Terminating chunk (or, without chunking, the end of the body).
    Clean,
    /// Cut: EOF or an error before the end of the body.
    Cut,
    /// The answer was not `200 text/event-stream`: the `EventSource` fails.
    Failed,
    /// No answer (connect error, no response head).
    NetworkError,
    /// The run is over.
    Stopped,
}

/// Runs one client until `stop` turns true; returns what it saw.
pub(crate) async fn run_client(
    addr: std::net::SocketAddr,
    t0: Instant,
    connected: Arc<Connected>,
    mut stop: watch::Receiver<bool>,
) -> ClientLog {
    let secs = || t0.elapsed().as_secs_f64();
    let mut log = ClientLog::default();
    let mut parser = Parser::default();
    let mut last_id: Option<u64> = None;
    let mut last_close: Option<f64> = None;
    loop {
        let end = tokio::select! {
            end = one_connection(addr, &mut parser, &mut last_id, &mut log, &connected, &mut last_close, secs) => end,
            _ = stop.changed() => End::Stopped,
        };
        match end {
            End::Stopped => break,
            End::Failed => {
                log.gave_up = true;
                log.failed_connects += 1;
                break;
            }
            End::NetworkError => log.failed_connects += 1,
            End::Clean | End::Cut => {
                let now = secs();
                log.closes.push(now);
                last_close = Some(now);
                if matches!(end, End::Cut) {
                    log.abnormal_closes += 1;
                } else if parser.retry_in_last_block {
                    log.clean_closes += 1;
                } else {
                    log.other_closes += 1;
                }
            }
        }
        let wait = parser.retry.map_or(DEFAULT_RETRY, Duration::from_millis);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break,
        }
    }
    log
}

async fn one_connection(
    addr: std::net::SocketAddr,
    parser: &mut Parser,
    last_id: &mut Option<u64>,
    log: &mut ClientLog,
    connected: &Connected,
    last_close: &mut Option<f64>,
    secs: impl Fn() -> f64,
) -> End {
    let Ok(Ok(mut tcp)) =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await
    else {
        return End::NetworkError;
    };
    let mut req = String::from(
        "GET /events HTTP/1.1\r\nHost: rollout\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n",
    );
    if let Some(id) = last_id {
        req.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    req.push_str("\r\n");
    if tcp.write_all(req.as_bytes()).await.is_err() {
        return End::NetworkError;
    }
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    // The response head.
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return End::NetworkError,
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let ok = head.starts_with("http/1.1 200") && head.contains("content-type: text/event-stream");
    if !ok {
        return End::Failed;
    }
    let chunked = head.contains("transfer-encoding: chunked");
    connected.add(1);
    if let Some(closed_at) = last_close.take() {
        log.reconnects.push((closed_at, secs()));
    }
    parser.retry_in_last_block = false;
    buf.drain(..head_end);
    let mut decoder = Dechunk::default();
    let end = loop {
        let data = if chunked {
            decoder.feed(&buf)
        } else {
            buf.clone()
        };
        buf.clear();
        parser.feed(&data);
        for id in parser.dispatched.drain(..) {
            log.events += 1;
            match *last_id {
                Some(l) if id > l + 1 => log.lost += id - l - 1,
                Some(l) if id <= l => log.duplicates += 1,
                _ => {}
            }
            *last_id = Some(id.max(last_id.unwrap_or(0)));
        }
        if decoder.done {
            break End::Clean;
        }
        match tcp.read(&mut chunk).await {
            Ok(0) => break if chunked { End::Cut } else { End::Clean },
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => break End::Cut,
        }
    };
    connected.add(-1);
    end
}

/// An incremental chunked-body decoder.
#[derive(Debug, Default)]
struct Dechunk {
    pending: Vec<u8>,
    /// Bytes of data left in the current chunk (then its CRLF).
    left: usize,
    in_chunk: bool,
    done: bool,
}

impl Dechunk {
    fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            if self.in_chunk {
                let take = self.left.min(self.pending.len());
                out.extend(self.pending.drain(..take));
                self.left -= take;
                if self.left > 0 || self.pending.len() < 2 {
                    return out;
                }
                self.pending.drain(..2);
                self.in_chunk = false;
            }
            let Some(eol) = self.pending.windows(2).position(|w| w == b"\r\n") else {
                return out;
            };
            let size = std::str::from_utf8(&self.pending[..eol])
                .ok()
                .and_then(|s| {
                    usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok()
                });
            let Some(size) = size else {
                return out;
            };
            if size == 0 {
                // The last chunk; its trailer section ends with an empty line.
                if self.pending[eol + 2..].starts_with(b"\r\n") {
                    self.done = true;
                }
                return out;
            }
            self.pending.drain(..eol + 2);
            self.left = size;
            self.in_chunk = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_follows_the_whatwg_rules() {
        let mut p = Parser::default();
        p.feed(b"id: 1\ndata: a\n\nid: 2\r\ndata: b\r\n\r\n: comment\n\n");
        p.feed(b"event: drain\ndata: 1500\n\nretry: 1500\n\n");
        assert_eq!(p.dispatched, [1, 2], "the drain event is not a message");
        assert_eq!(p.retry, Some(1500));
        assert!(p.retry_in_last_block);
        p.feed(b"id: 3\ndata: c\n\n");
        assert!(!p.retry_in_last_block);
    }

    #[test]
    fn dechunk_in_pieces() {
        let mut d = Dechunk::default();
        let mut out = d.feed(b"5\r\nhel");
        out.extend(d.feed(b"lo\r\n4\r\n abc\r\n"));
        assert_eq!(out, b"hello abc");
        out.extend(d.feed(b"0\r\n"));
        assert!(!d.done);
        d.feed(b"\r\n");
        assert!(d.done);
    }
}
