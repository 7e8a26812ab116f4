//! Raw request building (go-ftw `ftwhttp/request.go` semantics) and a
//! minimal raw HTTP/1 client.

use crate::schema::Input;
use base64::Engine;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn has_header(h: &[(String, String)], name: &str) -> bool {
    h.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `base64.StdEncoding.DecodeString`, which skips `\r` and `\n`.
pub fn b64_decode(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let clean: String = s.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    base64::engine::general_purpose::STANDARD.decode(clean)
}

/// go-ftw's `encodeDataParameters` for `application/x-www-form-urlencoded`
/// bodies: when unescaping would change nothing (no `%` and no `+`), encode
/// each `key=value` pair separately.
pub fn encode_form_data(data: &[u8]) -> Vec<u8> {
    // url.QueryUnescape either fails (bad %) or changes the string when it
    // holds a '%' escape or a '+'; in both cases go-ftw sends data as is.
    if data.is_empty() || data.iter().any(|&b| b == b'%' || b == b'+') {
        return data.to_vec();
    }
    let parts: Vec<String> = data
        .split(|&b| b == b'&')
        .map(|tok| match tok.iter().position(|&b| b == b'=') {
            None => query_escape(tok),
            Some(eq) => format!(
                "{}={}",
                query_escape(&tok[..eq]),
                query_escape(&tok[eq + 1..])
            ),
        })
        .collect();
    // A trailing '&' produces no extra token in go-ftw's loop.
    let mut parts = parts;
    if data.ends_with(b"&") {
        parts.pop();
    }
    parts.join("&").into_bytes()
}

fn methods_with_body() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    // Same (loosely anchored) alternation as go-ftw.
    RE.get_or_init(|| regex::Regex::new("^POST|PUT|PATCH|DELETE$").expect("static regex"))
}

/// The body go-ftw would send for this input: templated `data`, or
/// base64 `encoded_data`. `None` = no body.
pub fn input_data(input: &Input) -> Option<Vec<u8>> {
    if let Some(d) = &input.data {
        // go-ftw: a template error yields no data at all.
        return crate::template::render(d).ok().map(String::into_bytes);
    }
    if let Some(e) = &input.encoded_data {
        return b64_decode(e).ok();
    }
    None
}

/// Build a request from its parts, as go-ftw's `BuildRequest` does.
pub fn build_request(
    method: &str,
    uri: &str,
    version: &str,
    headers: &[(String, String)],
    data: Option<Vec<u8>>,
    autocomplete: bool,
) -> Vec<u8> {
    let mut headers: Vec<(String, String)> = headers.to_vec();
    let mut data = data.unwrap_or_default();
    if !data.is_empty() && autocomplete {
        if !has_header(&headers, "Content-Type") {
            headers.push((
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
        let form = headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("Content-Type")
                && v.eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
        if form {
            data = encode_form_data(&data);
        }
    }
    let multipart = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("Content-Type")
            && v.to_ascii_lowercase().contains("multipart/form-data;")
    });
    if multipart {
        let mut d = Vec::with_capacity(data.len() + data.len() / 16);
        for &b in &data {
            if b == b'\n' {
                d.extend_from_slice(b"\r\n");
            } else {
                d.push(b);
            }
        }
        data = d;
    }
    if autocomplete {
        if !has_header(&headers, "Connection") {
            headers.push(("Connection".into(), "close".into()));
        }
        if !has_header(&headers, "Content-Length")
            && (!data.is_empty() || methods_with_body().is_match(method))
        {
            headers.push(("Content-Length".into(), data.len().to_string()));
        }
    }
    let mut out = Vec::with_capacity(128 + data.len());
    out.extend_from_slice(format!("{method} {uri} {version}\r\n").as_bytes());
    for (n, v) in &headers {
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&data);
    out
}

/// The raw bytes go-ftw sends for a test stage input.
pub fn raw_request(input: &Input) -> Result<Vec<u8>, String> {
    if let Some(er) = input.encoded_request.as_deref().filter(|s| !s.is_empty()) {
        if input.data.as_deref().is_some_and(|d| !d.is_empty()) {
            return Err("'data' and 'encoded_request' must not be set simultaneously".into());
        }
        return b64_decode(er).map_err(|e| format!("bad encoded_request: {e}"));
    }
    Ok(build_request(
        input.method(),
        input.uri(),
        input.version(),
        &input.header_list(),
        input_data(input),
        input.autocomplete(),
    ))
}

/// go-ftw's log-marker request.
pub fn marker_request(header: &str, id: &str) -> Vec<u8> {
    build_request(
        "GET",
        "/status/200",
        "HTTP/1.1",
        &[
            ("Accept".into(), "*/*".into()),
            ("User-Agent".into(), "go-ftw test agent".into()),
            ("Host".into(), "localhost".into()),
            (header.into(), id.into()),
        ],
        None,
        true,
    )
}

/// A response as received.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Status line, headers and whatever body was read.
    pub raw: Vec<u8>,
}

