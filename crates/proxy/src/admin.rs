//! The admin port: read-only status for operators and fleet tooling.
//! Nothing here changes the running policy.

use crate::server::Shared;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;

pub async fn serve(l: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = l.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(respond(&shared, &req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// `GET /status` as JSON: digest, build metadata, uptime, reload history.
pub fn status_json(shared: &Shared) -> serde_json::Value {
    let rt = shared.runtime();
    let reload = shared
        .reload_status
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    let c = &shared.observer.counters;
    use std::sync::atomic::Ordering::Relaxed;
    serde_json::json!({
        "digest": rt.digest,
        "policy": rt.name,
        "meta": rt.meta,
        "uptime_s": shared.started.elapsed().as_secs(),
        "loaded_at": rt.loaded_at.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "stages": rt.pipeline.stage_names(),
        "waf_rules": rt.rule_count,
        "routes": rt.routes.iter().map(|r| &r.name).collect::<Vec<_>>(),
        "reload": reload,
        "requests": c.requests.load(Relaxed),
        "blocked": c.blocked.load(Relaxed),
        "monitored": c.monitored.load(Relaxed),
        "l7_refused": c.l7_refused.load(Relaxed),
        "version": env!("CARGO_PKG_VERSION"),
    })
}

fn respond(shared: &Shared, req: &http::Request<Incoming>) -> http::Response<Full<Bytes>> {
    let (status, ctype, body) = match (req.method(), req.uri().path()) {
        (&http::Method::GET, "/status") => (
            200,
            "application/json",
            serde_json::to_string_pretty(&status_json(shared)).unwrap_or_default() + "\n",
        ),
        (&http::Method::GET, "/healthz") => (200, "text/plain", "ok\n".to_string()),
        (&http::Method::GET, _) => (404, "text/plain", "not found\n".to_string()),
        _ => (
            405,
            "text/plain",
            "the admin port is read-only\n".to_string(),
        ),
    };
    let mut r = http::Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(ctype),
    );
    if let Ok(v) = http::HeaderValue::from_str(&shared.runtime().digest) {
        r.headers_mut().insert("x-palisade-digest", v);
    }
    r
}
