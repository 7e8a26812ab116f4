//! Required-literal extraction for `@rx` patterns.
//!
//! For a pattern we look for a set of byte strings such that every string
//! the regex matches contains at least one of them. The set is returned
//! lower-cased: callers match it ASCII case-insensitively, which only ever
//! widens it (a superset check stays correct).
//!
//! Candidates come from `regex_syntax`'s [`Extractor`] (prefix and suffix
//! sequences: every match starts/ends with one of them) applied to the
//! whole pattern and to every contiguous run of a concatenation (a match
//! of the concatenation contains a match of each run, so the run's
//! prefixes are "inner" literals), and from structure: an alternation
//! needs one set per branch (their union), a repetition with `min >= 1`
//! or a capture group inherits its sub-expression's set. The best valid
//! candidate wins: all literals at least [`MIN_LEN`] bytes, at most
//! [`MAX_LITS`] of them, longer shortest literal first (up to 3 bytes), then fewer literals.

use regex_syntax::hir::literal::{ExtractKind, Extractor, Seq};
use regex_syntax::hir::{
    Capture, Class, ClassBytes, ClassBytesRange, ClassUnicode, ClassUnicodeRange, Hir, HirKind,
    Repetition,
};

/// Shortest literal accepted in a set.
pub const MIN_LEN: usize = 1;
/// Largest set accepted.
pub const MAX_LITS: usize = 2000;
/// Longest concatenation run handed to the extractor.
const RUN: usize = 8;

/// Parses `pattern` as `@rx` compiles it (byte semantics first, Unicode
/// mode when the pattern needs it) and extracts a required-literal set.
pub fn regex_literals(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = parse(pattern, false).or_else(|| parse(pattern, true))?;
    required(&fold(&hir)).map(|c| c.lits)
}

/// Parses with the settings `@rx` compiles with.
pub fn parse(pattern: &str, unicode: bool) -> Option<Hir> {
    let pattern = if unicode {
        std::borrow::Cow::Borrowed(pattern)
    } else {
        pcre_bytes(pattern)
    };
    regex_syntax::ParserBuilder::new()
        .dot_matches_new_line(true)
        .unicode(unicode)
        .utf8(false)
        .build()
        .parse(&pattern)
        .ok()
}

/// Rewrites `\x{HH}` (one or two hex digits) to `\xHH`: in PCRE without
/// UTF-8 mode both denote the byte 0xHH, while `regex` reads the braced
/// form as a code point even with Unicode mode off.
pub fn pcre_bytes(pattern: &str) -> std::borrow::Cow<'_, str> {
    if !pattern.contains("\\x{") {
        return std::borrow::Cow::Borrowed(pattern);
    }
    let b = pattern.as_bytes();
    let mut out = String::with_capacity(pattern.len());
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        if b.get(i + 1) == Some(&b'x') && b.get(i + 2) == Some(&b'{') {
            let digits = b[i + 3..]
                .iter()
                .take_while(|c| c.is_ascii_hexdigit())
                .count();
            if (1..=2).contains(&digits) && b.get(i + 3 + digits) == Some(&b'}') {
                out.push_str(&pattern[last..i]);
                out.push_str("\\x");
                if digits == 1 {
                    out.push('0');
                }
                out.push_str(&pattern[i + 3..i + 3 + digits]);
                i += 4 + digits;
                last = i;
                continue;
            }
        }
        // Skip the escaped character (it may itself be a backslash).
        i += 2;
    }
    out.push_str(&pattern[last.min(pattern.len())..]);
    std::borrow::Cow::Owned(out)
}

