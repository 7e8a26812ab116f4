//! SecLang operators and transformation functions with ModSecurity v2
//! semantics, plus required-literal extraction for prefiltering.
//!
//! The engine (`seclang`) only sees [`Operator`], [`Transform`] and the
//! [`Expand`] bridge for macro expansion in operator arguments.

mod literals;
mod operator;
mod transform;

use std::borrow::Cow;

pub use literals::{parse as parse_rx, regex_literals};
pub use operator::{atoi, Operator};
pub use transform::Transform;

/// Macro expansion (`%{tx.foo}`) in operator arguments, provided by the engine.
pub trait Expand {
    fn expand<'a>(&self, text: &'a str) -> Cow<'a, str>;
}

/// An [`Expand`] that leaves text unchanged.
pub struct NoExpand;

impl Expand for NoExpand {
    fn expand<'a>(&self, text: &'a str) -> Cow<'a, str> {
        Cow::Borrowed(text)
    }
}
