use super::*;
use std::io::Write as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CRS_TESTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/crs/tests/regression/tests"
);

#[test]
fn parses_every_crs_test_file() {
    let dir = Path::new(CRS_TESTS);
    if !dir.is_dir() {
        assert!(
            std::env::var("PALISADE_REQUIRE_CRS").as_deref() != Ok("1"),
            "{CRS_TESTS} missing and PALISADE_REQUIRE_CRS=1"
        );
        eprintln!("skipping: {CRS_TESTS} not present");
        return;
    }
    let files = load_tests(dir).unwrap();
    assert_eq!(files.len(), 323);
    let mut tests = 0;
    let mut stages = 0;
    let mut names = std::collections::HashSet::new();
    for (p, f) in &files {
        let f = f
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        for t in &f.tests {
            tests += 1;
            stages += t.stages.len();
            assert!(
                names.insert(format!("{}-{}", f.rule_id, t.test_id)),
                "duplicate {}-{}",
                f.rule_id,
                t.test_id
            );
            for s in &t.stages {
                request::raw_request(&s.input)
                    .unwrap_or_else(|e| panic!("{}-{}: {e}", f.rule_id, t.test_id));
            }
        }
    }
    assert_eq!(tests, 5003);
    assert_eq!(stages, 5009);
    // the 920400 template expands
    let f = files
        .iter()
        .find(|(p, _)| p.ends_with("REQUEST-920-PROTOCOL-ENFORCEMENT/920400.yaml"))
        .unwrap();
    let t = &f.1.as_ref().unwrap().tests[0];
    let data = request::input_data(&t.stages[0].input).unwrap();
    assert!(data.windows(64200).any(|w| w.iter().all(|&b| b == b'1')));
    // the coraza overrides file parses
    let ov = Overrides::load(Some(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/crs/tests/regression/coraza-overrides.yaml"
    ))))
    .unwrap();
    assert!(matches!(ov.lookup(932200, 13), Override::Skip(r) if r == "wip"));
    assert!(matches!(ov.lookup(920100, 4), Override::Replace(_)));
    assert!(matches!(ov.lookup(920100, 1), Override::None));
    let ov = Overrides::load(Some(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/crs/tests/regression/nginx-overrides.yaml"
    ))))
    .unwrap();
    assert!(!ov.file.test_overrides.is_empty());
}

#[test]
fn selection_include_wins() {
    let mut o = RunOptions {
        tests_dir: PathBuf::new(),
        target: "127.0.0.1:1".parse().unwrap(),
        alert_log: PathBuf::new(),
        include: Some(regex::Regex::new("^942").unwrap()),
        exclude: Some(regex::Regex::new("-1$").unwrap()),
        overrides: None,
        show_failures: false,
        progress: false,
    };
    assert!(selected(&o, "942100-1"));
    assert!(!selected(&o, "941100-2"));
    o.include = None;
    assert!(!selected(&o, "942100-1"));
    assert!(selected(&o, "942100-2"));
}

#[test]
fn report_print() {
    let mut r = Report {
        show_failures: true,
        ..Default::default()
    };
    r.record("REQUEST-942", "942100-1".into(), Ok(()));
    r.record(
        "REQUEST-942",
        "942100-2".into(),
        Err("status 200 (expected 403)".into()),
    );
    r.skip("REQUEST-920", "920100-4".into(), "front end".into());
    let mut out = Vec::new();
    r.print(&mut out).unwrap();
    let s = String::from_utf8(out).unwrap();
    assert!(s.starts_with("1 passed, 1 failed, 1 skipped\n"), "{s}");
    assert!(s.contains("REQUEST-942") && s.contains("920100-4: front end"));
    assert!(s.contains("942100-2: status 200 (expected 403)"));
}

// ---------------------------------------------------------------------------
// End to end: albedo + a tiny fake WAF that logs `[id "N"]` lines.

async fn read_request(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let cl: usize = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + cl {
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf)
}

