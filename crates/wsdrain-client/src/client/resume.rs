//! The client's side of `wsdrain.resume.v1` (docs/PROTOCOL.md, "The
//! client's rules"): per stream the epoch, the last seq delivered and the
//! connection that owns it; frames in, what the application sees out.
//!
//! Pure: no I/O, no clock. The runner feeds it every data frame of a
//! connection that selected the subprotocol, from whichever connection it
//! came (the current one, or the noticed one during a handover), and asks it
//! for the point before each attempt. Because a stream's owner only moves
//! to newer connections and a message is delivered only as `last + 1` from
//! its owner, two connections reading at once deliver each message once, in
//! order.

use std::sync::Arc;

use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Uri};
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};
use wsdrain_protocol::resume::{
    Control, Frame, MAX_POINT_STREAMS, Position, QUERY_KEY, ResyncReason, SUBPROTOCOL,
    offers_resume, parse_frame,
};

use super::ConnectionId;
use super::events::{Event, Resumed, Resync, StreamMessage};

/// What one stream's state is.
#[derive(Debug)]
struct StreamState {
    name: Arc<str>,
    epoch: String,
    /// The last seq delivered (or the `after` of the control that set it).
    last: u64,
    /// The connection whose control was accepted last.
    owner: ConnectionId,
}

/// The streams a client follows, in the order it met them.
#[derive(Debug, Default)]
pub(super) struct Streams {
    // At most MAX_POINT_STREAMS: a linear scan beats hashing for so few.
    streams: Vec<StreamState>,
}

/// What a data frame means for the application.
#[derive(Debug, PartialEq)]
pub(super) enum Seen {
    /// Report this event (a stream's message, a plain message, `Resumed`,
    /// `Resync`).
    Event(Event),
    /// The drain notice: the Close follows in this many milliseconds.
    Notice(u64),
    /// Nothing: an overlap, a frame from a connection that no longer owns
    /// its stream, an unknown control.
    Nothing,
    /// The server broke the protocol: close the connection with 1002 and
    /// resume on a new one.
    ProtocolError(String),
}

impl Streams {
    /// The resume point for the next connection: `stream@epoch.last`, comma
    /// separated; empty before any stream started.
    pub(super) fn point(&self) -> String {
        let positions: Vec<String> = self
            .streams
            .iter()
            .map(|s| format!("{}@{}.{}", s.name, s.epoch, s.last))
            .collect();
        positions.join(",")
    }

    fn find(&mut self, stream: &str) -> Option<&mut StreamState> {
        self.streams.iter_mut().find(|s| &*s.name == stream)
    }

    /// Applies the client's rules to one text or binary frame received on
    /// `connection`.
    pub(super) fn on_frame(&mut self, connection: ConnectionId, message: Message) -> Seen {
        let (text, data) = match message {
            Message::Text(t) => (true, Bytes::from(t)),
            Message::Binary(b) => (false, b),
            _ => return Seen::Nothing,
        };
        let frame = match parse_frame(&data) {
            Ok(frame) => frame,
            Err(e) => return Seen::ProtocolError(e.to_string()),
        };
        match frame {
            Frame::Plain(body) => {
                let body = data.slice_ref(body);
                Seen::Event(Event::Message {
                    connection,
                    message: payload(text, body),
                })
            }
            Frame::Control(Control::Reconnect { close_in_ms }) => Seen::Notice(close_in_ms),
            Frame::Control(control) => match control {
                Control::Follow(at) => self.on_control(connection, at, None),
                Control::Resumed(at) => self.on_control(connection, at, None),
                Control::Resync(at, reason) => self.on_control(connection, at, Some(reason)),
                _ => Seen::Nothing,
            },
            Frame::Message {
                stream,
                seq,
                payload: body,
            } => {
                let Some(s) = self.find(stream) else {
                    return Seen::ProtocolError(format!(
                        "message {seq} of stream {stream:?} before its control"
                    ));
                };
                if s.owner != connection || seq <= s.last {
                    return Seen::Nothing;
                }
                if s.last.checked_add(1) != Some(seq) {
                    return Seen::ProtocolError(format!(
                        "message {seq} of stream {stream:?} after {}: a gap",
                        s.last
                    ));
                }
                s.last = seq;
                let stream = s.name.clone();
                let body = data.slice_ref(body);
                Seen::Event(Event::StreamMessage(StreamMessage {
                    connection,
                    stream,
                    seq,
                    message: payload(text, body),
                }))
            }
        }
    }

