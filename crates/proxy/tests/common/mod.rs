//! Test harness: a demo upstream, a policy dir built into a signed bundle,
//! the real proxy on loopback, and a raw HTTP/1 client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

static N: AtomicUsize = AtomicUsize::new(0);

pub fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "palisade-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub async fn upstream() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(proxy::demo::serve(l));
    a
}

/// A policy with WAF off; `extra` is spliced in at the top level (limits:, server:).
pub fn policy_yaml(up: SocketAddr, name: &str, extra: &str) -> String {
    format!(
        "version: 1\nname: {name}\n{extra}\nupstreams:\n  app:\n    targets: [\"{up}\"]\nroutes:\n  - name: default\n    upstream: app\nwaf:\n  enabled: false\n"
    )
}

pub fn write_policy(dir: &Path, yaml: &str) {
    std::fs::write(dir.join("palisade.yaml"), yaml).unwrap();
}

pub fn key() -> (ed25519_dalek::SigningKey, ed25519_dalek::VerifyingKey) {
    let k = policy::generate_signing_key().unwrap();
    let v = k.verifying_key();
    (k, v)
}

/// Build `dir` into `out/<digest>.pal`; returns (digest, path).
pub fn build(dir: &Path, out: &Path, key: &ed25519_dalek::SigningKey) -> (String, PathBuf) {
    let (b, bytes) = policy::build(dir, key).unwrap();
    let p = out.join(format!("{}.pal", b.digest));
    std::fs::write(&p, bytes).unwrap();
    (b.digest.clone(), p)
}

pub async fn serve_yaml(yaml: &str) -> proxy::Running {
    let dir = tempdir("pol");
    write_policy(&dir, yaml);
    serve_dir(&dir).await
}

/// Build a policy directory (palisade.yaml plus its files) and serve it.
pub async fn serve_dir(dir: &Path) -> proxy::Running {
    serve_dir_with(dir, proxy::ServeOptions::default()).await
}

/// [`serve_dir`] with `opts` (log files, ...), listening on a free port.
pub async fn serve_dir_with(dir: &Path, opts: proxy::ServeOptions) -> proxy::Running {
    let (k, _) = key();
    let (b, _) = policy::build(dir, &k).unwrap();
    let rt = proxy::Runtime::from_bundle(&b).unwrap();
    proxy::start(
        rt,
        proxy::ServeOptions {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            ..opts
        },
    )
    .await
    .unwrap()
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, n: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Read one response (Content-Length, chunked, or until close).
pub async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Resp> {
    let t = Duration::from_secs(10);
    loop {
        let mut hs = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut hs);
        if let Ok(httparse::Status::Complete(n)) = r.parse(buf) {
            let status = r.code.unwrap_or(0);
            let headers: Vec<(String, String)> = r
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            buf.drain(..n);
            let get = |k: &str| {
                headers
                    .iter()
                    .find(|(a, _)| a.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v.clone())
            };
            let body = if let Some(cl) = get("content-length") {
                let cl: usize = cl.trim().parse().unwrap();
                while buf.len() < cl {
                    let mut tmp = [0u8; 65536];
                    let n = tokio::time::timeout(t, s.read(&mut tmp)).await.ok()?.ok()?;
                    if n == 0 {
                        return None;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                }
                buf.drain(..cl).collect()
            } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
                let mut body = Vec::new();
                loop {
                    let pos = loop {
                        if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                            break p;
                        }
                        let mut tmp = [0u8; 65536];
                        let n = tokio::time::timeout(t, s.read(&mut tmp)).await.ok()?.ok()?;
                        if n == 0 {
                            return None;
                        }
                        buf.extend_from_slice(&tmp[..n]);
                    };
                    let size =
                        usize::from_str_radix(std::str::from_utf8(&buf[..pos]).ok()?, 16).ok()?;
                    while buf.len() < pos + 2 + size + 2 {
                        let mut tmp = [0u8; 65536];
                        let n = tokio::time::timeout(t, s.read(&mut tmp)).await.ok()?.ok()?;
                        if n == 0 {
                            return None;
                        }
                        buf.extend_from_slice(&tmp[..n]);
                    }
                    body.extend_from_slice(&buf[pos + 2..pos + 2 + size]);
                    buf.drain(..pos + 2 + size + 2);
                    if size == 0 {
                        break;
                    }
                }
                body
            } else if status == 204 || status == 304 {
                Vec::new()
            } else {
                let _ = tokio::time::timeout(t, s.read_to_end(buf)).await;
                std::mem::take(buf)
            };
            return Some(Resp {
                status,
                headers,
                body,
            });
        }
        let mut tmp = [0u8; 65536];
        let n = tokio::time::timeout(t, s.read(&mut tmp)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// Send raw bytes on a new connection and read one response.
pub async fn raw(addr: SocketAddr, req: &[u8]) -> Option<Resp> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req).await.unwrap();
    let mut buf = Vec::new();
    read_response(&mut s, &mut buf).await
}

/// Send raw bytes, read one response, then report whether the server closed the connection.
pub async fn raw_then_closed(addr: SocketAddr, req: &[u8]) -> (Option<Resp>, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(req).await;
    let mut buf = Vec::new();
    let r = read_response(&mut s, &mut buf).await;
    let mut tmp = [0u8; 16];
    let closed = matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut tmp)).await,
        Ok(Ok(0)) | Ok(Err(_))
    );
    (r, closed)
}

pub fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

/// The file once it holds `n` whole lines (or what it holds after 5 s): a
/// request's log lines are written after its answer is sent.
pub async fn lines_when_written(path: &Path, n: usize) -> String {
    let mut text = String::new();
    for _ in 0..100 {
        text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= n && text.ends_with('\n') {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    text
}
