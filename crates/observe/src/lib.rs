//! Visibility: the ModSecurity-style alert log (one line per matched rule, so
//! go-ftw and CRS tooling read it unchanged), one JSON event per request, and
//! counters for metrics.

use pipeline::RequestCtx;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Where alert lines and events go; each is optional.
#[derive(Default)]
pub struct Observer {
    alerts: Option<Mutex<File>>,
    events: Option<Mutex<File>>,
    pub counters: Counters,
}

#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub blocked: AtomicU64,
    pub monitored: AtomicU64,
    pub l7_refused: AtomicU64,
}

/// One structured event per request (JSON lines).
#[derive(Serialize)]
pub struct Event<'a> {
    pub ts_ms: u128,
    pub id: &'a str,
    pub digest: &'a str,
    pub client_ip: String,
    pub method: &'a str,
    pub host: &'a str,
    pub uri: &'a str,
    pub route: Option<&'a str>,
    pub status: Option<u16>,
    pub duration_us: u128,
    pub decisions: Vec<serde_json::Value>,
    pub findings: &'a [pipeline::Finding],
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Observer {
    pub fn new(alert_log: Option<&Path>, event_log: Option<&Path>) -> std::io::Result<Self> {
        Ok(Observer {
            alerts: alert_log.map(open_append).transpose()?.map(Mutex::new),
            events: event_log.map(open_append).transpose()?.map(Mutex::new),
            counters: Counters::default(),
        })
    }

    /// Record a finished request: alert lines for findings, one event, counters.
    pub fn record(&self, digest: &str, ctx: &RequestCtx) {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let blocked = ctx
            .decisions
            .iter()
            .any(|d| d.verdict.is_blocking() && d.mode == pipeline::Mode::Enforce);
        if blocked {
            self.counters.blocked.fetch_add(1, Ordering::Relaxed);
        } else if ctx.decisions.iter().any(|d| d.verdict.is_blocking()) {
            self.counters.monitored.fetch_add(1, Ordering::Relaxed);
        }
        if let (Some(f), false) = (&self.alerts, ctx.findings.is_empty()) {
            let mut out = String::new();
            for m in &ctx.findings {
                out.push_str(&alert_line(ctx, m));
                out.push('\n');
            }
            // One write per request keeps a request's lines together.
            if let Ok(mut f) = f.lock() {
                let _ = f.write_all(out.as_bytes());
            }
        }
        if let Some(f) = &self.events {
            let ev = Event {
                ts_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or(0),
                id: &ctx.id,
                digest,
                client_ip: ctx.req.client_ip.to_string(),
                method: &ctx.req.method,
                host: ctx.req.host(),
                uri: &ctx.req.uri_raw,
                route: ctx.route.as_deref(),
                status: ctx.status,
                duration_us: ctx.started.elapsed().as_micros(),
                decisions: ctx
                    .decisions
                    .iter()
                    .map(|d| {
                        let (verdict, status, reason) = match &d.verdict {
                            pipeline::Verdict::Allow => ("allow", None, None),
                            pipeline::Verdict::Deny { status, reason } => {
                                ("deny", Some(*status), Some(reason.as_str()))
                            }
                            pipeline::Verdict::Challenge { status, .. } => {
                                ("challenge", Some(*status), None)
                            }
                            pipeline::Verdict::Tag { reason } => {
                                ("tag", None, Some(reason.as_str()))
                            }
                            pipeline::Verdict::Drop { reason } => {
                                ("drop", None, Some(reason.as_str()))
                            }
                        };
                        serde_json::json!({
                            "stage": d.stage,
                            "mode": d.mode,
                            "verdict": verdict,
                            "status": status,
                            "reason": reason,
                        })
                    })
                    .collect(),
                findings: &ctx.findings,
            };
            if let Ok(mut line) = serde_json::to_string(&ev) {
                line.push('\n');
                if let Ok(mut f) = f.lock() {
                    let _ = f.write_all(line.as_bytes());
                }
            }
        }
    }
}