/// The image of `hir` under ASCII lower-casing: every string `s` that
/// `hir` matches has `s.to_ascii_lowercase()` matched by the result, so
/// literals required by the result occur in `s` ASCII case-insensitively.
/// It turns `(?i)` letter classes like `[Ss]` into plain literals, which
/// keeps the extractor's cross products small.
fn fold(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => hir.clone(),
        HirKind::Literal(l) => Hir::literal(l.0.to_ascii_lowercase()),
        HirKind::Class(Class::Bytes(c)) => {
            let mut out = ClassBytes::empty();
            for r in c.ranges() {
                let (a, b) = (r.start(), r.end());
                out.push(ClassBytesRange::new(a, b));
                let (lo, hi) = (a.max(b'A'), b.min(b'Z'));
                if lo <= hi {
                    out.push(ClassBytesRange::new(lo + 32, hi + 32));
                }
            }
            // Drop upper-case letters: they were mapped above.
            out.difference(&ClassBytes::new([ClassBytesRange::new(b'A', b'Z')]));
            Hir::class(Class::Bytes(out))
        }
        HirKind::Class(Class::Unicode(c)) => {
            let mut out = ClassUnicode::empty();
            for r in c.ranges() {
                let (a, b) = (r.start(), r.end());
                out.push(ClassUnicodeRange::new(a, b));
                let (lo, hi) = (a.max('A'), b.min('Z'));
                if lo <= hi {
                    let lo = char::from(lo as u8 + 32);
                    let hi = char::from(hi as u8 + 32);
                    out.push(ClassUnicodeRange::new(lo, hi));
                }
            }
            out.difference(&ClassUnicode::new([ClassUnicodeRange::new('A', 'Z')]));
            Hir::class(Class::Unicode(out))
        }
        HirKind::Repetition(r) => Hir::repetition(Repetition {
            min: r.min,
            max: r.max,
            greedy: r.greedy,
            sub: Box::new(fold(&r.sub)),
        }),
        HirKind::Capture(c) => Hir::capture(Capture {
            index: c.index,
            name: c.name.clone(),
            sub: Box::new(fold(&c.sub)),
        }),
        HirKind::Concat(cs) => Hir::concat(cs.iter().map(fold).collect()),
        HirKind::Alternation(bs) => Hir::alternation(bs.iter().map(fold).collect()),
    }
}

struct Cand {
    lits: Vec<Vec<u8>>,
    min: usize,
}

impl Cand {
    fn score(&self) -> (usize, std::cmp::Reverse<usize>, usize) {
        (
            self.min.min(3),
            std::cmp::Reverse(self.lits.len()),
            self.min,
        )
    }
}

fn better(a: Option<Cand>, b: Option<Cand>) -> Option<Cand> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.score() > a.score() { b } else { a }),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Lower-cases, de-duplicates and drops literals containing a shorter kept
/// one (anything containing the longer one contains the shorter); `None`
/// when the set is empty, too large or has a too-short literal.
fn normalize<'a>(lits: impl IntoIterator<Item = &'a [u8]>) -> Option<Cand> {
    let mut v: Vec<Vec<u8>> = Vec::new();
    for l in lits {
        if l.len() < MIN_LEN {
            return None;
        }
        v.push(l.to_ascii_lowercase());
        if v.len() > 8 * MAX_LITS {
            return None;
        }
    }
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    v.dedup();
    let mut kept: Vec<Vec<u8>> = Vec::with_capacity(v.len());
    for l in v {
        if !kept
            .iter()
            .any(|k| l.windows(k.len()).any(|w| w == k.as_slice()))
        {
            kept.push(l);
            if kept.len() > MAX_LITS {
                return None;
            }
        }
    }
    let min = kept.iter().map(Vec::len).min()?;
    Some(Cand { lits: kept, min })
}

fn from_seq(seq: &Seq) -> Option<Cand> {
    normalize(seq.literals()?.iter().map(|l| l.as_bytes()))
}

fn extractor(kind: ExtractKind) -> Extractor {
    let mut e = Extractor::new();
    e.kind(kind).limit_total(500);
    e
}

