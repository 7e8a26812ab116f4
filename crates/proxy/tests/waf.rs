//! The WAF stage through the real proxy: enforce, monitor, per-route
//! exclusions (rule ids and targets), request bodies, and response inspection.

mod common;
use common::*;

const RULES: &str = r#"
SecRule ARGS "@contains evil" "id:1001,phase:2,deny,status:403,log,msg:'evil arg'"
SecRule REQUEST_HEADERS:X-Bad "@streq 1" "id:1002,phase:1,deny,status:406,log,msg:'bad header'"
SecRule RESPONSE_BODY "@contains SECRET" "id:1003,phase:4,deny,status:502,log,msg:'leak'"
"#;

async fn serve_waf() -> proxy::Running {
    let up = upstream().await;
    let dir = tempdir("waf");
    std::fs::write(dir.join("rules.conf"), RULES).unwrap();
    let yaml = format!(
        r#"version: 1
name: waf
upstreams:
  app:
    targets: ["{up}"]
routes:
  - name: monitored
    path_prefix: /monitor/
    upstream: app
    mode: monitor
  - name: tuned
    path_prefix: /tuned/
    upstream: app
    waf:
      exclude_rule_ids: [1002]
      exclude_targets: [{{rule_id: 1001, target: "ARGS:comment"}}]
  - name: off
    path_prefix: /off/
    upstream: app
    waf: {{enabled: false}}
  - name: default
    upstream: app
waf:
  enabled: true
  rules: [rules.conf]
"#
    );
    write_policy(&dir, &yaml);
    serve_dir(&dir).await
}

async fn status(addr: std::net::SocketAddr, req: &str) -> u16 {
    raw(addr, req.as_bytes())
        .await
        .map(|r| r.status)
        .unwrap_or(0)
}

fn get_h(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: shop.example.com\r\n{extra}Connection: close\r\n\r\n")
}

#[tokio::test]
async fn enforce_monitor_and_exclusions() {
    let s = serve_waf().await;
    let a = s.http.unwrap();
    assert_eq!(status(a, &get_h("/?q=fine", "")).await, 200);
    assert_eq!(status(a, &get_h("/?q=evil", "")).await, 403);
    assert_eq!(status(a, &get_h("/", "X-Bad: 1\r\n")).await, 406);
    // Monitor: logged, not blocked.
    assert_eq!(status(a, &get_h("/monitor/?q=evil", "")).await, 200);
    // Route exclusions: rule 1002 removed, ARGS:comment removed from 1001 only.
    assert_eq!(status(a, &get_h("/tuned/", "X-Bad: 1\r\n")).await, 200);
    assert_eq!(status(a, &get_h("/tuned/?comment=evil", "")).await, 200);
    assert_eq!(status(a, &get_h("/tuned/?q=evil", "")).await, 403);
    // WAF off on a route.
    assert_eq!(status(a, &get_h("/off/?q=evil", "")).await, 200);
    s.stop();
}

