//! Policy test cases: files kept beside the policy (listed under `tests:`),
//! each a list of requests with the verdict expected of the gateway.
//!
//! ```yaml
//! - name: SQL injection in a query argument is blocked
//!   request:
//!     method: GET
//!     uri: "/search?q=1'%20OR%20'1'='1"
//!     headers: {User-Agent: policy-test}
//!   expect: {verdict: deny}        # or {status: 403}
//! ```

use crate::model::POLICY_FILE;
use crate::BuildError;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    pub request: TestRequest,
    pub expect: Expect,
    /// `file:index`, filled in when loaded.
    #[serde(skip)]
    pub location: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    #[serde(default = "get")]
    pub method: String,
    #[serde(default = "slash")]
    pub uri: String,
    #[serde(default)]
    pub headers: indexmap_lite::Headers,
    #[serde(default)]
    pub body: Option<String>,
}

fn get() -> String {
    "GET".into()
}
fn slash() -> String {
    "/".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Exact status.
    #[serde(default)]
    pub status: Option<u16>,
    /// `allow` (not blocked: any status but 403/429) or `deny` (403).
    #[serde(default)]
    pub verdict: Option<VerdictKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictKind {
    Allow,
    Deny,
}

impl Expect {
    pub fn check(&self, status: u16) -> Result<(), String> {
        if let Some(s) = self.status {
            if s != status {
                return Err(format!("expected status {s}, got {status}"));
            }
        }
        match self.verdict {
            Some(VerdictKind::Deny) if status != 403 => {
                Err(format!("expected deny (403), got {status}"))
            }
            Some(VerdictKind::Allow) if status == 403 || status == 429 => {
                Err(format!("expected allow, got {status}"))
            }
            _ => Ok(()),
        }
    }
}

impl TestRequest {
    /// The request as HTTP/1.1 bytes (Host and Content-Length added when absent).
    pub fn to_raw(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.uri).into_bytes();
        let has = |n: &str| {
            self.headers
                .0
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(n))
        };
        if !has("host") {
            out.extend_from_slice(b"Host: localhost\r\n");
        }
        for (k, v) in &self.headers.0 {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        let body = self.body.as_deref().unwrap_or("");
        if !body.is_empty() && !has("content-length") {
            out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        out.extend_from_slice(body.as_bytes());
        out
    }
}

/// Headers in the order written (YAML maps are ordered in the file).
pub mod indexmap_lite {
    use serde::de::{MapAccess, Visitor};
    use serde::{Deserialize, Deserializer};

    #[derive(Debug, Clone, Default)]
    pub struct Headers(pub Vec<(String, String)>);

    impl<'de> Deserialize<'de> for Headers {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Headers;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a map of header names to values")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Headers, A::Error> {
                    let mut v = Vec::new();
                    while let Some((k, val)) = m.next_entry::<String, String>()? {
                        v.push((k, val));
                    }
                    Ok(Headers(v))
                }
            }
            d.deserialize_map(V)
        }
    }
}

/// Load the test cases a policy directory lists under `tests:`.
pub fn load_test_cases(dir: &Path) -> Result<Vec<TestCase>, BuildError> {
    let pf = dir.join(POLICY_FILE);
    let text = std::fs::read_to_string(&pf).map_err(|source| BuildError::Io {
        path: pf.clone(),
        source,
    })?;
    let policy = crate::load::parse_policy(POLICY_FILE, &text)?;
    let mut out = Vec::new();
    for g in &policy.tests {
        for f in seclang::FileSource::glob(&seclang::DirSource::new(dir), g).unwrap_or_default() {
            let p = dir.join(&f);
            let t = std::fs::read_to_string(&p).map_err(|source| BuildError::Io {
                path: p.clone(),
                source,
            })?;
            let cases: Vec<TestCase> = serde_yaml::from_str(&t).map_err(|e| {
                let (line, col) = e
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((1, 1));
                BuildError::Invalid {
                    file: f.clone(),
                    line,
                    col,
                    field: "test case".into(),
                    msg: e.to_string(),
                }
            })?;
            for (i, mut c) in cases.into_iter().enumerate() {
                c.location = format!("{f}#{}", i + 1);
                out.push(c);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_request_and_checks() {
        let c: Vec<TestCase> = serde_yaml::from_str(
            "- name: x\n  request: {method: POST, uri: /a, headers: {X-B: '1', Host: h}, body: abc}\n  expect: {verdict: deny}\n",
        )
        .unwrap();
        let raw = String::from_utf8(c[0].request.to_raw()).unwrap();
        assert_eq!(
            raw,
            "POST /a HTTP/1.1\r\nX-B: 1\r\nHost: h\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
        );
        assert!(c[0].expect.check(403).is_ok());
        assert!(c[0].expect.check(200).is_err());
        let e = Expect {
            status: Some(200),
            verdict: Some(VerdictKind::Allow),
        };
        assert!(e.check(200).is_ok());
        assert!(e.check(404).is_err());
    }
}