/// Timeouts for [`send`].
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// Waiting for the response head.
    pub read: Duration,
    /// Extra time to read the body after the head.
    pub body: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(3),
            read: Duration::from_secs(3),
            body: Duration::from_secs(1),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

struct Head {
    status: u16,
    len: usize,
    content_length: Option<usize>,
    chunked: bool,
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let Some(end) = find(buf, b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| find(buf, b"\n\n").map(|p| p + 2))
    else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let proto = parts.next().unwrap_or_default();
    if !proto.starts_with("HTTP/") {
        return Err(format!("malformed HTTP response {status_line:?}"));
    }
    let code = parts.next().unwrap_or_default();
    if code.len() != 3 {
        return Err(format!("malformed HTTP status code {code:?}"));
    }
    let status: u16 = code
        .parse()
        .map_err(|_| format!("malformed HTTP status code {code:?}"))?;
    let mut content_length = None;
    let mut chunked = false;
    for l in lines {
        if let Some((n, v)) = l.split_once(':') {
            let n = n.trim();
            let v = v.trim();
            if n.eq_ignore_ascii_case("content-length") {
                content_length = v.parse().ok();
            } else if n.eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
            {
                chunked = true;
            }
        }
    }
    Ok(Some(Head {
        status,
        len: end,
        content_length,
        chunked,
    }))
}

/// Is the chunked body starting at `body` complete?
fn chunked_complete(body: &[u8]) -> bool {
    let mut p = 0;
    loop {
        let Some(le) = find(&body[p..], b"\r\n") else {
            return false;
        };
        let line = String::from_utf8_lossy(&body[p..p + le]);
        let size_str = line.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_str, 16) else {
            return true;
        };
        p += le + 2;
        if size == 0 {
            return find(&body[p..], b"\r\n\r\n").is_some() || body[p..].starts_with(b"\r\n");
        }
        p += size + 2;
        if p > body.len() {
            return false;
        }
    }
}

