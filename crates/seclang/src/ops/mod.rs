//! The one place this crate touches the operator/transformation library:
//! operator and transformation handles, and the macro-expansion bridge.
//!
//! `seclang-ops` is being written alongside; until it lands, `fallback`
//! provides the same call shapes so the engine can be built and tested.

mod fallback;

use crate::state::TxState;
use std::borrow::Cow;

pub use fallback::{Expand, Operator, Transform};

/// Expands macros in operator arguments against the transaction.
pub struct Expander<'a>(pub &'a TxState);

impl Expand for Expander<'_> {
    fn expand<'t>(&self, text: &'t str) -> Cow<'t, str> {
        crate::macros::expand_text(text, self.0)
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

/// Literals of which at least one must occur in a value the operator can match.
pub fn required_literals(op: &Operator) -> Option<Vec<Vec<u8>>> {
    op.required_literals()
}
