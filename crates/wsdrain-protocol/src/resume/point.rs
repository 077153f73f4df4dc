//! The resume point: where a client stopped, per stream, carried in the
//! upgrade request's query (browsers cannot set headers on a WebSocket).

use std::fmt;

use super::{
    MAX_POINT_STREAMS, QUERY_KEY, SUBPROTOCOL,
    names::{NameError, check_epoch, check_stream},
};
use crate::hint::parse_digits;

/// A place in a stream: the stream, its epoch, and a seq. In a resume point,
/// the last seq the client delivered (`0` when it delivered none of this
/// epoch yet); in a control, the seq the next message follows (`after`).
///
/// Written `<stream>@<epoch>.<seq>` in a resume point, e.g.
/// `user/alice@Hw81LmQa.12`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Position {
    stream: String,
    epoch: String,
    seq: u64,
}

impl Position {
    /// A position, with its stream name and epoch checked.
    ///
    /// # Errors
    ///
    /// [`NameError`] for a stream name or an epoch outside their grammar.
    pub fn new(
        stream: impl Into<String>,
        epoch: impl Into<String>,
        seq: u64,
    ) -> Result<Position, NameError> {
        let (stream, epoch) = (stream.into(), epoch.into());
        check_stream(&stream)?;
        check_epoch(&epoch)?;
        Ok(Position { stream, epoch, seq })
    }

    /// The stream.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The stream's epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The seq: the last one delivered; messages after it come next.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}.{}", self.stream, self.epoch, self.seq)
    }
}

/// Why a resume point cannot be read. Servers answer it with `400`, never
/// with a fresh start: the client asked to resume and must learn it cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PointError {
    /// A `%` not followed by two hex digits.
    Percent,
    /// The decoded value is not UTF-8.
    NotUtf8,
    /// `wsdrain-resume` appears more than once in the query.
    Repeated,
    /// An item is not `<stream>@<epoch>.<seq>`.
    Syntax {
        /// The item (cut to 64 bytes).
        item: String,
    },
    /// An item's stream name or epoch is not valid.
    Name {
        /// The item (cut to 64 bytes).
        item: String,
        /// What is wrong with it.
        error: NameError,
    },
    /// An item's seq is not a decimal `u64`.
    Seq {
        /// The item (cut to 64 bytes).
        item: String,
    },
    /// A stream is named twice.
    Duplicate {
        /// The stream.
        stream: String,
    },
    /// More than [`MAX_POINT_STREAMS`] streams.
    TooMany {
        /// How many were named.
        count: usize,
    },
    /// The point came without the [`SUBPROTOCOL`] offer: a server that
    /// ignored it would start the client afresh, silently.
    NotOffered,
}

impl fmt::Display for PointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{QUERY_KEY}: ")?;
        match self {
            PointError::Percent => f.write_str("bad percent-encoding"),
            PointError::NotUtf8 => f.write_str("not UTF-8 once percent-decoded"),
            PointError::Repeated => f.write_str("given more than once"),
            PointError::Syntax { item } => {
                write!(f, "item {item:?} is not <stream>@<epoch>.<seq>")
            }
            PointError::Name { item, error } => write!(f, "item {item:?}: {error}"),
            PointError::Seq { item } => {
                write!(f, "item {item:?}: the seq is not a decimal u64")
            }
            PointError::Duplicate { stream } => write!(f, "stream {stream:?} named twice"),
            PointError::TooMany { count } => {
                write!(f, "{count} streams named (at most {MAX_POINT_STREAMS})")
            }
            PointError::NotOffered => write!(
                f,
                "a resume point needs the {SUBPROTOCOL} subprotocol offered \
                 (Sec-WebSocket-Protocol)"
            ),
        }
    }
}

impl std::error::Error for PointError {}

fn cut(item: &str) -> String {
    let mut end = item.len().min(64);
    while !item.is_char_boundary(end) {
        end -= 1;
    }
    item[..end].to_owned()
}