async fn fake_waf(listener: TcpListener, backend: SocketAddr, log: PathBuf) {
    let lock = std::sync::Arc::new(tokio::sync::Mutex::new(()));
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            continue;
        };
        let log = log.clone();
        let lock = lock.clone();
        tokio::spawn(async move {
            let Some(req) = read_request(&mut s).await else {
                return;
            };
            let text = String::from_utf8_lossy(&req).to_string();
            if text.starts_with("BADMETHOD") {
                return; // drop the connection: no response
            }
            {
                let _g = lock.lock().await;
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap();
                if let Some(m) = text.lines().find_map(|l| l.strip_prefix("X-CRS-Test: ")) {
                    writeln!(
                        f,
                        r#"[client 127.0.0.1] [id "999999"] [msg "X-CRS-Test {m}"]"#
                    )
                    .unwrap();
                } else {
                    writeln!(f, "[client 127.0.0.1] request seen").unwrap();
                    if text.contains("attack") {
                        writeln!(f, r#"[client 127.0.0.1] [id "942100"] [msg "SQLi"]"#).unwrap();
                    }
                    if text.contains("%3Cscript") {
                        writeln!(f, r#"[client 127.0.0.1] [id "941100"] [msg "XSS"]"#).unwrap();
                        writeln!(f, r#"[client 127.0.0.1] [id "949110"] [msg "score"]"#).unwrap();
                    }
                }
            }
            let resp = request::send(
                backend,
                &req,
                text.starts_with("HEAD"),
                request::Timeouts::default(),
            )
            .await;
            if let Ok(r) = resp {
                let _ = s.write_all(&r.raw).await;
            }
            let _ = s.shutdown().await;
        });
    }
}

const E2E_TESTS: &str = r#"---
meta:
  author: test
rule_id: 942100
tests:
  - test_id: 1
    desc: attack in a form body
    stages:
      - input:
          dest_addr: 192.0.2.1
          port: 8080
          method: POST
          headers:
            Host: localhost
            User-Agent: "OWASP CRS test agent"
          data: "q=attack"
        output:
          log:
            expect_ids: [942100]
            no_expect_ids: [941100]
  - test_id: 2
    desc: benign
    stages:
      - input:
          uri: "/?q=ok"
          headers:
            Host: localhost
        output:
          status: 200
          log:
            no_expect_ids: [942100]
  - test_id: 3
    desc: reflected response
    stages:
      - input:
          method: POST
          uri: /reflect
          headers:
            Host: localhost
            Content-Type: application/json
          data: '{"status": 503, "headers": {"X-Leak": "yes"}, "body": "leaked attack"}'
        output:
          status: [500, 503]
          response_contains: "(?i)x-leak: yes"
          log:
            expect_ids: [942100]
            match_regex: 'id "942100"'
  - test_id: 4
    desc: connection dropped
    stages:
      - input:
          method: BADMETHOD
          headers:
            Host: localhost
        output:
          expect_error: true
  - test_id: 5
    desc: fails unless overridden
    stages:
      - input:
          method: POST
          headers:
            Host: localhost
          data: "q=attack"
        output:
          log:
            expect_ids: [941100]
  - test_id: 6
    desc: skipped by overrides
    stages:
      - input:
          headers:
            Host: localhost
        output:
          status: 999
  - test_id: 7
    desc: isolated must fail (two ids)
    stages:
      - input:
          method: POST
          headers:
            Host: localhost
          data: "q=<script>"
        output:
          isolated: true
          log:
            expect_ids: [941100]
  - test_id: 8
    desc: excluded
    stages:
      - input:
          headers:
            Host: localhost
        output:
          status: 999
  - test_id: 9
    desc: no rule at all, two stages
    stages:
      - input:
          headers:
            Host: localhost
        output:
          no_log_contains: 'id "\d+"'
      - input:
          method: HEAD
          headers:
            Host: localhost
        output:
          status: 200
          log:
            no_match_regex: 'id "\d+"'
"#;

const E2E_OVERRIDES: &str = r#"
version: v0.0.0
meta:
  engine: fake
  platform: test
test_overrides:
  - rule_id: 942100
    test_ids: [5]
    reason: fake WAF has no XSS detection here
    output:
      log:
        expect_ids: [942100]
  - rule_id: 942100
    test_ids: [6]
    reason: not applicable to the fake WAF
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_with_fake_waf() {
    let dir = std::env::temp_dir().join(format!("ftw-e2e-{}-{}", std::process::id(), run_nonce()));
    let tests_dir = dir.join("tests");
    std::fs::create_dir_all(tests_dir.join("REQUEST-942-FAKE")).unwrap();
    std::fs::create_dir_all(tests_dir.join("BROKEN")).unwrap();
    std::fs::write(tests_dir.join("REQUEST-942-FAKE/942100.yaml"), E2E_TESTS).unwrap();
    std::fs::write(
        tests_dir.join("BROKEN/1.yml"),
        "rule_id: 1\ntests: [ {stages: oops\n",
    )
    .unwrap();
    std::fs::write(dir.join("overrides.yaml"), E2E_OVERRIDES).unwrap();
    let log = dir.join("alerts.log");

    let albedo_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let albedo_addr = albedo_l.local_addr().unwrap();
    let albedo_task = tokio::spawn(albedo::serve(albedo_l));
    let waf_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let waf_addr = waf_l.local_addr().unwrap();
    let waf_task = tokio::spawn(fake_waf(waf_l, albedo_addr, log.clone()));

    let opts = RunOptions {
        tests_dir: tests_dir.clone(),
        target: waf_addr,
        alert_log: log.clone(),
        include: None,
        exclude: Some(regex::Regex::new("^942100-8$").unwrap()),
        overrides: Some(dir.join("overrides.yaml")),
        show_failures: true,
        progress: false,
    };
    let report = run(&opts).await.unwrap();
    let mut out = Vec::new();
    report.print(&mut out).unwrap();
    let printed = String::from_utf8(out).unwrap();
    eprintln!("{printed}");
    let failed: Vec<&str> = report.failures.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(failed, vec!["BROKEN/1.yml", "942100-7"], "{printed}");
    assert_eq!(
        (report.passed, report.failed, report.skipped),
        (6, 2, 1),
        "{printed}"
    );
    assert!(report.failures[1].1.contains("isolated"), "{printed}");
    assert_eq!(
        report.skipped_tests,
        vec![(
            "942100-6".to_string(),
            "not applicable to the fake WAF".to_string()
        )]
    );
    assert_eq!(
        report.per_folder["REQUEST-942-FAKE"],
        FolderStats {
            passed: 6,
            failed: 1,
            skipped: 1
        }
    );
    assert!(printed.contains("1.yml: parse error"));

    // Without overrides 942100-5 fails and 942100-6 runs (and fails).
    let report = run(&RunOptions {
        overrides: None,
        include: Some(regex::Regex::new("^942100-[56]$").unwrap()),
        ..opts.clone()
    })
    .await
    .unwrap();
    assert_eq!((report.passed, report.failed, report.skipped), (0, 3, 0));
    assert!(report
        .failures
        .iter()
        .any(|(n, r)| n == "942100-5" && r.contains("[941100]")));
    assert!(report
        .failures
        .iter()
        .any(|(n, r)| n == "942100-6" && r.contains("status 200")));

    // A dead log: markers are never found.
    let report = run(&RunOptions {
        alert_log: dir.join("nowhere/alerts.log"),
        target: albedo_addr,
        overrides: None,
        include: Some(regex::Regex::new("^942100-1$").unwrap()),
        ..opts.clone()
    })
    .await
    .unwrap();
    assert_eq!(report.failed, 2);
    assert!(report.failures.iter().any(|(_, r)| r.contains("marker")));

    albedo_task.abort();
    waf_task.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn albedo_over_tcp_keepalive() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(albedo::serve(l));
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /anything HTTP/1.1\r\nHost: x\r\n\r\nPOST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    while got.windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count() < 2 {
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&chunk[..n]);
    }
    let body = br#"{"status":418,"body":"<html>x</html>","headers":{"X-Y":"z"}}"#;
    let mut req = format!(
        "POST /reflect HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let r = request::send(addr, &req, false, request::Timeouts::default())
        .await
        .unwrap();
    assert_eq!(r.status, 418);
    let raw = String::from_utf8_lossy(&r.raw).to_ascii_lowercase();
    assert!(
        raw.contains("x-y: z")
            && raw.contains("content-type: text/html")
            && raw.ends_with("<html>x</html>")
    );
    task.abort();
}

#[test]
fn run_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let opts = RunOptions {
        tests_dir: PathBuf::new(),
        target: "127.0.0.1:1".parse().unwrap(),
        alert_log: PathBuf::new(),
        include: None,
        exclude: None,
        overrides: None,
        show_failures: false,
        progress: false,
    };
    let fut = run(&opts);
    assert_send(&fut);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _g = rt.enter();
    let srv = albedo::serve(TcpListener::from_std(l).unwrap());
    assert_send(&srv);
}

