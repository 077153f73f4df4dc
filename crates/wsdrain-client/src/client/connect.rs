//! One connection attempt, stage by stage (DNS, TCP, TLS, upgrade), so that a
//! failure says which stage failed; and the health probe, a tiny HTTP/1.1 GET
//! over the same TCP/TLS stack.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::{
    self,
    error::{ProtocolError, SubProtocolError},
    handshake::client::Request,
    http::{
        Uri,
        header::{RETRY_AFTER, SEC_WEBSOCKET_PROTOCOL},
    },
    protocol::WebSocketConfig,
};
use wsdrain_protocol::parse_retry_after_header;
use wsdrain_protocol::resume::SUBPROTOCOL;

use super::conn::Progress;
use super::events::{ConnectFailed, FailedAt};
use super::{Ws, resume};
use crate::retry::Outcome;

/// Everything an attempt needs, shared by the runner and handover attempts.
pub(super) struct Target {
    pub(super) request: Request,
    pub(super) ws_config: WebSocketConfig,
    pub(super) connect_timeout: Duration,
    pub(super) health: Option<Uri>,
    #[cfg(feature = "rustls")]
    pub(super) tls: std::sync::OnceLock<Arc<rustls::ClientConfig>>,
}

impl Target {
    /// The request's URI, for logs.
    pub(super) fn uri(&self) -> &Uri {
        self.request.uri()
    }
}

fn failed(stage: FailedAt, error: impl std::fmt::Display) -> ConnectFailed {
    ConnectFailed {
        stage,
        status: None,
        retry_after: None,
        error: error.to_string(),
    }
}

/// Where to connect: host (without IPv6 brackets), port, and whether TLS.
fn endpoint(uri: &Uri) -> Result<(String, u16, bool), ConnectFailed> {
    let tls = match uri.scheme_str() {
        Some("ws" | "http") => false,
        Some("wss" | "https") => true,
        other => {
            return Err(failed(
                FailedAt::Request,
                format!("unsupported scheme {other:?} in {uri}"),
            ));
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| failed(FailedAt::Request, format!("no host in {uri}")))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Ok((host, port, tls))
}

/// DNS, TCP and (for `wss`/`https`) TLS: a stream ready for HTTP.
async fn open_stream(
    target: &Target,
    uri: &Uri,
) -> Result<MaybeTlsStream<TcpStream>, ConnectFailed> {
    let (host, port, tls) = endpoint(uri)?;
    let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| failed(FailedAt::Dns, format!("resolving {host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(failed(FailedAt::Dns, format!("{host} has no address")));
    }
    let mut last = None;
    let mut tcp = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = Some(format!("connecting to {addr}: {e}")),
        }
    }
    let Some(tcp) = tcp else {
        return Err(failed(FailedAt::Tcp, last.unwrap_or_default()));
    };
    let _ = tcp.set_nodelay(true);
    if !tls {
        return Ok(MaybeTlsStream::Plain(tcp));
    }
    tls_stream(target, host, tcp).await
}

#[cfg(feature = "rustls")]
async fn tls_stream(
    target: &Target,
    host: String,
    tcp: TcpStream,
) -> Result<MaybeTlsStream<TcpStream>, ConnectFailed> {
    use rustls_pki_types::ServerName;
    let config = match target.tls.get() {
        Some(config) => config.clone(),
        None => {
            // Built once, at the first TLS connection: native roots are slow to load.
            let config = crate::tls::default_config()
                .map_err(|e| failed(FailedAt::Tls, format!("TLS configuration: {e}")))?;
            target.tls.get_or_init(|| config).clone()
        }
    };
    let name = ServerName::try_from(host.clone())
        .map_err(|e| failed(FailedAt::Tls, format!("server name {host:?}: {e}")))?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| failed(FailedAt::Tls, format!("TLS with {host}: {e}")))?;
    Ok(MaybeTlsStream::Rustls(stream))
}

#[cfg(not(feature = "rustls"))]
async fn tls_stream(
    _target: &Target,
    _host: String,
    _tcp: TcpStream,
) -> Result<MaybeTlsStream<TcpStream>, ConnectFailed> {
    Err(failed(
        FailedAt::Request,
        "wss:// needs a TLS feature of wsdrain-client (rustls, rustls-webpki-roots, rustls-native-roots)",
    ))
}

/// An open WebSocket, and whether it speaks `wsdrain.resume.v1`.
pub(super) struct Opened {
    pub(super) ws: Ws,
    /// The server selected the resume subprotocol: every data frame it sends
    /// has a header.
    pub(super) framed: bool,
}

/// One attempt, bounded by the connect timeout: the open WebSocket, or what
/// failed and where. With `point` (resume on), the attempt offers
/// `wsdrain.resume.v1` and carries the point in its query.
pub(super) async fn connect(
    target: Arc<Target>,
    point: Option<String>,
) -> Result<Opened, ConnectFailed> {
    let limit = target.connect_timeout;
    match tokio::time::timeout(limit, connect_inner(&target, point)).await {
        Ok(result) => result,
        Err(_) => Err(failed(
            FailedAt::Timeout,
            format!("timed out after {limit:?}"),
        )),
    }
}

