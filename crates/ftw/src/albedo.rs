//! A minimal reimplementation of the `albedo` test backend used by CRS CI.
//!
//! * Any method / path answers `200` with an empty body.
//! * `POST /reflect` (or `/reflect/...`) with a JSON body
//!   `{status, headers, body | encodedBody, logMessage}` answers with exactly
//!   that status, those headers and that body.
//!
//! Like Go's `net/http` (which the real albedo uses), a reflected body without
//! a `Content-Type` gets a sniffed one (`text/plain; charset=utf-8`,
//! `text/html; charset=utf-8`, ...).

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::time::Duration;
use tokio::net::TcpListener;

/// Serve albedo on `listener` forever (spawn it with `tokio::spawn`).
pub async fn serve(listener: TcpListener) -> anyhow::Result<()> {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(_) => {
                // e.g. too many open files: back off a little and keep going
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let io = TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(io, service_fn(handle))
                .await;
        });
    }
}

async fn handle(req: http::Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let is_reflect = req.method() == Method::POST && {
        let p = req.uri().path();
        p == "/reflect" || p.starts_with("/reflect/")
    };
    // Always drain the body so keep-alive connections stay usable.
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(simple(
                StatusCode::BAD_REQUEST,
                "Failed to parse request body",
            ))
        }
    };
    if !is_reflect {
        return Ok(simple(StatusCode::OK, ""));
    }
    Ok(reflect(&body))
}

fn simple(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    if !body.is_empty() {
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    r
}

/// Field lookup that is case-insensitive, like Go's `encoding/json`.
fn field<'a>(
    obj: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<&'a serde_json::Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// Build the reflected response for a `/reflect` JSON spec.
pub fn reflect(body: &[u8]) -> Response<Full<Bytes>> {
    let invalid = || simple(StatusCode::BAD_REQUEST, "Invalid JSON in request body");
    let v: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => return invalid(),
    };
    let obj = match &v {
        serde_json::Value::Object(o) => o.clone(),
        serde_json::Value::Null => serde_json::Map::new(),
        _ => return invalid(),
    };
    let status = match field(&obj, "status") {
        None | Some(serde_json::Value::Null) => 0i64,
        Some(s) => match s.as_i64() {
            Some(n) => n,
            None => return invalid(),
        },
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    match field(&obj, "headers") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(h)) => {
            for (k, val) in h {
                match val {
                    serde_json::Value::String(s) => headers.push((k.clone(), s.clone())),
                    serde_json::Value::Null => headers.push((k.clone(), String::new())),
                    _ => return invalid(),
                }
            }
        }
        Some(_) => return invalid(),
    }
    let text = |name: &str| -> Result<String, ()> {
        match field(&obj, name) {
            None | Some(serde_json::Value::Null) => Ok(String::new()),
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(()),
        }
    };
    let (Ok(body_text), Ok(encoded)) = (text("body"), text("encodedBody")) else {
        return invalid();
    };
    if (status > 0 && status < 100) || !(0..600).contains(&status) {
        let msg = format!("Invalid status code: {status}");
        let mut r = Response::new(Full::new(Bytes::from(msg)));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    }
    let out_body: Vec<u8> = if !encoded.is_empty() {
        match crate::request::b64_decode(&encoded) {
            Ok(b) => b,
            Err(e) => {
                let mut r = Response::new(Full::new(Bytes::from(e.to_string())));
                *r.status_mut() = StatusCode::BAD_REQUEST;
                return r;
            }
        }
    } else {
        body_text.into_bytes()
    };
    let code = if status == 0 { 200 } else { status as u16 };
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    let mut has_ct = false;
    let mut resp_headers = http::HeaderMap::new();
    for (k, val) in &headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(val),
        ) else {
            continue;
        };
        if name == http::header::CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING {
            continue;
        }
        if name == http::header::CONTENT_TYPE {
            has_ct = true;
        }
        resp_headers.append(name, value);
    }
    if !has_ct && !out_body.is_empty() {
        resp_headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(sniff(&out_body)),
        );
    }
    let mut r = Response::new(Full::new(Bytes::from(out_body)));
    *r.status_mut() = status;
    *r.headers_mut() = resp_headers;
    r
}

/// A reduced version of Go's `http.DetectContentType`.
pub fn sniff(body: &[u8]) -> &'static str {
    let data = &body[..body.len().min(512)];
    let start = data
        .iter()
        .position(|b| !matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' '))
        .unwrap_or(data.len());
    let d = &data[start..];
    const HTML: &[&[u8]] = &[
        b"<!DOCTYPE HTML",
        b"<HTML",
        b"<HEAD",
        b"<SCRIPT",
        b"<IFRAME",
        b"<H1",
        b"<DIV",
        b"<FONT",
        b"<TABLE",
        b"<A",
        b"<STYLE",
        b"<TITLE",
        b"<B",
        b"<BODY",
        b"<BR",
        b"<P",
        b"<!--",
    ];
    for sig in HTML {
        if d.len() > sig.len()
            && d[..sig.len()].eq_ignore_ascii_case(sig)
            && matches!(d[sig.len()], b' ' | b'>')
        {
            return "text/html; charset=utf-8";
        }
    }
    if d.starts_with(b"<?xml") {
        return "text/xml; charset=utf-8";
    }
    if d.starts_with(b"%PDF-") {
        return "application/pdf";
    }
    if data.iter().any(|&b| {
        b <= 0x08 || b == 0x0b || (0x0e..=0x1a).contains(&b) || (0x1c..=0x1f).contains(&b)
    }) {
        return "application/octet-stream";
    }
    "text/plain; charset=utf-8"
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(r: Response<Full<Bytes>>) -> Vec<u8> {
        r.into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn reflect_status_headers_body() {
        let r = reflect(br#"{"status":503,"headers":{"X-A":"b"},"body":"hello"}"#);
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["x-a"], "b");
        assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
        assert_eq!(body_of(r).await, b"hello");
        let r = reflect(br#"{"encodedBody":"PGh0bWw+aGk8L2h0bWw+"}"#);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(body_of(r).await, b"<html>hi</html>");
        assert_eq!(reflect(b"not json").status(), 400);
        assert_eq!(reflect(br#"{"status":42}"#).status(), 400);
    }
}
