//! Apache-style configuration lexing: physical lines are joined on a
//! trailing backslash, whole-line `#` comments are dropped, and each logical
//! line is split into words the way `ap_getword_conf` does (single or double
//! quotes; inside quotes only `\\` and `\<quote>` are escapes).

use std::sync::Arc;

/// One word of a directive with the position where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub line: usize,
    pub col: usize,
    /// The word was written in quotes (an empty quoted word is still a word).
    pub quoted: bool,
    /// Source position of every byte of `text` (for errors inside the word).
    pub pos: Vec<(usize, usize)>,
}

impl Word {
    /// Line and column of byte `offset` of the word's text.
    pub fn at(&self, offset: usize) -> (usize, usize) {
        self.pos
            .get(offset)
            .or(self.pos.last())
            .copied()
            .unwrap_or((self.line, self.col))
    }
}

/// One logical configuration line split into words; `words[0]` is the directive name.
#[derive(Debug, Clone)]
pub struct Directive {
    pub file: Arc<str>,
    pub words: Vec<Word>,
}

impl Directive {
    pub fn name(&self) -> &str {
        self.words.first().map(|w| w.text.as_str()).unwrap_or("")
    }
    pub fn line(&self) -> usize {
        self.words.first().map(|w| w.line).unwrap_or(0)
    }
    pub fn col(&self) -> usize {
        self.words.first().map(|w| w.col).unwrap_or(0)
    }
    pub fn args(&self) -> &[Word] {
        self.words.get(1..).unwrap_or(&[])
    }
}

/// A logical line: its text plus, for every byte, where it came from.
struct Logical {
    text: Vec<u8>,
    pos: Vec<(usize, usize)>,
}

/// Split `src` into logical lines (continuations joined, comments dropped).
fn logical_lines(src: &[u8]) -> Vec<Logical> {
    let mut out = Vec::new();
    let mut cur = Logical {
        text: Vec::new(),
        pos: Vec::new(),
    };
    for (idx, raw) in src.split(|&b| b == b'\n').enumerate() {
        let line_no = idx + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let (body, continued) = match raw.strip_suffix(b"\\") {
            Some(b) => (b, true),
            None => (raw, false),
        };
        for (i, &b) in body.iter().enumerate() {
            cur.text.push(b);
            cur.pos.push((line_no, i + 1));
        }
        if !continued {
            push_logical(
                &mut out,
                std::mem::replace(
                    &mut cur,
                    Logical {
                        text: Vec::new(),
                        pos: Vec::new(),
                    },
                ),
            );
        }
    }
    push_logical(&mut out, cur);
    out
}

fn push_logical(out: &mut Vec<Logical>, l: Logical) {
    let first = l.text.iter().position(|b| !b.is_ascii_whitespace());
    match first {
        None => {}
        Some(i) if l.text[i] == b'#' => {}
        Some(_) => out.push(l),
    }
}

/// Split a whole configuration file into directives.
pub fn directives(file: &Arc<str>, src: &[u8]) -> Vec<Directive> {
    logical_lines(src)
        .into_iter()
        .map(|l| Directive {
            file: file.clone(),
            words: words(&l),
        })
        .filter(|d| !d.words.is_empty())
        .collect()
}

fn words(l: &Logical) -> Vec<Word> {
    let t = &l.text;
    let mut i = 0;
    let mut out = Vec::new();
    let at = |i: usize| {
        l.pos
            .get(i)
            .copied()
            .or_else(|| l.pos.last().copied())
            .unwrap_or((0, 0))
    };
    loop {
        while i < t.len() && t[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= t.len() {
            break;
        }
        let (line, col) = at(i);
        let q = t[i];
        let mut buf = Vec::new();
        let mut pos = Vec::new();
        let quoted = q == b'"' || q == b'\'';
        if quoted {
            i += 1;
            while i < t.len() && t[i] != q {
                if t[i] == b'\\' && i + 1 < t.len() && (t[i + 1] == q || t[i + 1] == b'\\') {
                    buf.push(t[i + 1]);
                    pos.push(at(i));
                    i += 2;
                } else {
                    buf.push(t[i]);
                    pos.push(at(i));
                    i += 1;
                }
            }
            // Closing quote (a missing one ends the word at end of line, as Apache does).
            if i < t.len() {
                i += 1;
            }
        } else {
            while i < t.len() && !t[i].is_ascii_whitespace() {
                if t[i] == b'\\' && i + 1 < t.len() && t[i + 1] == b'\\' {
                    buf.push(b'\\');
                    pos.push(at(i));
                    i += 2;
                } else {
                    buf.push(t[i]);
                    pos.push(at(i));
                    i += 1;
                }
            }
        }
        out.push(Word {
            text: String::from_utf8_lossy(&buf).into_owned(),
            line,
            col,
            quoted,
            pos,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(s: &str) -> Vec<Vec<(String, usize, usize)>> {
        let f: Arc<str> = Arc::from("t.conf");
        directives(&f, s.as_bytes())
            .into_iter()
            .map(|d| {
                d.words
                    .into_iter()
                    .map(|w| (w.text, w.line, w.col))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn continuation_and_comments() {
        let src = "# comment\nSecRule ARGS \"@rx a\" \\\n    \"id:1,\\\n    pass\"\n\n  # indented comment\nSecMarker END\n";
        let d = lex(src);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0][0], ("SecRule".into(), 2, 1));
        assert_eq!(d[0][1], ("ARGS".into(), 2, 9));
        assert_eq!(d[0][2], ("@rx a".into(), 2, 14));
        assert_eq!(d[0][3], ("id:1,    pass".into(), 3, 5));
        assert_eq!(d[1][0], ("SecMarker".into(), 7, 1));
    }

    #[test]
    fn quoting_rules() {
        let cases: &[(&str, &[&str])] = &[
            (r#"A "x \" y""#, &["A", "x \" y"]),
            (r#"A "a\\b""#, &["A", r"a\b"]),
            (r#"A "a\.b""#, &["A", r"a\.b"]),
            (r#"A 'it''s'"#, &["A", "it", "s"]),
            (r#"A 'q\'s' b"#, &["A", "q's", "b"]),
            (r#"A x\\y"#, &["A", r"x\y"]),
            (r#"A "unterminated"#, &["A", "unterminated"]),
            ("A \"\"", &["A", ""]),
            ("A\r\n", &["A"]),
        ];
        for (src, want) in cases {
            let got: Vec<String> = lex(src).remove(0).into_iter().map(|w| w.0).collect();
            assert_eq!(&got, want, "{src}");
        }
    }

    #[test]
    fn comment_continuation_swallows_next_line() {
        // Apache joins continuations before it looks for comments.
        let d = lex("# a \\\nSecRuleEngine On\nSecRuleEngine Off\n");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0][1].0, "Off");
    }
}
