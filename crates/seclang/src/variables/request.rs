//! Request-line derived scalars: REQUEST_URI, REQUEST_FILENAME, QUERY_STRING ...

use super::{scalar, Item, Target, Var};
use crate::state::TxState;

pub(super) fn generate<'a>(t: &Target, st: &'a TxState, out: &mut Vec<Item<'a>>) {
    match t.var {
        Var::RequestBasename => scalar(t.var, &st.basename, out),
        Var::RequestFilename | Var::ScriptFilename => scalar(t.var, &st.path, out),
        Var::ScriptBasename => scalar(t.var, &st.basename, out),
        Var::RequestLine => scalar(t.var, &st.request_line, out),
        Var::RequestMethod => scalar(t.var, &st.method, out),
        Var::RequestProtocol => scalar(t.var, &st.protocol, out),
        Var::RequestUri => scalar(t.var, &st.uri, out),
        Var::RequestUriRaw => scalar(t.var, &st.uri_raw, out),
        Var::QueryString => {
            if let Some(q) = &st.query {
                scalar(t.var, q, out)
            }
        }
        Var::AuthType if !st.auth_type.is_empty() => scalar(t.var, &st.auth_type, out),
        // A reverse proxy has no path info or authenticated user.
        _ => {}
    }
}
