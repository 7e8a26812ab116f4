//! `multipart/form-data` parsing with the semantics (and the strictness
//! flags) of ModSecurity v2's multipart processor.
//!
//! The body is scanned as ModSecurity does: in lines of at most
//! [`BUF_SIZE`] bytes; a line that starts with `--` and the boundary is a
//! boundary line, which must end right after the boundary (or after the
//! final `--`) with CRLF or LF. The line ending in front of a boundary
//! belongs to the boundary, not to the part's data. Anything odd sets one of
//! the [`Flags`] or, when ModSecurity would stop processing, returns a
//! [`MultipartError`] (which still carries the flags seen so far).

use thiserror::Error;

/// The line buffer size of ModSecurity's multipart parser: part header lines
/// must be shorter than this.
pub const BUF_SIZE: usize = 4096;

/// Longest `Content-Type` value accepted.
const MAX_CONTENT_TYPE: usize = 1024;

/// The MULTIPART_* flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// `boundary="..."` in the Content-Type.
    pub boundary_quoted: bool,
    /// Whitespace around `=` of the boundary parameter.
    pub boundary_whitespace: bool,
    /// Data in front of the first boundary.
    pub data_before: bool,
    /// Data after the final boundary.
    pub data_after: bool,
    /// A folded part header.
    pub header_folding: bool,
    /// Some boundary or header line ends with CRLF.
    pub crlf_line: bool,
    /// Some boundary or header line ends with a bare LF.
    pub lf_line: bool,
    /// Both CRLF and LF line endings were seen.
    pub crlf_lf_lines: bool,
    /// No `;` between the MIME type and the boundary parameter.
    pub missing_semicolon: bool,
    /// A part ended before its headers did (no name).
    pub invalid_part: bool,
    /// Single quotes in a Content-Disposition parameter or a stray quote.
    pub invalid_quoting: bool,
    /// Header folding with whitespace other than SP / HTAB.
    pub invalid_header_folding: bool,
    /// More file parts than [`MultipartConfig::file_limit`].
    pub file_limit_exceeded: bool,
    /// A line looks like a boundary but is not ours.
    pub unmatched_boundary: bool,
}

impl Flags {
    /// MULTIPART_STRICT_ERROR, without the processor error (which the caller
    /// knows from the `Result`).
    pub fn strict_error(&self) -> bool {
        self.boundary_quoted
            || self.boundary_whitespace
            || self.data_before
            || self.data_after
            || self.header_folding
            || self.lf_line
            || self.missing_semicolon
            || self.invalid_quoting
            || self.invalid_part
            || self.invalid_header_folding
            || self.file_limit_exceeded
    }
}

/// Processor settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct MultipartConfig {
    /// SecUploadFileLimit: file parts with data beyond this many set
    /// `file_limit_exceeded`. `None`: no limit (ModSecurity only applies the
    /// limit when it extracts files to disk).
    pub file_limit: Option<usize>,
}

/// Whether a part is a form field or an uploaded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    FormData,
    File,
}

/// One complete part (a part with a name; nameless parts are dropped and
/// flagged as `invalid_part`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub kind: PartKind,
    /// Content-Disposition `name`.
    pub name: Vec<u8>,
    /// Content-Disposition `filename` (or the decoded `filename*`).
    pub filename: Option<Vec<u8>>,
    /// The part headers in order, values with leading blanks and the line
    /// ending removed (folded lines joined with a space).
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The value of a form field, the content of a file.
    pub data: Vec<u8>,
}

impl Part {
    /// A part header by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
    }

    /// The part's Content-Type header.
    pub fn content_type(&self) -> Option<&[u8]> {
        self.header("content-type")
    }

    /// Size of the data.
    pub fn size(&self) -> usize {
        self.data.len()
    }

    /// The header lines as `Name: value`, as MULTIPART_PART_HEADERS shows
    /// them.
    pub fn header_lines(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.headers.iter().map(|(n, v)| {
            let mut line = Vec::with_capacity(n.len() + 2 + v.len());
            line.extend_from_slice(n);
            line.extend_from_slice(b": ");
            line.extend_from_slice(v);
            line
        })
    }
}

