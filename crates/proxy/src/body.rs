//! Body types crossing the proxy: what goes upstream and what goes back.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An error in the client's request body (framing, limits, timeouts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientBodyError {
    #[error("invalid chunked encoding: {0}")]
    BadChunk(&'static str),
    #[error("request body larger than {0} bytes")]
    TooLarge(u64),
    #[error("request body read timed out")]
    Timeout,
    #[error("client closed the connection before the body was complete")]
    Incomplete,
}

impl ClientBodyError {
    pub fn status(&self) -> u16 {
        match self {
            ClientBodyError::BadChunk(_) | ClientBodyError::Incomplete => 400,
            ClientBodyError::TooLarge(_) => 413,
            ClientBodyError::Timeout => 408,
        }
    }
}

enum Rest {
    Empty,
    Channel(mpsc::Receiver<Result<Bytes, ClientBodyError>>),
    Incoming(hyper::body::Incoming),
}

/// The request body on its way upstream: an optional buffered prefix (what a
/// stage inspected) followed by the rest, still streaming from the client.
pub struct ReqBody {
    prefix: Option<Bytes>,
    rest: Rest,
    /// Exact length when the client declared one, so upstream gets Content-Length.
    exact: Option<u64>,
}

impl ReqBody {
    pub fn empty() -> Self {
        ReqBody {
            prefix: None,
            rest: Rest::Empty,
            exact: Some(0),
        }
    }

    /// A body that is already complete in memory.
    pub fn full(b: Bytes) -> Self {
        ReqBody {
            exact: Some(b.len() as u64),
            prefix: if b.is_empty() { None } else { Some(b) },
            rest: Rest::Empty,
        }
    }

    pub fn channel(rx: mpsc::Receiver<Result<Bytes, ClientBodyError>>, exact: Option<u64>) -> Self {
        ReqBody {
            prefix: None,
            rest: Rest::Channel(rx),
            exact,
        }
    }

    pub fn incoming(body: hyper::body::Incoming) -> Self {
        let exact = body.size_hint().exact();
        ReqBody {
            prefix: None,
            rest: Rest::Incoming(body),
            exact,
        }
    }

    /// Put already-read bytes back in front of the stream.
    pub fn with_prefix(mut self, prefix: Bytes) -> Self {
        if !prefix.is_empty() {
            self.prefix = Some(prefix);
        }
        self
    }

    /// Next data chunk, skipping trailers. `None` at the end.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, BoxError>> {
        use http_body_util::BodyExt;
        loop {
            match self.frame().await? {
                Ok(f) => match f.into_data() {
                    Ok(d) => return Some(Ok(d)),
                    Err(_) => continue,
                },
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(p) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        match &mut self.rest {
            Rest::Empty => Poll::Ready(None),
            Rest::Channel(rx) => match rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
            Rest::Incoming(b) => Pin::new(b)
                .poll_frame(cx)
                .map_err(|e| Box::new(e) as BoxError),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && matches!(self.rest, Rest::Empty)
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// The response body on its way to the client: a local answer, or the
/// upstream's body with an optional inspected prefix.
pub enum RespBody {
    Full(Option<Bytes>),
    Upstream {
        prefix: Option<Bytes>,
        rest: crate::upstream::UpstreamBody,
    },
}

impl RespBody {
    pub fn full(b: impl Into<Bytes>) -> Self {
        RespBody::Full(Some(b.into()))
    }
    pub fn empty() -> Self {
        RespBody::Full(None)
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RespBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            RespBody::Upstream { prefix, rest } => {
                if let Some(p) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(p))));
                }
                Pin::new(rest)
                    .poll_frame(cx)
                    .map_err(|e| Box::new(e) as BoxError)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RespBody::Full(b) => b.is_none(),
            RespBody::Upstream { prefix, rest } => prefix.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            RespBody::Full(None) => SizeHint::with_exact(0),
            RespBody::Upstream { prefix, rest } => {
                let p = prefix.as_ref().map_or(0, |p| p.len() as u64);
                let h = rest.size_hint();
                match h.exact() {
                    Some(n) => SizeHint::with_exact(n + p),
                    None => {
                        let mut s = SizeHint::new();
                        s.set_lower(h.lower() + p);
                        s
                    }
                }
            }
        }
    }
}
