//! Data frames under `wsdrain.resume.v1`: a one-line ASCII header ended by
//! `\n`, then the body.

use std::fmt;

use super::{
    MAX_HEADER_LEN,
    control::{Control, ControlError},
    names::{NameError, check_stream},
};
use crate::hint::parse_digits;

/// The header of an application message outside any stream.
pub const PLAIN_PREFIX: &[u8] = b"p\n";

/// The header of a control.
pub const CONTROL_PREFIX: &[u8] = b"c\n";

/// A frame the server sent, read by [`parse_frame`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// `m <stream> <seq>\n<payload>`.
    Message {
        /// The stream.
        stream: &'a str,
        /// The message's seq in the stream's current epoch.
        seq: u64,
        /// The application's payload.
        payload: &'a [u8],
    },
    /// `p\n<payload>`: an application message outside any stream.
    Plain(&'a [u8]),
    /// `c\n<json>`.
    Control(Control),
}

/// Why a frame cannot be read: a protocol error.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// No `\n` within the first [`MAX_HEADER_LEN`] bytes.
    NoHeader,
    /// A header that is not `m <stream> <seq>`, `p` or `c`.
    Header,
    /// The message's stream name is not valid.
    Stream(NameError),
    /// A control that is not UTF-8 or cannot be read.
    Control(ControlError),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::NoHeader => write!(f, "no header line in the first {MAX_HEADER_LEN} bytes"),
            FrameError::Header => f.write_str("header is not `m <stream> <seq>`, `p` or `c`"),
            FrameError::Stream(e) => write!(f, "message header: {e}"),
            FrameError::Control(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Decimal digits of `n`, in a stack buffer.
fn digits(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// The length of `m <stream> <seq>\n`.
pub fn message_header_len(stream: &str, seq: u64) -> usize {
    4 + stream.len() + digits(seq, &mut [0; 20]).len()
}

/// Appends `m <stream> <seq>\n` to `out`: the payload follows it in the same
/// buffer, so a message is one allocation. The stream name is not checked
/// here; pass a checked one ([`check_stream`]).
pub fn write_message_header(out: &mut Vec<u8>, stream: &str, seq: u64) {
    out.extend_from_slice(b"m ");
    out.extend_from_slice(stream.as_bytes());
    out.push(b' ');
    out.extend_from_slice(digits(seq, &mut [0; 20]));
    out.push(b'\n');
}

/// Reads one data frame's bytes (text or binary alike).
///
/// # Errors
///
/// [`FrameError`]: a protocol error; the client closes the connection and
/// resumes on a new one.
pub fn parse_frame(data: &[u8]) -> Result<Frame<'_>, FrameError> {
    let scan = &data[..data.len().min(MAX_HEADER_LEN)];
    let nl = scan
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(FrameError::NoHeader)?;
    let (header, body) = (&data[..nl], &data[nl + 1..]);
    match header {
        b"p" => Ok(Frame::Plain(body)),
        b"c" => {
            let text = std::str::from_utf8(body)
                .map_err(|_| FrameError::Control(ControlError::NotJson))?;
            Control::parse(text)
                .map(Frame::Control)
                .map_err(FrameError::Control)
        }
        _ => {
            let rest = header.strip_prefix(b"m ").ok_or(FrameError::Header)?;
            let space = rest
                .iter()
                .rposition(|&b| b == b' ')
                .ok_or(FrameError::Header)?;
            let stream = std::str::from_utf8(&rest[..space]).map_err(|_| FrameError::Header)?;
            check_stream(stream).map_err(FrameError::Stream)?;
            let seq = parse_digits(&rest[space + 1..]).ok_or(FrameError::Header)?;
            Ok(Frame::Message {
                stream,
                seq,
                payload: body,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn headers() {
        let mut b = Vec::new();
        write_message_header(&mut b, "user/alice", 0);
        assert_eq!(b, b"m user/alice 0\n");
        assert_eq!(b.len(), message_header_len("user/alice", 0));
        b.clear();
        write_message_header(&mut b, &"s".repeat(128), u64::MAX);
        assert_eq!(b.len(), MAX_HEADER_LEN);
        assert_eq!(b.len(), message_header_len(&"s".repeat(128), u64::MAX));
    }

    #[test]
    fn frames() {
        assert_eq!(
            parse_frame(b"m a 7\n\x00\xff").unwrap(),
            Frame::Message {
                stream: "a",
                seq: 7,
                payload: b"\x00\xff"
            }
        );
        assert_eq!(parse_frame(b"p\n").unwrap(), Frame::Plain(b""));
        assert_eq!(
            parse_frame(b"p\nm a 1\n").unwrap(),
            Frame::Plain(b"m a 1\n")
        );
        assert_eq!(
            parse_frame(b"c\n{\"type\":\"wsdrain.reconnect\",\"close_in_ms\":5}").unwrap(),
            Frame::Control(Control::Reconnect { close_in_ms: 5 })
        );
    }

    #[test]
    fn protocol_errors() {
        assert_eq!(parse_frame(b""), Err(FrameError::NoHeader));
        assert_eq!(parse_frame(b"hello"), Err(FrameError::NoHeader));
        let long = [b"m ".as_slice(), &[b'a'; 200], b" 1\n"].concat();
        assert_eq!(parse_frame(&long), Err(FrameError::NoHeader));
        for bad in [
            &b"x\n"[..],
            b"m\n",
            b"m a\n",
            b"m a -1\n",
            b"m a 1 \n",
            b"P\n",
            b"m  1\n",
        ] {
            assert!(
                parse_frame(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(
            parse_frame(b"m a@b 1\n"),
            Err(FrameError::Stream(_))
        ));
        assert!(matches!(parse_frame(b"c\n{"), Err(FrameError::Control(_))));
        assert!(matches!(
            parse_frame(b"c\n\xff"),
            Err(FrameError::Control(_))
        ));
    }
}