/// A parsed multipart body.
#[derive(Debug, Clone, Default)]
pub struct Multipart {
    /// The boundary from the Content-Type (unquoted).
    pub boundary: Vec<u8>,
    pub parts: Vec<Part>,
    pub flags: Flags,
    /// The last Content-Disposition `name` seen (MULTIPART_NAME).
    pub last_name: Option<Vec<u8>>,
    /// The last Content-Disposition `filename` seen (MULTIPART_FILENAME).
    pub last_filename: Option<Vec<u8>>,
}

impl Multipart {
    /// Form fields as (name, value): the body ARGS.
    pub fn args(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.parts
            .iter()
            .filter(|p| p.kind == PartKind::FormData)
            .map(|p| (p.name.as_slice(), p.data.as_slice()))
    }

    /// File parts.
    pub fn files(&self) -> impl Iterator<Item = &Part> {
        self.parts.iter().filter(|p| p.kind == PartKind::File)
    }

    /// MULTIPART_PART_HEADERS: (part name, `Header: value`) for every header
    /// line of every part.
    pub fn part_headers(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.parts
            .iter()
            .flat_map(|p| p.header_lines().map(move |l| (p.name.clone(), l)))
            .collect()
    }
}

/// Why the processor stopped; `flags` holds what was seen until then.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{message}")]
pub struct MultipartError {
    pub message: String,
    pub flags: Flags,
}

/// Parses `body` with the boundary of `content_type` and default settings.
pub fn parse(content_type: &[u8], body: &[u8]) -> Result<Multipart, MultipartError> {
    parse_with(content_type, body, &MultipartConfig::default())
}

/// Parses `body` with the boundary of `content_type`.
pub fn parse_with(
    content_type: &[u8],
    body: &[u8],
    config: &MultipartConfig,
) -> Result<Multipart, MultipartError> {
    let mut flags = Flags::default();
    let boundary = match parse_boundary(content_type, &mut flags) {
        Ok(b) => b,
        Err(message) => return Err(MultipartError { message, flags }),
    };
    let mut p = Parser {
        finder: Finder::new([&b"--"[..], &boundary].concat()),
        boundary,
        flags,
        config: *config,
        parts: Vec::new(),
        current: None,
        reserve: Vec::new(),
        is_complete: false,
        boundary_count: 0,
        files_counted: 0,
        last_name: None,
        last_filename: None,
    };
    match p.run(body) {
        Ok(()) => Ok(Multipart {
            boundary: p.boundary,
            parts: p.parts,
            flags: p.flags,
            last_name: p.last_name,
            last_filename: p.last_filename,
        }),
        Err(message) => Err(MultipartError {
            message,
            flags: p.flags,
        }),
    }
}

/// C `isspace`.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Bytes for an error message: printable ASCII as is, the rest `\xHH`.
fn escape(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s {
        if (0x20..0x7f).contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("\\x{c:02x}"));
        }
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// How often `boundary` followed (anywhere later) by `=` occurs,
/// case-insensitively.
fn count_boundary_params(s: &[u8]) -> usize {
    let lower = s.to_ascii_lowercase();
    let mut count = 0;
    let mut at = 0;
    while let Some(i) = find(&lower[at..], b"boundary") {
        at += i + 8;
        if lower[at..].contains(&b'=') {
            count += 1;
        }
    }
    count
}

/// Boundary characters: token characters, plus space.
fn boundary_chars_valid(b: &[u8]) -> bool {
    b.iter().all(|&c| c == b' ' || is_token_char(c))
}

