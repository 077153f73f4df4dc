//! The drain notice: a text message that warns a client of its Close a lead
//! before it, so it can open its next connection first (make-before-break).
//!
//! ```text
//! {"type":"wsdrain.reconnect","close_in_ms":3000}
//! ```
//!
//! A client that knows it opens a new connection at once, moves its sends
//! there, and keeps reading the old one until its Close. A client that does
//! not know it gets the usual hinted Close `close_in_ms` later.

/// The notice's `type` field.
pub const NOTICE_TYPE: &str = "wsdrain.reconnect";

/// The notice for a Close `close_in_ms` from now, exactly
/// `{"type":"wsdrain.reconnect","close_in_ms":N}`.
///
/// ```
/// assert_eq!(
///     wsdrain_protocol::encode_notice(3000),
///     r#"{"type":"wsdrain.reconnect","close_in_ms":3000}"#
/// );
/// ```
pub fn encode_notice(close_in_ms: u64) -> String {
    format!("{{\"type\":\"{NOTICE_TYPE}\",\"close_in_ms\":{close_in_ms}}}")
}

/// Reads a notice: `Some(close_in_ms)` for a JSON object whose `type` is
/// `wsdrain.reconnect` and whose `close_in_ms` is a non-negative integer, in
/// any key order and spacing; `None` for any other message. A small scanner,
/// not a JSON parser: it never fails on application messages, it only
/// recognises the notice.
///
/// ```
/// use wsdrain_protocol::parse_notice;
/// assert_eq!(parse_notice(r#"{"type":"wsdrain.reconnect","close_in_ms":3000}"#), Some(3000));
/// assert_eq!(parse_notice(r#"{ "close_in_ms": 5, "type": "wsdrain.reconnect", "v": 2 }"#), Some(5));
/// assert_eq!(parse_notice(r#"{"type":"chat","close_in_ms":3000}"#), None);
/// assert_eq!(parse_notice("hello"), None);
/// ```
pub fn parse_notice(text: &str) -> Option<u64> {
    let body = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    if !body.contains(NOTICE_TYPE) {
        return None; // the cheap check first: most messages are not notices
    }
    let mut kind = None;
    let mut lead = None;
    for field in body.split(',') {
        let (key, value) = field.split_once(':')?;
        match key.trim() {
            "\"type\"" => kind = Some(value.trim()),
            "\"close_in_ms\"" => lead = value.trim().parse::<u64>().ok(),
            _ => {}
        }
    }
    (kind == Some("\"wsdrain.reconnect\""))
        .then_some(lead)
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for ms in [0, 1, 2500, u64::MAX] {
            assert_eq!(parse_notice(&encode_notice(ms)), Some(ms));
        }
    }

    #[test]
    fn other_messages_are_not_notices() {
        for text in [
            "",
            "{}",
            r#"{"type":"wsdrain.reconnect"}"#,
            r#"{"type":"wsdrain.reconnect","close_in_ms":-1}"#,
            r#"{"type":"wsdrain.reconnect","close_in_ms":"3000"}"#,
            r#"{"type":"wsdrain.reconnectx","close_in_ms":3000}"#,
            r#"["wsdrain.reconnect"]"#,
        ] {
            assert_eq!(parse_notice(text), None, "{text}");
        }
    }
}