fn parse_item(item: &str) -> Result<Position, PointError> {
    let syntax = || PointError::Syntax { item: cut(item) };
    let (stream, rest) = item.split_once('@').ok_or_else(syntax)?;
    let (epoch, seq) = rest.split_once('.').ok_or_else(syntax)?;
    let name = |error| PointError::Name {
        item: cut(item),
        error,
    };
    check_stream(stream).map_err(name)?;
    check_epoch(epoch).map_err(name)?;
    let seq = parse_digits(seq.as_bytes()).ok_or_else(|| PointError::Seq { item: cut(item) })?;
    Ok(Position {
        stream: stream.to_owned(),
        epoch: epoch.to_owned(),
        seq,
    })
}

/// Parses a resume point's (percent-decoded) value: `<item>,<item>,…` with
/// `<item> = <stream>@<epoch>.<seq>`; an empty value names no stream.
///
/// ```
/// use wsdrain_protocol::resume::parse_point;
/// let point = parse_point("prices@3fKq9Zt2.57,user/alice@Hw81LmQa.0")?;
/// assert_eq!(point[1].stream(), "user/alice");
/// assert_eq!(point[1].seq(), 0);
/// assert!(parse_point("").unwrap().is_empty());
/// assert!(parse_point("prices@3fKq9Zt2").is_err());
/// # Ok::<(), wsdrain_protocol::resume::PointError>(())
/// ```
///
/// # Errors
///
/// [`PointError`] naming the first problem: an item's syntax, name, epoch or
/// seq, a stream named twice, or more than [`MAX_POINT_STREAMS`] streams.
pub fn parse_point(value: &str) -> Result<Vec<Position>, PointError> {
    if value.is_empty() {
        return Ok(Vec::new());
    }
    let count = value.split(',').count();
    if count > MAX_POINT_STREAMS {
        return Err(PointError::TooMany { count });
    }
    let mut point: Vec<Position> = Vec::with_capacity(count);
    for item in value.split(',') {
        let position = parse_item(item)?;
        if point.iter().any(|p| p.stream == position.stream) {
            return Err(PointError::Duplicate {
                stream: position.stream,
            });
        }
        point.push(position);
    }
    Ok(point)
}

/// Writes a resume point's value, ready for a query: every character of the
/// grammar is allowed in a URL query as it is, so nothing is escaped.
///
/// ```
/// use wsdrain_protocol::resume::{Position, encode_point};
/// let point = [Position::new("user/alice", "Hw81LmQa", 12)?];
/// assert_eq!(encode_point(&point), "user/alice@Hw81LmQa.12");
/// # Ok::<(), wsdrain_protocol::resume::NameError>(())
/// ```
pub fn encode_point(point: &[Position]) -> String {
    let mut out = String::new();
    for (i, p) in point.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&p.to_string());
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `%XX` decoded; `+` stays `+` (it is no character of the grammar anyway).
fn percent_decode(s: &str) -> Result<String, PointError> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = b.get(i + 1).copied().and_then(hex);
            let lo = b.get(i + 2).copied().and_then(hex);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(PointError::Percent);
            };
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PointError::NotUtf8)
}

/// Finds `wsdrain-resume` in a request's query (without the `?`) and parses
/// it, percent-decoded: `Ok(None)` when the query does not name it.
///
/// ```
/// use wsdrain_protocol::resume::point_from_query;
/// let point = point_from_query("token=abc&wsdrain-resume=user%2Falice%40Hw81LmQa.12")?.unwrap();
/// assert_eq!(point[0].to_string(), "user/alice@Hw81LmQa.12");
/// assert_eq!(point_from_query("token=abc")?, None);
/// # Ok::<(), wsdrain_protocol::resume::PointError>(())
/// ```
///
/// # Errors
///
/// [`PointError`]: the parameter given twice, bad percent-encoding, or a
/// value [`parse_point`] refuses.
pub fn point_from_query(query: &str) -> Result<Option<Vec<Position>>, PointError> {
    let mut found = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let ours = key == QUERY_KEY
            || (key.contains('%') && percent_decode(key).is_ok_and(|k| k == QUERY_KEY));
        if !ours {
            continue;
        }
        if found.is_some() {
            return Err(PointError::Repeated);
        }
        found = Some(value);
    }
    found
        .map(|value| parse_point(&percent_decode(value)?))
        .transpose()
}

