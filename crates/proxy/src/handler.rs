//! One request through the pipeline and the upstream, for HTTP/1 and HTTP/2 alike.

use crate::body::{BoxError, ClientBodyError, ReqBody, RespBody};
use crate::h1::is_hop_by_hop;
use crate::runtime::Runtime;
use crate::server::{ConnInfo, Shared};
use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Response};
use pipeline::{HttpVersion, RequestCtx, RequestHead, Verdict};
use std::sync::Arc;

pub struct Answer {
    pub resp: Response<RespBody>,
    /// Close the connection after this response.
    pub close: bool,
    /// Close the connection without sending the response (SecLang `drop`;
    /// the response's status is what the request is recorded with).
    pub drop: bool,
}

/// Build the request view from what the front end parsed.
pub fn request_head(
    rt: &Runtime,
    conn: &ConnInfo,
    method: String,
    target: String,
    version: HttpVersion,
    headers: Vec<(String, Vec<u8>)>,
) -> RequestHead {
    // Absolute-form (`http://host/p?q`) is reduced to path and query.
    let origin = if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        rest.find('/').map_or("/", |i| &rest[i..])
    } else {
        target.as_str()
    };
    let (path, query) = match origin.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (origin.to_string(), String::new()),
    };
    let client_ip = crate::clientip::resolve(conn.peer.ip(), &headers, &rt.trusted);
    RequestHead {
        method,
        uri_raw: target,
        path,
        query,
        version,
        headers,
        peer: conn.peer,
        client_ip,
        tls: conn.tls,
        local: conn.local,
    }
}

pub async fn handle(shared: &Shared, rt: Arc<Runtime>, head: RequestHead, body: ReqBody) -> Answer {
    let mut ctx = RequestCtx::new(head);
    ctx.id = shared.next_id();
    let mut answer = run(shared, &rt, &mut ctx, body).await;
    ctx.status = Some(answer.resp.status().as_u16());
    rt.pipeline.log(&mut ctx);
    shared.observer.record(&rt.digest, &ctx);
    if rt.digest_header_public {
        if let Ok(v) = HeaderValue::from_str(&rt.digest) {
            answer.resp.headers_mut().insert("x-palisade-digest", v);
        }
    }
    answer
}

fn local(status: u16, body: String, close: bool) -> Answer {
    let mut resp = Response::new(RespBody::full(body));
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::FORBIDDEN);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Answer {
        resp,
        close,
        drop: false,
    }
}

fn verdict_answer(v: Verdict, ctx: &RequestCtx) -> Answer {
    match v {
        Verdict::Deny { status, reason } => {
            let body = if status == 403 {
                format!("Request blocked by Palisade.\nReference: {}\n", ctx.id)
            } else {
                format!("{reason}\nReference: {}\n", ctx.id)
            };
            local(status, body, false)
        }
        Verdict::Challenge {
            status,
            headers,
            body,
        } => {
            let mut a = local(status, body, false);
            for (n, v) in headers {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(n.as_bytes()),
                    HeaderValue::from_str(&v),
                ) {
                    a.resp.headers_mut().insert(n, v);
                }
            }
            a
        }
        Verdict::Drop { .. } => Answer {
            drop: true,
            ..local(444, String::new(), true)
        },
        Verdict::Allow | Verdict::Tag { .. } => local(500, "internal error\n".into(), true),
    }
}

/// Find a client-body error in an error's source chain.
fn client_body_error(e: &(dyn std::error::Error + 'static)) -> Option<ClientBodyError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(c) = err.downcast_ref::<ClientBodyError>() {
            return Some(c.clone());
        }
        cur = err.source();
    }
    None
}

fn body_error_answer(e: BoxError) -> Answer {
    match client_body_error(e.as_ref()) {
        Some(c) => local(c.status(), format!("{c}\n"), true),
        None => local(400, "bad request body\n".into(), true),
    }
}

