//! L7 protection over real sockets: limits, slow clients, connection caps,
//! request-smuggling shapes.

mod common;
use common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMITS: &str = "limits:\n  max_header_count: 20\n  max_header_bytes: 4096\n  max_url_bytes: 256\n  max_body_bytes: 1000\n  header_read_timeout_ms: 400\n  body_read_timeout_ms: 400\n  idle_timeout_ms: 400\n  max_conns_per_ip: 3\n";

async fn server() -> proxy::Running {
    let up = upstream().await;
    serve_yaml(&policy_yaml(up, "l7", LIMITS)).await
}

#[tokio::test]
async fn smuggling_shapes_get_400_and_close() {
    let s = server().await;
    let a = s.http.unwrap();
    let shapes: [&str; 9] = [
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello",
        "GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n",
    ];
    for shape in shapes {
        let (r, closed) = raw_then_closed(a, shape.as_bytes()).await;
        let r = r.unwrap_or_else(|| panic!("no response to {shape:?}"));
        assert_eq!(r.status, 400, "{shape:?}");
        assert!(closed, "connection left open after {shape:?}");
    }
    s.stop();
}

#[tokio::test]
async fn size_limits() {
    let s = server().await;
    let a = s.http.unwrap();
    let many: String = (0..25).map(|i| format!("X-H{i}: v\r\n")).collect();
    let r = raw(
        a,
        format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 431);
    let big = "v".repeat(5000);
    let r = raw(
        a,
        format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 431);
    let r = raw(a, &get(&format!("/{}", "u".repeat(300))))
        .await
        .unwrap();
    assert_eq!(r.status, 414);
    let body = "b".repeat(2000);
    let r = raw(
        a,
        format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n{body}").as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 413);
    let r = raw(a, format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n{body}\r\n0\r\n\r\n").as_bytes())
        .await
        .unwrap();
    assert_eq!(r.status, 413);
    // Within limits still works.
    let r = raw(a, &get("/ok")).await.unwrap();
    assert_eq!(r.status, 200);
    s.stop();
}

#[tokio::test]
async fn slow_header_slow_body_idle() {
    let s = server().await;
    let a = s.http.unwrap();
    // Slowloris: an unfinished head is answered 408 and closed.
    let (r, closed) = raw_then_closed(a, b"GET / HTTP/1.1\r\nHost: x\r\n").await;
    assert_eq!(r.unwrap().status, 408);
    assert!(closed);
    // Slow POST: the body stops arriving.
    let (r, closed) = raw_then_closed(
        a,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
    )
    .await;
    assert_eq!(r.unwrap().status, 408);
    assert!(closed);
    // Idle keep-alive connection is closed after the idle timeout.
    let mut c = tokio::net::TcpStream::connect(a).await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_response(&mut c, &mut buf).await.unwrap().status, 200);
    let mut tmp = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut tmp))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "idle connection was not closed");
    s.stop();
}

#[tokio::test]
async fn per_ip_connection_cap() {
    let up = upstream().await;
    let s = serve_yaml(&policy_yaml(
        up,
        "cap",
        "limits:\n  max_conns_per_ip: 2\n  header_read_timeout_ms: 5000\n",
    ))
    .await;
    let a = s.http.unwrap();
    let _c1 = tokio::net::TcpStream::connect(a).await.unwrap();
    let _c2 = tokio::net::TcpStream::connect(a).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c3 = tokio::net::TcpStream::connect(a).await.unwrap();
    let _ = c3.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut tmp = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), c3.read(&mut tmp))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "third connection from one IP was served");
    drop(_c1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        raw(a, &get("/")).await.unwrap().status,
        200,
        "slot freed after close"
    );
    s.stop();
}

#[tokio::test]
async fn global_connection_cap() {
    let up = upstream().await;
    let s = serve_yaml(&policy_yaml(
        up,
        "gcap",
        "limits:\n  max_conns: 1\n  header_read_timeout_ms: 5000\n",
    ))
    .await;
    let a = s.http.unwrap();
    let _c1 = tokio::net::TcpStream::connect(a).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c2 = tokio::net::TcpStream::connect(a).await.unwrap();
    let _ = c2.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut tmp = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), c2.read(&mut tmp))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    s.stop();
}