/// Send `data` over a fresh connection to `target` and read one response.
/// Interim `1xx` responses (other than 101) are skipped.
pub async fn send(
    target: SocketAddr,
    data: &[u8],
    no_body: bool,
    t: Timeouts,
) -> Result<RawResponse, String> {
    let mut stream = match tokio::time::timeout(t.connect, TcpStream::connect(target)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("connect: {e}")),
        Err(_) => return Err("connect: timeout".into()),
    };
    let _ = stream.set_nodelay(true);
    match tokio::time::timeout(t.read, stream.write_all(data)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("write: {e}")),
        Err(_) => return Err("write: timeout".into()),
    }
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16384];
    let head_deadline = tokio::time::Instant::now() + t.read;
    let mut eof = false;
    // Read the head (skipping interim responses).
    let head = loop {
        if let Some(h) = parse_head(&buf)? {
            if (100..200).contains(&h.status) && h.status != 101 {
                buf.drain(..h.len);
                continue;
            }
            break h;
        }
        if eof {
            return Err(if buf.is_empty() {
                "EOF: connection closed without a response".into()
            } else {
                "unexpected EOF in response head".into()
            });
        }
        match tokio::time::timeout_at(head_deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) => eof = true,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(format!("read: {e}")),
            Err(_) => return Err("read: i/o timeout".into()),
        }
    };
    // Body: best effort, bounded in time; errors here do not fail the request.
    let body_deadline = tokio::time::Instant::now() + t.body;
    let bodyless = no_body || head.status == 204 || head.status == 304 || head.status == 101;
    while !eof && !bodyless {
        let body = &buf[head.len..];
        if head.chunked {
            if chunked_complete(body) {
                break;
            }
        } else if let Some(cl) = head.content_length {
            if body.len() >= cl {
                break;
            }
        }
        if buf.len() > 64 * 1024 * 1024 {
            break;
        }
        match tokio::time::timeout_at(body_deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) => eof = true,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(_)) | Err(_) => break,
        }
    }
    Ok(RawResponse {
        status: head.status,
        raw: buf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::parse_test_file;

    fn input(yaml: &str) -> Input {
        let f = parse_test_file(
            &format!("rule_id: 1\ntests:\n  - test_id: 1\n    stages:\n      - input:\n{yaml}"),
            "1.yaml",
        )
        .unwrap();
        f.tests[0].stages[0].input.clone()
    }

    fn s(b: Vec<u8>) -> String {
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn defaults_and_autocomplete() {
        let i =
            input("          headers:\n            User-Agent: x\n            Host: localhost\n");
        assert_eq!(
            s(raw_request(&i).unwrap()),
            "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: x\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn post_form_body_is_encoded() {
        let i = input(
            "          method: POST\n          headers:\n            Host: localhost\n          data: \"a=b c&d=<x>\"\n",
        );
        assert_eq!(
            s(raw_request(&i).unwrap()),
            "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Connection: close\r\nContent-Length: 15\r\n\r\na=b+c&d=%3Cx%3E"
        );
        // already escaped: sent as is
        let i = input("          method: POST\n          data: \"a=%3C&b=c+d\"\n");
        assert!(s(raw_request(&i).unwrap()).ends_with("Content-Length: 11\r\n\r\na=%3C&b=c+d"));
        // POST without body still gets Content-Length: 0
        let i = input("          method: POST\n");
        assert_eq!(
            s(raw_request(&i).unwrap()),
            "POST / HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn no_autocomplete_and_json() {
        let i = input(
            "          method: POST\n          autocomplete_headers: false\n          headers:\n            Content-Type: application/json\n          data: '{\"a\": 1}'\n",
        );
        assert_eq!(
            s(raw_request(&i).unwrap()),
            "POST / HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"a\": 1}"
        );
        let i = input("          stop_magic: true\n          data: 'a=b'\n");
        assert!(!i.autocomplete());
    }

    #[test]
    fn multipart_crlf_and_ordered_headers() {
        let i = input(
            "          method: POST\n          ordered_headers:\n            - name: Z\n              value: 1\n            - name: Content-Type\n              value: multipart/form-data; boundary=x\n          data: \"--x\\nA\\n--x--\\n\"\n",
        );
        assert_eq!(
            s(raw_request(&i).unwrap()),
            "POST / HTTP/1.1\r\nZ: 1\r\nContent-Type: multipart/form-data; boundary=x\r\nConnection: close\r\n\
             Content-Length: 15\r\n\r\n--x\r\nA\r\n--x--\r\n"
        );
    }

    #[test]
    fn encoded_request_and_data_and_templates() {
        let i = input("          encoded_request: R0VUIC8gSFRUUC8xLjANCg0K\n");
        assert_eq!(s(raw_request(&i).unwrap()), "GET / HTTP/1.0\r\n\r\n");
        let i = input("          method: PUT\n          headers:\n            Content-Type: text/plain\n          encoded_data: aGk=\n");
        assert!(s(raw_request(&i).unwrap()).ends_with("Content-Length: 2\r\n\r\nhi"));
        let i = input("          method: POST\n          headers:\n            Content-Type: text/plain\n          data: 'x={{ \"1\" | repeat 5 }}'\n");
        assert!(s(raw_request(&i).unwrap()).ends_with("Content-Length: 7\r\n\r\nx=11111"));
        // a broken template sends no body (go-ftw behaviour)
        let i = input("          headers:\n            Content-Type: text/plain\n          data: '{{ nope }}'\n");
        assert_eq!(
            s(raw_request(&i).unwrap()),
            "GET / HTTP/1.1\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn marker() {
        assert_eq!(
            s(marker_request("X-CRS-Test", "abc")),
            "GET /status/200 HTTP/1.1\r\nAccept: */*\r\nUser-Agent: go-ftw test agent\r\nHost: localhost\r\n\
             X-CRS-Test: abc\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn head_parsing() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n")
            .unwrap()
            .is_none());
        let h = parse_head(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\n\r\nabc")
            .unwrap()
            .unwrap();
        assert_eq!((h.status, h.content_length, h.len), (403, Some(3), 45));
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
        assert!(chunked_complete(b"3\r\nabc\r\n0\r\n\r\n"));
        assert!(!chunked_complete(b"3\r\nabc\r\n"));
    }
}
