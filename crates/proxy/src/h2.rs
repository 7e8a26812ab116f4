//! HTTP/2 front end (TLS with ALPN `h2`, or cleartext prior knowledge),
//! served by hyper; each stream goes through the same handler as HTTP/1.

use crate::body::{ReqBody, RespBody};
use crate::handler;
use crate::server::{ConnInfo, Shared};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use pipeline::HttpVersion;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

pub async fn serve<IO>(io: IO, conn: ConnInfo, shared: Arc<Shared>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = shared.runtime().limits.clone();
    let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let shared = shared.clone();
        let conn = conn.clone();
        async move { one(shared, conn, req).await }
    });
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    b.max_header_list_size(limits.max_header_bytes as u32)
        .max_concurrent_streams(256)
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(Some(std::time::Duration::from_millis(
            limits.idle_timeout_ms,
        )));
    if let Err(e) = b.serve_connection(TokioIo::new(io), svc).await {
        tracing::debug!(error = %e, "h2 connection ended");
    }
}

async fn one(
    shared: Arc<Shared>,
    conn: ConnInfo,
    req: http::Request<Incoming>,
) -> Result<http::Response<RespBody>, Dropped> {
    let rt = shared.runtime();
    let (parts, body) = req.into_parts();
    let mut headers: Vec<(String, Vec<u8>)> = Vec::with_capacity(parts.headers.len() + 1);
    if !parts.headers.contains_key(http::header::HOST) {
        if let Some(a) = parts.uri.authority() {
            headers.push(("host".into(), a.as_str().as_bytes().to_vec()));
        }
    }
    for (n, v) in parts.headers.iter() {
        headers.push((n.as_str().to_string(), v.as_bytes().to_vec()));
    }
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_string(), |pq| pq.as_str().to_string());
    let head = handler::request_head(
        &rt,
        &conn,
        parts.method.to_string(),
        target,
        HttpVersion::Http2,
        headers,
    );
    let max_body = rt.limits.max_body_bytes;
    let body = ReqBody::incoming(body);
    if body_too_large(&body, max_body) {
        let mut r = http::Response::new(RespBody::full("request body too large\n"));
        *r.status_mut() = http::StatusCode::PAYLOAD_TOO_LARGE;
        return Ok(r);
    }
    let answer = handler::handle(&shared, rt, head, body).await;
    match answer.drop {
        // An error from the service resets the stream: no answer.
        true => Err(Dropped),
        false => Ok(answer.resp),
    }
}

/// A stream a rule dropped (SecLang `drop`).
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dropped by a rule")
    }
}

impl std::error::Error for Dropped {}

fn body_too_large(b: &ReqBody, max: u64) -> bool {
    use http_body::Body;
    b.size_hint().lower() > max
}