/// The whole CRS suite against the fake WAF: exercises every request the
/// suite builds over real sockets (most log expectations fail, of course).
/// `cargo test -p ftw -- --ignored --nocapture whole_suite`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn whole_suite_against_fake_waf() {
    let dir = Path::new(CRS_TESTS);
    if !dir.is_dir() {
        return;
    }
    let tmp = std::env::temp_dir().join(format!("ftw-suite-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let log = tmp.join("alerts.log");
    let albedo_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let albedo_addr = albedo_l.local_addr().unwrap();
    tokio::spawn(albedo::serve(albedo_l));
    let waf_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let waf_addr = waf_l.local_addr().unwrap();
    tokio::spawn(fake_waf(waf_l, albedo_addr, log.clone()));
    let opts = RunOptions {
        tests_dir: dir.to_path_buf(),
        target: waf_addr,
        alert_log: log,
        include: std::env::var("FTW_INCLUDE")
            .ok()
            .map(|s| regex::Regex::new(&s).unwrap()),
        exclude: None,
        overrides: Some(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/crs/tests/regression/coraza-overrides.yaml"
        ))),
        show_failures: true,
        progress: true,
    };
    let t = std::time::Instant::now();
    let report = run(&opts).await.unwrap();
    let mut out = Vec::new();
    report.print(&mut out).unwrap();
    eprintln!("{}\n{:?}", String::from_utf8_lossy(&out), t.elapsed());
    assert_eq!(report.passed + report.failed + report.skipped, 5003);
    let _ = std::fs::remove_dir_all(&tmp);
}