    /// Rule 1: a `follow`, `resumed` or `resync` (with its reason) for a
    /// stream on `connection`.
    fn on_control(
        &mut self,
        connection: ConnectionId,
        at: Position,
        reason: Option<ResyncReason>,
    ) -> Seen {
        let count = self.streams.len();
        let Some(s) = self.find(at.stream()) else {
            if count >= MAX_POINT_STREAMS {
                return Seen::ProtocolError(format!(
                    "stream {:?} beyond the {MAX_POINT_STREAMS} a resume point can name",
                    at.stream()
                ));
            }
            self.streams.push(StreamState {
                name: at.stream().into(),
                epoch: at.epoch().to_owned(),
                last: at.seq(),
                owner: connection,
            });
            return Seen::Nothing;
        };
        if connection < s.owner {
            return Seen::Nothing;
        }
        let moved = connection != s.owner;
        s.owner = connection;
        if s.epoch == at.epoch() && at.seq() <= s.last {
            // Nothing lost: the overlap that follows is dropped by rule 2.
            return if moved {
                Seen::Event(Event::Resumed(Resumed {
                    connection,
                    stream: s.name.clone(),
                    epoch: s.epoch.clone(),
                    after: s.last,
                }))
            } else {
                Seen::Nothing
            };
        }
        // A `follow` or `resumed` that skips ahead is a resync all the same;
        // it names no reason, so say what the client saw.
        let reason = reason.unwrap_or(if s.epoch == at.epoch() {
            ResyncReason::Unknown
        } else {
            ResyncReason::Epoch
        });
        s.epoch = at.epoch().to_owned();
        s.last = at.seq();
        Seen::Event(Event::Resync(Resync {
            connection,
            stream: s.name.clone(),
            reason,
            epoch: s.epoch.clone(),
            after: s.last,
        }))
    }
}

