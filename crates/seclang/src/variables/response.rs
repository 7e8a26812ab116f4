//! RESPONSE_* and STATUS_LINE (phases 3-4).

use super::{pairs, scalar, scalar_owned, Item, Target, Var};
use crate::state::TxState;

pub(super) fn generate<'a>(t: &Target, st: &'a TxState, out: &mut Vec<Item<'a>>) {
    match t.var {
        Var::ResponseStatus => {
            if let Some(s) = st.status {
                scalar_owned(t.var, s.to_string().into_bytes(), out)
            }
        }
        Var::StatusLine if st.status.is_some() => scalar(t.var, &st.status_line, out),
        Var::ResponseProtocol if st.status.is_some() => scalar(t.var, &st.resp_protocol, out),
        Var::ResponseHeaders => pairs(t.var, &t.sel, &st.resp_headers, false, out),
        Var::ResponseHeadersNames => pairs(t.var, &t.sel, &st.resp_headers, true, out),
        Var::ResponseBody | Var::StreamOutputBody => {
            if let Some(b) = &st.resp_body {
                scalar(t.var, b, out)
            }
        }
        Var::ResponseContentType if st.status.is_some() => {
            scalar(t.var, &st.resp_content_type, out)
        }
        Var::ResponseContentLength if st.status.is_some() => {
            scalar(t.var, &st.resp_content_length, out)
        }
        Var::OutboundDataError => {
            scalar(t.var, if st.outbound_data_error { b"1" } else { b"0" }, out)
        }
        _ => {}
    }
}
