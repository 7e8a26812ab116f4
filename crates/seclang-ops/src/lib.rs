//! SecLang operators and transformation functions with ModSecurity v2
//! semantics, plus required-literal extraction for prefiltering.
//!
//! The engine (`seclang`) only sees [`Operator`], [`Transform`] and the
//! [`Expand`] bridge for macro expansion in operator arguments.
//!
//! Choices worth knowing:
//! - `@rx` follows PCRE as ModSecurity v2 runs it (no UTF-8 mode, DOTALL):
//!   the pattern is compiled by `regex::bytes` with Unicode mode off, so
//!   `\x{c2}` is a byte, `\w \s \d \b` and `(?i)` are ASCII. Patterns that
//!   need Unicode (`\p{..}`, non-ASCII class members) compile in Unicode
//!   mode. Lookaround and backreferences are rejected with a clear error.
//! - `@rbl` never matches (no DNS at request time).
//! - `utf8toUnicode` keeps NUL bytes (v2 loses them through a C-string bug);
//!   `normalizePath("/..")` is `"/"`.
//! - [`Operator::required_literals`] returns lower-cased literals to be
//!   matched ASCII case-insensitively; see [`regex_literals`].

mod literals;
mod operator;
mod transform;

use std::borrow::Cow;

pub use literals::{parse as parse_rx, regex_literals};
pub use operator::{atoi, lone_word_or_number, xss_inert, Operator};
pub use transform::Transform;

/// Macro expansion (`%{tx.foo}`) in operator arguments, provided by the engine.
pub trait Expand {
    /// The bytes the text stands for (TX values are bytes, as in v2: no
    /// UTF-8 check); they may borrow from the text or the expander's state.
    fn expand<'a>(&'a self, text: &'a str) -> Cow<'a, [u8]>;

    /// The value of `TX:key` (empty when unset), for an argument that is a
    /// lone `%{tx.key}`; `None` when this expander does not look TX up
    /// directly, and `expand` is used.
    fn tx_var<'a>(&'a self, key: &str) -> Option<Cow<'a, [u8]>> {
        let _ = key;
        None
    }
}

/// An [`Expand`] that leaves text unchanged.
pub struct NoExpand;

impl Expand for NoExpand {
    fn expand<'a>(&'a self, text: &'a str) -> Cow<'a, [u8]> {
        Cow::Borrowed(text.as_bytes())
    }
}
