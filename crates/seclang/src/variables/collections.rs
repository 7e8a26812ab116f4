//! TX, IP, GLOBAL, SESSION, USER, RESOURCE, ENV, GEO and RULE.

use super::{Item, Target, Var};
use crate::collections::Collection;
use crate::state::TxState;
use std::borrow::Cow;

pub(crate) fn collection(st: &TxState, var: Var) -> Option<&Collection> {
    Some(match var {
        Var::Tx => &st.tx,
        Var::Ip => &st.ip,
        Var::Global => &st.global,
        Var::Session => &st.session,
        Var::User => &st.user,
        Var::Resource => &st.resource,
        Var::Env => &st.env,
        Var::Geo => &st.geo,
        _ => return None,
    })
}

pub(super) fn generate<'a>(t: &Target, st: &'a TxState, out: &mut Vec<Item<'a>>) {
    if t.var == Var::Rule {
        for (k, v) in st.rule_meta() {
            if t.sel.selects(k.as_bytes()) {
                out.push(Item {
                    var: t.var,
                    key: Cow::Owned(k.as_bytes().to_vec()),
                    value: Cow::Owned(v),
                    stable: false,
                });
            }
        }
        return;
    }
    let Some(c) = collection(st, t.var) else {
        return;
    };
    // Members are borrowed from the collection (not request data that
    // stays for the phase: a setvar can change them).
    let member = |(k, v): (&'a str, &'a [u8])| Item {
        var: t.var,
        key: Cow::Borrowed(k.as_bytes()),
        value: Cow::Borrowed(v),
        stable: false,
    };
    // Fast path: an exact key is a hash lookup.
    if let super::Selector::Key(k) = &t.sel {
        out.extend(c.get_entry_named(k).map(member));
        return;
    }
    // A regex over a layered collection (TX): the base's members it takes
    // are known per rule set.
    if let (super::Selector::Regex(re), Some(base)) = (&t.sel, c.base()) {
        if let Some(picks) = re.base_picks(base) {
            out.extend(
                c.iter_picked(picks, |k| re.is_match(k.as_bytes()))
                    .map(member),
            );
            return;
        }
    }
    out.extend(
        c.iter()
            .filter(|(k, _)| t.sel.selects(k.as_bytes()))
            .map(member),
    );
}