/// The application's request, offering [`SUBPROTOCOL`] after the
/// subprotocols it offers itself, with `point` as the query's
/// `wsdrain-resume` (none when empty; one the application put there is
/// replaced).
///
/// # Errors
///
/// When the header or the URL cannot hold them (an application header that
/// is not visible ASCII).
pub(super) fn offer(request: &Request, point: &str) -> Result<Request, String> {
    let mut request = request.clone();
    let offered: Vec<&str> = request
        .headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .map(|v| {
            v.to_str()
                .map_err(|e| format!("Sec-WebSocket-Protocol: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let mut protocols = offered.join(", ");
    if !offers_resume(&protocols) {
        if !protocols.is_empty() {
            protocols.push_str(", ");
        }
        protocols.push_str(SUBPROTOCOL);
    }
    let protocols = HeaderValue::from_str(&protocols).map_err(|e| e.to_string())?;
    request
        .headers_mut()
        .insert(SEC_WEBSOCKET_PROTOCOL, protocols);

    let uri = request.uri();
    let mut query: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some(QUERY_KEY))
        .collect();
    let ours = format!("{QUERY_KEY}={point}");
    if !point.is_empty() {
        query.push(&ours);
    }
    let mut path_and_query = uri.path().to_owned();
    if !query.is_empty() {
        path_and_query.push('?');
        path_and_query.push_str(&query.join("&"));
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().map_err(|e| format!("{e}"))?);
    *request.uri_mut() = Uri::from_parts(parts).map_err(|e| e.to_string())?;
    Ok(request)
}

/// The application's payload, in a frame of the kind it came in.
fn payload(text: bool, body: Bytes) -> Message {
    if text {
        // After an ASCII header ended by `\n`, the rest of a text frame is
        // UTF-8 too; the check cannot fail.
        Utf8Bytes::try_from(body.clone()).map_or(Message::Binary(body), Message::Text)
    } else {
        Message::Binary(body)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// What a client saw, in the shared table's notation.
    fn notation(seen: &Seen) -> Value {
        let text = |m: &Message| match m {
            Message::Text(t) => json!(t.as_str()),
            other => json!(other.clone().into_data().to_vec()),
        };
        match seen {
            Seen::Event(Event::StreamMessage(m)) => {
                json!(["message", &*m.stream, m.seq, text(&m.message)])
            }
            Seen::Event(Event::Message { message, .. }) => json!(["plain", text(message)]),
            Seen::Event(Event::Resumed(r)) => json!(["resumed", &*r.stream, r.epoch, r.after]),
            Seen::Event(Event::Resync(r)) => {
                json!(["resync", &*r.stream, r.reason.as_str(), r.epoch, r.after])
            }
            Seen::Notice(ms) => json!(["notice", ms]),
            Seen::ProtocolError(_) => json!(["error"]),
            Seen::Nothing => Value::Null,
            Seen::Event(other) => panic!("unexpected {other:?}"),
        }
    }

    /// The client's rules against the table both clients in this
    /// repository are tested with (`clients/resume-cases.json`).
    #[test]
    fn shared_cases() {
        let cases: Value =
            serde_json::from_str(include_str!("../../../../clients/resume-cases.json")).unwrap();
        let cases = cases["cases"].as_array().unwrap();
        assert!(cases.len() >= 20, "{} cases", cases.len());
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let mut streams = Streams::default();
            for (i, step) in case["steps"].as_array().unwrap().iter().enumerate() {
                let connection = ConnectionId(step[0].as_u64().unwrap());
                let frame = step[1].as_str().unwrap().to_owned();
                let seen = streams.on_frame(connection, Message::text(frame.clone()));
                assert_eq!(
                    notation(&seen),
                    step[2],
                    "{name}: step {i} ({frame:?}) gave {seen:?}"
                );
            }
            assert_eq!(streams.point(), case["point"].as_str().unwrap(), "{name}");
        }
    }

    #[test]
    fn the_offer_keeps_the_applications_request() {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let protocols = |r: &Request| {
            r.headers()
                .get(SEC_WEBSOCKET_PROTOCOL)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        };
        let plain = "ws://127.0.0.1:9/feed?token=a%26b&x"
            .into_client_request()
            .unwrap();
        let r = offer(&plain, "t@E.5,u/v@F.0").unwrap();
        assert_eq!(
            r.uri().to_string(),
            "ws://127.0.0.1:9/feed?token=a%26b&x&wsdrain-resume=t@E.5,u/v@F.0"
        );
        assert_eq!(protocols(&r), "wsdrain.resume.v1");
        let r = offer(&plain, "").unwrap();
        assert_eq!(r.uri().to_string(), "ws://127.0.0.1:9/feed?token=a%26b&x");

        let mut mine = "ws://h/feed?wsdrain-resume=old@E.1"
            .into_client_request()
            .unwrap();
        mine.headers_mut()
            .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("chat.v2"));
        mine.headers_mut()
            .insert("authorization", HeaderValue::from_static("Bearer x"));
        let r = offer(&mine, "t@E.5").unwrap();
        assert_eq!(r.uri().to_string(), "ws://h/feed?wsdrain-resume=t@E.5");
        assert_eq!(protocols(&r), "chat.v2, wsdrain.resume.v1");
        assert_eq!(r.headers()["authorization"], "Bearer x");
        let r = offer(&mine, "").unwrap();
        assert_eq!(r.uri().to_string(), "ws://h/feed");
        // Offered once, however often the request goes out.
        assert_eq!(
            protocols(&offer(&r, "").unwrap()),
            "chat.v2, wsdrain.resume.v1"
        );
    }

    #[test]
    fn binary_frames_keep_their_kind_and_bytes() {
        let mut streams = Streams::default();
        let c = ConnectionId(1);
        let follow = r#"c
{"type":"wsdrain.follow","stream":"b","epoch":"E","after":0}"#;
        assert_eq!(
            streams.on_frame(c, Message::binary(follow.as_bytes().to_vec())),
            Seen::Nothing
        );
        let mut frame = b"m b 1\n".to_vec();
        frame.extend_from_slice(&[0, 0xff, b'\n', 7]);
        let Seen::Event(Event::StreamMessage(m)) = streams.on_frame(c, Message::binary(frame))
        else {
            panic!("not delivered");
        };
        assert_eq!(m.message, Message::binary(vec![0, 0xff, b'\n', 7]));
        let Seen::Event(Event::Message { message, .. }) =
            streams.on_frame(c, Message::binary(b"p\n\x01".to_vec()))
        else {
            panic!("not delivered");
        };
        assert_eq!(message, Message::binary(vec![1]));
        // A text payload stays text.
        let Seen::Event(Event::StreamMessage(m)) =
            streams.on_frame(c, Message::text("m b 2\nhé\n"))
        else {
            panic!("not delivered");
        };
        assert_eq!(m.message, Message::text("hé\n"));
        assert_eq!(streams.point(), "b@E.2");
    }

    #[test]
    fn at_most_a_points_worth_of_streams() {
        let mut streams = Streams::default();
        let c = ConnectionId(1);
        let follow = |i: usize| {
            Message::text(format!(
                r#"c
{{"type":"wsdrain.follow","stream":"s{i}","epoch":"E","after":0}}"#
            ))
        };
        for i in 0..MAX_POINT_STREAMS {
            assert_eq!(streams.on_frame(c, follow(i)), Seen::Nothing);
        }
        assert!(matches!(
            streams.on_frame(c, follow(MAX_POINT_STREAMS)),
            Seen::ProtocolError(_)
        ));
        assert_eq!(streams.point().split(',').count(), MAX_POINT_STREAMS);
        // Known streams go on.
        assert_eq!(streams.on_frame(c, follow(0)), Seen::Nothing);
    }

    #[test]
    fn the_last_seq_of_all_is_never_followed() {
        let mut streams = Streams::default();
        let c = ConnectionId(1);
        let max = u64::MAX;
        let follow = format!(
            "c\n{{\"type\":\"wsdrain.follow\",\"stream\":\"s\",\"epoch\":\"E\",\"after\":{max}}}"
        );
        assert_eq!(streams.on_frame(c, Message::text(follow)), Seen::Nothing);
        assert_eq!(
            streams.on_frame(c, Message::text(format!("m s {max}\nx"))),
            Seen::Nothing
        );
        assert_eq!(streams.point(), format!("s@E.{max}"));
    }
}
