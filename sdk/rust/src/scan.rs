//! A minimal JSON scanner for the request envelope, the hot path of every SDK worker.
//!
//! A worker is a fresh instance per request, so nothing is warm: serde_json's generic machinery
//! costs about 200 wasm instructions per token, more than the rest of a hello worker together.
//! This scanner reads only what the envelope contains (objects, strings, arrays of strings,
//! booleans) and gives up (`None`) on anything else: numbers, `null`, unknown fields, invalid
//! escapes. The caller then parses the same bytes with serde_json, which stays the reference
//! for what is accepted and for error messages.

use std::borrow::Cow;

/// A cursor over the input bytes.
pub(crate) struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    /// Starts at the first byte of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next non-whitespace byte, not consumed.
    pub fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes.get(self.pos).copied()
    }

    /// Consumes `byte` (after whitespace) or fails.
    pub fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// True at the end of the input (trailing whitespace allowed).
    pub fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// Iterates an object's members: call with `first = true` right after `{`; returns the
    /// next key with the `:` consumed, or `None` after the closing `}` (`Some(Err)` on bad
    /// syntax, so callers can tell "done" from "give up").
    pub fn next_key(&mut self, first: bool) -> Option<Result<Cow<'a, str>, ()>> {
        match self.peek() {
            Some(b'}') => {
                self.pos += 1;
                return None;
            }
            Some(b',') if !first => self.pos += 1,
            Some(b'"') if first => {}
            _ => return Some(Err(())),
        }
        let key = self.string();
        Some(match (key, self.eat(b':')) {
            (Some(key), Some(())) => Ok(key),
            _ => Err(()),
        })
    }

    /// Iterates an array of strings the same way: call with `first = true` right after `[`.
    pub fn next_string(&mut self, first: bool) -> Option<Result<Cow<'a, str>, ()>> {
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                return None;
            }
            Some(b',') if !first => self.pos += 1,
            Some(b'"') if first => {}
            _ => return Some(Err(())),
        }
        Some(self.string().ok_or(()))
    }

    /// A JSON boolean.
    pub fn boolean(&mut self) -> Option<bool> {
        self.skip_whitespace();
        let rest = self.bytes.get(self.pos..)?;
        if rest.starts_with(b"true") {
            self.pos += 4;
            Some(true)
        } else if rest.starts_with(b"false") {
            self.pos += 5;
            Some(false)
        } else {
            None
        }
    }

    /// A JSON string, borrowed when it has no escapes.
    pub fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.pos;
        loop {
            match *self.bytes.get(self.pos)? {
                b'"' => {
                    let text = std::str::from_utf8(&self.bytes[start..self.pos]).ok()?;
                    self.pos += 1;
                    return Some(Cow::Borrowed(text));
                }
                b'\\' => break,
                byte if byte < 0x20 => return None,
                _ => self.pos += 1,
            }
        }
        let mut out = self.bytes[start..self.pos].to_vec();
        loop {
            match *self.bytes.get(self.pos)? {
                b'"' => {
                    self.pos += 1;
                    return String::from_utf8(out).ok().map(Cow::Owned);
                }
                b'\\' => {
                    let escape = *self.bytes.get(self.pos + 1)?;
                    self.pos += 2;
                    match escape {
                        b'"' | b'\\' | b'/' => out.push(escape),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let c = self.unicode_escape()?;
                            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                        }
                        _ => return None,
                    }
                }
                byte if byte < 0x20 => return None,
                byte => {
                    out.push(byte);
                    self.pos += 1;
                }
            }
        }
    }

    /// The character of a `\uXXXX` escape (the `\u` already consumed), joining surrogate
    /// pairs; a lone surrogate gives up.
    fn unicode_escape(&mut self) -> Option<char> {
        let first = self.hex4()?;
        if !(0xD800..0xDC00).contains(&first) {
            return char::from_u32(first);
        }
        if self.bytes.get(self.pos..self.pos + 2)? != b"\\u" {
            return None;
        }
        self.pos += 2;
        let second = self.hex4()?;
        if !(0xDC00..0xE000).contains(&second) {
            return None;
        }
        char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.bytes.get(self.pos..self.pos + 4)?;
        let mut value = 0;
        for digit in digits {
            value = value * 16 + (*digit as char).to_digit(16)?;
        }
        self.pos += 4;
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(json: &str) -> Option<String> {
        let mut scanner = Scanner::new(json.as_bytes());
        let s = scanner.string()?.into_owned();
        scanner.at_end().then_some(s)
    }

    #[test]
    fn strings_match_serde_json() {
        for json in [
            r#""plain""#,
            r#""""#,
            r#""caf\u00e9 \"q\" \\ \/ \b\f\n\r\t""#,
            r#""\ud83d\ude00 smile""#,
            "\"raw é ü 😀\"",
        ] {
            let expected: String = serde_json::from_str(json).expect("valid JSON string");
            assert_eq!(string(json), Some(expected), "{json}");
        }
    }

    #[test]
    fn gives_up_on_what_serde_json_rejects() {
        for json in [
            r#""unterminated"#,
            "\"control \u{1} char\"",
            r#""bad \x escape""#,
            r#""lone \ud83d surrogate""#,
            r#""bad \u12 hex""#,
            r#""\udc00 low first""#,
        ] {
            assert!(
                serde_json::from_str::<String>(json).is_err(),
                "serde accepts {json}"
            );
            assert_eq!(string(json), None, "{json}");
        }
    }

    #[test]
    fn objects_and_arrays_iterate() {
        let mut scanner = Scanner::new(br#" { "a" : [ "x" , "y" ] , "b":true } "#);
        scanner.eat(b'{').expect("object");
        let key = scanner.next_key(true).expect("a member").expect("valid");
        assert_eq!(key, "a");
        scanner.eat(b'[').expect("array");
        let mut items = Vec::new();
        let mut first = true;
        while let Some(item) = scanner.next_string(first) {
            items.push(item.expect("valid").into_owned());
            first = false;
        }
        assert_eq!(items, ["x", "y"]);
        assert_eq!(scanner.next_key(false).expect("b").expect("valid"), "b");
        assert_eq!(scanner.boolean(), Some(true));
        assert!(scanner.next_key(false).is_none());
        assert!(scanner.at_end());
    }

    #[test]
    fn trailing_commas_are_errors() {
        let mut scanner = Scanner::new(br#"{"a":"x",}"#);
        scanner.eat(b'{').expect("object");
        assert!(scanner.next_key(true).expect("a").is_ok());
        assert_eq!(scanner.string().as_deref(), Some("x"));
        assert!(matches!(scanner.next_key(false), Some(Err(()))));
    }
}
