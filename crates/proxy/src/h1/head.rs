//! Parse and validate one HTTP/1.x request head.
//!
//! We parse the head ourselves (with `httparse`) instead of letting a general
//! HTTP library do it because a WAF must see the request as sent: header case,
//! order and duplicates, and because request-smuggling shapes must be refused
//! rather than normalised (a library that quietly merges two `Content-Length`
//! headers, or prefers `Transfer-Encoding`, is exactly what smuggling exploits).

use pipeline::HttpVersion;
use std::mem::MaybeUninit;

/// How the request body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// A parsed, validated request head.
#[derive(Debug)]
pub struct Head {
    pub method: String,
    pub target: String,
    pub version: HttpVersion,
    pub headers: Vec<(String, Vec<u8>)>,
    pub framing: Framing,
    pub keep_alive: bool,
    pub expect_continue: bool,
    /// Bytes the head took in the buffer (request line through the blank line).
    pub len: usize,
}

/// Why a head was refused; each maps to a status and always closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("request smuggling shape: {0}")]
    Smuggling(&'static str),
    #[error("too many header fields")]
    TooManyHeaders,
    #[error("request head too large")]
    HeadTooLarge,
    #[error("request target too long")]
    UriTooLong,
    /// HTTP/0.9, `1.1`, `HTTP/2.0` in an HTTP/1 request line: 400 as Apache answers.
    #[error("unsupported HTTP version")]
    Version,
    #[error("unsupported transfer coding")]
    TransferCoding,
    /// CONNECT: a reverse proxy does not open tunnels.
    #[error("method not allowed: {0}")]
    Method(&'static str),
}

impl HeadError {
    pub fn status(&self) -> u16 {
        match self {
            HeadError::TooManyHeaders | HeadError::HeadTooLarge => 431,
            HeadError::UriTooLong => 414,
            HeadError::TransferCoding => 501,
            HeadError::Method(_) => 405,
            _ => 400,
        }
    }
}

/// Limits applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub max_headers: usize,
    pub max_head_bytes: usize,
    pub max_url_bytes: usize,
}