/// The best set for the whole pattern: prefix and suffix sequences of
/// the root plus the structural candidates of [`inner`].
fn required(hir: &Hir) -> Option<Cand> {
    let pre = extractor(ExtractKind::Prefix);
    let suf = extractor(ExtractKind::Suffix);
    let best = better(from_seq(&pre.extract(hir)), from_seq(&suf.extract(hir)));
    better(best, inner(hir, &pre))
}

/// Structural candidates. A concatenation's prefix sequence is covered by
/// its first run, a capture's or repetition's by its sub-expression, so the
/// extractor runs only on concatenation runs here.
fn inner(hir: &Hir, pre: &Extractor) -> Option<Cand> {
    match hir.kind() {
        HirKind::Empty | HirKind::Class(_) | HirKind::Look(_) => None,
        HirKind::Literal(l) => normalize([&l.0[..]]),
        HirKind::Capture(c) => inner(&c.sub, pre),
        HirKind::Repetition(r) if r.min >= 1 => inner(&r.sub, pre),
        HirKind::Repetition(_) => None,
        HirKind::Concat(children) => {
            let mut best = None;
            for i in 0..children.len() {
                let end = (i + RUN).min(children.len());
                let run = Hir::concat(children[i..end].to_vec());
                best = better(best, from_seq(&pre.extract(&run)));
                best = better(best, inner(&children[i], pre));
            }
            best
        }
        HirKind::Alternation(branches) => {
            let mut all: Vec<Vec<u8>> = Vec::new();
            for b in branches {
                // (A concatenation's first run holds its prefixes.)
                let c = inner(b, pre)?;
                all.extend(c.lits);
                if all.len() > 8 * MAX_LITS {
                    return None;
                }
            }
            normalize(all.iter().map(Vec::as_slice))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lits(p: &str) -> Option<Vec<String>> {
        regex_literals(p).map(|v| {
            v.into_iter()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .collect()
        })
    }

    #[test]
    fn simple() {
        assert_eq!(lits("foo"), Some(vec!["foo".into()]));
        assert_eq!(lits("(?i)union"), Some(vec!["union".into()]));
        assert_eq!(lits("[^a-z]union\\s+all"), Some(vec!["union".into()]));
        let mut got = lits("(?i:foo|bar)[0-9]+").unwrap();
        got.sort();
        assert_eq!(got, vec!["bar".to_string(), "foo".to_string()]);
        // Single bytes are valid literals (MIN_LEN 1): rare bytes such as `<`
        // or `$` rule out most benign values.
        assert_eq!(lits("a"), Some(vec!["a".into()]));
        assert_eq!(lits("x*"), None);
        assert_eq!(lits("(?:abc)?"), None);
        let mut got = lits("abc|d").unwrap();
        got.sort();
        assert_eq!(got, vec!["abc".to_string(), "d".to_string()]);
        assert_eq!(lits("\\w+"), None);
        assert_eq!(lits("(a|b"), None);
    }

    #[test]
    fn pcre_byte_escapes() {
        assert_eq!(
            pcre_bytes(r"a\x{c2}\x{B4}[\x7f-\x{ff}]"),
            r"a\xc2\xB4[\x7f-\xff]"
        );
        assert_eq!(pcre_bytes(r"\x{9}"), r"\x09");
        assert_eq!(pcre_bytes(r"\\x{41}"), r"\\x{41}");
        assert_eq!(pcre_bytes(r"\x{1F600}"), r"\x{1F600}");
        assert_eq!(pcre_bytes(r"\x{4"), r"\x{4");
    }

    #[test]
    fn inner_literal() {
        assert_eq!(lits("[a-z]+=[0-9]+ or \\d"), Some(vec![" or ".into()]));
        assert_eq!(lits(".*(?:javascript|vbscript):"), {
            let mut v = vec!["javascript:".to_string(), "vbscript:".to_string()];
            v.sort_by_key(|s| s.len());
            Some(v)
        });
    }
}
