//! JSON request bodies flattened to arguments the way ModSecurity v2
//! (`msc_json.c` on top of yajl) names them:
//!
//! - top-level object members by their key: `{"a":1}` gives `a`;
//! - nested members joined with `.`: `{"a":{"b":1}}` gives `a.b`;
//! - array elements all take the array's name twice, once as the prefix
//!   and once as the key: `{"a":[1,2]}` gives `a.a` twice;
//! - a top-level array is named `array`: `[1]` gives `array.array`;
//! - a top-level scalar has the empty name;
//! - strings are unescaped, numbers kept as written, `true`/`false` as
//!   such, `null` as the empty value.
//!
//! The parser follows yajl's grammar (strict JSON: no comments, no trailing
//! commas, a single top-level value) and validates UTF-8 inside strings. It
//! is iterative, so deep nesting cannot exhaust the stack; ModSecurity's
//! depth limit (SecRequestBodyJsonDepthLimit) counts nested objects and all
//! arrays.

use thiserror::Error;

/// ModSecurity's default SecRequestBodyJsonDepthLimit.
pub const DEFAULT_DEPTH_LIMIT: usize = 10_000;

/// Why a body is not accepted.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum JsonError {
    #[error("JSON depth limit exceeded")]
    DepthLimit,
    /// More values than [`JsonConfig::max_args`] (SecArgumentsLimit).
    #[error("JSON arguments limit exceeded")]
    TooManyArgs,
    #[error("lexical error: {message} (at offset {offset})")]
    Lexical {
        message: &'static str,
        offset: usize,
    },
    #[error("parse error: {message} (at offset {offset})")]
    Parse {
        message: &'static str,
        offset: usize,
    },
}

/// Flattened (name, value) pairs, in document order.
pub type Args = Vec<(Vec<u8>, Vec<u8>)>;

/// Parses with the default depth limit.
pub fn parse(body: &[u8]) -> Result<Args, JsonError> {
    parse_with_limit(body, DEFAULT_DEPTH_LIMIT)
}

/// Parses with the given depth limit.
pub fn parse_with_limit(body: &[u8], depth_limit: usize) -> Result<Args, JsonError> {
    parse_with(
        body,
        &JsonConfig {
            depth_limit,
            max_args: None,
        },
    )
}

/// Processor settings.
#[derive(Debug, Clone, Copy)]
pub struct JsonConfig {
    /// SecRequestBodyJsonDepthLimit.
    pub depth_limit: usize,
    /// SecArgumentsLimit: more values than this is an error, as in
    /// ModSecurity (which aborts the parse). `None`: no limit.
    pub max_args: Option<usize>,
}

impl Default for JsonConfig {
    fn default() -> Self {
        JsonConfig {
            depth_limit: DEFAULT_DEPTH_LIMIT,
            max_args: None,
        }
    }
}

/// Parses with the given settings.
pub fn parse_with(body: &[u8], config: &JsonConfig) -> Result<Args, JsonError> {
    let mut out = Vec::new();
    parse_each(body, config, &mut |n, v| out.push((n.to_vec(), v.to_vec())))?;
    Ok(out)
}

/// Parses with the given settings, handing each (name, value) to `each` in
/// document order as it is found, from reused buffers (no allocation per
/// value). On an error some values may have been handed over already: the
/// caller keeps them only on `Ok`. Returns the number of values.
pub fn parse_each(
    body: &[u8],
    config: &JsonConfig,
    each: &mut dyn FnMut(&[u8], &[u8]),
) -> Result<usize, JsonError> {
    let mut names = Names {
        prefix: None,
        key: None,
        depth: 0,
        limit: config.depth_limit,
        max_args: config.max_args,
        count: 0,
        name: Vec::new(),
        base: None,
        each,
    };
    Lexer { s: body, pos: 0 }.run(&mut names)?;
    Ok(names.count)
}

/// ModSecurity's naming state (prefix and current key).
struct Names<'e> {
    prefix: Option<Vec<u8>>,
    key: Option<Vec<u8>>,
    depth: usize,
    limit: usize,
    max_args: Option<usize>,
    count: usize,
    /// The current value's full name (reused).
    name: Vec<u8>,
    /// How much of `name` is the prefix and its dot, while the prefix is
    /// unchanged (each value then writes only its key after it).
    base: Option<usize>,
    each: &'e mut dyn FnMut(&[u8], &[u8]),
}

