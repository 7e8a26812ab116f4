//! Reading an HTTP/1.1 request body off the connection: Content-Length or
//! strict chunked decoding, with size limits and slow-client timeouts.

use super::head::Framing;
use crate::body::ClientBodyError;
use bytes::{Buf, Bytes, BytesMut};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Longest chunk-size line (size + extensions) we accept.
const MAX_CHUNK_LINE: usize = 4096;
/// Most trailer bytes we accept after the last chunk.
const MAX_TRAILERS: usize = 8192;
/// Largest read we hand on in one piece.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: u64,
    /// Longest wait for the next bytes of the body.
    pub read_timeout: Duration,
    /// Below this average rate (bytes/s, after `grace`) the client is too slow.
    pub min_rate: u64,
    pub grace: Duration,
}

enum State {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd,
    Trailers(usize),
    Done,
}

pub struct BodyReader {
    state: State,
    limits: BodyLimits,
    total: u64,
    started: Instant,
}

impl BodyReader {
    pub fn new(framing: Framing, limits: BodyLimits) -> Self {
        let state = match framing {
            Framing::None => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
        };
        BodyReader {
            state,
            limits,
            total: 0,
            started: Instant::now(),
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Next piece of body data, or `None` when the body is complete.
    pub async fn next<R: AsyncRead + Unpin>(
        &mut self,
        rd: &mut R,
        buf: &mut BytesMut,
    ) -> Result<Option<Bytes>, ClientBodyError> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Length(0) => {
                    self.state = State::Done;
                    return Ok(None);
                }
                State::Length(left) => {
                    if buf.is_empty() {
                        self.fill(rd, buf).await?;
                    }
                    let n = (buf.len() as u64).min(left).min(READ_CHUNK as u64) as usize;
                    self.state = State::Length(left - n as u64);
                    return self.emit(buf.split_to(n).freeze()).map(Some);
                }
                State::ChunkSize => {
                    let Some(line_end) = find_crlf(buf) else {
                        if buf.len() > MAX_CHUNK_LINE {
                            return Err(ClientBodyError::BadChunk("chunk size line too long"));
                        }
                        self.fill(rd, buf).await?;
                        continue;
                    };
                    let size = parse_chunk_size(&buf[..line_end])?;
                    buf.advance(line_end + 2);
                    self.state = if size == 0 {
                        State::Trailers(0)
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkData(left) => {
                    if buf.is_empty() {
                        self.fill(rd, buf).await?;
                    }
                    let n = (buf.len() as u64).min(left).min(READ_CHUNK as u64) as usize;
                    self.state = if left - n as u64 == 0 {
                        State::ChunkDataEnd
                    } else {
                        State::ChunkData(left - n as u64)
                    };
                    return self.emit(buf.split_to(n).freeze()).map(Some);
                }
                State::ChunkDataEnd => {
                    if buf.len() < 2 {
                        self.fill(rd, buf).await?;
                        continue;
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ClientBodyError::BadChunk("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    self.state = State::ChunkSize;
                }
                State::Trailers(seen) => {
                    // Trailers are read and dropped: we do not forward them.
                    let Some(line_end) = find_crlf(buf) else {
                        if seen + buf.len() > MAX_TRAILERS {
                            return Err(ClientBodyError::BadChunk("trailers too large"));
                        }
                        self.fill(rd, buf).await?;
                        continue;
                    };
                    buf.advance(line_end + 2);
                    if line_end == 0 {
                        self.state = State::Done;
                        return Ok(None);
                    }
                    if seen + line_end > MAX_TRAILERS {
                        return Err(ClientBodyError::BadChunk("trailers too large"));
                    }
                    self.state = State::Trailers(seen + line_end + 2);
                }
            }
        }
    }

    fn emit(&mut self, b: Bytes) -> Result<Bytes, ClientBodyError> {
        self.total += b.len() as u64;
        if self.total > self.limits.max_bytes {
            return Err(ClientBodyError::TooLarge(self.limits.max_bytes));
        }
        Ok(b)
    }

    async fn fill<R: AsyncRead + Unpin>(
        &self,
        rd: &mut R,
        buf: &mut BytesMut,
    ) -> Result<(), ClientBodyError> {
        let elapsed = self.started.elapsed();
        if elapsed > self.limits.grace && self.limits.min_rate > 0 {
            let rate = self.total as f64 / elapsed.as_secs_f64();
            if rate < self.limits.min_rate as f64 {
                return Err(ClientBodyError::Timeout);
            }
        }
        buf.reserve(READ_CHUNK);
        match tokio::time::timeout(self.limits.read_timeout, rd.read_buf(buf)).await {
            Err(_) => Err(ClientBodyError::Timeout),
            Ok(Ok(0)) | Ok(Err(_)) => Err(ClientBodyError::Incomplete),
            Ok(Ok(_)) => Ok(()),
        }
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// `chunk-size [ ";" ext ]`: hex digits only, no sign, no spaces, no overflow.
fn parse_chunk_size(line: &[u8]) -> Result<u64, ClientBodyError> {
    let size_part = match line.iter().position(|&b| b == b';') {
        Some(i) => &line[..i],
        None => line,
    };
    if size_part.is_empty() || size_part.len() > 15 {
        return Err(ClientBodyError::BadChunk("invalid chunk size"));
    }
    let mut n: u64 = 0;
    for &c in size_part {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return Err(ClientBodyError::BadChunk("invalid chunk size")),
        };
        n = n * 16 + u64::from(d);
    }
    if line.iter().any(|&b| b == b'\n' || b == b'\r') {
        return Err(ClientBodyError::BadChunk(
            "bare line break in chunk size line",
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> BodyLimits {
        BodyLimits {
            max_bytes: 100,
            read_timeout: Duration::from_secs(1),
            min_rate: 0,
            grace: Duration::from_secs(5),
        }
    }

    async fn read_all(framing: Framing, input: &[u8]) -> Result<Vec<u8>, ClientBodyError> {
        let mut r = BodyReader::new(framing, limits());
        let mut rd = input;
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        while let Some(b) = r.next(&mut rd, &mut buf).await? {
            out.extend_from_slice(&b);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn chunked_ok() {
        let out = read_all(
            Framing::Chunked,
            b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-T: 1\r\n\r\n",
        )
        .await
        .unwrap();
        assert_eq!(out, b"hello world");
    }

    #[tokio::test]
    async fn chunked_bad_shapes() {
        for bad in [
            &b"5\r\nhelloXX0\r\n\r\n"[..],
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"fffffffffffffffff\r\n",
            b"\r\nhello\r\n",
            b"zz\r\n",
        ] {
            let e = read_all(Framing::Chunked, bad).await.unwrap_err();
            assert_eq!(e.status(), 400, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[tokio::test]
    async fn length_and_limits() {
        assert_eq!(
            read_all(Framing::Length(3), b"abcdef").await.unwrap(),
            b"abc"
        );
        assert_eq!(
            read_all(Framing::Length(5), b"abc").await.unwrap_err(),
            ClientBodyError::Incomplete
        );
        let big = vec![b'a'; 200];
        assert_eq!(
            read_all(Framing::Length(200), &big).await.unwrap_err(),
            ClientBodyError::TooLarge(100)
        );
    }
}
