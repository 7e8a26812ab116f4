//! Request-body results: REQUEST_BODY, REQBODY_*, FILES*, MULTIPART_*, XML.

use super::{pairs, scalar, scalar_owned, Item, Selector, Target, Var};
use crate::state::TxState;
use std::borrow::Cow;

fn flag(b: bool) -> &'static [u8] {
    if b {
        b"1"
    } else {
        b"0"
    }
}

pub(super) fn generate<'a>(t: &Target, st: &'a TxState, out: &mut Vec<Item<'a>>) {
    let mp = &st.multipart;
    match t.var {
        Var::RequestBody | Var::StreamInputBody => {
            if let Some(b) = &st.request_body {
                scalar(t.var, b, out)
            }
        }
        Var::RequestBodyLength => {
            scalar_owned(t.var, st.request_body_length.to_string().into_bytes(), out)
        }
        Var::FullRequestLength => {
            let n = st.request_line.len()
                + st.req_headers
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 4)
                    .sum::<usize>()
                + 4
                + st.request_body.as_ref().map(|b| b.len()).unwrap_or(0);
            scalar_owned(t.var, n.to_string().into_bytes(), out)
        }
        Var::FullRequest => {
            let mut v = st.request_line.clone();
            v.extend_from_slice(b"\n");
            for (k, val) in &st.req_headers {
                v.extend_from_slice(k);
                v.extend_from_slice(b": ");
                v.extend_from_slice(val);
                v.extend_from_slice(b"\n");
            }
            v.extend_from_slice(b"\n");
            if let Some(b) = &st.request_body {
                v.extend_from_slice(b);
            }
            scalar_owned(t.var, v, out)
        }
        // `ctl:requestBodyProcessor` replaces it during phase 1.
        Var::ReqbodyProcessor => super::scalar_changing(
            t.var,
            st.reqbody_processor.as_deref().unwrap_or("").as_bytes(),
            out,
        ),
        Var::ReqbodyError => scalar(t.var, flag(st.reqbody_error), out),
        Var::ReqbodyErrorMsg => scalar(t.var, &st.reqbody_error_msg, out),
        Var::ReqbodyProcessorError => scalar(t.var, flag(st.reqbody_processor_error), out),
        Var::ReqbodyProcessorErrorMsg => scalar(t.var, &st.reqbody_processor_error_msg, out),
        Var::UrlencodedError => scalar(t.var, flag(st.urlencoded_error), out),
        Var::InboundDataError => scalar(t.var, flag(st.inbound_data_error), out),
        Var::Files
        | Var::FilesNames
        | Var::FilesSizes
        | Var::FilesTmpnames
        | Var::FilesTmpContent => {
            for f in &st.files {
                if !t.sel.selects(&f.field) {
                    continue;
                }
                let value: Cow<'a, [u8]> = match t.var {
                    Var::Files => Cow::Borrowed(&f.filename),
                    Var::FilesNames => Cow::Borrowed(&f.field),
                    Var::FilesSizes => Cow::Owned(f.size.to_string().into_bytes()),
                    _ => Cow::Borrowed(&[]),
                };
                out.push(Item {
                    var: t.var,
                    key: Cow::Borrowed(&f.field),
                    value,
                    stable: t.var != Var::FilesSizes,
                });
            }
        }
        Var::FilesCombinedSize => {
            scalar_owned(t.var, st.files_combined_size.to_string().into_bytes(), out)
        }
        Var::MultipartPartHeaders => pairs(t.var, &t.sel, &st.part_headers, false, out),
        Var::MultipartFilename => {
            if let Some(v) = &st.multipart_filename {
                scalar(t.var, v, out)
            }
        }
        Var::MultipartName => {
            if let Some(v) = &st.multipart_name {
                scalar(t.var, v, out)
            }
        }
        Var::MultipartStrictError => {
            if st.multipart_seen {
                scalar(t.var, flag(mp.strict_error(st.reqbody_error)), out)
            } else {
                scalar(t.var, b"0", out)
            }
        }
        Var::MultipartUnmatchedBoundary => scalar(t.var, flag(mp.unmatched_boundary), out),
        Var::MultipartBoundaryQuoted => scalar(t.var, flag(mp.boundary_quoted), out),
        Var::MultipartBoundaryWhitespace => scalar(t.var, flag(mp.boundary_whitespace), out),
        Var::MultipartDataAfter => scalar(t.var, flag(mp.data_after), out),
        Var::MultipartDataBefore => scalar(t.var, flag(mp.data_before), out),
        Var::MultipartHeaderFolding => scalar(t.var, flag(mp.header_folding), out),
        Var::MultipartCrlfLine => scalar(t.var, flag(mp.crlf_line), out),
        Var::MultipartCrlfLfLines => scalar(t.var, flag(mp.crlf_lf_lines), out),
        Var::MultipartLfLine => scalar(t.var, flag(mp.lf_line), out),
        Var::MultipartMissingSemicolon | Var::MultipartSemicolonMissing => {
            scalar(t.var, flag(mp.missing_semicolon), out)
        }
        Var::MultipartInvalidPart => scalar(t.var, flag(mp.invalid_part), out),
        Var::MultipartInvalidQuoting => scalar(t.var, flag(mp.invalid_quoting), out),
        Var::MultipartInvalidHeaderFolding => scalar(t.var, flag(mp.invalid_header_folding), out),
        Var::MultipartFileLimitExceeded => scalar(t.var, flag(mp.file_limit_exceeded), out),
        Var::Xml => xml(t, st, out),
        _ => {}
    }
}

/// XML targets: `/*` (and any element path) gives the document's text
/// content, `//@*` every attribute value. Other XPath forms are not
/// evaluated (CRS uses only these two).
fn xml<'a>(t: &Target, st: &'a TxState, out: &mut Vec<Item<'a>>) {
    let Some(text) = &st.xml_text else { return };
    let path = match &t.sel {
        Selector::XPath(p) => p.as_str(),
        _ => "/*",
    };
    let key: Cow<'a, [u8]> = Cow::Owned(path.as_bytes().to_vec());
    if path.contains('@') {
        for a in &st.xml_attrs {
            out.push(Item {
                var: t.var,
                key: key.clone(),
                value: Cow::Borrowed(a),
                stable: true,
            });
        }
    } else {
        out.push(Item {
            var: t.var,
            key,
            value: Cow::Borrowed(text),
            stable: true,
        });
    }
}
