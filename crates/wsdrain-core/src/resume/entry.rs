//! What a stream is made of: epochs, payloads and entries.

use std::{fmt, sync::Arc};

use bytes::Bytes;
use wsdrain_protocol::resume::{
    FrameError, NameError, check_epoch, message_header_len, parse_frame, write_message_header,
};

/// A stream's epoch: a random string made when its history begins; a log
/// that loses the history makes a new one, and seqs restart at 1.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Epoch(Arc<str>);

/// Random epochs have this many characters of `[A-Za-z0-9]` (95 bits).
const RANDOM_EPOCH_LEN: usize = 16;

impl Epoch {
    /// An epoch from its text (`[A-Za-z0-9]{1,32}`).
    ///
    /// # Errors
    ///
    /// [`NameError`] for text outside the grammar.
    pub fn new(text: &str) -> Result<Epoch, NameError> {
        check_epoch(text)?;
        Ok(Epoch(text.into()))
    }

    /// A new random epoch, for a stream whose history begins.
    pub fn random() -> Epoch {
        let text: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(RANDOM_EPOCH_LEN)
            .collect();
        Epoch(text.into())
    }

    /// The epoch's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An application message: text (UTF-8) or binary bytes, sent in a frame of
/// the same kind.
#[derive(Clone, PartialEq, Eq)]
pub struct Payload {
    data: Bytes,
    text: bool,
}

impl Payload {
    /// A text payload.
    pub fn text(text: impl Into<String>) -> Payload {
        Payload {
            data: Bytes::from(text.into()),
            text: true,
        }
    }

    /// A text payload from bytes that must be UTF-8 (a log reading back
    /// what it stored).
    ///
    /// # Errors
    ///
    /// When the bytes are not UTF-8.
    pub fn text_from_bytes(data: Bytes) -> Result<Payload, std::str::Utf8Error> {
        std::str::from_utf8(&data)?;
        Ok(Payload { data, text: true })
    }

    /// A binary payload.
    pub fn binary(data: impl Into<Bytes>) -> Payload {
        Payload {
            data: data.into(),
            text: false,
        }
    }

    /// True for text.
    pub fn is_text(&self) -> bool {
        self.text
    }

