//! A small upstream app for `palisade serve --demo` and for tests: it echoes
//! what it received as JSON, and `/stream` answers in timed chunks.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use tokio::net::TcpListener;

type DemoBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// Serve the demo app on `l` until the task is dropped (HTTP/1.1 and h2c).
pub async fn serve(l: TcpListener) {
    loop {
        let Ok((stream, _)) = l.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(|req: http::Request<Incoming>| async move {
                Ok::<_, Infallible>(respond(req).await)
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn respond(req: http::Request<Incoming>) -> http::Response<DemoBody> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    if path == "/stream" {
        // Five chunks, 20 ms apart: shows the proxy streams instead of buffering.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
        tokio::spawn(async move {
            for i in 0..5 {
                if tx
                    .send(Ok(Frame::data(Bytes::from(format!("chunk {i}\n")))))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        });
        return http::Response::new(BodyExt::boxed(ChanBody(rx)));
    }
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if path == "/" && parts.method == http::Method::GET {
        let html = "<!doctype html><title>Palisade demo app</title><h1>Hello from the demo app behind Palisade</h1>\n";
        let mut r = http::Response::new(Full::new(Bytes::from(html)).boxed());
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/html"),
        );
        return r;
    }
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let echo = serde_json::json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_len": body.len(),
        "body": String::from_utf8_lossy(&body[..body.len().min(4096)]),
    });
    let mut r = http::Response::new(Full::new(Bytes::from(echo.to_string())).boxed());
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// A body fed by a channel, one frame per message.
struct ChanBody(tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Infallible>>);

impl hyper::body::Body for ChanBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx)
    }
}