/// RFC 2616 token characters.
fn is_token_char(c: u8) -> bool {
    c > 32
        && c < 127
        && !matches!(
            c,
            b'(' | b')'
                | b'<'
                | b'>'
                | b'@'
                | b','
                | b';'
                | b':'
                | b'\\'
                | b'"'
                | b'/'
                | b'['
                | b']'
                | b'?'
                | b'='
        )
}

/// The boundary from the Content-Type, checked the way ModSecurity does:
/// the `boundary` parameter must come first and be the last thing.
fn parse_boundary(ct: &[u8], flags: &mut Flags) -> Result<Vec<u8>, String> {
    // A NUL ends a C string.
    let ct = &ct[..ct.iter().position(|&c| c == 0).unwrap_or(ct.len())];
    // The HTTP server hands ModSecurity the value without surrounding
    // whitespace.
    let start = ct.iter().take_while(|&&c| is_space(c)).count();
    let end = ct.len()
        - ct[start..]
            .iter()
            .rev()
            .take_while(|&&c| is_space(c))
            .count();
    let ct = &ct[start..end];
    if ct.is_empty() {
        return Err("Multipart: Content-Type header not available.".into());
    }
    if ct.len() > MAX_CONTENT_TYPE {
        return Err("Multipart: Invalid boundary in C-T (length).".into());
    }
    const MIME: &[u8] = b"multipart/form-data";
    if ct.len() < MIME.len() || !ct[..MIME.len()].eq_ignore_ascii_case(MIME) {
        return Err("Multipart: Invalid MIME type.".into());
    }
    if count_boundary_params(ct) > 1 {
        return Err("Multipart: Multiple boundary parameters in C-T.".into());
    }
    let Some(at) = find(ct, b"boundary") else {
        if count_boundary_params(ct) > 0 {
            return Err("Multipart: Invalid boundary in C-T (case sensitivity).".into());
        }
        return Err("Multipart: Boundary not found in C-T.".into());
    };
    let malformed = || "Multipart: Invalid boundary in C-T (malformed).".to_string();
    let mut seen_semicolon = false;
    for &c in ct.get(MIME.len()..at).unwrap_or(&[]) {
        if is_space(c) {
            continue;
        }
        if c == b';' && !seen_semicolon {
            seen_semicolon = true;
        } else {
            return Err(malformed());
        }
    }
    if !seen_semicolon {
        flags.missing_semicolon = true;
    }
    let after_name = at + 8;
    let Some(eq) = ct[after_name..].iter().position(|&c| c == b'=') else {
        return Err(malformed());
    };
    for &c in &ct[after_name..after_name + eq] {
        if is_space(c) {
            flags.boundary_whitespace = true;
        } else {
            return Err("Multipart: Invalid boundary in C-T (parameter name).".into());
        }
    }
    let value = &ct[after_name + eq + 1..];
    if value.first().is_some_and(|&c| is_space(c)) {
        flags.boundary_whitespace = true;
    }
    let len = value.len();
    let boundary = if len >= 2 && value[0] == b'"' && value[len - 1] == b'"' {
        flags.boundary_quoted = true;
        value[1..len - 1].to_vec()
    } else {
        if value.first() == Some(&b'"') || (len >= 2 && value[len - 1] == b'"') {
            return Err("Multipart: Invalid boundary in C-T (quote).".into());
        }
        value.to_vec()
    };
    if count_boundary_params(&boundary) != 0 {
        return Err("Multipart: Invalid boundary in C-T (content).".into());
    }
    if !boundary_chars_valid(&boundary) {
        return Err("Multipart: Invalid boundary in C-T (characters).".into());
    }
    if boundary.is_empty() {
        return Err("Multipart: Invalid boundary in C-T (empty).".into());
    }
    Ok(boundary)
}

/// A part being built.
#[derive(Default)]
struct Builder {
    name: Option<Vec<u8>>,
    filename: Option<Vec<u8>>,
    filename_star: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Index in `headers` of the header folded lines continue.
    last_header: Option<usize>,
    /// The empty line after the headers was seen.
    headers_done: bool,
    kind: Option<PartKind>,
    counted_file: bool,
    data: Vec<u8>,
}

