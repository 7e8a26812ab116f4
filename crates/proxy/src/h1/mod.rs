//! HTTP/1.x front end: one task per connection, requests handled in order.

pub mod body;
pub mod head;

use crate::body::{ReqBody, RespBody};
use crate::handler::{self, Answer};
use crate::server::{ConnInfo, Shared};
use body::{BodyLimits, BodyReader};
use bytes::{Buf, BytesMut};
use head::{Framing, HeadLimits};
use http_body::Body;
use pipeline::HttpVersion;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// The HTTP/2 connection preface; a plaintext client that starts with it
/// speaks HTTP/2 with prior knowledge (h2c).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serve one plaintext-or-TLS HTTP/1 connection until it closes.
/// Returns the buffered bytes and the stream if the client turned out to speak h2c.
pub async fn serve<IO>(
    mut io: IO,
    conn: ConnInfo,
    shared: Arc<Shared>,
) -> Option<(bytes::Bytes, IO)>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut first = true;
    loop {
        let rt = shared.runtime();
        let lim = &rt.limits;
        let head_limits = HeadLimits {
            max_headers: lim.max_header_count,
            max_head_bytes: lim.max_header_bytes,
            max_url_bytes: lim.max_url_bytes,
        };
        // Wait for the first byte of the next request (idle keep-alive), then
        // the whole head must arrive within the header timeout (slowloris).
        let idle = if first {
            Duration::from_millis(lim.header_read_timeout_ms)
        } else {
            Duration::from_millis(lim.idle_timeout_ms)
        };
        if buf.is_empty() {
            match tokio::time::timeout(idle, io.read_buf(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
        if first
            && buf.len() >= 3
            && H2_PREFACE.starts_with(&buf[..buf.len().min(H2_PREFACE.len())])
        {
            // Might be h2c: read the full preface before deciding.
            while buf.len() < H2_PREFACE.len() {
                match tokio::time::timeout(idle, io.read_buf(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => return None,
                }
                if !H2_PREFACE.starts_with(&buf[..buf.len().min(H2_PREFACE.len())]) {
                    break;
                }
            }
            if buf.starts_with(H2_PREFACE) {
                return Some((buf.freeze(), io));
            }
        }
        first = false;
        let deadline = Instant::now() + Duration::from_millis(lim.header_read_timeout_ms);
        let head = loop {
            match head::parse(&buf, &head_limits) {
                Ok(Some(h)) => break h,
                Ok(None) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(left, io.read_buf(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => {}
                        Ok(_) => return None,
                        Err(_) => {
                            shared.metrics_l7("header_timeout");
                            let _ = write_simple(&mut io, 408, "request header timeout\n").await;
                            return None;
                        }
                    }
                }
                Err(e) => {
                    shared.metrics_l7(match e.status() {
                        431 => "header_limit",
                        414 => "url_limit",
                        _ => "malformed",
                    });
                    tracing::debug!(peer = %conn.peer, error = %e, "refused request head");
                    let _ = write_simple(&mut io, e.status(), &format!("{e}\n")).await;
                    return None;
                }
            }
        };
        buf.advance(head.len);

        let is_head = head.method.eq_ignore_ascii_case("HEAD");
        let req = handler::request_head(
            &rt,
            &conn,
            head.method,
            head.target,
            head.version,
            head.headers,
        );
        let body_limits = BodyLimits {
            max_bytes: lim.max_body_bytes,
            read_timeout: Duration::from_millis(lim.body_read_timeout_ms),
            min_rate: lim.min_body_rate,
            grace: Duration::from_secs(5),
        };
        if let Framing::Length(n) = head.framing {
            if n > lim.max_body_bytes {
                shared.metrics_l7("body_limit");
                let _ = write_simple(&mut io, 413, "request body too large\n").await;
                return None;
            }
        }
        if head.expect_continue
            && head.framing != Framing::None
            && head.version == HttpVersion::Http11
            && io
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
        {
            return None;
        }

        let mut reader = BodyReader::new(head.framing, body_limits);
        // A Content-Length body that already arrived with the head (its size
        // was checked against the limit above) goes upstream as it is.
        let arrived = match head.framing {
            Framing::Length(n) if buf.len() as u64 >= n => usize::try_from(n).ok(),
            _ => None,
        };
        let (answer, body_complete) = if head.framing == Framing::None {
            (
                handler::handle(&shared, rt.clone(), req, ReqBody::empty()).await,
                true,
            )
        } else if let Some(n) = arrived {
            let body = ReqBody::full(buf.split_to(n).freeze());
            (handler::handle(&shared, rt.clone(), req, body).await, true)
        } else {
            let exact = match head.framing {
                Framing::Length(n) => Some(n),
                _ => None,
            };
            let (tx, rx) = mpsc::channel(4);
            let reqbody = ReqBody::channel(rx, exact);
            let (rd_io, rd_buf, rd) = (&mut io, &mut buf, &mut reader);
            let pump = async move {
                loop {
                    match rd.next(rd_io, rd_buf).await {
                        Ok(Some(b)) => {
                            if tx.send(Ok(b)).await.is_err() {
                                return false;
                            }
                        }
                        Ok(None) => return true,
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return false;
                        }
                    }
                }
            };
            let handle = handler::handle(&shared, rt.clone(), req, reqbody);
            tokio::pin!(pump, handle);
            let mut pumped: Option<bool> = None;
            let answer = loop {
                tokio::select! {
                    r = &mut pump, if pumped.is_none() => pumped = Some(r),
                    a = &mut handle => break a,
                }
            };
            if pumped.is_none() {
                // The handler is done; the rest of the body is either already
                // in flight or unwanted. Give it a moment, else close.
                pumped = tokio::time::timeout(Duration::from_millis(100), &mut pump)
                    .await
                    .ok();
            }
            (answer, pumped == Some(true))
        };

        if answer.drop {
            // `drop`: no answer at all.
            let _ = io.shutdown().await;
            return None;
        }
        let close = !head.keep_alive || answer.close || !body_complete || shared.draining();
        match write_answer(&mut io, answer, head.version, is_head, close).await {
            Ok(()) if !close => continue,
            _ => {
                let _ = io.shutdown().await;
                return None;
            }
        }
    }
}

/// A short local response, always closing the connection.
pub async fn write_simple<W: AsyncWrite + Unpin>(
    w: &mut W,
    status: u16,
    body: &str,
) -> std::io::Result<()> {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let msg = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    w.write_all(msg.as_bytes()).await?;
    w.flush().await
}

/// Headers that describe one connection, not the message; never forwarded.
pub fn is_hop_by_hop(name: &str) -> bool {
    const HOP: [&str; 8] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authenticate",
    ];
    HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

async fn write_answer<W: AsyncWrite + Unpin>(
    w: &mut W,
    answer: Answer,
    version: HttpVersion,
    is_head: bool,
    mut close: bool,
) -> std::io::Result<()> {
    let (parts, mut body) = answer.resp.into_parts();
    let status = parts.status.as_u16();
    let no_body = is_head || status == 204 || status == 304 || (100..200).contains(&status);
    let exact = body.size_hint().exact();
    let chunked = !no_body && exact.is_none() && version == HttpVersion::Http11;
    if !no_body && exact.is_none() && !chunked {
        // HTTP/1.0 client, unknown length: the body ends when we close.
        close = true;
    }
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in parts.headers.iter() {
        if is_hop_by_hop(name.as_str()) || (name == http::header::CONTENT_LENGTH && !is_head) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !is_head {
        if let (Some(n), false) = (exact, status == 204 || status == 304 || status < 200) {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if version == HttpVersion::Http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if no_body {
        return w.write_all(&out).await;
    }
    use http_body_util::BodyExt;
    loop {
        if body.is_end_stream() {
            break;
        }
        match body.frame().await {
            None => break,
            Some(Err(e)) => {
                // Upstream broke mid-body: flush what we have and cut the
                // connection so the client sees an incomplete message.
                let _ = w.write_all(&out).await;
                return Err(std::io::Error::other(e));
            }
            Some(Ok(f)) => {
                let Ok(data) = f.into_data() else { continue };
                if data.is_empty() {
                    continue;
                }
                if chunked {
                    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                    out.extend_from_slice(&data);
                    out.extend_from_slice(b"\r\n");
                } else {
                    out.extend_from_slice(&data);
                }
                if !body.is_end_stream() {
                    w.write_all(&out).await?;
                    out.clear();
                }
            }
        }
    }
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    w.write_all(&out).await?;
    w.flush().await
}

#[allow(dead_code)]
fn _assert_send(b: RespBody) -> impl Send {
    b
}