/// True when a `Sec-WebSocket-Protocol` header value offers [`SUBPROTOCOL`]
/// (a comma-separated list; call it on each header line).
///
/// ```
/// use wsdrain_protocol::resume::offers_resume;
/// assert!(offers_resume("chat.v2, wsdrain.resume.v1"));
/// assert!(!offers_resume("wsdrain.resume.v2"));
/// ```
pub fn offers_resume(sec_websocket_protocol: &str) -> bool {
    sec_websocket_protocol
        .split(',')
        .any(|p| p.trim_matches([' ', '\t']) == SUBPROTOCOL)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn items() {
        let p = parse_point("a@E.0,b/c:d@x1.18446744073709551615").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].stream(), p[0].epoch(), p[0].seq()), ("a", "E", 0));
        assert_eq!(p[1].seq(), u64::MAX);
    }

    #[test]
    fn errors_name_the_problem() {
        let cases = [
            ("a@E", "item \"a@E\" is not <stream>@<epoch>.<seq>"),
            ("a.E.1", "item \"a.E.1\" is not <stream>@<epoch>.<seq>"),
            ("a@E.1,", "item \"\" is not <stream>@<epoch>.<seq>"),
            (
                "a b@E.1",
                "item \"a b@E.1\": stream name with the character ' ' (allowed: [A-Za-z0-9_.:/-])",
            ),
            (
                "a@E-1.1",
                "item \"a@E-1.1\": epoch with the character '-' (allowed: [A-Za-z0-9])",
            ),
            ("a@E.-1", "item \"a@E.-1\": the seq is not a decimal u64"),
            (
                "a@E.18446744073709551616",
                "item \"a@E.18446744073709551616\": the seq is not a decimal u64",
            ),
            ("a@E.", "item \"a@E.\": the seq is not a decimal u64"),
            ("a@E.1,a@F.2", "stream \"a\" named twice"),
        ];
        for (value, message) in cases {
            let e = parse_point(value).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("wsdrain-resume: {message}"),
                "{value}"
            );
        }
        let many = (0..65)
            .map(|i| format!("s{i}@E.1"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            parse_point(&many).unwrap_err(),
            PointError::TooMany { count: 65 }
        );
        let long = format!("{}@E.1", "é".repeat(100));
        let PointError::Name { item, .. } = parse_point(&long).unwrap_err() else {
            panic!("not a name error");
        };
        assert!(item.len() <= 64);
    }

    #[test]
    fn query() {
        assert_eq!(point_from_query("").unwrap(), None);
        assert_eq!(point_from_query("wsdrain-resume").unwrap(), Some(vec![]));
        assert_eq!(point_from_query("wsdrain-resume=").unwrap(), Some(vec![]));
        assert_eq!(
            point_from_query("wsdrain%2Dresume=a%40E.1")
                .unwrap()
                .unwrap()[0]
                .to_string(),
            "a@E.1"
        );
        assert_eq!(
            point_from_query("wsdrain-resume=a@E.1&x=%zz")
                .unwrap()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            point_from_query("wsdrain-resume=a@E.1&wsdrain-resume=b@E.1"),
            Err(PointError::Repeated)
        );
        assert_eq!(
            point_from_query("wsdrain-resume=a%4"),
            Err(PointError::Percent)
        );
        assert_eq!(
            point_from_query("wsdrain-resume=%ff"),
            Err(PointError::NotUtf8)
        );
        assert!(matches!(
            point_from_query("wsdrain-resume=a+b@E.1"),
            Err(PointError::Name { .. })
        ));
    }

    #[test]
    fn offers() {
        assert!(offers_resume("wsdrain.resume.v1"));
        assert!(offers_resume(" a ,\twsdrain.resume.v1 "));
        assert!(!offers_resume(""));
        assert!(!offers_resume("Wsdrain.resume.v1"));
        assert!(!offers_resume("wsdrain.resume.v1x"));
    }
}
