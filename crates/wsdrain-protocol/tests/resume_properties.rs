//! Property tests of the resume protocol's wire format.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use wsdrain_protocol::resume::{
    Control, Frame, Position, ResyncReason, encode_point, parse_frame, parse_point,
    point_from_query, write_message_header,
};

fn stream() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.:/-]{1,128}"
}

fn epoch() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{1,32}"
}

fn seq() -> impl Strategy<Value = u64> {
    prop_oneof![any::<u64>(), 0u64..100, Just(u64::MAX)]
}

fn point() -> impl Strategy<Value = Vec<Position>> {
    prop::collection::btree_map(stream(), (epoch(), seq()), 0..64).prop_map(|m| {
        m.into_iter()
            .map(|(s, (e, n))| Position::new(s, e, n).unwrap())
            .collect()
    })
}

fn position() -> impl Strategy<Value = Position> {
    (stream(), epoch(), seq()).prop_map(|(s, e, n)| Position::new(s, e, n).unwrap())
}

fn reason() -> impl Strategy<Value = ResyncReason> {
    prop_oneof![
        Just(ResyncReason::Expired),
        Just(ResyncReason::Epoch),
        Just(ResyncReason::Unknown),
        Just(ResyncReason::Unavailable),
    ]
}

fn control() -> impl Strategy<Value = Control> {
    prop_oneof![
        position().prop_map(Control::Follow),
        position().prop_map(Control::Resumed),
        (position(), reason()).prop_map(|(a, r)| Control::Resync(a, r)),
        // The notice carries at most MAX_NOTICE_LEAD_MS (what JSON.parse reads exactly).
        (0..=wsdrain_protocol::MAX_NOTICE_LEAD_MS)
            .prop_map(|close_in_ms| Control::Reconnect { close_in_ms }),
    ]
}

/// `control`'s members as another encoder may write them: shuffled, with
/// spaces, `/` escaped, and unknown keys of every JSON kind.
fn rewrite(control: &Control, order: &[usize], pad: &str, extra: &[&str]) -> String {
    let mut members: Vec<String> = vec![format!("\"type\"{pad}:{pad}\"{}\"", control.kind())];
    if let Some(a) = control.position() {
        members.push(format!("\"stream\":\"{}\"", a.stream().replace('/', "\\/")));
        members.push(format!("\"epoch\":{pad}\"{}\"", a.epoch()));
        members.push(format!("\"after\":{}", a.seq()));
    }
    match control {
        Control::Resync(_, r) => members.push(format!("\"reason\":\"{r}\"")),
        Control::Reconnect { close_in_ms } => {
            members.push(format!("\"close_in_ms\":{close_in_ms}"));
        }
        _ => {}
    }
    members.extend(extra.iter().map(|e| (*e).to_owned()));
    let mut shuffled = Vec::new();
    let mut rest = members;
    for &i in order {
        if rest.is_empty() {
            break;
        }
        shuffled.push(rest.remove(i % rest.len()));
    }
    shuffled.extend(rest);
    format!(
        "{pad}{{{pad}{}{pad}}}{pad}",
        shuffled.join(&format!("{pad},{pad}"))
    )
}

proptest! {
    #[test]
    fn point_round_trips(point in point()) {
        let value = encode_point(&point);
        prop_assert_eq!(parse_point(&value).unwrap(), point.clone());
        let query = format!("a=1&wsdrain-resume={value}&b");
        prop_assert_eq!(point_from_query(&query).unwrap(), Some(point.clone()));
        // Clients may percent-encode every byte; the server decodes.
        let encoded: String = value.bytes().map(|b| format!("%{b:02X}")).collect();
        let query = format!("wsdrain-resume={encoded}");
        prop_assert_eq!(point_from_query(&query).unwrap(), Some(point));
    }

    #[test]
    fn point_parsing_never_panics(s in any::<String>(), t in "[a-z@.,%0-9A-F&=/-]{0,200}") {
        let _ = parse_point(&s);
        let _ = point_from_query(&s);
        let _ = point_from_query(&format!("wsdrain-resume={t}"));
    }

    #[test]
    fn messages_round_trip(stream in stream(), seq in seq(), payload in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut frame = Vec::new();
        write_message_header(&mut frame, &stream, seq);
        frame.extend_from_slice(&payload);
        prop_assert_eq!(
            parse_frame(&frame).unwrap(),
            Frame::Message { stream: &stream, seq, payload: &payload }
        );
    }

    #[test]
    fn plain_frames_carry_anything(payload in prop::collection::vec(any::<u8>(), 0..300)) {
        let frame = [b"p\n".as_slice(), &payload].concat();
        prop_assert_eq!(parse_frame(&frame).unwrap(), Frame::Plain(&payload));
    }

    #[test]
    fn controls_round_trip(control in control()) {
        let text = control.to_frame();
        prop_assert_eq!(parse_frame(text.as_bytes()).unwrap(), Frame::Control(control));
    }

    #[test]
    fn controls_read_in_any_shape(
        control in control(),
        order in prop::collection::vec(any::<usize>(), 0..8),
        pad in prop_oneof![Just(""), Just(" "), Just("\n\t ")],
        extra in prop::sample::subsequence(
            vec![r#""v":2"#, r#""x":[1,{"y":null}]"#, r#""z":-1.5e3"#, r#""w":true"#, r#""u":"\u00e9""#],
            0..5,
        ),
    ) {
        let json = rewrite(&control, &order, pad, &extra);
        prop_assert_eq!(Control::parse(&json).unwrap(), control);
    }

    #[test]
    fn frame_parsing_never_panics(b in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_frame(&b);
        let with_control = [b"c\n".as_slice(), &b].concat();
        let _ = parse_frame(&with_control);
    }
}