/// Escape a value for one alert-log field, as ModSecurity's `log_escape`
/// does: quotes and backslashes are escaped and control bytes become `\xHH`,
/// so request data can never end a line or close a quoted field.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// ModSecurity v2 error-log style: `[client IP] ModSecurity: Warning. [file
/// "..."] [line "N"] [id "N"] [msg "..."] ...`, or `Access denied with code
/// 403 (phase 2).` for the rule that stopped the request when its stage
/// enforced it; fields with nothing to say are left out, as v2 does.
pub fn alert_line(ctx: &RequestCtx, f: &pipeline::Finding) -> String {
    use std::fmt::Write;
    let enforced = ctx.decisions.iter().any(|d| {
        d.stage == f.stage && d.verdict.is_blocking() && d.mode == pipeline::Mode::Enforce
    });
    let mut s = format!("[client {}] ModSecurity: ", ctx.req.client_ip);
    match &f.denied {
        Some(how) if enforced => {
            let _ = write!(s, "Access denied {}.", esc(how));
        }
        _ => s.push_str("Warning."),
    }
    if !f.file.is_empty() {
        let _ = write!(s, " [file \"{}\"] [line \"{}\"]", esc(&f.file), f.line);
    }
    let _ = write!(s, " [id \"{}\"]", f.rule_id);
    for (name, v) in [
        ("msg", &f.msg),
        ("data", &f.data),
        ("severity", &f.severity),
        ("ver", &f.ver),
    ] {
        if !v.is_empty() {
            let _ = write!(s, " [{name} \"{}\"]", esc(v));
        }
    }
    for t in &f.tags {
        let _ = write!(s, " [tag \"{}\"]", esc(t));
    }
    let _ = write!(
        s,
        " [hostname \"{}\"] [uri \"{}\"] [unique_id \"{}\"]",
        esc(ctx.req.host()),
        esc(&ctx.req.path),
        ctx.id
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::{Finding, HttpVersion, RequestHead, Verdict};

    fn ctx() -> RequestCtx {
        let mut c = RequestCtx::new(RequestHead {
            method: "GET".into(),
            uri_raw: "/a?b=1".into(),
            path: "/a".into(),
            query: "b=1".into(),
            version: HttpVersion::Http11,
            headers: vec![("Host".into(), b"shop.example".to_vec())],
            peer: "192.0.2.7:5000".parse().unwrap(),
            client_ip: "192.0.2.7".parse().unwrap(),
            tls: false,
            local: "127.0.0.1:80".parse().unwrap(),
        });
        c.id = "req-1".into();
        c
    }

    fn finding(data: &str) -> Finding {
        Finding {
            stage: "waf",
            rule_id: 942100,
            msg: "SQL Injection Attack Detected via libinjection".into(),
            data: data.into(),
            severity: "CRITICAL".into(),
            tags: vec!["attack-sqli".into()],
            ..Default::default()
        }
    }

    #[test]
    fn alert_line_has_the_modsecurity_shape() {
        let l = alert_line(&ctx(), &finding("1' OR '1'='1"));
        assert_eq!(
            l,
            "[client 192.0.2.7] ModSecurity: Warning. [id \"942100\"] [msg \"SQL Injection Attack Detected via libinjection\"] [data \"1' OR '1'='1\"] [severity \"CRITICAL\"] [tag \"attack-sqli\"] [hostname \"shop.example\"] [uri \"/a\"] [unique_id \"req-1\"]"
        );
    }

    /// The rule that stopped the request says so when its stage enforced
    /// the block (not in monitor mode); file, line and ver are given when
    /// known, and empty fields are left out.
    #[test]
    fn alert_line_of_the_blocking_rule() {
        let blocking = Finding {
            rule_id: 949110,
            msg: "Inbound Anomaly Score Exceeded (Total Score: 5)".into(),
            file: "crs/rules/REQUEST-949-BLOCKING-EVALUATION.conf".into(),
            line: 222,
            ver: "OWASP_CRS/4.28.0".into(),
            denied: Some("with code 403 (phase 2)".into()),
            ..finding("")
        };
        let deny = Verdict::Deny {
            status: 403,
            reason: "blocked".into(),
        };
        let mut c = ctx();
        c.decisions.push(pipeline::Decision {
            stage: "waf",
            verdict: deny.clone(),
            mode: pipeline::Mode::Enforce,
        });
        assert_eq!(
            alert_line(&c, &blocking),
            "[client 192.0.2.7] ModSecurity: Access denied with code 403 (phase 2). [file \"crs/rules/REQUEST-949-BLOCKING-EVALUATION.conf\"] [line \"222\"] [id \"949110\"] [msg \"Inbound Anomaly Score Exceeded (Total Score: 5)\"] [severity \"CRITICAL\"] [ver \"OWASP_CRS/4.28.0\"] [tag \"attack-sqli\"] [hostname \"shop.example\"] [uri \"/a\"] [unique_id \"req-1\"]"
        );
        // Another rule of the same request only warned.
        assert!(alert_line(&c, &finding("x")).contains("ModSecurity: Warning. [id \"942100\"]"));
        let mut monitored = ctx();
        monitored.decisions.push(pipeline::Decision {
            stage: "waf",
            verdict: deny,
            mode: pipeline::Mode::Monitor,
        });
        assert!(alert_line(&monitored, &blocking).contains("ModSecurity: Warning. [file"));
    }

    #[test]
    fn request_data_cannot_break_lines_or_quotes() {
        let l = alert_line(&ctx(), &finding("x\r\n[id \"1\"]\u{0}"));
        assert!(
            !l.contains('\n') && !l.contains('\r') && !l.contains('\0'),
            "{l}"
        );
        assert!(l.contains("x\\x0d\\x0a[id \\\"1\\\"]\\x00"), "{l}");
    }

    #[test]
    fn events_and_alerts_are_written_as_lines() {
        let dir = std::env::temp_dir().join(format!("palisade-observe-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let (a, e) = (dir.join("alerts.log"), dir.join("events.log"));
        let _ = std::fs::remove_file(&a);
        let _ = std::fs::remove_file(&e);
        let o = Observer::new(Some(&a), Some(&e)).unwrap();
        let mut c = ctx();
        c.status = Some(403);
        c.findings.push(finding("x"));
        o.record("abc", &c);
        o.record("abc", &c);
        let alerts = std::fs::read_to_string(&a).unwrap();
        assert_eq!(alerts.lines().count(), 2);
        let events = std::fs::read_to_string(&e).unwrap();
        let lines: Vec<_> = events.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["digest"], "abc");
        assert_eq!(v["status"], 403);
        assert_eq!(v["findings"][0]["rule_id"], 942100);
        assert_eq!(o.counters.requests.load(Ordering::Relaxed), 2);
    }
}
