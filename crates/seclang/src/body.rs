//! Request-body processing (URLENCODED, MULTIPART, JSON, XML) into the
//! variables v2 exposes, body limits, and response-header state.

use crate::engine::Runtime;
use crate::rules::{Config, LimitAction};
use crate::state::TxState;
use crate::{EngineMode, Intervention};

fn hexval(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// v2 `urldecode_nonstrict`, appended to `o`: `+` is a space, `%XX`
/// decodes, anything invalid stays as it is. Returns whether an invalid
/// encoding was seen.
fn url_decode_into(v: &[u8], o: &mut Vec<u8>) -> bool {
    let mut bad = false;
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'+' => o.push(b' '),
            b'%' => match (
                v.get(i + 1).and_then(|&c| hexval(c)),
                v.get(i + 2).and_then(|&c| hexval(c)),
            ) {
                (Some(a), Some(b)) => {
                    o.push(a * 16 + b);
                    i += 2;
                }
                _ => {
                    bad = true;
                    o.push(b'%');
                }
            },
            c => o.push(c),
        }
        i += 1;
    }
    bad
}

/// v2 `parse_arguments`: split on the separator, name and value decoded,
/// a pair without `=` has an empty value, empty pairs are skipped. The
/// pairs are handed to `each` as they are decoded, from one reused buffer
/// (no buffer per name and value). Returns whether an invalid encoding
/// was seen.
pub fn each_urlencoded(s: &[u8], sep: u8, mut each: impl FnMut(&[u8], &[u8])) -> bool {
    let mut bad = false;
    let mut buf = Vec::with_capacity(s.len());
    for part in s.split(|&b| b == sep) {
        if part.is_empty() {
            continue;
        }
        let (n, v) = match part.iter().position(|&b| b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &[][..]),
        };
        buf.clear();
        bad |= url_decode_into(n, &mut buf);
        let split = buf.len();
        bad |= url_decode_into(v, &mut buf);
        let (n, v) = buf.split_at(split);
        each(n, v);
    }
    bad
}

/// The name/value pairs of a Cookie header, borrowed from it. v2
/// version-0 cookie parsing: `;` separated `name=value`, names trimmed of
/// leading whitespace, values kept raw (quotes included).
pub fn cookie_pairs(h: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    h.split(|&b| b == b';').filter_map(|part| {
        let part = part.trim_ascii_start();
        let (n, v) = match part.iter().position(|&b| b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &[][..]),
        };
        let n = n.trim_ascii_end();
        (!n.is_empty()).then_some((n, v))
    })
}

fn error(st: &mut TxState, msg: String) {
    st.reqbody_error = true;
    st.reqbody_processor_error = true;
    st.reqbody_error_msg = msg.clone().into_bytes();
    st.reqbody_processor_error_msg = msg.into_bytes();
}

/// Phase-2 body handling; an intervention when the body breaks a limit
/// and `SecRequestBodyLimitAction Reject` applies.
pub fn process(
    st: &mut TxState,
    rt: &mut Runtime,
    cfg: &Config,
    body: &[u8],
    truncated: bool,
) -> Option<Intervention> {
    let reject = |rt: &mut Runtime, msg: &str| {
        let iv = Intervention {
            status: 413,
            rule_id: 0,
            redirect: None,
            drop: false,
            msg: msg.into(),
        };
        rt.intervention = Some(iv.clone());
        Some(iv)
    };
    let mut body = body;
    if truncated || body.len() > rt.req_body_limit {
        if cfg.req_body_limit_action == LimitAction::Reject && rt.mode == EngineMode::On {
            return reject(rt, "Request body is larger than the configured limit");
        }
        st.inbound_data_error = true;
        body = body
            .get(..rt.req_body_limit.min(body.len()))
            .unwrap_or(body);
    }
    let proc_name = st.reqbody_processor.clone();
    let is_multipart = proc_name.as_deref() == Some("MULTIPART");
    if !is_multipart && body.len() > cfg.req_body_nofiles_limit {
        if cfg.req_body_limit_action == LimitAction::Reject && rt.mode == EngineMode::On {
            return reject(
                rt,
                "Request body no files data length is larger than the configured limit",
            );
        }
        st.inbound_data_error = true;
        body = body.get(..cfg.req_body_nofiles_limit).unwrap_or(body);
    }
    st.request_body_length = body.len();
    match proc_name.as_deref() {
        Some("URLENCODED") => {
            let (shared, bad) =
                crate::state::push_urlencoded(&mut st.args, body, cfg.arg_separator, true);
            st.urlencoded_error |= bad;
            st.args_shared |= shared;
            st.request_body = Some(body.to_vec());
        }
        Some("MULTIPART") => multipart(st, body),
        Some("JSON") => {
            if !body.is_empty() {
                json(st, cfg, body)
            }
        }
        Some("XML") => xml(st, body),
        _ => {
            if rt.force_body_var {
                st.request_body = Some(body.to_vec());
            }
        }
    }
    None
}