struct Parser {
    boundary: Vec<u8>,
    /// Finds `--boundary` inside a line in linear time.
    finder: Finder,
    flags: Flags,
    config: MultipartConfig,
    parts: Vec<Part>,
    current: Option<Builder>,
    /// The line ending of the last data line, written only if more data
    /// follows before the next boundary.
    reserve: Vec<u8>,
    is_complete: bool,
    boundary_count: usize,
    files_counted: usize,
    last_name: Option<Vec<u8>>,
    last_filename: Option<Vec<u8>>,
}

impl Parser {
    fn run(&mut self, body: &[u8]) -> Result<(), String> {
        let result = self.scan(body);
        self.flags.crlf_lf_lines = self.flags.crlf_line && self.flags.lf_line;
        result
    }

    fn scan(&mut self, body: &[u8]) -> Result<(), String> {
        if body.is_empty() {
            return Ok(());
        }
        let mut pos = 0;
        let mut line_start = true;
        let mut leftover: &[u8] = &[];
        while pos < body.len() {
            let rest = &body[pos..];
            let window = &rest[..rest.len().min(BUF_SIZE)];
            let (len, full) = match window.iter().position(|&c| c == b'\n') {
                Some(i) => (i + 1, i + 1 == BUF_SIZE),
                None if rest.len() < BUF_SIZE => {
                    // An unterminated last line stays in the buffer.
                    leftover = rest;
                    break;
                }
                // The buffer fills up; a CR is never its last byte.
                None if rest[BUF_SIZE - 1] == b'\r' => (BUF_SIZE - 1, true),
                None => (BUF_SIZE, true),
            };
            let chunk = &rest[..len];
            pos += len;
            self.chunk(chunk, line_start, full)?;
            line_start = chunk.last() == Some(&b'\n');
            if self.is_complete && pos < body.len() {
                self.flags.data_after = true;
                return Ok(());
            }
        }
        if !self.is_complete {
            if self.boundary_count == 0 {
                return Err("Multipart: No boundaries found in payload.".into());
            }
            let b = &self.boundary;
            if line_start
                && leftover.len() == b.len() + 4
                && leftover.starts_with(b"--")
                && &leftover[2..2 + b.len()] == b.as_slice()
                && leftover.ends_with(b"--")
            {
                self.end_part(true);
                self.is_complete = true;
            } else {
                return Err("Multipart: Final boundary missing.".into());
            }
        }
        Ok(())
    }

    /// One buffer: a line (with its LF) or a slice of a long line.
    fn chunk(&mut self, chunk: &[u8], line_start: bool, full: bool) -> Result<(), String> {
        let blen = self.boundary.len();
        // C string semantics: the buffer ends at a NUL.
        let s = &chunk[..chunk.iter().position(|&c| c == 0).unwrap_or(chunk.len())];
        let mut was_boundary = false;
        if line_start && s.len() > 3 && s.starts_with(b"--") {
            if s.len() >= blen + 2 && s[2..2 + blen] == self.boundary[..] {
                let mut end = &s[2 + blen..];
                let mut is_final = false;
                if end.starts_with(b"--") {
                    is_final = true;
                    end = &end[2..];
                    if self.is_complete {
                        return Err("Multipart: Invalid boundary (final duplicate).".into());
                    }
                }
                if end == b"\r\n" || end == b"\n" {
                    if end == b"\n" {
                        self.flags.lf_line = true;
                    } else {
                        self.flags.crlf_line = true;
                    }
                    self.end_part(is_final);
                    if is_final {
                        self.is_complete = true;
                    }
                    was_boundary = true;
                    self.boundary_count += 1;
                } else {
                    return Err(format!("Multipart: Invalid boundary: {}", escape(s)));
                }
            } else {
                if self.flags.boundary_quoted
                    && s.len() >= blen + 3
                    && s[2] == b'"'
                    && s[3..3 + blen] == self.boundary[..]
                {
                    return Err("Multipart: Invalid boundary (quotes).".into());
                }
                let ws = s[2..].iter().take_while(|&&c| is_space(c)).count();
                if ws > 0 && s[2 + ws..].starts_with(&self.boundary) {
                    return Err("Multipart: Invalid boundary (whitespace).".into());
                }
                self.flags.unmatched_boundary = true;
            }
        } else if line_start && self.finder.find_in(chunk) {
            self.flags.unmatched_boundary = true;
        }
        if was_boundary {
            return Ok(());
        }
        let headers_done = match &self.current {
            None => {
                self.flags.data_before = true;
                return Ok(());
            }
            Some(b) => b.headers_done,
        };
        if headers_done {
            self.part_data(chunk);
            Ok(())
        } else {
            if full {
                return Err(format!(
                    "Multipart: Part header line over {BUF_SIZE} bytes long"
                ));
            }
            self.part_header(chunk)
        }
    }

