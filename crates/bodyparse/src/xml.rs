//! XML request bodies: the document's text content (what ModSecurity's
//! `XML:/*` yields: every text and CDATA node under the root element,
//! concatenated without separators) and every attribute value (`XML://@*`).
//!
//! The document must be well formed: one root element, matching end tags,
//! no text outside the root. A DOCTYPE is skipped, never processed: no
//! external entities are loaded and no entities declared in it are
//! expanded; references to undeclared entities stay as written. The five
//! predefined entities and character references are decoded.

use quick_xml::events::Event;
use quick_xml::Reader;
use thiserror::Error;

/// Nesting deeper than this is refused (libxml2's default limit is 256).
pub const MAX_DEPTH: usize = 1024;

/// The parts of a document the rules see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XmlDoc {
    /// All text content of the root element.
    pub text: Vec<u8>,
    /// All attribute values, in document order.
    pub attrs: Vec<Vec<u8>>,
}

/// Why a body is not accepted.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{message} (at offset {offset})")]
pub struct XmlError {
    pub message: String,
    pub offset: u64,
}

/// Parses a document.
pub fn parse(body: &[u8]) -> Result<XmlDoc, XmlError> {
    let mut reader = Reader::from_reader(body);
    let cfg = reader.config_mut();
    cfg.trim_text(false);
    cfg.check_end_names = true;
    cfg.expand_empty_elements = false;
    let mut doc = XmlDoc::default();
    let mut depth = 0usize;
    let mut seen_root = false;
    let mut buf = Vec::new();
    loop {
        let at = reader.buffer_position();
        let err = |message: String| XmlError {
            message,
            offset: at,
        };
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| err(e.to_string()))?;
        match ev {
            Event::Start(_) | Event::Empty(_) if depth == 0 && seen_root => {
                return Err(err("extra content at the end of the document".into()));
            }
            Event::Start(e) => {
                attributes(&e, &mut doc.attrs).map_err(err)?;
                seen_root = true;
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(err("excessive depth in document".into()));
                }
            }
            Event::Empty(e) => {
                attributes(&e, &mut doc.attrs).map_err(err)?;
                seen_root = true;
            }
            Event::End(_) => {
                if depth == 0 {
                    return Err(err("unexpected end tag".into()));
                }
                depth -= 1;
            }
            Event::Text(t) => {
                let raw: &[u8] = &t;
                if depth > 0 {
                    unescape_into(&normalize_newlines(raw), false, &mut doc.text);
                } else if !raw
                    .iter()
                    .all(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
                {
                    return Err(err(if seen_root {
                        "extra content at the end of the document".into()
                    } else {
                        "start tag expected".into()
                    }));
                }
            }
            Event::CData(t) => {
                if depth == 0 {
                    return Err(err("CDATA outside the root element".into()));
                }
                doc.text.extend_from_slice(&normalize_newlines(&t));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
        buf.clear();
    }
    if !seen_root {
        return Err(XmlError {
            message: "document is empty".into(),
            offset: reader.buffer_position(),
        });
    }
    if depth != 0 {
        return Err(XmlError {
            message: "premature end of data: unclosed element".into(),
            offset: reader.buffer_position(),
        });
    }
    Ok(doc)
}

fn attributes(e: &quick_xml::events::BytesStart<'_>, out: &mut Vec<Vec<u8>>) -> Result<(), String> {
    for a in e.attributes() {
        let a = a.map_err(|e| e.to_string())?;
        let mut v = Vec::with_capacity(a.value.len());
        unescape_into(&a.value, true, &mut v);
        out.push(v);
    }
    Ok(())
}

/// XML end-of-line handling: CRLF and lone CR become LF.
fn normalize_newlines(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\r' {
            out.push(b'\n');
            if s.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
        } else {
            out.push(s[i]);
        }
        i += 1;
    }
    out
}

/// Decodes the predefined entities and character references; other
/// references stay as written. In attribute values, literal whitespace
/// becomes a space (attribute-value normalization).
fn unescape_into(s: &[u8], attr: bool, out: &mut Vec<u8>) {
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == b'&' {
            if let Some(len) = s[i + 1..].iter().take(32).position(|&c| c == b';') {
                let name = &s[i + 1..i + 1 + len];
                if entity(name, out).is_some() {
                    i += len + 2;
                    continue;
                }
            }
            out.push(c);
        } else if attr && matches!(c, b'\t' | b'\n' | b'\r') {
            if c == b'\r' && s.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            out.push(b' ');
        } else {
            out.push(c);
        }
        i += 1;
    }
}

/// Appends the expansion of `&name;` if it is predefined or a character
/// reference.
fn entity(name: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let b = match name {
        b"lt" => b'<',
        b"gt" => b'>',
        b"amp" => b'&',
        b"apos" => b'\'',
        b"quot" => b'"',
        [b'#', b'x' | b'X', hex @ ..] if !hex.is_empty() => {
            let cp = u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            return push_char(cp, out);
        }
        [b'#', dec @ ..] if !dec.is_empty() => {
            let cp = std::str::from_utf8(dec).ok()?.parse::<u32>().ok()?;
            return push_char(cp, out);
        }
        _ => return None,
    };
    out.push(b);
    Some(())
}

fn push_char(cp: u32, out: &mut Vec<u8>) -> Option<()> {
    let ch = char::from_u32(cp).filter(|&c| c != '\0')?;
    let mut buf = [0u8; 4];
    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    Some(())
}
