//! Macro expansion (`%{tx.foo}`, `%{MATCHED_VAR}`, `%{REQUEST_HEADERS.host}`,
//! `%{rule.id}`), parsed once at load time, expanded against the state.
//! As in v2, an unknown or empty variable expands to nothing and a `%`
//! that does not open a complete `%{...}` stays literal text.

use crate::state::TxState;
use crate::variables::{self, Selector, Target, Var};
use std::borrow::Cow;

#[derive(Debug, Clone)]
enum Part {
    Lit(Vec<u8>),
    Var(Target),
    /// A macro naming no known variable: expands to nothing.
    Nothing,
}

/// A string with macros, compiled.
#[derive(Debug, Clone)]
pub struct MacroStr {
    parts: Vec<Part>,
    pub raw: String,
}

/// Append `b`; one byte (CRS's `/` around a name, a score of `5`) without
/// a call to `memcpy`.
#[inline]
fn push_bytes(out: &mut Vec<u8>, b: &[u8]) {
    match b {
        [c] => out.push(*c),
        _ => out.extend_from_slice(b),
    }
}

impl MacroStr {
    pub fn parse(s: &str) -> MacroStr {
        let mut parts = Vec::new();
        let b = s.as_bytes();
        let mut lit = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && b.get(i + 1) == Some(&b'{') && i + 2 < b.len() {
                if let Some(end) = b[i + 2..].iter().position(|&c| c == b'}') {
                    let name = &s[i + 2..i + 2 + end];
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(resolve(name));
                    i += end + 3;
                    continue;
                }
            }
            lit.push(b[i]);
            i += 1;
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        MacroStr {
            parts,
            raw: s.to_string(),
        }
    }

    /// The variables the string reads (load-time analysis).
    pub fn refs(&self) -> impl Iterator<Item = &Target> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(t) => Some(t),
            _ => None,
        })
    }

    /// The literal text before the first macro, and whether there is no macro at all.
    pub fn literal_prefix(&self) -> (Vec<u8>, bool) {
        match self.parts.as_slice() {
            [] => (Vec::new(), true),
            [Part::Lit(l)] => (l.clone(), true),
            [Part::Lit(l), ..] => (l.clone(), false),
            _ => (Vec::new(), false),
        }
    }

    pub fn expand<'s>(&'s self, st: &TxState) -> Cow<'s, [u8]> {
        if let [Part::Lit(l)] = self.parts.as_slice() {
            return Cow::Borrowed(l);
        }
        if self.parts.is_empty() {
            return Cow::Borrowed(&[]);
        }
        // Room for the usual key or message without regrowing.
        let mut out = Vec::with_capacity(64);
        self.write(st, &mut out);
        Cow::Owned(out)
    }

    /// The expansion when it is borrowed from the state or the string (a
    /// literal, or one `%{tx.name}` and nothing else), without a copy.
    pub fn expand_borrowed<'a>(&'a self, st: &'a TxState) -> Option<&'a [u8]> {
        match self.parts.as_slice() {
            [] => Some(&[]),
            [Part::Lit(l)] => Some(l),
            [Part::Var(Target {
                var: Var::Tx,
                sel: Selector::Key(k),
                ..
            })] => Some(st.tx.get_named(k).unwrap_or_default()),
            _ => None,
        }
    }

    /// The expansion, in `buf` when it needs one (a string without macros
    /// is its own text): per-match keys and values without an allocation.
    pub fn expand_in<'a>(&'a self, st: &TxState, buf: &'a mut Vec<u8>) -> &'a [u8] {
        match self.parts.as_slice() {
            [] => &[],
            [Part::Lit(l)] => l,
            _ => {
                buf.clear();
                self.write(st, buf);
                buf
            }
        }
    }

    /// [`MacroStr::expand_in`] as text (invalid UTF-8 replaced); a string
    /// without macros is its source text, not checked again.
    pub fn expand_str_in<'a>(&'a self, st: &TxState, buf: &'a mut Vec<u8>) -> Cow<'a, str> {
        if let [] | [Part::Lit(_)] = self.parts.as_slice() {
            return Cow::Borrowed(&self.raw);
        }
        let b = self.expand_in(st, buf);
        match std::str::from_utf8(b) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(b),
        }
    }

    fn write(&self, st: &TxState, out: &mut Vec<u8>) {
        for p in &self.parts {
            match p {
                Part::Lit(l) => push_bytes(out, l),
                Part::Var(Target {
                    var: Var::Tx,
                    sel: Selector::Key(k),
                    ..
                }) => {
                    if let Some(v) = st.tx.get_named(k) {
                        push_bytes(out, v);
                    }
                }
                Part::Var(t) => {
                    let mut items = Vec::new();
                    variables::generate(t, st, &mut items);
                    if let Some(it) = items.first() {
                        out.extend_from_slice(&it.value);
                    }
                }
                Part::Nothing => {}
            }
        }
    }

    pub fn expand_string(&self, st: &TxState) -> String {
        self.expand_str(st).into_owned()
    }

    /// As text (invalid UTF-8 replaced); a string without macros is borrowed.
    pub fn expand_str<'s>(&'s self, st: &TxState) -> Cow<'s, str> {
        // Without macros the text is the source text (no UTF-8 check).
        if let [] | [Part::Lit(_)] = self.parts.as_slice() {
            return Cow::Borrowed(&self.raw);
        }
        match self.expand(st) {
            Cow::Borrowed(b) => String::from_utf8_lossy(b),
            Cow::Owned(v) => Cow::Owned(
                String::from_utf8(v)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            ),
        }
    }
}