fn multipart(st: &mut TxState, body: &[u8]) {
    st.multipart_seen = true;
    let ct = st.req_header("content-type").unwrap_or(&[]).to_vec();
    match crate::bodyproc::multipart(&ct, body) {
        Ok(m) => {
            st.multipart = m.flags;
            st.args_shared |= crate::state::push_args(&mut st.args, m.args, true);
            st.files_combined_size = m.files.iter().map(|f| f.size).sum();
            st.files = m.files;
            st.part_headers = m.part_headers;
            st.multipart_filename = m.last_filename;
            st.multipart_name = m.last_name;
        }
        Err((msg, flags)) => {
            st.multipart = flags;
            error(st, format!("Multipart parsing error: {msg}"));
        }
    }
}

fn json(st: &mut TxState, cfg: &Config, body: &[u8]) {
    match crate::bodyproc::json(body, cfg.json_depth_limit, cfg.args_limit, &mut st.args) {
        Ok(shared) => st.args_shared |= shared,
        Err(msg) => error(st, format!("JSON parsing error: {msg}")),
    }
}

fn xml(st: &mut TxState, body: &[u8]) {
    match crate::bodyproc::xml(body) {
        Ok((text, attrs)) => {
            st.xml_text = Some(text);
            st.xml_attrs = attrs;
        }
        Err(msg) => error(st, format!("XML parsing error: {msg}")),
    }
}

/// Phase-3 state from the response head.
pub fn response_headers(
    st: &mut TxState,
    status: u16,
    protocol: &str,
    headers: &[(String, Vec<u8>)],
) {
    st.status = Some(status);
    st.resp_protocol = protocol.as_bytes().to_vec();
    let mut line = Vec::with_capacity(protocol.len() + 4);
    line.extend_from_slice(protocol.as_bytes());
    line.push(b' ');
    line.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    st.status_line = line;
    // Into the last transaction's buffers (see `state::Spare`).
    let mut kept = std::mem::take(&mut st.resp_headers_spare);
    crate::state::fill_pairs(
        &mut kept,
        headers.iter().map(|(n, v)| (n.as_bytes(), v.as_slice())),
    );
    st.resp_headers = kept;
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    st.resp_content_type = get("content-type").unwrap_or_default();
    st.resp_content_length = get("content-length").unwrap_or_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urlencoded(s: &[u8], sep: u8) -> (crate::state::Pairs, bool) {
        let mut out = Vec::new();
        let bad = each_urlencoded(s, sep, |n, v| out.push((n.to_vec(), v.to_vec())));
        (out, bad)
    }

    #[test]
    fn urlencoded_like_v2() {
        let (a, bad) = urlencoded(b"a=1&b=%27x%27&&c&d=%zz+y&=e", b'&');
        let a: Vec<(String, String)> = a
            .into_iter()
            .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
            .collect();
        let want = [
            ("a", "1"),
            ("b", "'x'"),
            ("c", ""),
            ("d", "%zz y"),
            ("", "e"),
        ];
        assert_eq!(a.len(), want.len());
        for (g, w) in a.iter().zip(want) {
            assert_eq!((g.0.as_str(), g.1.as_str()), w);
        }
        assert!(bad);
        let (a, _) = urlencoded(b"x=1;y=2", b';');
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn cookie_parsing() {
        let c: Vec<_> = cookie_pairs(b"a=1; b=\"q\";c; =x;  d = 4 ").collect();
        let names: Vec<&[u8]> = c.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, [&b"a"[..], b"b", b"c", b"d"]);
        assert_eq!(c[1].1, b"\"q\"");
        assert_eq!(c[3].1, b" 4 ");
    }
}