    /// Closes the current part and, unless final, opens the next one.
    fn end_part(&mut self, is_final: bool) {
        if let Some(b) = self.current.take() {
            match b.name {
                Some(name) => self.parts.push(Part {
                    kind: b.kind.unwrap_or(PartKind::FormData),
                    name,
                    filename: b.filename_star.or(b.filename),
                    headers: b.headers,
                    data: b.data,
                }),
                None => self.flags.invalid_part = true,
            }
        }
        if !is_final {
            self.current = Some(Builder::default());
            self.reserve.clear();
        }
    }

    fn part_data(&mut self, chunk: &[u8]) {
        let (data, reserve): (&[u8], &[u8]) = if chunk.ends_with(b"\r\n") {
            (&chunk[..chunk.len() - 2], b"\r\n")
        } else if chunk.ends_with(b"\n") {
            (&chunk[..chunk.len() - 1], b"\n")
        } else {
            (chunk, b"")
        };
        let Some(part) = self.current.as_mut() else {
            return;
        };
        if part.kind == Some(PartKind::File) && !part.counted_file {
            match self.config.file_limit {
                Some(limit) if self.files_counted >= limit => {
                    self.flags.file_limit_exceeded = true;
                }
                _ => {
                    self.files_counted += 1;
                    part.counted_file = true;
                }
            }
        }
        part.data.extend_from_slice(&self.reserve);
        part.data.extend_from_slice(data);
        self.reserve.clear();
        self.reserve.extend_from_slice(reserve);
    }

