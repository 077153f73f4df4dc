//! A strict JSON scanner (RFC 8259), just enough to read the members of one
//! top-level object: it decodes keys and string values, hands out numbers as
//! their text, and checks everything else without building it.
//!
//! It accepts exactly what JavaScript's `JSON.parse` accepts, lone surrogates
//! in `\u` escapes included, so the Rust and the browser client recognise the
//! same messages. `tests/properties.rs` and the `parse_notice` fuzz target check
//! it against serde_json. No recursion: nesting depth costs one byte of stack
//! per level, on the heap.

/// A member's value, as much of it as a reader of the notice needs.
pub(crate) enum Value<'a> {
    /// A string, decoded into the buffer passed to [`Scanner::member`].
    String,
    /// A number, as written (valid JSON number syntax).
    Number(&'a str),
    /// An object, an array, `true`, `false` or `null`, checked and skipped.
    Other,
}

/// A cursor over one JSON text.
pub(crate) struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Scanner { text, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.peek() == Some(byte);
        self.pos += usize::from(hit);
        hit
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    /// Skips JSON whitespace: space, tab, LF, CR (not every Unicode space).
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Opens the top-level object: `Some(true)` when it has members.
    pub(crate) fn open_object(&mut self) -> Option<bool> {
        self.ws();
        self.expect(b'{')?;
        self.ws();
        Some(!self.eat(b'}'))
    }

    /// One member of the top-level object: its key (decoded into `key`) and
    /// value (a string is decoded into `string`); then whether another
    /// member follows. `None` when the text is not valid JSON there.
    pub(crate) fn member(
        &mut self,
        key: &mut String,
        string: &mut String,
    ) -> Option<(Value<'a>, bool)> {
        self.ws();
        self.string(Some(key))?;
        self.ws();
        self.expect(b':')?;
        self.ws();
        let value = match self.peek()? {
            b'"' => {
                self.string(Some(string))?;
                Value::String
            }
            b'-' | b'0'..=b'9' => Value::Number(self.number()?),
            _ => {
                self.skip_value()?;
                Value::Other
            }
        };
        self.ws();
        if self.eat(b',') {
            return Some((value, true));
        }
        self.expect(b'}')?;
        Some((value, false))
    }

    /// After the top-level value: only whitespace may follow.
    pub(crate) fn end(mut self) -> Option<()> {
        self.ws();
        (self.pos == self.text.len()).then_some(())
    }

    /// A string at the cursor; decoded into `out` (cleared first) if given.
    /// Lone surrogates decode to U+FFFD, which equals no key we look for.
    fn string(&mut self, mut out: Option<&mut String>) -> Option<()> {
        self.expect(b'"')?;
        if let Some(out) = out.as_deref_mut() {
            out.clear();
        }
        loop {
            let rest = self.text.get(self.pos..)?;
            // Plain text up to the next quote, backslash or control character.
            let run = rest
                .bytes()
                .position(|b| b == b'"' || b == b'\\' || b < 0x20)?;
            if let Some(out) = out.as_deref_mut() {
                out.push_str(rest.get(..run)?);
            }
            self.pos += run;
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Some(());
                }
                b'\\' => {
                    self.pos += 1;
                    let decoded = self.escape()?;
                    if let Some(out) = out.as_deref_mut() {
                        out.push(decoded);
                    }
                }
                // An unescaped control character: not JSON.
                _ => return None,
            }
        }
    }

    /// The escape after a backslash.
    fn escape(&mut self) -> Option<char> {
        let c = match self.peek()? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                self.pos += 1;
                let unit = self.hex4()?;
                return Some(self.utf16(unit));
            }
            _ => return None,
        };
        self.pos += 1;
        Some(c)
    }

    /// A UTF-16 unit from `\uXXXX`, paired with a following low surrogate
    /// escape when it is a high one.
    fn utf16(&mut self, unit: u16) -> char {
        if (0xD800..0xDC00).contains(&unit) {
            let rest = self.text.as_bytes().get(self.pos..).unwrap_or_default();
            if rest.starts_with(b"\\u") {
                let save = self.pos;
                self.pos += 2;
                if let Some(low @ 0xDC00..=0xDFFF) = self.hex4() {
                    let c =
                        0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                    return char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER);
                }
                // Not a low surrogate: leave it to be read as its own escape.
                self.pos = save;
            }
        }
        char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER)
    }

    fn hex4(&mut self) -> Option<u16> {
        let digits = self.text.get(self.pos..self.pos + 4)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.pos += 4;
        u16::from_str_radix(digits, 16).ok()
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, as written.
    fn number(&mut self) -> Option<&'a str> {
        let start = self.pos;
        self.eat(b'-');
        if !self.eat(b'0') {
            if !matches!(self.peek(), Some(b'1'..=b'9')) {
                return None;
            }
            self.digits();
        }
        if self.eat(b'.') && self.digits() == 0 {
            return None;
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return None;
            }
        }
        self.text.get(start..self.pos)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let rest = self.text.get(self.pos..)?;
        rest.starts_with(word).then(|| self.pos += word.len())
    }

    /// Checks and skips one value of any kind, without recursion: `open`
    /// holds the closing bracket of each container the cursor is inside.
    fn skip_value(&mut self) -> Option<()> {
        let mut open: Vec<u8> = Vec::new();
        loop {
            self.ws();
            match self.peek()? {
                b'{' => {
                    self.pos += 1;
                    self.ws();
                    if !self.eat(b'}') {
                        open.push(b'}');
                        self.key()?;
                        continue;
                    }
                }
                b'[' => {
                    self.pos += 1;
                    self.ws();
                    if !self.eat(b']') {
                        open.push(b']');
                        continue;
                    }
                }
                b'"' => self.string(None)?,
                b't' => self.literal("true")?,
                b'f' => self.literal("false")?,
                b'n' => self.literal("null")?,
                b'-' | b'0'..=b'9' => {
                    self.number()?;
                }
                _ => return None,
            }
            // A value is complete: close what it completes, or go on after a comma.
            loop {
                let Some(&close) = open.last() else {
                    return Some(());
                };
                self.ws();
                if self.eat(b',') {
                    if close == b'}' {
                        self.key()?;
                    }
                    break;
                }
                self.expect(close)?;
                open.pop();
            }
        }
    }

    /// A key and its colon, inside a skipped object.
    fn key(&mut self) -> Option<()> {
        self.ws();
        self.string(None)?;
        self.ws();
        self.expect(b':')
    }
}