async fn connect_inner(target: &Target, point: Option<String>) -> Result<Opened, ConnectFailed> {
    let plain = async || {
        let (ws, _) = upgrade(target, target.request.clone())
            .await?
            .map_err(handshake_failed)?;
        Ok(Opened { ws, framed: false })
    };
    let Some(point) = point else {
        return plain().await;
    };
    let offer = resume::offer(&target.request, &point).map_err(|e| failed(FailedAt::Request, e))?;
    match upgrade(target, offer).await? {
        Ok((ws, selected)) => Ok(Opened {
            ws,
            framed: selected.as_deref() == Some(SUBPROTOCOL),
        }),
        // tungstenite fails a handshake in which the server selected none of
        // the offered subprotocols, where a browser goes on without one: do
        // as the browser does, with the request as the application made it.
        Err(tungstenite::Error::Protocol(ProtocolError::SecWebSocketSubProtocolError(
            SubProtocolError::NoSubProtocol,
        ))) if !target
            .request
            .headers()
            .contains_key(SEC_WEBSOCKET_PROTOCOL) =>
        {
            tracing::debug!(url = %target.uri(), "no subprotocol selected: connecting without resume");
            plain().await
        }
        Err(e) => Err(handshake_failed(e)),
    }
}

/// DNS, TCP, TLS (a failure there is the outer error), then the WebSocket
/// handshake with `request`: the socket and the subprotocol the server
/// selected, or tungstenite's error.
async fn upgrade(
    target: &Target,
    request: Request,
) -> Result<Result<(Ws, Option<String>), tungstenite::Error>, ConnectFailed> {
    let stream = open_stream(target, request.uri()).await?;
    let handshake = tokio_tungstenite::client_async_with_config(
        request,
        Progress::new(stream),
        Some(target.ws_config),
    )
    .await;
    Ok(handshake.map(|(ws, response)| {
        let selected = response
            .headers()
            .get(SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned());
        (ws, selected)
    }))
}

/// A failed WebSocket handshake, with the stage it failed at.
fn handshake_failed(e: tungstenite::Error) -> ConnectFailed {
    match e {
        tungstenite::Error::Http(response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after_header);
            ConnectFailed {
                stage: FailedAt::Upgrade,
                status: Some(status),
                retry_after,
                error: format!("upgrade refused with HTTP {status}"),
            }
        }
        e @ (tungstenite::Error::Url(_) | tungstenite::Error::HttpFormat(_)) => {
            failed(FailedAt::Request, e)
        }
        e => failed(FailedAt::Handshake, e),
    }
}

/// The retry outcome of a failed attempt.
pub(super) fn outcome(failed: &ConnectFailed) -> Outcome {
    match failed.stage {
        FailedAt::Request => Outcome::Unusable,
        FailedAt::Upgrade => Outcome::Refused {
            status: failed.status.unwrap_or(0),
            retry_after: failed.retry_after,
        },
        _ => Outcome::Unreachable,
    }
}

/// The default health URL: the same origin's `/readyz`, over `http`/`https`.
pub(super) fn default_health(uri: &Uri) -> Option<Uri> {
    let scheme = match uri.scheme_str()? {
        "ws" | "http" => "http",
        "wss" | "https" => "https",
        _ => return None,
    };
    format!("{scheme}://{}/readyz", uri.authority()?)
        .parse()
        .ok()
}

/// The answer of one health probe: the status and its `Retry-After`.
pub(super) struct ProbeAnswer {
    pub(super) status: u16,
    pub(super) retry_after: Option<Duration>,
}

/// Largest response head a probe reads.
const PROBE_HEAD_LIMIT: usize = 16 * 1024;

/// `GET` the health URL once, bounded by the connect timeout.
pub(super) async fn probe(target: Arc<Target>, url: Uri) -> Result<ProbeAnswer, ConnectFailed> {
    let limit = target.connect_timeout;
    match tokio::time::timeout(limit, probe_inner(&target, &url)).await {
        Ok(result) => result,
        Err(_) => Err(failed(
            FailedAt::Timeout,
            format!("health probe timed out after {limit:?}"),
        )),
    }
}

async fn probe_inner(target: &Target, url: &Uri) -> Result<ProbeAnswer, ConnectFailed> {
    let mut stream = open_stream(target, url).await?;
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let host = url.authority().map_or("", |a| a.as_str());
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: wsdrain-client\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    let io = |e: std::io::Error| failed(FailedAt::Handshake, format!("health probe: {e}"));
    stream.write_all(head.as_bytes()).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(answer) = parse_head(&buf) {
            return Ok(answer);
        }
        if buf.len() > PROBE_HEAD_LIMIT {
            return Err(failed(
                FailedAt::Handshake,
                "health probe: response head too long",
            ));
        }
        let n = stream.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            return Err(failed(
                FailedAt::Handshake,
                "health probe: connection closed before a response",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Status and `Retry-After` of a complete response head, `None` until the
/// head is complete (or when it is not HTTP).
fn parse_head(buf: &[u8]) -> Option<ProbeAnswer> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let retry_after = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("retry-after")
            .then(|| parse_retry_after_header(value.trim()))
            .flatten()
    });
    Some(ProbeAnswer {
        status,
        retry_after,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let a = parse_head(b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 3\r\n\r\n").unwrap();
        assert_eq!(
            (a.status, a.retry_after),
            (503, Some(Duration::from_secs(3)))
        );
        let a = parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").unwrap();
        assert_eq!((a.status, a.retry_after), (200, None));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n").is_none());
    }

    #[test]
    fn health_urls() {
        let h = |u: &str| default_health(&u.parse().unwrap()).map(|u| u.to_string());
        assert_eq!(
            h("ws://127.0.0.1:3000/ws?x=1").as_deref(),
            Some("http://127.0.0.1:3000/readyz")
        );
        assert_eq!(
            h("wss://example.com/ws").as_deref(),
            Some("https://example.com/readyz")
        );
    }
}
