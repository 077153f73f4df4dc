//! Peers that misbehave on purpose, on real TCP (127.0.0.1): each accepts
//! connections, records when each one came, and does its one thing to it.
//! Stopped (the accept task aborted) on drop.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Message, protocol::CloseFrame},
};

/// What a [`Peer`] does with each connection.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Accepts the upgrade and closes at once with this code and reason.
    CloseAtOnce { code: u16, reason: String },
    /// Reads the upgrade request and closes the TCP connection unanswered.
    DropInHandshake,
    /// Answers the upgrade with `503 Service Unavailable` and this
    /// `Retry-After` (seconds).
    Refuse { retry_after: u64 },
    /// Accepts, sends the drain notice with this lead, waits the lead, then
    /// closes with this code and reason.
    NoticeThenClose {
        close_in_ms: u64,
        code: u16,
        reason: String,
    },
    /// Accepts and echoes text and binary messages.
    Echo,
}

/// A peer on 127.0.0.1 with one [`Behaviour`] for every connection.
pub struct Peer {
    pub addr: SocketAddr,
    attempts: Arc<Mutex<Vec<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Peer {
    pub async fn start(behaviour: Behaviour) -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let seen = attempts.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                seen.lock().unwrap().push(Instant::now());
                tokio::spawn(serve(stream, behaviour.clone()));
            }
        });
        Peer {
            addr,
            attempts,
            task,
        }
    }

    /// When each connection came, in order.
    pub fn attempts(&self) -> Vec<Instant> {
        self.attempts.lock().unwrap().clone()
    }

    /// How many connections came within `window` of the first, and the
    /// gaps between all of them.
    pub fn pacing(&self, window: Duration) -> (usize, Vec<Duration>) {
        let at = self.attempts();
        let within = at.iter().filter(|t| **t - at[0] < window).count();
        let gaps = at.windows(2).map(|w| w[1] - w[0]).collect();
        (within, gaps)
    }
}

/// The most attempts in a row less than 50 ms apart.
pub fn longest_burst(gaps: &[Duration]) -> usize {
    let mut longest = 1;
    let mut run = 1;
    for gap in gaps {
        run = if *gap < Duration::from_millis(50) {
            run + 1
        } else {
            1
        };
        longest = longest.max(run);
    }
    longest
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Bound on anything one connection of a peer waits for.
const LIMIT: Duration = Duration::from_secs(10);

async fn serve(mut stream: TcpStream, behaviour: Behaviour) {
    let _ = tokio::time::timeout(LIMIT, async {
        match behaviour {
            Behaviour::DropInHandshake => {
                read_head(&mut stream).await;
            }
            Behaviour::Refuse { retry_after } => {
                read_head(&mut stream).await;
                let answer = format!(
                    "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {retry_after}\r\n\
                     Connection: close\r\nContent-Length: 0\r\n\r\n"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            }
            Behaviour::CloseAtOnce { code, reason } => {
                let Some(ws) = accept(stream).await else {
                    return;
                };
                close_and_drain(ws, code, reason).await;
            }
            Behaviour::NoticeThenClose {
                close_in_ms,
                code,
                reason,
            } => {
                let Some(mut ws) = accept(stream).await else {
                    return;
                };
                let notice = wsdrain::protocol::encode_notice(close_in_ms);
                if ws.send(Message::text(notice)).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(close_in_ms)).await;
                close_and_drain(ws, code, reason).await;
            }
            Behaviour::Echo => {
                let Some(ws) = accept(stream).await else {
                    return;
                };
                echo(ws).await;
            }
        }
    })
    .await;
}

/// The server side of a WebSocket handshake (tokio-tungstenite).
pub async fn accept(stream: TcpStream) -> Option<WebSocketStream<TcpStream>> {
    tokio_tungstenite::accept_async(stream).await.ok()
}

/// Echoes text and binary messages until the connection ends.
pub async fn echo(mut ws: WebSocketStream<TcpStream>) {
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            break;
        }
    }
}

/// Sends a Close and reads until the client's answer and the end.
async fn close_and_drain(mut ws: WebSocketStream<TcpStream>, code: u16, reason: String) {
    let frame = CloseFrame {
        code: code.into(),
        reason: reason.into(),
    };
    if ws.send(Message::Close(Some(frame))).await.is_ok() {
        while let Some(Ok(_)) = ws.next().await {}
    }
}

/// Reads an HTTP request head (bounded).
async fn read_head(stream: &mut TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
}

/// An unmasked Close frame, as a server writes it.
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut frame = vec![0x88, (2 + reason.len()) as u8];
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(reason.as_bytes());
    frame
}
