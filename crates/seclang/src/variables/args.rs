//! ARGS, ARGS_GET, ARGS_POST, their *_NAMES and ARGS_COMBINED_SIZE.

use super::{scalar_owned, Item, Target, Var};
use crate::state::TxState;
use std::borrow::Cow;

pub(super) fn generate<'a>(t: &Target, st: &'a TxState, out: &mut Vec<Item<'a>>) {
    if t.var == Var::ArgsCombinedSize {
        let n: usize = st.args.iter().map(|a| a.name.len() + a.value.len()).sum();
        scalar_owned(t.var, n.to_string().into_bytes(), out);
        return;
    }
    let (names, filter): (bool, fn(bool) -> bool) = match t.var {
        Var::Args => (false, |_| true),
        Var::ArgsGet => (false, |post| !post),
        Var::ArgsPost => (false, |post| post),
        Var::ArgsNames => (true, |_| true),
        Var::ArgsGetNames => (true, |post| !post),
        _ => (true, |post| post),
    };
    // Most targets take every argument: no per-argument selector call.
    let all = matches!(t.sel, super::Selector::All);
    for a in st.args.iter().filter(|a| filter(a.post)) {
        if all || t.sel.selects(&a.name) {
            out.push(Item {
                var: t.var,
                key: Cow::Borrowed(&a.name),
                value: Cow::Borrowed(if names { &a.name } else { &a.value }),
                stable: true,
            });
        }
    }
}