async fn run(shared: &Shared, rt: &Runtime, ctx: &mut RequestCtx, mut body: ReqBody) -> Answer {
    if let Some(v) = rt.pipeline.request_headers(rt, ctx) {
        return verdict_answer(v, ctx);
    }
    let Some(route) = ctx.route.as_deref().and_then(|r| rt.route(r)) else {
        return local(404, "no route\n".into(), false);
    };
    let upstream = route.upstream.clone();

    if rt.pipeline.wants_request_body(ctx) {
        let limit = rt.limits.inspect_body_bytes;
        let mut buf = BytesMut::new();
        let mut truncated = false;
        while let Some(chunk) = body.next_chunk().await {
            match chunk {
                Ok(c) => {
                    buf.extend_from_slice(&c);
                    if buf.len() > limit {
                        truncated = true;
                        break;
                    }
                }
                Err(e) => return body_error_answer(e),
            }
        }
        let seen = buf.freeze();
        let inspect = &seen[..seen.len().min(limit)];
        if let Some(v) = rt.pipeline.request_body(rt, ctx, inspect, truncated) {
            return verdict_answer(v, ctx);
        }
        body = body.with_prefix(seen);
    }

    // Upstream request: origin-form URI, end-to-end headers only.
    let target = upstream.pick();
    // Origin-form, as it goes to the upstream (no absolute URI to parse and cut down again).
    let mut origin = String::with_capacity(ctx.req.path.len() + 1 + ctx.req.query.len());
    origin.push_str(&ctx.req.path);
    if !ctx.req.query.is_empty() {
        origin.push('?');
        origin.push_str(&ctx.req.query);
    }
    let uri = match http::Uri::try_from(origin) {
        Ok(u) => u,
        Err(_) => return local(400, "invalid request target\n".into(), true),
    };
    let mut req = http::Request::new(body);
    *req.uri_mut() = uri;
    req.headers_mut().reserve(ctx.req.headers.len() + 2);
    *req.method_mut() = match http::Method::from_bytes(ctx.req.method.as_bytes()) {
        Ok(m) => m,
        Err(_) => return local(400, "invalid method\n".into(), true),
    };
    let h = req.headers_mut();
    // One copy of all the values; each forwarded value is a slice of it.
    let total = ctx.req.headers.iter().map(|(_, v)| v.len()).sum();
    let mut values = BytesMut::with_capacity(total);
    for (_, v) in &ctx.req.headers {
        values.extend_from_slice(v);
    }
    let values = values.freeze();
    // The fields `Connection:` lists, found once (not once per field).
    let listed = connection_listed(
        ctx.req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .map(|(_, v)| v.as_slice()),
    );
    let mut at = 0;
    for (n, v) in &ctx.req.headers {
        let value = values.slice(at..at + v.len());
        at += v.len();
        if is_hop_by_hop(n) || lists(&listed, n) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_maybe_shared(value),
        ) {
            h.append(n, v);
        }
    }
    if !h.contains_key(http::header::HOST) {
        // The client's (when it was not forwarded), else the upstream's address.
        let host = ctx.req.header("host").unwrap_or(target.as_bytes());
        if let Ok(v) = HeaderValue::from_bytes(host) {
            h.insert(http::header::HOST, v);
        }
    }
    append_forwarded(h, ctx);

    let sent = tokio::time::timeout(
        upstream.response_timeout,
        shared.client.request(target, req),
    )
    .await;
    let resp = match sent {
        Err(_) => return local(504, "upstream timed out\n".into(), true),
        Ok(Err(e)) => {
            if let Some(c) = client_body_error(e.as_ref()) {
                return local(c.status(), format!("{c}\n"), true);
            }
            tracing::warn!(upstream = %upstream.name, target, error = %e, "upstream request failed");
            return local(502, "upstream unavailable\n".into(), true);
        }
        Ok(Ok(r)) => r,
    };
    let (parts, incoming) = resp.into_parts();
    ctx.status = Some(parts.status.as_u16());
    if rt.pipeline.reads_response_headers(ctx) {
        ctx.response_headers = parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
            .collect();
    }
    if let Some(v) = rt.pipeline.response_headers(rt, ctx) {
        return verdict_answer(v, ctx);
    }
    let mut prefix: Option<Bytes> = None;
    let mut rest = incoming;
    if rt.pipeline.wants_response_body(ctx) {
        use http_body_util::BodyExt;
        let limit = rt.limits.inspect_body_bytes;
        let mut buf = BytesMut::new();
        let mut truncated = false;
        while let Some(frame) = rest.frame().await {
            match frame {
                Ok(f) => {
                    if let Ok(d) = f.into_data() {
                        buf.extend_from_slice(&d);
                        if buf.len() > limit {
                            truncated = true;
                            break;
                        }
                    }
                }
                Err(_) => return local(502, "upstream body failed\n".into(), true),
            }
        }
        let seen = buf.freeze();
        if let Some(v) =
            rt.pipeline
                .response_body(rt, ctx, &seen[..seen.len().min(limit)], truncated)
        {
            return verdict_answer(v, ctx);
        }
        prefix = Some(seen);
    }
    let mut out = Response::new(RespBody::Upstream { prefix, rest });
    *out.status_mut() = parts.status;
    let mut headers = parts.headers;
    let conn_listed = connection_listed(
        headers
            .get_all(http::header::CONNECTION)
            .iter()
            .map(HeaderValue::as_bytes),
    )
    .into_iter()
    .map(<[u8]>::to_vec)
    .collect::<Vec<_>>();
    let listed = |n: &HeaderName| {
        conn_listed
            .iter()
            .any(|t| t.eq_ignore_ascii_case(n.as_str().as_bytes()))
    };
    let drop_any = headers
        .keys()
        .any(|n| is_hop_by_hop(n.as_str()) || listed(n));
    if drop_any {
        // Rebuild without hop-by-hop fields, keeping order and duplicates.
        let mut kept = http::HeaderMap::with_capacity(headers.len());
        let mut name: Option<HeaderName> = None;
        for (n, v) in headers.drain() {
            if let Some(n) = n {
                name = Some(n);
            }
            let Some(n) = name.as_ref() else { continue };
            if is_hop_by_hop(n.as_str()) || listed(n) {
                continue;
            }
            kept.append(n.clone(), v);
        }
        headers = kept;
    }
    *out.headers_mut() = headers;
    Answer {
        resp: out,
        close: false,
        drop: false,
    }
}

