//! The one place this crate touches the operator/transformation library
//! (`seclang-ops`): operator and transformation handles, and the
//! macro-expansion bridge.

use crate::state::TxState;
use std::borrow::Cow;

pub use seclang_ops::{Expand, Operator};

/// A transformation function; a local handle so the engine can implement
/// its own traits on it.
#[derive(Clone, Copy)]
pub struct Transform(seclang_ops::Transform);

impl Transform {
    pub fn from_name(name: &str) -> Option<Transform> {
        seclang_ops::Transform::from_name(name).map(Transform)
    }

    /// The transformed value, or `None` when it is unchanged.
    #[inline]
    pub fn apply(&self, v: &[u8]) -> Option<Vec<u8>> {
        self.0.apply(v)
    }

    /// The transformed value in a shared buffer, or `None` when it is unchanged.
    #[inline]
    pub fn apply_shared(&self, v: &[u8]) -> Option<std::sync::Arc<[u8]>> {
        self.0.apply_shared(v)
    }

    /// See [`seclang_ops::Transform::case_only`].
    pub fn case_only(&self) -> bool {
        self.0.case_only()
    }

    /// See [`seclang_ops::Transform::case_blind`].
    pub fn case_blind(&self) -> bool {
        self.0.case_blind()
    }

    /// See [`seclang_ops::Transform::escape_byte`].
    pub fn escape_byte(&self) -> Option<u8> {
        self.0.escape_byte()
    }

    /// The function's bit in a per-value set of functions (one distinct
    /// bit per transformation function: there are fewer than 64).
    #[inline]
    pub fn bit(&self) -> u64 {
        1 << (self.0.code() & 63)
    }
}

/// Expands operator arguments against the state of one rule evaluation.
/// The state does not change while a rule's values are evaluated (actions
/// run after), so the last `%{tx.name}` looked up is kept for the next value:
/// `@within %{tx.restricted_headers_basic}` over every header looks TX up once.
pub struct Expander<'a> {
    st: &'a TxState,
    /// (key address, key length, its value).
    last: std::cell::Cell<Option<(usize, usize, &'a [u8])>>,
}

impl<'a> Expander<'a> {
    pub fn new(st: &'a TxState) -> Expander<'a> {
        Expander {
            st,
            last: std::cell::Cell::new(None),
        }
    }
}

impl Expand for Expander<'_> {
    fn expand<'t>(&'t self, text: &'t str) -> Cow<'t, [u8]> {
        crate::macros::expand_text(text, self.st)
    }

    fn tx_var<'t>(&'t self, key: &str) -> Option<Cow<'t, [u8]>> {
        let id = (key.as_ptr() as usize, key.len());
        if let Some((p, l, v)) = self.last.get() {
            if (p, l) == id {
                return Some(Cow::Borrowed(v));
            }
        }
        let v = self.st.tx.get(key).unwrap_or_default();
        self.last.set(Some((id.0, id.1, v)));
        Some(Cow::Borrowed(v))
    }
}

/// Compile an operator; `read_file` resolves `@pmFromFile`/`@ipMatchFromFile` data files.
pub fn compile_operator(
    name: &str,
    arg: &str,
    negated: bool,
    read_file: &dyn Fn(&str) -> std::io::Result<Vec<u8>>,
) -> Result<Operator, String> {
    Operator::compile(name, arg, negated, read_file)
}

pub fn transform(name: &str) -> Option<Transform> {
    Transform::from_name(name)
}

/// Literals (lower-case; match them ASCII case-insensitively) of which at
/// least one must occur in a value the operator can match.
pub fn required_literals(op: &Operator) -> Option<Vec<Vec<u8>>> {
    op.required_literals()
}