fn resolve(name: &str) -> Part {
    let (var, key) = match name.split_once('.') {
        Some((v, k)) => (v, Some(k)),
        None => (name, None),
    };
    let Some(var) = Var::from_name(var.trim()) else {
        return Part::Nothing;
    };
    let sel = match key {
        Some(k) if !k.is_empty() => Selector::Key(crate::collections::Name::new(k)),
        _ => Selector::All,
    };
    Part::Var(Target {
        var,
        sel,
        negated: false,
        count: false,
    })
}

/// Expand macros in ad-hoc text (operator arguments evaluated by
/// seclang-ops). Arguments without a macro, and lone `%{tx.name}` ones, are
/// told apart when the operator is compiled and do not come here per value
/// (see `seclang_ops::Expand::tx_var`).
pub fn expand_text<'a>(text: &'a str, st: &'a TxState) -> Cow<'a, [u8]> {
    if !text.contains("%{") {
        return Cow::Borrowed(text.as_bytes());
    }
    Cow::Owned(MacroStr::parse(text).expand(st).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion() {
        let mut st = TxState::default();
        st.tx.set("critical_anomaly_score", b"5".to_vec());
        st.tx.set("0", b"zero".to_vec());
        st.req_headers
            .push((b"Host".to_vec(), b"example.com".to_vec()));
        st.matched_var = b"mv".to_vec();
        st.matched_var_name
            .set_keyed(crate::variables::Var::Args, b"q");
        let cases = [
            ("+%{tx.critical_anomaly_score}", "+5"),
            ("%{TX.CRITICAL_ANOMALY_SCORE}", "5"),
            ("x %{tx.missing} y", "x  y"),
            ("%{request_headers.host}", "example.com"),
            ("%{MATCHED_VAR_NAME}=%{matched_var}", "ARGS:q=mv"),
            ("Matched %{TX.0}", "Matched zero"),
            ("100%", "100%"),
            ("%{unterminated", "%{unterminated"),
            ("%{nosuchvar}!", "!"),
            ("%%{tx.0}", "%zero"),
        ];
        for (src, want) in cases {
            assert_eq!(MacroStr::parse(src).expand_string(&st), want, "{src}");
        }
        // Operator arguments expand to the stored bytes, UTF-8 or not.
        st.tx.set("bin", vec![0xff, b'a']);
        assert_eq!(&*expand_text("%{tx.bin}", &st), &[0xff, b'a'][..]);
        assert_eq!(&*expand_text("x%{tx.bin}", &st), &[b'x', 0xff, b'a'][..]);
        assert_eq!(&*expand_text("%{tx.none}", &st), &b""[..]);
        assert_eq!(&*expand_text("plain", &st), &b"plain"[..]);
    }
}
