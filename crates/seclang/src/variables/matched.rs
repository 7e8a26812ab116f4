//! MATCHED_VAR, MATCHED_VAR_NAME, MATCHED_VARS, MATCHED_VARS_NAMES.

use super::{scalar_changing, scalar_owned, Item, Target, Var};
use crate::state::TxState;
use std::borrow::Cow;

pub(super) fn generate<'a>(t: &Target, st: &'a TxState, out: &mut Vec<Item<'a>>) {
    match t.var {
        Var::MatchedVar => scalar_changing(t.var, &st.matched_var, out),
        Var::MatchedVarName => scalar_owned(t.var, st.matched_var_name.text().into_bytes(), out),
        _ => {
            let names = t.var == Var::MatchedVarsNames;
            for (n, v) in st.matched_vars.iter() {
                if t.sel.selects(n.as_bytes()) {
                    out.push(Item {
                        var: t.var,
                        key: Cow::Borrowed(n.as_bytes()),
                        value: Cow::Borrowed(if names { n.as_bytes() } else { v }),
                        stable: false,
                    });
                }
            }
        }
    }
}
