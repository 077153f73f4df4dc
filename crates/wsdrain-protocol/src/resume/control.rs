//! Controls: the `c\n<json>` frames that tell a client how a stream starts
//! on this connection, or that its Close is coming.

use std::fmt;

use super::{
    json::{self, Value},
    names::NameError,
    point::Position,
};
use crate::notice::{NOTICE_TYPE, encode_notice};

/// Why a stream could not continue from the client's position: the
/// application must resync its state (messages after
/// [`Position::seq`] follow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResyncReason {
    /// The position is older than the log's start (history expired).
    Expired,
    /// The stream's epoch changed: its history was lost.
    Epoch,
    /// The position is ahead of the log, or the stream has no history.
    Unknown,
    /// The log cannot be read (its store is down).
    Unavailable,
    /// A reason this version does not know; resync as for any other.
    Other,
}

impl ResyncReason {
    /// The reason as written in the control.
    pub fn as_str(self) -> &'static str {
        match self {
            ResyncReason::Expired => "expired",
            ResyncReason::Epoch => "epoch",
            ResyncReason::Unknown => "unknown",
            ResyncReason::Unavailable => "unavailable",
            ResyncReason::Other => "other",
        }
    }

    fn parse(s: &str) -> ResyncReason {
        match s {
            "expired" => ResyncReason::Expired,
            "epoch" => ResyncReason::Epoch,
            "unknown" => ResyncReason::Unknown,
            "unavailable" => ResyncReason::Unavailable,
            _ => ResyncReason::Other,
        }
    }
}

impl fmt::Display for ResyncReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A control frame's content. The three stream controls carry where the
/// stream starts on this connection: its epoch from here on, and `after`
/// ([`Position::seq`]), the seq the next message follows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Control {
    /// `wsdrain.follow`: the stream starts fresh; messages after `after`
    /// follow.
    Follow(Position),
    /// `wsdrain.resumed`: the client's position was honoured; replay, then
    /// live, contiguous.
    Resumed(Position),
    /// `wsdrain.resync`: the gap cannot be filled; the application resyncs,
    /// then messages after `after` follow.
    Resync(Position, ResyncReason),
    /// `wsdrain.reconnect`: the drain notice; the Close follows in
    /// `close_in_ms`.
    Reconnect {
        /// Milliseconds until the Close.
        close_in_ms: u64,
    },
    /// A control type this version does not know: clients ignore it.
    Other {
        /// Its `type`.
        kind: String,
    },
}

/// The `type` of each control.
pub mod types {
    /// [`Control::Follow`](super::Control::Follow).
    pub const FOLLOW: &str = "wsdrain.follow";
    /// [`Control::Resumed`](super::Control::Resumed).
    pub const RESUMED: &str = "wsdrain.resumed";
    /// [`Control::Resync`](super::Control::Resync).
    pub const RESYNC: &str = "wsdrain.resync";
}

/// Why a control's JSON cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControlError {
    /// Not one JSON object.
    NotJson,
    /// A field this control needs is missing or of the wrong kind.
    Field(&'static str),
    /// The stream name or the epoch is not valid.
    Name(NameError),
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::NotJson => f.write_str("control is not a JSON object"),
            ControlError::Field(name) => write!(f, "control field {name:?} missing or malformed"),
            ControlError::Name(e) => write!(f, "control: {e}"),
        }
    }
}

impl std::error::Error for ControlError {}

impl Control {
    /// The control's `type`.
    pub fn kind(&self) -> &str {
        match self {
            Control::Follow(_) => types::FOLLOW,
            Control::Resumed(_) => types::RESUMED,
            Control::Resync(..) => types::RESYNC,
            Control::Reconnect { .. } => NOTICE_TYPE,
            Control::Other { kind } => kind,
        }
    }

    /// Where the stream starts, for the three stream controls.
    pub fn position(&self) -> Option<&Position> {
        match self {
            Control::Follow(a) | Control::Resumed(a) | Control::Resync(a, _) => Some(a),
            _ => None,
        }
    }

    /// The JSON, exactly as a wsdrain server writes it: no spaces, keys in
    /// the order `type`, `stream`, `epoch`, `after`, `reason`.
    pub fn to_json(&self) -> String {
        let stream_control = |a: &Position, reason: Option<ResyncReason>| {
            let mut s = format!(
                "{{\"type\":\"{}\",\"stream\":\"{}\",\"epoch\":\"{}\",\"after\":{}",
                self.kind(),
                a.stream(),
                a.epoch(),
                a.seq()
            );
            if let Some(r) = reason {
                s.push_str(",\"reason\":\"");
                s.push_str(r.as_str());
                s.push('"');
            }
            s.push('}');
            s
        };
        match self {
            Control::Follow(a) | Control::Resumed(a) => stream_control(a, None),
            Control::Resync(a, r) => stream_control(a, Some(*r)),
            Control::Reconnect { close_in_ms } => encode_notice(*close_in_ms),
            Control::Other { kind } => {
                let mut s = String::from("{\"type\":\"");
                for c in kind.chars() {
                    match c {
                        '"' => s.push_str("\\\""),
                        '\\' => s.push_str("\\\\"),
                        c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
                        c => s.push(c),
                    }
                }
                s.push_str("\"}");
                s
            }
        }
    }

