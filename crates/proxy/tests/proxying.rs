//! Proxying over real sockets: HTTP/1.1 GET/POST/streaming, keep-alive,
//! HTTP/2 (h2c and TLS+ALPN), TLS with HTTP/1.1, trusted-proxy client IPs.

mod common;
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn get_post_keepalive_streaming() {
    let up = upstream().await;
    let s = serve_yaml(&policy_yaml(up, "p", "")).await;
    let a = s.http.unwrap();

    let r = raw(a, &get("/echo/x?a=1&b=2")).await.unwrap();
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["uri"], "/echo/x?a=1&b=2");
    assert_eq!(j["method"], "GET");

    let r = raw(
        a,
        b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world",
    )
    .await
    .unwrap();
    assert_eq!(r.json()["body"], "hello world");

    let r = raw(
        a,
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(r.json()["body_len"], 11);

    // Two requests on one connection.
    let mut c = tokio::net::TcpStream::connect(a).await.unwrap();
    let mut buf = Vec::new();
    for i in 0..2 {
        c.write_all(format!("GET /k{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let r = read_response(&mut c, &mut buf).await.unwrap();
        assert_eq!(r.json()["uri"], format!("/k{i}"));
    }

    // The upstream's streamed answer stays chunked: the proxy does not buffer it.
    let r = raw(a, &get("/stream")).await.unwrap();
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(String::from_utf8_lossy(&r.body).lines().count(), 5);
    s.stop();
}

#[tokio::test]
async fn large_streaming_upload() {
    let up = upstream().await;
    let s = serve_yaml(&policy_yaml(
        up,
        "big",
        "limits:\n  max_body_bytes: 20000000\n",
    ))
    .await;
    let a = s.http.unwrap();
    let mut c = tokio::net::TcpStream::connect(a).await.unwrap();
    c.write_all(
        b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let chunk = vec![b'z'; 64 * 1024];
    for _ in 0..80 {
        c.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        c.write_all(&chunk).await.unwrap();
        c.write_all(b"\r\n").await.unwrap();
    }
    c.write_all(b"0\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let r = read_response(&mut c, &mut buf).await.unwrap();
    assert_eq!(r.json()["body_len"], 80 * 64 * 1024);
    s.stop();
}

async fn h2_get<IO>(io: IO, authority: &str) -> (u16, serde_json::Value)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(format!("https://{authority}/h2?x=1"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

#[tokio::test]
async fn http2_cleartext_prior_knowledge() {
    let up = upstream().await;
    let s = serve_yaml(&policy_yaml(up, "h2c", "")).await;
    let c = tokio::net::TcpStream::connect(s.http.unwrap())
        .await
        .unwrap();
    let (status, j) = h2_get(c, "shop.example.com").await;
    assert_eq!(status, 200);
    assert_eq!(j["uri"], "/h2?x=1");
    s.stop();
}

fn tls_policy_dir(up: std::net::SocketAddr) -> std::path::PathBuf {
    let dir = tempdir("tls");
    std::fs::create_dir_all(dir.join("tls")).unwrap();
    let fx = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::copy(fx.join("cert.pem"), dir.join("tls/cert.pem")).unwrap();
    std::fs::copy(fx.join("key.pem"), dir.join("tls/key.pem")).unwrap();
    write_policy(
        &dir,
        &policy_yaml(
            up,
            "tls",
            "server:\n  tls:\n    cert: tls/cert.pem\n    key: tls/key.pem\n",
        ),
    );
    dir
}

fn tls_client(alpn: &[u8]) -> tokio_rustls::TlsConnector {
    let pem = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cert.pem"),
    )
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

#[tokio::test]
async fn tls_http11_and_h2() {
    let up = upstream().await;
    let dir = tls_policy_dir(up);
    let (k, _) = key();
    let (b, _) = policy::build(&dir, &k).unwrap();
    let rt = proxy::Runtime::from_bundle(&b).unwrap();
    let s = proxy::start(
        rt,
        proxy::ServeOptions {
            tls_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let a = s.https.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();

    let tcp = tokio::net::TcpStream::connect(a).await.unwrap();
    let mut tls = tls_client(b"http/1.1")
        .connect(name.clone(), tcp)
        .await
        .unwrap();
    tls.write_all(&get("/over-tls")).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut tls, &mut out).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("/over-tls"));
    assert!(text.contains("\"x-forwarded-proto\",\"https\""), "{text}");

    let tcp = tokio::net::TcpStream::connect(a).await.unwrap();
    let tls = tls_client(b"h2").connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (status, j) = h2_get(tls, "localhost").await;
    assert_eq!(status, 200);
    assert_eq!(j["version"], "HTTP/1.1", "upstream leg is HTTP/1.1");
    s.stop();
}

#[tokio::test]
async fn tls_listener_without_cert_is_refused() {
    let up = upstream().await;
    let dir = tempdir("nocert");
    write_policy(&dir, &policy_yaml(up, "nocert", ""));
    let (k, _) = key();
    let (b, _) = policy::build(&dir, &k).unwrap();
    let rt = proxy::Runtime::from_bundle(&b).unwrap();
    let e = proxy::start(
        rt,
        proxy::ServeOptions {
            tls_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        },
    )
    .await;
    assert!(e.is_err());
}

async fn client_ip_seen(trusted: &str, xff: &str) -> (String, String) {
    let up = upstream().await;
    let dir = tempdir("xff");
    write_policy(
        &dir,
        &policy_yaml(
            up,
            "xff",
            &format!("server:\n  trusted_proxies: [{trusted}]\n"),
        ),
    );
    let events = dir.join("events.jsonl");
    let opts = proxy::ServeOptions {
        event_log: Some(events.clone()),
        ..Default::default()
    };
    let s = serve_dir_with(&dir, opts).await;
    let r = raw(
        s.http.unwrap(),
        format!(
            "GET /ip HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {xff}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let upstream_xff = r.json()["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "x-forwarded-for")
        .map(|h| h[1].as_str().unwrap().to_string())
        .unwrap();
    let ev = lines_when_written(&events, 1).await;
    s.stop();
    let ev: serde_json::Value = serde_json::from_str(ev.lines().last().unwrap()).unwrap();
    (ev["client_ip"].as_str().unwrap().to_string(), upstream_xff)
}

#[tokio::test]
async fn trusted_proxy_client_ip() {
    let (ip, xff) = client_ip_seen("\"127.0.0.1\"", "203.0.113.7").await;
    assert_eq!(ip, "203.0.113.7");
    assert_eq!(xff, "203.0.113.7, 127.0.0.1");
    // A peer that is not trusted cannot claim another address.
    let (ip, xff) = client_ip_seen("\"10.0.0.0/8\"", "203.0.113.7").await;
    assert_eq!(ip, "127.0.0.1");
    assert_eq!(xff, "127.0.0.1");
}

/// The upstream gets the target in origin-form with its query, and a
/// `Host` even when the client sent none (HTTP/1.0): the upstream's address.
#[tokio::test]
async fn upstream_gets_origin_form_and_a_host() {
    let up = upstream().await;
    let s = serve_yaml(&policy_yaml(up, "p", "")).await;
    let addr = s.http.unwrap();
    let host_of = |r: &Resp| -> Vec<String> {
        r.json()["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h[0] == "host")
            .map(|h| h[1].as_str().unwrap().to_string())
            .collect()
    };
    let r = raw(addr, b"GET /a/b?x=1&y=%20 HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["uri"], "/a/b?x=1&y=%20");
    assert_eq!(host_of(&r), vec![up.to_string()]);
    let r = raw(
        addr,
        b"GET http://shop.example/c?q HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["uri"], "/c?q");
    assert_eq!(host_of(&r), vec!["shop.example".to_string()]);
    s.stop();
}

/// Fields the client's `Connection:` lists are hop-by-hop (RFC 9110 7.6.1):
/// not forwarded, whatever their case or the list's spacing; the others are.
#[tokio::test]
async fn connection_listed_fields_stay_on_the_client_hop() {
    let up = upstream().await;
    let s = serve_yaml(&policy_yaml(up, "p", "")).await;
    let r = raw(
        s.http.unwrap(),
        b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: keep-alive ,x-drop-one\r\n\
          X-Drop-One: 1\r\nX-Keep: 2\r\nX-Drop-Two: 3\r\nConnection: X-DROP-TWO, close\r\n\r\n",
    )
    .await
    .unwrap();
    s.stop();
    assert_eq!(r.status, 200);
    let names: Vec<String> = r.json()["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"x-keep".to_string()), "{names:?}");
    for gone in ["x-drop-one", "x-drop-two", "connection"] {
        assert!(
            !names.contains(&gone.to_string()),
            "{gone} forwarded: {names:?}"
        );
    }
}