    fn part_header(&mut self, line: &[u8]) -> Result<(), String> {
        if line.contains(&0) {
            return Err("Multipart: Nul byte in part headers.".into());
        }
        if line.len() > 1 && line[line.len() - 2] == b'\r' {
            self.flags.crlf_line = true;
        } else {
            self.flags.lf_line = true;
        }
        if line == b"\r\n" || line == b"\n" {
            return self.headers_end();
        }
        let Some(part) = self.current.as_mut() else {
            return Ok(());
        };
        if is_space(line[0]) {
            self.flags.header_folding = true;
            let Some(idx) = part.last_header else {
                return Err("Multipart: Invalid part header (folding error).".into());
            };
            let ws = line.iter().take_while(|&&c| is_space(c)).count();
            if line[..ws].iter().any(|&c| c != b' ' && c != b'\t') {
                self.flags.invalid_header_folding = true;
            }
            let more = strip_line_end(&line[ws..]);
            let value = &mut part.headers[idx].1;
            value.push(b' ');
            value.extend_from_slice(more);
            if value.len() > BUF_SIZE {
                return Err("Multipart: Part header too long.".into());
            }
            return Ok(());
        }
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            return Err(format!(
                "Multipart: Invalid part header (colon missing): {}.",
                escape(line)
            ));
        };
        if colon == 0 {
            return Err("Multipart: Invalid part header (header name missing).".into());
        }
        let name = &line[..colon];
        let rest = &line[colon + 1..];
        let ws = rest
            .iter()
            .take_while(|&&c| c == b' ' || c == b'\t')
            .count();
        let value = strip_line_end(&rest[ws..]);
        if part
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            return Err(format!(
                "Multipart: Duplicate part header: {}.",
                escape(name)
            ));
        }
        part.headers.push((name.to_vec(), value.to_vec()));
        part.last_header = Some(part.headers.len() - 1);
        Ok(())
    }

    /// The empty line after the part headers.
    fn headers_end(&mut self) -> Result<(), String> {
        let Some(part) = self.current.as_mut() else {
            return Ok(());
        };
        let Some(cd) = part
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(b"content-disposition"))
            .map(|(_, v)| v.clone())
        else {
            return Err("Multipart: Part missing Content-Disposition header.".into());
        };
        let mut cdp = CdParse {
            part,
            flags: &mut self.flags,
            last_name: &mut self.last_name,
            last_filename: &mut self.last_filename,
        };
        if let Err(rc) = cdp.parse(&cd) {
            return Err(format!(
                "Multipart: Invalid Content-Disposition header ({rc}): {}.",
                escape(&cd)
            ));
        }
        if part.name.is_none() {
            return Err("Multipart: Content-Disposition header missing name field.".into());
        }
        if part.filename.is_some() || part.filename_star.is_some() {
            // Parsers that look for `filename=` crudely must agree with us.
            if find(&cd, b"filename=").is_none() && find(&cd, b"filename*=").is_none() {
                return Err("Multipart: Invalid Content-Disposition header (filename).".into());
            }
            part.kind = Some(PartKind::File);
        } else {
            part.kind = Some(PartKind::FormData);
        }
        part.headers_done = true;
        part.last_header = None;
        Ok(())
    }
}

/// Knuth-Morris-Pratt substring search (lines can be long and boundaries
/// repetitive; a naive scan would be quadratic).
struct Finder {
    needle: Vec<u8>,
    fail: Vec<usize>,
}

impl Finder {
    fn new(needle: Vec<u8>) -> Self {
        let mut fail = vec![0; needle.len()];
        let mut k = 0;
        for i in 1..needle.len() {
            while k > 0 && needle[i] != needle[k] {
                k = fail[k - 1];
            }
            if needle[i] == needle[k] {
                k += 1;
            }
            fail[i] = k;
        }
        Finder { needle, fail }
    }

    fn find_in(&self, hay: &[u8]) -> bool {
        if self.needle.is_empty() {
            return true;
        }
        let mut k = 0;
        for &c in hay {
            while k > 0 && c != self.needle[k] {
                k = self.fail[k - 1];
            }
            if c == self.needle[k] {
                k += 1;
                if k == self.needle.len() {
                    return true;
                }
            }
        }
        false
    }
}

fn strip_line_end(s: &[u8]) -> &[u8] {
    match s {
        [rest @ .., b'\r', b'\n'] => rest,
        [rest @ .., b'\n'] => rest,
        _ => s,
    }
}

/// Content-Disposition parameter parsing (errors are ModSecurity's codes).
struct CdParse<'a> {
    part: &'a mut Builder,
    flags: &'a mut Flags,
    last_name: &'a mut Option<Vec<u8>>,
    last_filename: &'a mut Option<Vec<u8>>,
}

