//! REQUEST_HEADERS, REQUEST_HEADERS_NAMES, REQUEST_COOKIES, REQUEST_COOKIES_NAMES.

use super::{pairs, Item, Target, Var};
use crate::state::TxState;

pub(super) fn generate<'a>(t: &Target, st: &'a TxState, out: &mut Vec<Item<'a>>) {
    match t.var {
        Var::RequestHeaders => pairs(t.var, &t.sel, &st.req_headers, false, out),
        Var::RequestHeadersNames => pairs(t.var, &t.sel, &st.req_headers, true, out),
        Var::RequestCookies => pairs(t.var, &t.sel, &st.cookies, false, out),
        _ => pairs(t.var, &t.sel, &st.cookies, true, out),
    }
}