/// The field names the `Connection:` values list among their
/// comma-separated tokens, but for the hop-by-hop fields, which go anyway
/// (`Connection: keep-alive` lists nothing more to drop).
fn connection_listed<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    for v in values {
        for t in v.split(|&b| b == b',') {
            let t = t.trim_ascii();
            if !t.is_empty() && !std::str::from_utf8(t).is_ok_and(is_hop_by_hop) {
                out.push(t);
            }
        }
    }
    out
}

/// Whether `name` is among the listed tokens (header names are ASCII:
/// compared as bytes, case-insensitively).
fn lists(listed: &[&[u8]], name: &str) -> bool {
    listed
        .iter()
        .any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
}

/// Tell the upstream who the client is. An untrusted peer's own
/// `X-Forwarded-For` is replaced, a trusted one's is extended.
fn append_forwarded(h: &mut http::HeaderMap, ctx: &RequestCtx) {
    static XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
    static XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
    let peer = pipeline::ip_text(ctx.req.peer.ip());
    let xff = if ctx.req.client_ip == ctx.req.peer.ip() {
        peer
    } else {
        let prev: Vec<String> = h
            .get_all(&XFF)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        format!("{}, {peer}", prev.join(", "))
    };
    // `insert` replaces every earlier value of the field.
    match HeaderValue::from_maybe_shared(Bytes::from(xff)) {
        Ok(v) => {
            h.insert(XFF.clone(), v);
        }
        Err(_) => {
            h.remove(&XFF);
        }
    }
    h.insert(
        XFP.clone(),
        HeaderValue::from_static(if ctx.req.tls { "https" } else { "http" }),
    );
}
