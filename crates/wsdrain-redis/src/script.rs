//! The one Lua script every append, read and head runs: it keeps a stream's
//! epoch and contiguous seq atomically on the server, so that any number of
//! replicas and publishers append to one history with one round trip each.
//!
//! Per stream two keys share a hash tag (one slot in a Redis Cluster): a hash
//! `<prefix>{<stream>}:meta` (`epoch`, `ms`, `last`, `run`) and the stream
//! `<prefix>{<stream>}:log`, whose entries have the ids `<ms>-<seq>`:
//!
//! * `seq` is the entry's seq, so seqs are contiguous by construction (the
//!   script assigns them), `XRANGE <ms>-<after+1> +` is exactly "what follows
//!   `after`", and Redis itself refuses an id that does not rise;
//! * `ms` is the server's time when the epoch began, not 0: a new epoch's ids
//!   are above every id of the old one, so a tail blocked on the old epoch's
//!   last id (a stream that expired or was evicted while nobody wrote, with
//!   no connection lost) sees the new epoch's entries at once.
//!
//! Entries hold `e` (the epoch, for the tail), `t` (`1` for text) and `p`
//! (the payload).
//!
//! Lua numbers are doubles: seqs are exact up to 2^53 per epoch (285 years
//! at a million messages a second).

use bytes::Bytes;
use redis::Value;
use wsdrain_core::resume::{Entry, Epoch, Head, Payload};

/// A new history begins when the stream has none, when the server is not the
/// one that wrote it (`run`: a restart that reloaded an older snapshot, a
/// failover to a replica that lagged, either of which may have lost
/// acknowledged entries), or when the stream vanished (evicted) while its
/// meta stayed.
pub(crate) const SOURCE: &str = r"
local meta, log = KEYS[1], KEYS[2]
local op, run, fresh, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local m = redis.call('HMGET', meta, 'epoch', 'ms', 'last', 'run')
local epoch, ms, last = m[1], tonumber(m[2]), tonumber(m[3])
if not epoch or not ms or not last or m[4] ~= run
    or (last > 0 and redis.call('EXISTS', log) == 0) then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if ms and now <= ms then now = ms + 1 end
  redis.call('DEL', log)
  epoch, ms, last = fresh, now, 0
  redis.call('HSET', meta, 'epoch', epoch, 'ms', string.format('%d', ms), 'last', '0', 'run', run)
  if ttl > 0 then redis.call('PEXPIRE', meta, ttl) end
end
local function id(seq) return string.format('%d-%d', ms, seq) end
if op == 'a' then
  last = last + 1
  redis.call('XADD', log, 'MAXLEN', ARGV[5], id(last), 'e', epoch, 't', ARGV[6], 'p', ARGV[7])
  redis.call('HSET', meta, 'last', string.format('%d', last))
  if ttl > 0 then
    redis.call('PEXPIRE', meta, ttl)
    redis.call('PEXPIRE', log, ttl)
  end
  return {epoch, string.format('%d', ms), string.format('%d', last)}
end
local oldest = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
local first = last + 1
if oldest[1] then first = tonumber(string.match(oldest[1][1], '%-(%d+)$')) end
local reply = {epoch, string.format('%d', ms), string.format('%d', first), string.format('%d', last)}
if op == 'r' then
  local after = tonumber(ARGV[6])
  if ARGV[5] == epoch and after < last and after + 1 >= first then
    reply[5] = redis.call('XRANGE', log, id(after + 1), '+', 'COUNT', ARGV[7])
  end
end
return reply
";

/// A stream entry's id: the epoch's start (ms) and the seq. Ordered as Redis
/// orders ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Id {
    pub(crate) ms: u64,
    pub(crate) seq: u64,
}

impl Id {
    pub(crate) const ZERO: Id = Id { ms: 0, seq: 0 };