#[tokio::test]
async fn request_bodies_are_inspected() {
    let s = serve_waf().await;
    let a = s.http.unwrap();
    let post = |body: &str, ct: &str| {
        format!(
            "POST /submit HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    assert_eq!(
        status(a, &post("a=1&b=2", "application/x-www-form-urlencoded")).await,
        200
    );
    assert_eq!(
        status(a, &post("a=1&b=evil", "application/x-www-form-urlencoded")).await,
        403
    );
    assert_eq!(
        status(a, &post(r#"{"x":{"y":["evil"]}}"#, "application/json")).await,
        403
    );
    assert_eq!(
        status(a, &post(r#"{"x":{"y":["fine"]}}"#, "application/json")).await,
        200
    );
    // Chunked body, inspected the same way.
    let chunked = "POST /submit HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nq=evi\r\n1\r\nl\r\n0\r\n\r\n";
    assert_eq!(status(a, chunked).await, 403);
    s.stop();
}

#[tokio::test]
async fn response_bodies_are_inspected() {
    let s = serve_waf().await;
    let a = s.http.unwrap();
    // The demo app echoes the request; a body containing the marker leaks it back.
    let body = "SECRET";
    let req = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = raw(a, req.as_bytes()).await.unwrap();
    assert_eq!(r.status, 502, "{:?}", String::from_utf8_lossy(&r.body));
    assert!(!String::from_utf8_lossy(&r.body).contains("SECRET"));
    s.stop();
}

/// `SecArgumentsLimit` and `SecRequestBodyJsonDepthLimit` from a policy's
/// rule files reach the engine: a JSON body over either is a request body
/// error, which the rules turn into a 400.
#[tokio::test]
async fn json_body_limits_from_the_rule_files() {
    let up = upstream().await;
    let dir = tempdir("waf-limits");
    std::fs::write(
        dir.join("rules.conf"),
        "SecArgumentsLimit 3\nSecRequestBodyJsonDepthLimit 1\n\
         SecRule REQBODY_ERROR \"!@eq 0\" \"id:1101,phase:2,deny,status:400,log,msg:'body error'\"\n",
    )
    .unwrap();
    let yaml = format!(
        "version: 1\nname: limits\nupstreams:\n  app:\n    targets: [\"{up}\"]\n\
         routes:\n  - name: default\n    upstream: app\nwaf:\n  enabled: true\n  rules: [rules.conf]\n"
    );
    write_policy(&dir, &yaml);
    let s = serve_dir(&dir).await;
    let a = s.http.unwrap();
    let post = |body: &str| {
        format!(
            "POST /submit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    assert_eq!(status(a, &post(r#"{"a":1,"b":2,"c":3}"#)).await, 200);
    assert_eq!(status(a, &post(r#"{"a":1,"b":2,"c":3,"d":4}"#)).await, 400);
    assert_eq!(status(a, &post(r#"{"a":{"b":1}}"#)).await, 200);
    assert_eq!(status(a, &post(r#"{"a":{"b":{"c":1}}}"#)).await, 400);
    s.stop();
}

/// The logging phase runs for every request, a blocked one too (as in
/// ModSecurity v2: CRS reports a blocked request's scores there), and its
/// logged rules reach the alert log.
/// The proxy with only `rules` as its WAF rules (enforcing on every route),
/// writing its alert log to the returned path.
async fn serve_rules(tag: &str, rules: &str) -> (proxy::Running, std::path::PathBuf) {
    let up = upstream().await;
    let dir = tempdir(tag);
    std::fs::write(dir.join("rules.conf"), rules).unwrap();
    write_policy(
        &dir,
        &format!(
            "version: 1\nname: {tag}\nupstreams:\n  app:\n    targets: [\"{up}\"]\n\
             routes:\n  - name: all\n    upstream: app\nwaf:\n  enabled: true\n  rules: [rules.conf]\n"
        ),
    );
    let alerts = dir.join("alerts.log");
    let opts = proxy::ServeOptions {
        alert_log: Some(alerts.clone()),
        ..Default::default()
    };
    (serve_dir_with(&dir, opts).await, alerts)
}

#[tokio::test]
async fn logging_phase_runs_after_a_block() {
    let (s, alerts) = serve_rules(
        "waf-log",
        "SecRule ARGS \"@contains evil\" \"id:2001,phase:2,deny,status:403,log,msg:'evil'\"\n\
         SecAction \"id:2002,phase:5,pass,log,msg:'logging phase'\"\n\
         SecRule REQUEST_HEADERS:X-Go \"@rx .\" \"id:2003,phase:1,redirect:https://example.com/,log\"\n",
    )
    .await;
    let a = s.http.unwrap();
    assert_eq!(status(a, &get_h("/?q=evil", "")).await, 403);
    assert_eq!(status(a, &get_h("/?q=fine", "")).await, 200);
    assert_eq!(status(a, &get_h("/", "X-Go: 1\r\n")).await, 302);
    let log = lines_when_written(&alerts, 5).await;
    s.stop();
    let lines: Vec<&str> = log.lines().collect();
    let with = |id: &str| lines.iter().filter(|l| l.contains(id)).count();
    assert_eq!(with("[id \"2001\"]"), 1, "{log}");
    assert_eq!(with("[id \"2002\"]"), 3, "every request: {log}");
    assert_eq!(
        with("ModSecurity: Access denied with redirection to https://example.com/ using status 302 (phase 1). [file \"rules.conf\"] [line \"3\"] [id \"2003\"]"),
        1,
        "{log}"
    );
    // The rule that blocked says so, with where it is, as ModSecurity writes it.
    assert_eq!(
        with("ModSecurity: Access denied with code 403 (phase 2). [file \"rules.conf\"] [line \"1\"] [id \"2001\"]"),
        1,
        "{log}"
    );
    assert_eq!(
        with("ModSecurity: Warning. [file \"rules.conf\"] [line \"2\"] [id \"2002\"]"),
        3,
        "{log}"
    );
}

/// `drop` closes the connection without an answer (HTTP/1), or resets the
/// stream and keeps the connection (HTTP/2); the alert log says so.
#[tokio::test]
async fn drop_answers_nothing() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let (s, alerts) = serve_rules(
        "waf-drop",
        "SecRule REQUEST_HEADERS:X-Drop \"@rx .\" \"id:3001,phase:1,drop,log\"\n",
    )
    .await;
    let a = s.http.unwrap();
    let (resp, closed) = raw_then_closed(a, get_h("/", "X-Drop: 1\r\n").as_bytes()).await;
    assert!(resp.is_none(), "no answer: {:?}", resp.map(|r| r.status));
    assert!(closed);
    assert_eq!(status(a, &get_h("/", "")).await, 200);

    let io = tokio::net::TcpStream::connect(a).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = |drop: bool| {
        let mut r = http::Request::get("http://shop.example.com/h2");
        if drop {
            r = r.header("x-drop", "1");
        }
        r.body(Empty::<bytes::Bytes>::new()).unwrap()
    };
    assert!(send.send_request(req(true)).await.is_err(), "stream reset");
    let ok = send.send_request(req(false)).await.unwrap();
    assert_eq!(ok.status(), 200, "the connection goes on");

    let log = lines_when_written(&alerts, 2).await;
    s.stop();
    let dropped = "ModSecurity: Access denied with connection close (phase 1). [file \"rules.conf\"] [line \"1\"] [id \"3001\"]";
    assert_eq!(
        log.lines().filter(|l| l.contains(dropped)).count(),
        2,
        "{log}"
    );
}