    /// The whole text frame: `c\n` and [`to_json`](Self::to_json).
    pub fn to_frame(&self) -> String {
        format!("c\n{}", self.to_json())
    }

    /// Reads a control's JSON in any key order and spacing; unknown keys are
    /// ignored, an unknown `type` is [`Control::Other`], an unknown resync
    /// reason [`ResyncReason::Other`].
    ///
    /// # Errors
    ///
    /// [`ControlError`] when the JSON is not an object, or a field a known
    /// control needs is missing, malformed or invalid.
    pub fn parse(text: &str) -> Result<Control, ControlError> {
        let members = json::object(text).ok_or(ControlError::NotJson)?;
        let str_of = |key: &'static str| {
            members.iter().find_map(|(k, v)| match v {
                Value::Str(s) if k == key => Some(s.as_str()),
                _ => None,
            })
        };
        let uint_of = |key: &'static str| {
            members.iter().find_map(|(k, v)| match v {
                Value::UInt(n) if k == key => Some(*n),
                _ => None,
            })
        };
        let kind = str_of("type").ok_or(ControlError::Field("type"))?;
        let position = || -> Result<Position, ControlError> {
            let stream = str_of("stream").ok_or(ControlError::Field("stream"))?;
            let epoch = str_of("epoch").ok_or(ControlError::Field("epoch"))?;
            let after = uint_of("after").ok_or(ControlError::Field("after"))?;
            Position::new(stream, epoch, after).map_err(ControlError::Name)
        };
        Ok(match kind {
            types::FOLLOW => Control::Follow(position()?),
            types::RESUMED => Control::Resumed(position()?),
            types::RESYNC => {
                let reason = str_of("reason").ok_or(ControlError::Field("reason"))?;
                Control::Resync(position()?, ResyncReason::parse(reason))
            }
            NOTICE_TYPE => Control::Reconnect {
                close_in_ms: uint_of("close_in_ms").ok_or(ControlError::Field("close_in_ms"))?,
            },
            other => Control::Other {
                kind: other.to_owned(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn position() -> Position {
        Position::new("user/alice", "Hw81LmQa", 12).unwrap()
    }

    #[test]
    fn exact_json() {
        assert_eq!(
            Control::Follow(position()).to_json(),
            r#"{"type":"wsdrain.follow","stream":"user/alice","epoch":"Hw81LmQa","after":12}"#
        );
        assert_eq!(
            Control::Resumed(position()).to_json(),
            r#"{"type":"wsdrain.resumed","stream":"user/alice","epoch":"Hw81LmQa","after":12}"#
        );
        assert_eq!(
            Control::Resync(position(), ResyncReason::Unavailable).to_frame(),
            "c\n{\"type\":\"wsdrain.resync\",\"stream\":\"user/alice\",\"epoch\":\"Hw81LmQa\",\"after\":12,\"reason\":\"unavailable\"}"
        );
        assert_eq!(
            Control::Reconnect { close_in_ms: 3000 }.to_json(),
            r#"{"type":"wsdrain.reconnect","close_in_ms":3000}"#
        );
    }

    #[test]
    fn lenient_reading() {
        let c = Control::parse(
            r#" { "after" : 12, "v": [1, {"x": null}], "epoch":"Hw81LmQa", "stream":"user\/alice", "type":"wsdrain.resumed" } "#,
        )
        .unwrap();
        assert_eq!(c, Control::Resumed(position()));
        let c = Control::parse(
            r#"{"type":"wsdrain.resync","stream":"s","epoch":"E","after":0,"reason":"quota"}"#,
        )
        .unwrap();
        assert_eq!(
            c,
            Control::Resync(Position::new("s", "E", 0).unwrap(), ResyncReason::Other)
        );
        assert_eq!(
            Control::parse(r#"{"type":"wsdrain.future","x":1}"#).unwrap(),
            Control::Other {
                kind: "wsdrain.future".into()
            }
        );
    }

    #[test]
    fn errors() {
        assert_eq!(Control::parse("hello"), Err(ControlError::NotJson));
        assert_eq!(Control::parse("{}"), Err(ControlError::Field("type")));
        assert_eq!(
            Control::parse(r#"{"type":"wsdrain.follow","stream":"s","epoch":"E","after":-1}"#),
            Err(ControlError::Field("after"))
        );
        assert_eq!(
            Control::parse(r#"{"type":"wsdrain.follow","stream":"s","epoch":"E","after":"1"}"#),
            Err(ControlError::Field("after"))
        );
        assert!(matches!(
            Control::parse(r#"{"type":"wsdrain.follow","stream":"a b","epoch":"E","after":1}"#),
            Err(ControlError::Name(_))
        ));
        assert_eq!(
            Control::parse(r#"{"type":"wsdrain.resync","stream":"s","epoch":"E","after":1}"#),
            Err(ControlError::Field("reason"))
        );
    }
}
