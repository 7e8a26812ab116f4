//! The binary end to end: keygen → build → verify → test → serve a signed
//! bundle with the CRS, over real sockets.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policy")
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("palisade-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, target: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {target} HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: cli-test\r\nAccept: */*\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, text))
}

struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn keygen_build_verify_test_and_serve() {
    let d = tempdir("e2e");
    let ok = bin().arg("keygen").arg(d.join("ci")).status().unwrap();
    assert!(ok.success());
    let out = bin()
        .args(["build"])
        .arg(example())
        .arg("-o")
        .arg(d.join("bundles"))
        .arg("--key")
        .arg(d.join("ci.key"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bundle = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let digest = bundle.file_stem().unwrap().to_string_lossy().into_owned();
    assert_eq!(digest.len(), 64);

    let v = bin()
        .arg("verify")
        .arg(&bundle)
        .arg("--pub")
        .arg(d.join("ci.pub"))
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    assert!(String::from_utf8_lossy(&v.stdout).contains(&digest));

    // A tampered copy is refused by verify and by serve.
    let mut bytes = std::fs::read(&bundle).unwrap();
    let i = bytes.windows(8).position(|w| w == b"\"files\":").unwrap() + 20;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let bad = d.join("bad.pal");
    std::fs::write(&bad, &bytes).unwrap();
    let v = bin()
        .arg("verify")
        .arg(&bad)
        .arg("--pub")
        .arg(d.join("ci.pub"))
        .output()
        .unwrap();
    assert!(!v.status.success());
    let port = free_port();
    let s = bin()
        .args(["serve", "--bundle"])
        .arg(&bad)
        .arg("--trust")
        .arg(d.join("ci.pub"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin",
            "127.0.0.1:0",
        ])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!s.status.success());
    assert!(String::from_utf8_lossy(&s.stderr).contains("refusing bundle"));

    // The policy's own test cases pass through the real proxy.
    let t = bin().arg("test").arg(example()).output().unwrap();
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stdout));
    assert!(String::from_utf8_lossy(&t.stdout).contains("7 passed, 0 failed"));

    // Serve the signed bundle in front of an upstream that answers 200.
    let up = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up_port = up.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in up.incoming().take(50) {
            let Ok(mut c) = c else { continue };
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ =
                c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    let (port, admin) = (free_port(), free_port());
    let alerts = d.join("alerts.log");
    let _srv = Child(
        bin()
            .args(["serve", "--bundle"])
            .arg(&bundle)
            .arg("--trust")
            .arg(d.join("ci.pub"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin", &format!("127.0.0.1:{admin}")])
            .args(["--upstream", &format!("127.0.0.1:{up_port}")])
            .arg("--alert-log")
            .arg(&alerts)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while get(admin, "/healthz").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (st, body) = get(admin, "/status").unwrap();
    assert_eq!(st, 200);
    assert!(body.contains(&digest), "{body}");
    let (st, resp) = get(port, "/search?q=shoes").unwrap();
    assert_eq!(st, 200, "{resp}");
    assert!(
        resp.contains(&format!("X-Palisade-Digest: {digest}"))
            || resp
                .to_ascii_lowercase()
                .contains(&format!("x-palisade-digest: {digest}"))
    );
    let (st, _) = get(port, "/search?q=1%27%20OR%20%271%27%3D%271").unwrap();
    assert_eq!(st, 403);
    let (st, _) = get(port, "/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E").unwrap();
    assert_eq!(st, 403);
    let log = std::fs::read_to_string(&alerts).unwrap_or_default();
    assert!(log.contains("[id \"942100\"]"), "{log}");
    assert!(log.contains("[id \"949110\"]"), "{log}");
}

#[test]
fn bad_policy_points_at_file_line_field() {
    let d = tempdir("badpol");
    std::fs::write(
        d.join("palisade.yaml"),
        "version: 1\nname: x\nupstreams:\n  app:\n    targets: [\"127.0.0.1:9\"]\nroutes:\n  - name: a\n    upstream: app\n    pathprefix: /x\n",
    )
    .unwrap();
    bin().arg("keygen").arg(d.join("k")).status().unwrap();
    let out = bin()
        .arg("build")
        .arg(&d)
        .arg("-o")
        .arg(d.join("o"))
        .arg("--key")
        .arg(d.join("k.key"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("palisade.yaml:9:") && err.contains("routes[0]") && err.contains("pathprefix"),
        "{err}"
    );
}
