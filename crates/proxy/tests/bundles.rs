//! Immutable policy over real sockets: signed bundles, refusal of bad ones,
//! atomic swap under load with no failed request, rollback by digest.

mod common;
use common::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

fn two_bundles(
    up: std::net::SocketAddr,
) -> (
    std::path::PathBuf,
    ed25519_dalek::VerifyingKey,
    (String, std::path::PathBuf),
    (String, std::path::PathBuf),
) {
    let (k, v) = key();
    let out = tempdir("bundles");
    let a = tempdir("pa");
    write_policy(
        &a,
        &policy_yaml(up, "policy-a", "server:\n  digest_header: true\n"),
    );
    let b = tempdir("pb");
    write_policy(
        &b,
        &policy_yaml(up, "policy-b", "server:\n  digest_header: true\n"),
    );
    let ba = build(&a, &out, &k);
    let bb = build(&b, &out, &k);
    assert_ne!(ba.0, bb.0);
    (out, v, ba, bb)
}

fn point(link: &std::path::Path, target: &std::path::Path) {
    let tmp = link.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, link).unwrap(); // atomic repoint
}

async fn wait_digest(addr: std::net::SocketAddr, want: &str) {
    for _ in 0..100 {
        if let Some(r) = raw(addr, &get("/")).await {
            if r.header("x-palisade-digest") == Some(want) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node never reported digest {want}");
}

#[tokio::test]
async fn build_verify_serve_and_refuse_tampering() {
    let up = upstream().await;
    let (out, v, (da, pa), _) = two_bundles(up);
    // Verify accepts the genuine bundle and reports its digest.
    let b = policy::Bundle::read(&pa, &[v]).unwrap();
    assert_eq!(b.digest, da);
    // Another key's signature is refused.
    let (_, other) = key();
    assert!(policy::Bundle::read(&pa, &[other]).is_err());
    // One flipped byte anywhere in the content is refused.
    let mut bytes = std::fs::read(&pa).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    let i = text.find("\"files\"").unwrap() + 20;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = out.join("tampered.pal");
    std::fs::write(&tampered, &bytes).unwrap();
    assert!(proxy::Runtime::load(&tampered, &[v]).is_err());
    assert!(proxy::Runtime::load(&out.join("missing.pal"), &[v]).is_err());

    // Serve the genuine one; the admin port reports it.
    let link = out.join("current.pal");
    point(&link, &pa);
    let s = proxy::start(
        proxy::Runtime::load(&link, &[v]).unwrap(),
        proxy::ServeOptions {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            admin: Some("127.0.0.1:0".parse().unwrap()),
            source: Some(proxy::BundleSource {
                path: link.clone(),
                trust: vec![v],
            }),
            watch: Some(Duration::from_millis(50)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let admin = s.admin.unwrap();
    let st = raw(admin, &get("/status")).await.unwrap();
    assert_eq!(st.header("x-palisade-digest"), Some(da.as_str()));
    assert_eq!(st.json()["digest"], da.as_str());
    assert_eq!(st.json()["policy"], "policy-a");
    // The admin port changes nothing.
    let r = raw(
        admin,
        b"POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 405);

    // A tampered bundle pushed to the node is refused; the old one keeps serving.
    point(&link, &tampered);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = raw(s.http.unwrap(), &get("/")).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-palisade-digest"), Some(da.as_str()));
    let st = raw(admin, &get("/status")).await.unwrap().json();
    assert!(st["reload"]["refused"].as_u64().unwrap() >= 1, "{st}");
    assert!(st["reload"]["last_error"].as_str().is_some());
    s.stop();
}

#[tokio::test]
async fn swap_under_load_then_roll_back() {
    let up = upstream().await;
    let (out, v, (da, pa), (db, pb)) = two_bundles(up);
    let link = out.join("current.pal");
    point(&link, &pa);
    let s = proxy::start(
        proxy::Runtime::load(&link, &[v]).unwrap(),
        proxy::ServeOptions {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            source: Some(proxy::BundleSource {
                path: link.clone(),
                trust: vec![v],
            }),
            watch: Some(Duration::from_millis(20)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let addr = s.http.unwrap();

    // 4 keep-alive clients x 600 requests while the bundle is swapped.
    let ok = Arc::new(AtomicUsize::new(0));
    let seen_a = Arc::new(AtomicUsize::new(0));
    let seen_b = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (ok, seen_a, seen_b, da, db) = (
            ok.clone(),
            seen_a.clone(),
            seen_b.clone(),
            da.clone(),
            db.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut buf = Vec::new();
            for i in 0..600 {
                c.write_all(format!("GET /load/{t}/{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
                let r = read_response(&mut c, &mut buf)
                    .await
                    .expect("request failed during swap");
                assert_eq!(r.status, 200);
                let d = r.header("x-palisade-digest").unwrap_or_default();
                if d == da {
                    seen_a.fetch_add(1, Ordering::Relaxed);
                } else if d == db {
                    seen_b.fetch_add(1, Ordering::Relaxed);
                }
                ok.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Swap once a third of the load has gone through.
    while ok.load(Ordering::Relaxed) < 800 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    point(&link, &pb);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(ok.load(Ordering::Relaxed), 2400, "every request succeeded");
    assert!(
        seen_a.load(Ordering::Relaxed) > 0 && seen_b.load(Ordering::Relaxed) > 0,
        "both policies served"
    );
    wait_digest(addr, &db).await;

    // Roll back by pointing at the earlier digest's bundle.
    point(&link, &out.join(format!("{da}.pal")));
    wait_digest(addr, &da).await;
    s.stop();
}