    pub(crate) fn parse(text: &[u8]) -> Option<Id> {
        let text = std::str::from_utf8(text).ok()?;
        let (ms, seq) = text.split_once('-')?;
        Some(Id {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// A reply that is not what the script returns.
#[derive(Debug)]
pub(crate) struct BadReply(pub(crate) &'static str);

impl std::fmt::Display for BadReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unexpected reply from redis: {}", self.0)
    }
}

impl std::error::Error for BadReply {}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Int(n) => u64::try_from(*n).ok(),
        v => std::str::from_utf8(bytes(v)?).ok()?.parse().ok(),
    }
}

fn epoch(v: &Value) -> Result<Epoch, BadReply> {
    let text = bytes(v).and_then(|b| std::str::from_utf8(b).ok());
    text.and_then(|t| Epoch::new(t).ok())
        .ok_or(BadReply("epoch"))
}

/// What an append returned: the entry's epoch, the epoch's start and seq.
pub(crate) fn appended(reply: &Value) -> Result<(Epoch, Id), BadReply> {
    let Value::Array(items) = reply else {
        return Err(BadReply("append"));
    };
    match items.as_slice() {
        [e, ms, seq] => Ok((
            epoch(e)?,
            Id {
                ms: number(ms).ok_or(BadReply("ms"))?,
                seq: number(seq).ok_or(BadReply("seq"))?,
            },
        )),
        _ => Err(BadReply("append")),
    }
}

/// What a read or head returned: the head, the epoch's start, and the
/// entries when a range was read.
pub(crate) fn headed(reply: Value) -> Result<(Head, u64, Option<Vec<Value>>), BadReply> {
    let Value::Array(mut items) = reply else {
        return Err(BadReply("head"));
    };
    let range = match items.len() {
        4 => None,
        5 => match items.pop() {
            Some(Value::Array(range)) => Some(range),
            _ => return Err(BadReply("range")),
        },
        _ => return Err(BadReply("head")),
    };
    let head = Head {
        epoch: epoch(&items[0])?,
        first: number(&items[2]).ok_or(BadReply("first"))?,
        last: number(&items[3]).ok_or(BadReply("last"))?,
    };
    let ms = number(&items[1]).ok_or(BadReply("ms"))?;
    Ok((head, ms, range))
}

/// One entry of an `XRANGE` or `XREAD` reply, `[id, [field, value, …]]`:
/// its id and its fields.
pub(crate) fn split_entry(item: Value) -> Result<(Id, Vec<Value>), BadReply> {
    let Value::Array(pair) = item else {
        return Err(BadReply("entry"));
    };
    let mut pair = pair.into_iter();
    let (Some(id), Some(Value::Array(fields)), None) = (pair.next(), pair.next(), pair.next())
    else {
        return Err(BadReply("entry"));
    };
    let id = bytes(&id).and_then(Id::parse).ok_or(BadReply("id"))?;
    Ok((id, fields))
}

/// An entry's fields: its epoch (`e`) and its payload (`p`, of the kind `t`).
pub(crate) fn fields(fields: Vec<Value>) -> Result<(Option<Vec<u8>>, Payload), BadReply> {
    let (mut e, mut text, mut payload) = (None, None, None);
    let mut fields = fields.into_iter();
    while let (Some(k), Some(v)) = (fields.next(), fields.next()) {
        match (bytes(&k), v) {
            (Some(b"e"), Value::BulkString(v)) => e = Some(v),
            (Some(b"t"), v) => text = Some(bytes(&v) == Some(b"1")),
            (Some(b"p"), Value::BulkString(v)) => payload = Some(v),
            _ => {}
        }
    }
    let payload = Bytes::from(payload.ok_or(BadReply("payload"))?);
    let payload = match text.ok_or(BadReply("kind"))? {
        true => Payload::text_from_bytes(payload).map_err(|_| BadReply("text"))?,
        false => Payload::binary(payload),
    };
    Ok((e, payload))
}

/// The entries of a read's range: contiguous from `after + 1` in `epoch`
/// (the log's contract), or an error.
pub(crate) fn range(
    stream: &str,
    epoch: &Epoch,
    after: u64,
    items: Vec<Value>,
) -> Result<Vec<Entry>, BadReply> {
    let mut entries = Vec::with_capacity(items.len());
    for (next, item) in (after + 1..).zip(items) {
        let (id, f) = split_entry(item)?;
        let (_, payload) = fields(f)?;
        if id.seq != next {
            return Err(BadReply("a range that is not contiguous"));
        }
        entries.push(Entry::new(stream, epoch.clone(), id.seq, &payload));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn item(id: &str, text: &str, payload: &str) -> Value {
        Value::Array(vec![
            bulk(id),
            Value::Array(vec![
                bulk("e"),
                bulk("E1"),
                bulk("t"),
                bulk(text),
                bulk("p"),
                bulk(payload),
            ]),
        ])
    }

    #[test]
    fn ids_order_like_redis() {
        let a = Id::parse(b"1700000000000-9").unwrap();
        let b = Id::parse(b"1700000000001-1").unwrap();
        assert!(a < b);
        assert_eq!(a.to_string(), "1700000000000-9");
        assert!(Id::parse(b"17-").is_none());
        assert!(Id::parse(b"x-1").is_none());
    }

    #[test]
    fn ranges_must_be_contiguous() {
        let e = Epoch::new("E1").unwrap();
        let ok = range(
            "s",
            &e,
            4,
            vec![item("9-5", "1", "a"), item("9-6", "0", "b")],
        )
        .unwrap();
        assert_eq!(
            ok.iter()
                .map(|x| (x.seq(), x.is_text()))
                .collect::<Vec<_>>(),
            [(5, true), (6, false)]
        );
        assert_eq!(&ok[0].frame()[..], b"m s 5\na");
        assert!(range("s", &e, 4, vec![item("9-6", "1", "a")]).is_err());
        assert!(
            range(
                "s",
                &e,
                4,
                vec![item("9-5", "1", "a"), item("9-7", "1", "b")]
            )
            .is_err()
        );
        let bad_text = Value::Array(vec![
            bulk("9-5"),
            Value::Array(vec![
                bulk("t"),
                bulk("1"),
                bulk("p"),
                Value::BulkString(vec![0xff]),
            ]),
        ]);
        assert!(range("s", &e, 4, vec![bad_text]).is_err());
    }

    #[test]
    fn replies() {
        let (e, id) = appended(&Value::Array(vec![bulk("E1"), bulk("77"), bulk("3")])).unwrap();
        assert_eq!((e.as_str(), id), ("E1", Id { ms: 77, seq: 3 }));
        assert!(appended(&Value::Array(vec![bulk("E1")])).is_err());
        let (head, ms, range) = headed(Value::Array(vec![
            bulk("E1"),
            bulk("77"),
            bulk("4"),
            bulk("9"),
        ]))
        .unwrap();
        assert_eq!(
            (head.first, head.last, ms, range.is_none()),
            (4, 9, 77, true)
        );
        let (_, _, range) = headed(Value::Array(vec![
            bulk("E1"),
            bulk("77"),
            bulk("4"),
            bulk("9"),
            Value::Array(vec![]),
        ]))
        .unwrap();
        assert_eq!(range.map(|r| r.len()), Some(0));
        assert!(
            headed(Value::Array(vec![
                bulk("not an epoch!"),
                bulk("1"),
                bulk("1"),
                bulk("0")
            ]))
            .is_err()
        );
    }
}
