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

    /// The function's bit in a per-value set of functions (one distinct
    /// bit per transformation function: there are fewer than 64).
    #[inline]
    pub fn bit(&self) -> u64 {
        1 << (self.0.code() & 63)
    }
}

/// Expands macros in operator arguments against the transaction.
pub struct Expander<'a>(pub &'a TxState);

impl Expand for Expander<'_> {
    fn expand<'t>(&'t self, text: &'t str) -> Cow<'t, [u8]> {
        crate::macros::expand_text(text, self.0)
    }

    fn tx_var<'a>(&'a self, key: &str) -> Option<Cow<'a, [u8]>> {
        Some(self.0.tx.get(key).map(Cow::Borrowed).unwrap_or_default())
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