    /// The bytes (UTF-8 for text).
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The bytes, shared.
    pub fn bytes(&self) -> &Bytes {
        &self.data
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.text { "text" } else { "binary" };
        write!(f, "Payload({kind}, {} bytes)", self.data.len())
    }
}

impl From<String> for Payload {
    fn from(s: String) -> Payload {
        Payload::text(s)
    }
}

impl From<&str> for Payload {
    fn from(s: &str) -> Payload {
        Payload::text(s)
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Payload {
        Payload::binary(v)
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Payload {
        Payload::binary(b)
    }
}

/// One message of a stream, as the log keeps it and the wire carries it: its
/// epoch and seq, and the frame `m <stream> <seq>\n<payload>` built once, so
/// that replay and live fan-out to any number of sessions copy nothing.
///
/// Cheap to clone (one reference count).
#[derive(Clone)]
pub struct Entry(Arc<EntryInner>);

struct EntryInner {
    epoch: Epoch,
    seq: u64,
    frame: Bytes,
    /// Where the payload starts in `frame`.
    header: u16,
    text: bool,
    /// False for a message delivered live while the log could not take it.
    logged: bool,
}

/// Bytes an entry costs beyond its frame (the shared block, its handle in a
/// log's queue), for bounds by bytes.
pub(crate) const ENTRY_OVERHEAD: usize = 96;

impl Entry {
    /// The entry of `payload` at `seq` in `stream`'s `epoch`: the header and
    /// the payload in one buffer. `stream` must be a valid stream name (the
    /// feed checks it before calling the log).
    pub fn new(stream: &str, epoch: Epoch, seq: u64, payload: &Payload) -> Entry {
        Entry::build(stream, epoch, seq, payload, true)
    }

    pub(crate) fn unlogged(stream: &str, epoch: Epoch, seq: u64, payload: &Payload) -> Entry {
        Entry::build(stream, epoch, seq, payload, false)
    }

    fn build(stream: &str, epoch: Epoch, seq: u64, payload: &Payload, logged: bool) -> Entry {
        let header = message_header_len(stream, seq);
        let mut frame = Vec::with_capacity(header + payload.len());
        write_message_header(&mut frame, stream, seq);
        frame.extend_from_slice(payload.as_bytes());
        Entry(Arc::new(EntryInner {
            epoch,
            seq,
            frame: Bytes::from(frame),
            // At most MAX_HEADER_LEN (152) for a valid stream name.
            header: u16::try_from(header).unwrap_or(u16::MAX),
            text: payload.is_text(),
            logged,
        }))
    }

    /// An entry from a frame a log stored whole (`m <stream> <seq>\n…`), so
    /// reading it back copies nothing.
    ///
    /// # Errors
    ///
    /// [`FrameError`] if `frame` is not a message frame, or `text` is set
    /// and the payload is not UTF-8.
    pub fn from_frame(epoch: Epoch, frame: Bytes, text: bool) -> Result<Entry, FrameError> {
        let (seq, header) = match parse_frame(&frame)? {
            wsdrain_protocol::resume::Frame::Message { seq, payload, .. } => {
                if text && std::str::from_utf8(payload).is_err() {
                    return Err(FrameError::Header);
                }
                (seq, frame.len() - payload.len())
            }
            _ => return Err(FrameError::Header),
        };
        Ok(Entry(Arc::new(EntryInner {
            epoch,
            seq,
            frame,
            header: u16::try_from(header).unwrap_or(u16::MAX),
            text,
            logged: true,
        })))
    }

    /// The stream's epoch this entry belongs to.
    pub fn epoch(&self) -> &Epoch {
        &self.0.epoch
    }

    /// Its seq: contiguous within the epoch, from 1.
    pub fn seq(&self) -> u64 {
        self.0.seq
    }

    /// The stream's name (read from the frame's header).
    pub fn stream(&self) -> &str {
        let header = &self.0.frame[2..usize::from(self.0.header) - 1];
        let end = header.iter().rposition(|&b| b == b' ').unwrap_or(0);
        std::str::from_utf8(&header[..end]).unwrap_or_default()
    }

    /// True for a text payload.
    pub fn is_text(&self) -> bool {
        self.0.text
    }

    /// The whole frame, `m <stream> <seq>\n<payload>`.
    pub fn frame(&self) -> &Bytes {
        &self.0.frame
    }

    /// The payload alone (shared with the frame).
    pub fn payload(&self) -> Bytes {
        self.0.frame.slice(usize::from(self.0.header)..)
    }

    /// False for a message delivered live while the log could not take it.
    pub(crate) fn is_logged(&self) -> bool {
        self.0.logged
    }

    /// What it costs a log that keeps it, in bytes.
    pub(crate) fn cost(&self) -> usize {
        self.0.frame.len() + ENTRY_OVERHEAD
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("stream", &self.stream())
            .field("epoch", &self.0.epoch)
            .field("seq", &self.0.seq)
            .field("bytes", &(self.0.frame.len() - usize::from(self.0.header)))
            .field("text", &self.0.text)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn entries_carry_their_frame() {
        let epoch = Epoch::new("E1").unwrap();
        let e = Entry::new("user/alice", epoch.clone(), 12, &Payload::text("hi"));
        assert_eq!(&e.frame()[..], b"m user/alice 12\nhi");
        assert_eq!(&e.payload()[..], b"hi");
        assert_eq!((e.stream(), e.seq(), e.is_text()), ("user/alice", 12, true));
        let back = Entry::from_frame(epoch, e.frame().clone(), true).unwrap();
        assert_eq!(
            (back.stream(), back.seq(), &back.payload()[..]),
            ("user/alice", 12, &b"hi"[..])
        );
        let bin = Entry::new("s", Epoch::random(), 1, &Payload::binary(vec![0xff]));
        assert!(!bin.is_text());
        assert!(Entry::from_frame(Epoch::random(), bin.frame().clone(), true).is_err());
        assert!(Entry::from_frame(Epoch::random(), Bytes::from_static(b"p\nx"), false).is_err());
    }

    #[test]
    fn random_epochs() {
        let a = Epoch::random();
        assert_eq!(a.as_str().len(), RANDOM_EPOCH_LEN);
        assert!(check_epoch(a.as_str()).is_ok());
        assert_ne!(a, Epoch::random());
    }
}