impl CdParse<'_> {
    fn parse(&mut self, v: &[u8]) -> Result<(), i32> {
        // Reading past the end gives 0, as the C string terminator would.
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        let blank = |c: u8| c == b' ' || c == b'\t';
        if !v.starts_with(b"form-data") {
            return Err(-1);
        }
        let mut p = 9;
        while blank(at(p)) {
            p += 1;
        }
        if at(p) == 0 {
            return Ok(());
        }
        if at(p) != b';' {
            return Err(-2);
        }
        p += 1;
        while at(p) != 0 {
            while blank(at(p)) {
                p += 1;
            }
            if at(p) == 0 {
                return Err(-3);
            }
            let start = p;
            while at(p) != 0 && at(p) != b'=' && !blank(at(p)) {
                p += 1;
            }
            if at(p) == 0 {
                return Err(-4);
            }
            let name = &v[start..p];
            while blank(at(p)) {
                p += 1;
            }
            if at(p) == 0 {
                return Err(-5);
            }
            if at(p) != b'=' {
                return Err(-13);
            }
            p += 1;
            while blank(at(p)) {
                p += 1;
            }
            if at(p) == 0 {
                return Err(-6);
            }
            let value;
            if at(p) == b'"' || at(p) == b'\'' {
                let quote = at(p);
                if quote == b'\'' {
                    self.flags.invalid_quoting = true;
                }
                p += 1;
                if at(p) == 0 {
                    return Err(-7);
                }
                let mut out = Vec::new();
                while at(p) != 0 {
                    if at(p) == b'\\' {
                        if at(p + 1) == 0 {
                            return Err(-8);
                        }
                        // Only the quote and `\` are escapes; other
                        // backslashes stay (browsers send them unescaped).
                        if at(p + 1) == quote || at(p + 1) == b'\\' {
                            p += 1;
                        }
                    } else if at(p) == quote {
                        break;
                    }
                    out.push(at(p));
                    p += 1;
                }
                if at(p) == 0 {
                    return Err(-10);
                }
                p += 1;
                value = out;
            } else {
                let start = p;
                while at(p) != 0 && is_token_char(at(p)) {
                    p += 1;
                }
                value = v[start..p].to_vec();
            }
            match name {
                b"name" => {
                    self.check_quotes(&value);
                    *self.last_name = Some(value.clone());
                    if self.part.name.is_some() {
                        return Err(-14);
                    }
                    self.part.name = Some(value);
                }
                b"filename" => {
                    self.check_quotes(&value);
                    *self.last_filename = Some(value.clone());
                    if self.part.filename.is_some() {
                        return Err(-15);
                    }
                    self.part.filename = Some(value);
                }
                b"filename*" => {
                    let decoded = decode_ext_value(&value);
                    *self.last_filename = Some(decoded.clone());
                    if self.part.filename_star.is_some() {
                        return Err(-16);
                    }
                    self.part.filename_star = Some(decoded);
                }
                _ => return Err(-11),
            }
            if at(p) != 0 {
                while blank(at(p)) {
                    p += 1;
                }
                if at(p) == 0 {
                    return Ok(());
                }
                if at(p) != b';' {
                    if p > 0 && matches!(at(p - 1), b'\'' | b'"') {
                        self.flags.invalid_quoting = true;
                    }
                    return Err(-12);
                }
                p += 1;
            }
        }
        Ok(())
    }

    fn check_quotes(&mut self, value: &[u8]) {
        if value.contains(&b'\'') {
            self.flags.invalid_quoting = true;
        }
    }
}

/// RFC 5987 `charset'language'pct-encoded` (the charset is not converted);
/// anything else is taken as is.
fn decode_ext_value(v: &[u8]) -> Vec<u8> {
    let mut it = v.splitn(3, |&c| c == b'\'');
    let (Some(_charset), Some(_lang), Some(enc)) = (it.next(), it.next(), it.next()) else {
        return v.to_vec();
    };
    percent_decode(enc)
}

/// `%HH` sequences decoded; anything else (including `+` and a bad `%`) kept as is.
pub fn percent_decode(enc: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(enc.len());
    let mut i = 0;
    while i < enc.len() {
        if enc[i] == b'%' && i + 2 < enc.len() {
            if let (Some(h), Some(l)) = (hex(enc[i + 1]), hex(enc[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(enc[i]);
        i += 1;
    }
    out
}
