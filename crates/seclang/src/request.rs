//! Phase-1 state from the request head: request line pieces as Apache and
//! ModSecurity v2 derive them, headers, cookies, query arguments, and the
//! default body processor chosen from Content-Type.

use crate::actions::setvar::push_int;
use crate::state::TxState;
use bodyparse::percent_decode;
use pipeline::RequestHead;
use std::time::{Instant, SystemTime};

/// Split a request-target into (path, query) the way `apr_uri_parse` does:
/// absolute-form loses scheme and authority, `#` ends path and query.
pub fn split_target(t: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut rest = t;
    let scheme = |s: &[u8]| t.get(..s.len()).is_some_and(|p| p.eq_ignore_ascii_case(s));
    if scheme(b"http://") || scheme(b"https://") {
        let after = t
            .iter()
            .position(|&b| b == b':')
            .map(|i| i + 3)
            .unwrap_or(0);
        let tail = t.get(after..).unwrap_or(&[]);
        rest = match tail
            .iter()
            .position(|&b| b == b'/' || b == b'?' || b == b'#')
        {
            Some(i) => &tail[i..],
            None => &[],
        };
    }
    let end = rest.iter().position(|&b| b == b'#').unwrap_or(rest.len());
    let rest = &rest[..end];
    match rest.iter().position(|&b| b == b'?') {
        Some(i) => (rest[..i].to_vec(), Some(rest[i + 1..].to_vec())),
        None => (rest.to_vec(), None),
    }
}

/// The last path segment after `/` or `\` (v2 `file_basename`).
pub fn basename(path: &[u8]) -> Vec<u8> {
    let a = path
        .iter()
        .rposition(|&b| b == b'/')
        .map(|i| i + 1)
        .unwrap_or(0);
    let p = &path[a..];
    let b = p
        .iter()
        .rposition(|&b| b == b'\\')
        .map(|i| i + 1)
        .unwrap_or(0);
    p[b..].to_vec()
}

/// `n` in decimal. `to_string` goes through the formatting machinery, a
/// measurable share of a small request's cost at four calls per request.
fn decimal(n: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    push_int(&mut out, n.into());
    out
}

/// The state a transaction starts from (TX aside); `spare` gives the
/// buffers of the thread's last transaction to fill again (see `state::Spare`).
pub fn initial_state(
    req: &RequestHead,
    unique_id: &str,
    sep: u8,
    spare: crate::state::Spare,
) -> TxState {
    let mut st = TxState {
        started: Some(Instant::now()),
        wall: Some(SystemTime::now()),
        req_headers: spare.req_headers,
        cookies: spare.cookies,
        resp_headers_spare: spare.resp_headers,
        matched_vars: spare.matched_vars,
        matched_var: spare.matched_var,
        matched_var_name: spare.matched_var_name,
        ..Default::default()
    };
    st.matched_vars.clear();
    st.method = req.method.as_bytes().to_vec();
    st.uri_raw = req.uri_raw.as_bytes().to_vec();
    let (path, query) = split_target(req.uri_raw.as_bytes());
    st.uri = path.clone();
    if let Some(q) = &query {
        st.uri.push(b'?');
        st.uri.extend_from_slice(q);
    }
    // Apache decodes the path in place before ModSecurity sees it, so
    // REQUEST_FILENAME and REQUEST_BASENAME are percent-decoded ('+' stays).
    let path = percent_decode(&path);
    st.basename = basename(&path);
    st.path = path;
    st.protocol = req.version.as_str().as_bytes().to_vec();
    st.request_line = req.request_line().into_bytes();
    crate::state::fill_pairs(
        &mut st.req_headers,
        req.headers
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_slice())),
    );
    crate::state::fill_pairs(
        &mut st.cookies,
        req.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| crate::body::cookie_pairs(v)),
    );
    if let Some(q) = &query {
        let (shared, err) = crate::state::push_urlencoded(&mut st.args, q, sep, false);
        st.urlencoded_error |= err;
        st.args_shared |= shared;
    }
    st.query = query;
    st.remote_addr = pipeline::ip_text(req.client_ip).into_bytes();
    st.remote_port = decimal(req.peer.port().into());
    st.server_addr = pipeline::ip_text(req.local.ip()).into_bytes();
    st.server_port = decimal(req.local.port().into());
    st.server_name = req.host().as_bytes().to_vec();
    st.unique_id = unique_id.as_bytes().to_vec();
    if let Some(a) = req.header("authorization") {
        st.auth_type = a.split(|&b| b == b' ').next().unwrap_or(&[]).to_vec();
    }
    // v2 picks URLENCODED/MULTIPART from the first Content-Type before phase 1.
    if let Some(ct) = req.header("content-type") {
        let starts = |s: &[u8]| ct.get(..s.len()).is_some_and(|p| p.eq_ignore_ascii_case(s));
        if starts(b"application/x-www-form-urlencoded") {
            st.reqbody_processor = Some("URLENCODED".into());
        } else if starts(b"multipart/form-data") {
            st.reqbody_processor = Some("MULTIPART".into());
        }
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_read_as_display_writes_them() {
        for n in [0u32, 7, 10, 99, 100, 8080, 65535, u32::MAX] {
            assert_eq!(decimal(n), n.to_string().into_bytes());
        }
    }

    #[test]
    fn targets() {
        let c = |t: &str, p: &str, q: Option<&str>| {
            let (pp, qq) = split_target(t.as_bytes());
            assert_eq!(pp, p.as_bytes(), "{t}");
            assert_eq!(qq.as_deref(), q.map(str::as_bytes), "{t}");
        };
        c("/a/b?x=1", "/a/b", Some("x=1"));
        c("/?", "/", Some(""));
        c("/p", "/p", None);
        c("http://h.example:80/x?y", "/x", Some("y"));
        c("HTTPS://h", "", None);
        c("/a#frag?x", "/a", None);
        c("/a%2fb?q=%27", "/a%2fb", Some("q=%27"));
    }

    #[test]
    fn filename_is_percent_decoded() {
        assert_eq!(percent_decode(b"/a%20(b%2"), b"/a (b%2");
        assert_eq!(percent_decode(b"/a+b%zz"), b"/a+b%zz");
    }

    #[test]
    fn basenames() {
        assert_eq!(basename(b"/a/b/c.php"), b"c.php");
        assert_eq!(basename(b"/a\\b.asp"), b"b.asp");
        assert_eq!(basename(b"/"), b"");
    }
}