/// Try to parse a head from `buf`. `Ok(None)` means more bytes are needed.
pub fn parse(buf: &[u8], limits: &HeadLimits) -> Result<Option<Head>, HeadError> {
    // httparse wants a fixed header array; one more than the limit lets us tell
    // "exactly at the limit" from "over it".
    // The common case (a limit up to STACK_HEADERS) parses into a stack array.
    // Left uninitialised: httparse writes the entries it fills (zeroing 4 KiB
    // per request for nothing otherwise).
    const STACK_HEADERS: usize = 128;
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut heap = Vec::new();
    let storage: &mut [MaybeUninit<httparse::Header<'_>>] = if limits.max_headers < STACK_HEADERS {
        &mut stack[..limits.max_headers + 1]
    } else {
        heap.resize_with(limits.max_headers.saturating_add(1), MaybeUninit::uninit);
        &mut heap
    };
    let mut req = httparse::Request::new(&mut []);
    let status = match req.parse_with_uninit_headers(buf, storage) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(httparse::Error::Version) => return Err(HeadError::Version),
        Err(httparse::Error::HeaderName) | Err(httparse::Error::HeaderValue) => {
            // Also covers obsolete line folding, which httparse refuses in requests.
            return Err(HeadError::Malformed("invalid header field"));
        }
        Err(_) => {
            if buf.len() > limits.max_head_bytes {
                return Err(HeadError::HeadTooLarge);
            }
            return Err(HeadError::Malformed("invalid request line"));
        }
    };
    let len = match status {
        httparse::Status::Partial => {
            if buf.len() > limits.max_head_bytes {
                // Tell a long URL from a long head when the request line alone is over.
                let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
                if line_end > limits.max_url_bytes {
                    return Err(HeadError::UriTooLong);
                }
                return Err(HeadError::HeadTooLarge);
            }
            return Ok(None);
        }
        httparse::Status::Complete(n) => n,
    };
    if len > limits.max_head_bytes {
        return Err(HeadError::HeadTooLarge);
    }
    if req.headers.len() > limits.max_headers {
        return Err(HeadError::TooManyHeaders);
    }
    let method = req.method.unwrap_or_default().to_string();
    let target = req.path.unwrap_or_default().to_string();
    if target.len() > limits.max_url_bytes {
        return Err(HeadError::UriTooLong);
    }
    check_target(&method, &target)?;
    let version = match req.version {
        Some(0) => HttpVersion::Http10,
        Some(1) => HttpVersion::Http11,
        _ => return Err(HeadError::Version),
    };

    let mut headers = Vec::with_capacity(req.headers.len());
    let mut content_length: Option<u64> = None;
    let mut te_seen = false;
    let mut chunked = false;
    let mut host_count = 0;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name;
        let value = h.value;
        if name.eq_ignore_ascii_case("content-length") {
            if content_length.is_some() {
                return Err(HeadError::Smuggling("duplicate Content-Length"));
            }
            content_length = Some(parse_content_length(value)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if te_seen {
                return Err(HeadError::Smuggling("duplicate Transfer-Encoding"));
            }
            te_seen = true;
            let v = trim(value);
            if v.eq_ignore_ascii_case(b"chunked") {
                chunked = true;
            } else if v
                .split(|&b| b == b',')
                .any(|c| trim(c).eq_ignore_ascii_case(b"chunked"))
            {
                // `gzip, chunked` is legal HTTP, but we do not decode codings
                // and forwarding them invites disagreement with the upstream.
                return Err(HeadError::TransferCoding);
            } else {
                return Err(HeadError::Smuggling("Transfer-Encoding without chunked"));
            }
        } else if name.eq_ignore_ascii_case("host") {
            host_count += 1;
            // HTTP/1.1 requires a usable Host; an empty one in HTTP/1.0 is left to the WAF.
            if !(valid_host(value) || value.is_empty() && req.version == Some(0)) {
                return Err(HeadError::Malformed("invalid Host"));
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for tok in value.split(|&b| b == b',') {
                let tok = trim(tok);
                if tok.eq_ignore_ascii_case(b"close") {
                    conn_close = true;
                } else if tok.eq_ignore_ascii_case(b"keep-alive") {
                    conn_keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = trim(value).eq_ignore_ascii_case(b"100-continue");
        }
        headers.push((name.to_string(), value.to_vec()));
    }
    if te_seen && content_length.is_some() {
        return Err(HeadError::Smuggling(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    if te_seen && version == HttpVersion::Http10 {
        return Err(HeadError::Smuggling("Transfer-Encoding in HTTP/1.0"));
    }
    if host_count > 1 {
        return Err(HeadError::Malformed("duplicate Host"));
    }
    let framing = if chunked {
        Framing::Chunked
    } else {
        match content_length {
            Some(0) | None => Framing::None,
            Some(n) => Framing::Length(n),
        }
    };
    let keep_alive = match version {
        HttpVersion::Http11 => !conn_close,
        _ => conn_keep_alive && !conn_close,
    };
    Ok(Some(Head {
        method,
        target,
        version,
        headers,
        framing,
        keep_alive,
        expect_continue,
        len,
    }))
}

/// Content-Length must be plain digits: no sign, no list (`5, 5`), no spaces inside.
/// The request-target forms RFC 9112 allows: origin-form (`/path?query`, no
/// fragment), absolute-form (`http://...`), `*` for OPTIONS, and
/// authority-form for CONNECT, which a reverse proxy refuses (405).
fn check_target(method: &str, target: &str) -> Result<(), HeadError> {
    if method == "CONNECT" {
        let ok = target
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        return Err(if ok {
            HeadError::Method("CONNECT")
        } else {
            HeadError::Malformed("CONNECT target is not host:port")
        });
    }
    if target == "*" {
        return if method == "OPTIONS" {
            Ok(())
        } else {
            Err(HeadError::Malformed("`*` target outside OPTIONS"))
        };
    }
    let has_prefix = |p: &str| {
        target
            .as_bytes()
            .get(..p.len())
            .is_some_and(|t| t.eq_ignore_ascii_case(p.as_bytes()))
    };
    let origin = target.starts_with('/');
    if !origin && !has_prefix("http://") && !has_prefix("https://") {
        return Err(HeadError::Malformed("invalid request target"));
    }
    if target.contains('#') {
        return Err(HeadError::Malformed("fragment in request target"));
    }
    Ok(())
}

/// A Host value: reg-name, IPv4 or `[IPv6]`, optional port. Empty, `%`-encoded
/// or control bytes are refused, as Apache does.
fn valid_host(v: &[u8]) -> bool {
    !v.is_empty()
        && v.iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
        })
}

fn parse_content_length(v: &[u8]) -> Result<u64, HeadError> {
    let v = trim(v);
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return Err(HeadError::Smuggling("invalid Content-Length"));
    }
    Ok(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: HeadLimits = HeadLimits {
        max_headers: 10,
        max_head_bytes: 1024,
        max_url_bytes: 100,
    };

    fn p(s: &str) -> Result<Option<Head>, HeadError> {
        parse(s.as_bytes(), &L)
    }

    #[test]
    fn plain_get() {
        let h = p("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.method, "GET");
        assert_eq!(h.target, "/a?b=1");
        assert_eq!(h.framing, Framing::None);
        assert!(h.keep_alive);
        assert_eq!(h.headers[1].0, "X-A");
    }

    /// The limit counts exactly, on the stack array (small limits) and on
    /// the heap (limits past it).
    #[test]
    fn header_count_limits() {
        let head = |n: usize| -> String {
            let fields: String = (1..n).map(|i| format!("X-{i}: v\r\n")).collect();
            format!("GET / HTTP/1.1\r\nHost: x\r\n{fields}\r\n")
        };
        for max in [10, 127, 128, 200] {
            let lim = HeadLimits {
                max_headers: max,
                max_head_bytes: 1 << 20,
                max_url_bytes: 100,
            };
            let h = parse(head(max).as_bytes(), &lim).unwrap().unwrap();
            assert_eq!(h.headers.len(), max);
            assert_eq!(h.headers[max - 1].0, format!("X-{}", max - 1));
            assert!(matches!(
                parse(head(max + 1).as_bytes(), &lim),
                Err(HeadError::TooManyHeaders)
            ));
        }
    }

    #[test]
    fn partial_needs_more() {
        assert!(p("GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
    }

    #[test]
    fn request_targets_and_hosts() {
        let lim = HeadLimits {
            max_headers: 10,
            max_head_bytes: 4096,
            max_url_bytes: 1024,
        };
        let st = |r: &str| parse(r.as_bytes(), &lim).err().map(|e| e.status());
        assert_eq!(
            st("GET /a?b=c HTTP/1.1\r\nHost: x.example:80\r\n\r\n"),
            None
        );
        assert_eq!(st("GET http://x/a HTTP/1.1\r\nHost: x\r\n\r\n"), None);
        assert_eq!(st("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"), None);
        assert_eq!(
            st("GET /no-host HTTP/1.1\r\n\r\n"),
            None,
            "the WAF judges a missing Host"
        );
        assert_eq!(st("GET * HTTP/1.1\r\nHost: x\r\n\r\n"), Some(400));
        assert_eq!(st("GET \\ HTTP/1.1\r\nHost: x\r\n\r\n"), Some(400));
        assert_eq!(st("GET /#frag HTTP/1.1\r\nHost: x\r\n\r\n"), Some(400));
        assert_eq!(
            st("CONNECT 1.2.3.4:80 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(405)
        );
        assert_eq!(
            st("CONNECT example.org HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(400)
        );
        for h in ["", "localhost%00", "a b", "x/y"] {
            assert_eq!(
                st(&format!("GET / HTTP/1.1\r\nHost: {h}\r\n\r\n")),
                Some(400),
                "{h:?}"
            );
        }
    }

    #[test]
    fn smuggling_shapes_refused() {
        let cases = [
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
            "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        ];
        for c in cases {
            let e = p(c).unwrap_err();
            assert_eq!(e.status(), 400, "{c:?} gave {e:?}");
        }
    }

    #[test]
    fn obsolete_folding_refused() {
        let e = p("GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n continued\r\n\r\n").unwrap_err();
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn limits() {
        let many: String = (0..11).map(|i| format!("X-{i}: 1\r\n")).collect();
        assert_eq!(
            p(&format!("GET / HTTP/1.1\r\n{many}\r\n")).unwrap_err(),
            HeadError::TooManyHeaders
        );
        let long = "a".repeat(200);
        assert_eq!(
            p(&format!("GET /{long} HTTP/1.1\r\n\r\n")).unwrap_err(),
            HeadError::UriTooLong
        );
        let big = "b".repeat(2000);
        assert_eq!(
            p(&format!("GET / HTTP/1.1\r\nX: {big}\r\n\r\n")).unwrap_err(),
            HeadError::HeadTooLarge
        );
        assert_eq!(
            p(&format!("GET /{} HTTP/1.1\r\n", "a".repeat(1100))).unwrap_err(),
            HeadError::UriTooLong
        );
    }

    #[test]
    fn keep_alive_rules() {
        assert!(!p("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap().keep_alive);
        assert!(
            p("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                .unwrap()
                .unwrap()
                .keep_alive
        );
        assert!(
            !p("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
                .unwrap()
                .unwrap()
                .keep_alive
        );
    }

    #[test]
    fn framing() {
        let h = p("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Length(12));
        let h = p("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
    }
}
