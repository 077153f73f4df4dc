//! Just enough JSON to read a control: one object whose values we need are
//! strings and non-negative integers; any other value is skipped, so
//! controls can grow.

/// A value of the object's top level.
#[derive(Debug, PartialEq)]
pub(crate) enum Value {
    Str(String),
    UInt(u64),
    /// Anything else (negative or fractional numbers, booleans, null,
    /// arrays, objects): skipped.
    Other,
}

/// Nesting deeper than this is refused, so hostile input cannot exhaust
/// the stack.
const MAX_DEPTH: usize = 32;

struct Parser<'a> {
    b: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self
            .b
            .get(self.at)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.at) == Some(&c)).then(|| self.at += 1)
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.at).copied()
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.at..self.at + 4)?;
        self.at += 4;
        let s = std::str::from_utf8(digits).ok()?;
        u32::from_str_radix(s, 16).ok()
    }

    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let mut out = String::new();
        loop {
            let start = self.at;
            while self
                .b
                .get(self.at)
                .is_some_and(|c| *c != b'"' && *c != b'\\' && *c >= 0x20)
            {
                self.at += 1;
            }
            out.push_str(std::str::from_utf8(&self.b[start..self.at]).ok()?);
            match *self.b.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return Some(out);
                }
                b'\\' => {
                    self.at += 1;
                    let c = *self.b.get(self.at)?;
                    self.at += 1;
                    let ch = match c {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                // A surrogate pair: `\uD83D\uDE80`.
                                if self.b.get(self.at..self.at + 2) != Some(b"\\u") {
                                    return None;
                                }
                                self.at += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return None;
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            char::from_u32(code)?
                        }
                        _ => return None,
                    };
                    out.push(ch);
                }
                _ => return None, // a control character
            }
        }
    }

    fn number(&mut self) -> Option<Value> {
        let start = self.at;
        while self
            .b
            .get(self.at)
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
        {
            self.at += 1;
        }
        let text = &self.b[start..self.at];
        if text.is_empty() {
            return None;
        }
        if text.iter().all(u8::is_ascii_digit) && (text.len() == 1 || text[0] != b'0') {
            if let Some(n) = crate::hint::parse_digits(text) {
                return Some(Value::UInt(n));
            }
        }
        let s = std::str::from_utf8(text).ok()?;
        s.parse::<f64>().ok().map(|_| Value::Other)
    }

    fn literal(&mut self, word: &[u8]) -> Option<Value> {
        (self.b.get(self.at..self.at + word.len()) == Some(word)).then(|| {
            self.at += word.len();
            Value::Other
        })
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(Value::Str),
            b'{' => {
                self.members(depth + 1, |_, _| {})?;
                Some(Value::Other)
            }
            b'[' => {
                self.at += 1;
                if self.eat(b']').is_none() {
                    loop {
                        self.value(depth + 1)?;
                        if self.eat(b',').is_none() {
                            self.eat(b']')?;
                            break;
                        }
                    }
                }
                Some(Value::Other)
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }

    fn members(&mut self, depth: usize, mut each: impl FnMut(String, Value)) -> Option<()> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            let key = self.string()?;
            self.eat(b':')?;
            let value = self.value(depth)?;
            each(key, value);
            if self.eat(b',').is_none() {
                return self.eat(b'}');
            }
        }
    }
}

/// The members of a JSON object, in order; `None` if `text` is not one
/// JSON object.
pub(crate) fn object(text: &str) -> Option<Vec<(String, Value)>> {
    let mut p = Parser {
        b: text.as_bytes(),
        at: 0,
    };
    let mut members = Vec::new();
    p.members(1, |k, v| members.push((k, v)))?;
    p.ws();
    (p.at == p.b.len()).then_some(members)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_objects() {
        let m = object(r#" { "a" : "x\"\\\/\n\u00e9\ud83d\ude80" , "b":0, "c":18446744073709551615, "d":-1, "e":1.5, "f":[1,{"g":[]}], "h":true, "i":null, "j":{} } "#).unwrap();
        assert_eq!(m[0], ("a".into(), Value::Str("x\"\\/\né🚀".into())));
        assert_eq!(m[1].1, Value::UInt(0));
        assert_eq!(m[2].1, Value::UInt(u64::MAX));
        assert!(m[3..].iter().all(|(_, v)| *v == Value::Other));
        assert_eq!(object("{}").unwrap(), vec![]);
        // Too large for a u64, a leading zero: skipped, not ours.
        assert_eq!(
            object(r#"{"a":18446744073709551616}"#).unwrap()[0].1,
            Value::Other
        );
        assert_eq!(object(r#"{"a":007}"#).unwrap()[0].1, Value::Other);
    }

    #[test]
    fn refuses_the_rest() {
        for bad in [
            "",
            "[]",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{a:1}",
            "{\"a\":1} x",
            "{\"a\":\"\u{1}\"}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\ud83d\"}",
            "{\"a\":tru}",
        ] {
            assert_eq!(object(bad), None, "{bad:?}");
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(40), "]".repeat(40));
        assert_eq!(object(&deep), None);
    }
}