impl Names<'_> {
    fn add(&mut self, value: &[u8]) -> Result<(), JsonError> {
        if self.max_args.is_some_and(|max| self.count >= max) {
            return Err(JsonError::TooManyArgs);
        }
        self.count += 1;
        let key = self.key.as_deref().unwrap_or_default();
        let base = match self.base {
            Some(b) => b,
            None => {
                self.name.clear();
                if let Some(p) = &self.prefix {
                    self.name.extend_from_slice(p);
                    self.name.push(b'.');
                }
                self.base = Some(self.name.len());
                self.name.len()
            }
        };
        self.name.truncate(base);
        self.name.extend_from_slice(key);
        (self.each)(&self.name, value);
        Ok(())
    }

    fn map_key(&mut self, key: Vec<u8>) {
        self.key = Some(key);
    }

    fn deeper(&mut self) -> Result<(), JsonError> {
        self.depth += 1;
        if self.depth > self.limit {
            return Err(JsonError::DepthLimit);
        }
        Ok(())
    }

    fn start_array(&mut self) -> Result<(), JsonError> {
        self.base = None;
        match (&mut self.prefix, &self.key) {
            (None, None) => {
                self.prefix = Some(b"array".to_vec());
                self.key = Some(b"array".to_vec());
            }
            (Some(p), k) => {
                p.push(b'.');
                p.extend_from_slice(k.as_deref().unwrap_or(b""));
            }
            (None, Some(k)) => self.prefix = Some(k.clone()),
        }
        self.deeper()
    }

    fn end_array(&mut self) {
        self.base = None;
        let Some(mut p) = self.prefix.take() else {
            return;
        };
        if let Some(dot) = p.iter().rposition(|&c| c == b'.') {
            p.truncate(dot);
            self.prefix = Some(p);
        }
        self.depth = self.depth.saturating_sub(1);
    }

    fn start_map(&mut self) -> Result<(), JsonError> {
        self.base = None;
        // The top-level object opens no context.
        let Some(k) = &self.key else {
            return Ok(());
        };
        match &mut self.prefix {
            Some(p) => {
                p.push(b'.');
                p.extend_from_slice(k);
            }
            None => self.prefix = Some(k.clone()),
        }
        self.deeper()
    }

    fn end_map(&mut self) {
        self.base = None;
        let Some(mut p) = self.prefix.take() else {
            return;
        };
        match p.iter().rposition(|&c| c == b'.') {
            Some(dot) => {
                // Into the key's buffer (no allocation per object closed).
                let mut k = self.key.take().unwrap_or_default();
                k.clear();
                k.extend_from_slice(&p[dot + 1..]);
                self.key = Some(k);
                p.truncate(dot);
                self.prefix = Some(p);
            }
            None => self.key = Some(p),
        }
        self.depth = self.depth.saturating_sub(1);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Frame {
    Array,
    Object,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// A value is required.
    Value,
    /// Just after `[`: a value or `]`.
    ArrayStart,
    /// Just after `{`: a key or `}`.
    ObjectStart,
    /// After `,` in an object: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After a value: `,`, a closing bracket, or the end.
    AfterValue,
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

fn lexical(message: &'static str, offset: usize) -> JsonError {
    JsonError::Lexical { message, offset }
}

fn parse_err(message: &'static str, offset: usize) -> JsonError {
    JsonError::Parse { message, offset }
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) = self.peek() {
            self.pos += 1;
        }
    }

    fn run(&mut self, names: &mut Names<'_>) -> Result<(), JsonError> {
        let mut stack: Vec<Frame> = Vec::new();
        // The current string value (reused).
        let mut text: Vec<u8> = Vec::new();
        let mut state = State::Value;
        loop {
            self.skip_ws();
            let Some(c) = self.peek() else {
                if state == State::AfterValue && stack.is_empty() {
                    return Ok(());
                }
                return Err(parse_err("premature EOF", self.pos));
            };
            match state {
                State::Value | State::ArrayStart => {
                    if state == State::ArrayStart && c == b']' {
                        self.pos += 1;
                        stack.pop();
                        names.end_array();
                        state = State::AfterValue;
                        continue;
                    }
                    match c {
                        b'{' => {
                            self.pos += 1;
                            names.start_map()?;
                            stack.push(Frame::Object);
                            state = State::ObjectStart;
                        }
                        b'[' => {
                            self.pos += 1;
                            names.start_array()?;
                            stack.push(Frame::Array);
                            state = State::ArrayStart;
                        }
                        b'"' => {
                            text.clear();
                            self.string_into(&mut text)?;
                            names.add(&text)?;
                            state = State::AfterValue;
                        }
                        b'-' | b'0'..=b'9' => {
                            let v = self.number()?;
                            names.add(v)?;
                            state = State::AfterValue;
                        }
                        b't' | b'f' | b'n' => {
                            let v: &[u8] = if self.s[self.pos..].starts_with(b"true") {
                                self.pos += 4;
                                b"true"
                            } else if self.s[self.pos..].starts_with(b"false") {
                                self.pos += 5;
                                b"false"
                            } else if self.s[self.pos..].starts_with(b"null") {
                                self.pos += 4;
                                b""
                            } else {
                                return Err(lexical("invalid string in json text", self.pos));
                            };
                            names.add(v)?;
                            state = State::AfterValue;
                        }
                        b']' | b'}' | b',' | b':' => {
                            return Err(parse_err(
                                "unallowed token at this point in JSON text",
                                self.pos,
                            ))
                        }
                        _ => return Err(lexical("invalid char in json text", self.pos)),
                    }
                }
                State::ObjectStart | State::Key => {
                    if state == State::ObjectStart && c == b'}' {
                        self.pos += 1;
                        stack.pop();
                        names.end_map();
                        state = State::AfterValue;
                    } else if c == b'"' {
                        let mut k = names.key.take().unwrap_or_default();
                        k.clear();
                        self.string_into(&mut k)?;
                        names.map_key(k);
                        state = State::Colon;
                    } else {
                        return Err(parse_err("invalid object key (must be a string)", self.pos));
                    }
                }
                State::Colon => {
                    if c != b':' {
                        return Err(parse_err(
                            "object key and value must be separated by a colon (':')",
                            self.pos,
                        ));
                    }
                    self.pos += 1;
                    state = State::Value;
                }
                State::AfterValue => {
                    let Some(&top) = stack.last() else {
                        return Err(parse_err("trailing garbage", self.pos));
                    };
                    self.pos += 1;
                    match (top, c) {
                        (Frame::Array, b',') => state = State::Value,
                        (Frame::Array, b']') => {
                            stack.pop();
                            names.end_array();
                        }
                        (Frame::Object, b',') => state = State::Key,
                        (Frame::Object, b'}') => {
                            stack.pop();
                            names.end_map();
                        }
                        (Frame::Array, _) => {
                            return Err(parse_err(
                                "after array element, I expect ',' or ']'",
                                self.pos - 1,
                            ))
                        }
                        (Frame::Object, _) => {
                            return Err(parse_err(
                                "after key and value, inside map, I expect ',' or '}'",
                                self.pos - 1,
                            ))
                        }
                    }
                }
            }
        }
    }

    fn number(&mut self) -> Result<&[u8], JsonError> {
        let start = self.pos;
        let digits = |l: &mut Self| {
            let from = l.pos;
            while let Some(b'0'..=b'9') = l.peek() {
                l.pos += 1;
            }
            l.pos > from
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => {
                return Err(lexical(
                    "malformed number, a digit is required after the minus sign",
                    self.pos,
                ))
            }
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !digits(self) {
                return Err(lexical(
                    "malformed number, a digit is required after the decimal point",
                    self.pos,
                ));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !digits(self) {
                return Err(lexical(
                    "malformed number, a digit is required after the exponent",
                    self.pos,
                ));
            }
        }
        Ok(&self.s[start..self.pos])
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let h = self.s.get(at..at + 4)?;
        let mut v = 0u32;
        for &c in h {
            v = v << 4 | (c as char).to_digit(16)?;
        }
        Some(v)
    }

    /// A string at `"`, unescaped, appended to `out`.
    fn string_into(&mut self, out: &mut Vec<u8>) -> Result<(), JsonError> {
        self.pos += 1;
        loop {
            let Some(c) = self.peek() else {
                return Err(parse_err("premature EOF", self.pos));
            };
            match c {
                b'"' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'\\' => {
                    let e = self.s.get(self.pos + 1).copied();
                    self.pos += 2;
                    match e {
                        Some(b'"') => out.push(b'"'),
                        Some(b'\\') => out.push(b'\\'),
                        Some(b'/') => out.push(b'/'),
                        Some(b'b') => out.push(0x08),
                        Some(b'f') => out.push(0x0c),
                        Some(b'n') => out.push(b'\n'),
                        Some(b'r') => out.push(b'\r'),
                        Some(b't') => out.push(b'\t'),
                        Some(b'u') => self.unicode_escape(out)?,
                        None => return Err(parse_err("premature EOF", self.pos)),
                        Some(_) => {
                            return Err(lexical(
                                "inside a string, '\\' occurs before a character which it may not",
                                self.pos - 1,
                            ))
                        }
                    }
                }
                0..=0x1f => {
                    return Err(lexical("invalid character inside string", self.pos));
                }
                0x80.. => {
                    let n = utf8_len(&self.s[self.pos..])
                        .ok_or_else(|| lexical("invalid bytes in UTF8 string", self.pos))?;
                    out.extend_from_slice(&self.s[self.pos..self.pos + n]);
                    self.pos += n;
                }
                _ => {
                    // A run of plain ASCII is copied at once.
                    let rest = &self.s[self.pos..];
                    let n = rest
                        .iter()
                        .position(|&b| matches!(b, b'"' | b'\\' | 0..=0x1f | 0x80..))
                        .unwrap_or(rest.len());
                    out.extend_from_slice(&rest[..n]);
                    self.pos += n;
                }
            }
        }
    }

    /// `\uXXXX` (self.pos just after the `u`), decoded as yajl does: a
    /// high surrogate takes the following `\uXXXX` as its pair, or becomes
    /// `?` when none follows.
    fn unicode_escape(&mut self, out: &mut Vec<u8>) -> Result<(), JsonError> {
        let bad = "invalid (non-hex) character occurs after '\\u' inside string";
        let mut cp = self.hex4(self.pos).ok_or_else(|| lexical(bad, self.pos))?;
        self.pos += 4;
        if cp & 0xFC00 == 0xD800 {
            if self.s.get(self.pos..self.pos + 2) == Some(b"\\u") {
                let low = self
                    .hex4(self.pos + 2)
                    .ok_or_else(|| lexical(bad, self.pos + 2))?;
                self.pos += 6;
                cp = (((cp & 0x3F) << 10) | ((((cp >> 6) & 0xF) + 1) << 16)) | (low & 0x3FF);
            } else {
                out.push(b'?');
                return Ok(());
            }
        }
        push_utf8(cp, out);
        Ok(())
    }
}

/// Length of the UTF-8 sequence at the start of `s` (lead and continuation
/// bytes checked, as yajl does), `None` if invalid.
fn utf8_len(s: &[u8]) -> Option<usize> {
    let n = match s.first()? {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => return None,
    };
    let tail = s.get(1..n)?;
    tail.iter().all(|&c| c & 0xc0 == 0x80).then_some(n)
}

/// UTF-8 bytes of a code point (surrogates included, as yajl writes them).
fn push_utf8(cp: u32, out: &mut Vec<u8>) {
    if cp < 0x80 {
        out.push(cp as u8);
    } else if cp < 0x800 {
        out.push(0xc0 | (cp >> 6) as u8);
        out.push(0x80 | (cp & 0x3f) as u8);
    } else if cp < 0x10000 {
        out.push(0xe0 | (cp >> 12) as u8);
        out.push(0x80 | ((cp >> 6) & 0x3f) as u8);
        out.push(0x80 | (cp & 0x3f) as u8);
    } else if cp < 0x200000 {
        out.push(0xf0 | (cp >> 18) as u8);
        out.push(0x80 | ((cp >> 12) & 0x3f) as u8);
        out.push(0x80 | ((cp >> 6) & 0x3f) as u8);
        out.push(0x80 | (cp & 0x3f) as u8);
    } else {
        out.push(b'?');
    }
}
