//! The upstream HTTP/1.1 client: keep-alive connections per target, reused
//! only once the previous response was read to its end.
//!
//! Built on `hyper::client::conn::http1` with a small pool of our own: a
//! connection goes back to the pool when its response body has ended (see
//! [`UpstreamBody`]), so a checkout never waits behind another response.

use crate::body::{BoxError, ReqBody};
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_IDLE_PER_TARGET: usize = 256;

struct Idle {
    tx: SendRequest<ReqBody>,
    since: Instant,
}

#[derive(Default)]
struct Inner {
    idle: Mutex<HashMap<String, Vec<Idle>>>,
}

/// Keep-alive connections to upstream targets (`host:port`).
#[derive(Clone, Default)]
pub struct Pool {
    inner: Arc<Inner>,
}

/// A connection lent to one request; back to the pool when its response ended.
pub struct Lease {
    pool: Arc<Inner>,
    target: String,
    tx: Option<SendRequest<ReqBody>>,
}

impl Lease {
    fn release(&mut self) {
        let Some(tx) = self.tx.take() else { return };
        if tx.is_closed() {
            return;
        }
        let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(std::mem::take(&mut self.target)).or_default();
        if list.len() < MAX_IDLE_PER_TARGET {
            list.push(Idle {
                tx,
                since: Instant::now(),
            });
        }
    }
}

impl Pool {
    pub fn new() -> Self {
        Pool::default()
    }

    /// Close idle connections that went stale (closed by the peer, or unused
    /// for longer than the idle timeout).
    pub fn sweep(&self) {
        let mut idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        for list in idle.values_mut() {
            list.retain(|c| !c.tx.is_closed() && now.duration_since(c.since) < IDLE_TIMEOUT);
        }
        idle.retain(|_, list| !list.is_empty());
    }

    /// An idle connection that is still open, most recently used first.
    fn checkout(&self, target: &str) -> Option<SendRequest<ReqBody>> {
        let mut idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(target)?;
        let now = Instant::now();
        let usable = |c: &Idle| !c.tx.is_closed() && now.duration_since(c.since) < IDLE_TIMEOUT;
        // The oldest sits at the bottom: drop it once it went stale, so
        // connections nobody picks do not stay around.
        if list.first().is_some_and(|c| !usable(c)) {
            list.remove(0);
        }
        while let Some(c) = list.pop() {
            if usable(&c) {
                return Some(c.tx);
            }
        }
        None
    }

    async fn connect(target: &str) -> Result<SendRequest<ReqBody>, BoxError> {
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(Box::new(e)),
            Err(_) => {
                return Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect timed out",
                )))
            }
        };
        let _ = stream.set_nodelay(true);
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(tx)
    }

    /// Send one request to `target` (`host:port`). The caller gives the URI
    /// in origin-form (`/path?query`) and the `Host` field, as they go out.
    pub async fn request(
        &self,
        target: &str,
        mut req: Request<ReqBody>,
    ) -> Result<Response<UpstreamBody>, BoxError> {
        loop {
            let (mut tx, reused) = match self.checkout(target) {
                Some(tx) => (tx, true),
                None => (Self::connect(target).await?, false),
            };
            if tx.ready().await.is_err() {
                if reused {
                    continue;
                }
                return Err("upstream connection closed".into());
            }
            match tx.try_send_request(req).await {
                Ok(resp) => {
                    let lease = Lease {
                        pool: self.inner.clone(),
                        target: target.to_string(),
                        tx: Some(tx),
                    };
                    return Ok(resp.map(|b| UpstreamBody::new(b, lease)));
                }
                Err(mut e) => match e.take_message() {
                    // Never sent (a kept-alive connection closed under us): try another.
                    Some(r) if reused => req = r,
                    _ => return Err(Box::new(e.into_error())),
                },
            }
        }
    }
}

/// An upstream response body; its connection returns to the pool once the
/// body has ended (a body dropped early takes its connection with it).
pub struct UpstreamBody {
    inner: Incoming,
    lease: Option<Lease>,
}

impl UpstreamBody {
    fn new(inner: Incoming, lease: Lease) -> Self {
        let mut b = UpstreamBody {
            inner,
            lease: Some(lease),
        };
        b.release_if_done();
        b
    }

    fn release_if_done(&mut self) {
        if self.inner.is_end_stream() {
            if let Some(mut l) = self.lease.take() {
                l.release();
            }
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        self.release_if_done();
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Ready(None) => {
                if let Some(mut l) = self.lease.take() {
                    l.release();
                }
            }
            Poll::Ready(Some(Err(_))) => self.lease = None,
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
