//! go-ftw v2 test file format (ftw-tests-schema v2), parsed leniently.

use serde::{Deserialize, Deserializer};
use serde_yaml::Value;

/// Any YAML scalar as a string (`0` → "0", `true` → "true", null → "").
fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some(String::new()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Tagged(t) => scalar_string(&t.value),
        _ => None,
    }
}

fn de_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => scalar_string(&v)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("expected a scalar value")),
    }
}

/// `headers:` map; go-ftw sorts the names (Go byte order) for a stable order.
fn de_headers<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<(String, String)>>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Mapping(m)) => {
            let mut out = Vec::with_capacity(m.len());
            for (k, v) in m {
                let k = scalar_string(&k)
                    .ok_or_else(|| serde::de::Error::custom("header name must be a scalar"))?;
                let v = scalar_string(&v)
                    .ok_or_else(|| serde::de::Error::custom("header value must be a scalar"))?;
                out.push((k, v));
            }
            out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            Ok(Some(out))
        }
        Some(_) => Err(serde::de::Error::custom("headers must be a mapping")),
    }
}

fn de_status<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    let one = |v: &Value| -> Result<u16, D::Error> {
        match v {
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| serde::de::Error::custom("bad status")),
            Value::String(s) => s
                .trim()
                .parse()
                .map_err(|_| serde::de::Error::custom("bad status")),
            _ => Err(serde::de::Error::custom("bad status")),
        }
    };
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Sequence(s)) => s.iter().map(one).collect(),
        Some(v) => {
            Ok(vec![one(&v)?]).map(|v: Vec<u16>| v.into_iter().filter(|s| *s != 0).collect())
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TestFile {
    #[serde(default)]
    pub rule_id: u64,
    #[serde(default)]
    pub tests: Vec<Test>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Test {
    #[serde(default)]
    pub test_id: u64,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub desc: Option<String>,
    #[serde(default)]
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Stage {
    #[serde(default)]
    pub input: Input,
    #[serde(default)]
    pub output: Output,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HeaderTuple {
    #[serde(deserialize_with = "de_opt_string", default)]
    pub name: Option<String>,
    #[serde(deserialize_with = "de_opt_string", default)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Input {
    #[serde(default, deserialize_with = "de_opt_string")]
    pub dest_addr: Option<String>,
    #[serde(default)]
    pub port: Option<serde_yaml::Value>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub protocol: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub method: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub uri: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub version: Option<String>,
    #[serde(default, deserialize_with = "de_headers")]
    pub headers: Option<Vec<(String, String)>>,
    #[serde(default)]
    pub ordered_headers: Option<Vec<HeaderTuple>>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub data: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub encoded_data: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub encoded_request: Option<String>,
    #[serde(default)]
    pub autocomplete_headers: Option<bool>,
    /// Legacy inverse of `autocomplete_headers`.
    #[serde(default)]
    pub stop_magic: Option<bool>,
    #[serde(default)]
    pub save_cookie: Option<bool>,
    #[serde(default)]
    pub follow_redirect: Option<bool>,
}

impl Input {
    pub fn method(&self) -> &str {
        self.method.as_deref().unwrap_or("GET")
    }
    pub fn uri(&self) -> &str {
        self.uri.as_deref().unwrap_or("/")
    }
    pub fn version(&self) -> &str {
        self.version.as_deref().unwrap_or("HTTP/1.1")
    }
    /// go-ftw: `autocomplete_headers` wins; else `!stop_magic`; else true.
    pub fn autocomplete(&self) -> bool {
        match (self.autocomplete_headers, self.stop_magic) {
            (Some(a), _) => a,
            (None, Some(s)) => !s,
            (None, None) => true,
        }
    }
    /// Effective header list: `ordered_headers` if present, else the sorted `headers` map.
    pub fn header_list(&self) -> Vec<(String, String)> {
        if let Some(oh) = &self.ordered_headers {
            return oh
                .iter()
                .map(|t| {
                    (
                        t.name.clone().unwrap_or_default(),
                        t.value.clone().unwrap_or_default(),
                    )
                })
                .collect();
        }
        self.headers.clone().unwrap_or_default()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct LogOutput {
    #[serde(default)]
    pub expect_ids: Vec<u64>,
    #[serde(default)]
    pub no_expect_ids: Vec<u64>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub match_regex: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub no_match_regex: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Output {
    /// Expected status: empty = any; several = any of them.
    #[serde(default, deserialize_with = "de_status")]
    pub status: Vec<u16>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub response_contains: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub log_contains: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub no_log_contains: Option<String>,
    #[serde(default)]
    pub log: LogOutput,
    #[serde(default)]
    pub expect_error: Option<bool>,
    #[serde(default)]
    pub retry_once: Option<bool>,
    #[serde(default)]
    pub isolated: bool,
}

impl Output {
    /// go-ftw's post-load step: `log_contains` / `no_log_contains` become
    /// `match_regex` / `no_match_regex` unless the `log` block says otherwise.
    pub fn normalize(&mut self) {
        let nonempty = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
        if nonempty(&self.log_contains)
            && self.log.expect_ids.is_empty()
            && !nonempty(&self.log.match_regex)
        {
            self.log.match_regex = self.log_contains.clone();
        }
        if nonempty(&self.no_log_contains)
            && self.log.no_expect_ids.is_empty()
            && !nonempty(&self.log.no_match_regex)
        {
            self.log.no_match_regex = self.no_log_contains.clone();
        }
    }
}

/// Parse one test file; fills in the rule id from the file name and the
/// test ids from their position, as go-ftw does.
pub fn parse_test_file(text: &str, file_name: &str) -> Result<TestFile, String> {
    let mut f: TestFile = if text.trim().is_empty() {
        TestFile::default()
    } else {
        let v: Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        if v.is_null() {
            TestFile::default()
        } else {
            serde_yaml::from_value(v).map_err(|e| e.to_string())?
        }
    };
    if f.rule_id == 0 && !f.tests.is_empty() {
        let digits: String = file_name
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(|c| c.is_ascii_digit())
            .collect();
        f.rule_id = digits
            .parse()
            .map_err(|_| "rule_id is missing and the file name has no rule id".to_string())?;
    }
    for (i, t) in f.tests.iter_mut().enumerate() {
        if t.test_id == 0 {
            t.test_id = i as u64 + 1;
        }
        for s in &mut t.stages {
            s.output.normalize();
        }
    }
    Ok(f)
}

/// Platform overrides file (`*-overrides.yaml`), plus an optional `ignore` section.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OverridesFile {
    #[serde(default)]
    pub test_overrides: Vec<TestOverride>,
    /// Extension: tests to skip, either `{regex: reason}` (as go-ftw's
    /// `testoverride.ignore`) or a list of `{rule_id, test_ids, reason}` / `{test: regex, reason}`.
    #[serde(default)]
    pub ignore: Option<IgnoreSpec>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TestOverride {
    pub rule_id: u64,
    #[serde(default)]
    pub test_ids: Vec<u64>,
    #[serde(default)]
    pub stage_ids: Vec<usize>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub reason: Option<String>,
    #[serde(default)]
    pub output: Option<Output>,
    #[serde(default)]
    pub retry_once: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum IgnoreSpec {
    Map(std::collections::BTreeMap<String, String>),
    List(Vec<IgnoreEntry>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct IgnoreEntry {
    #[serde(default)]
    pub rule_id: Option<u64>,
    #[serde(default)]
    pub test_ids: Vec<u64>,
    /// Regex on the test name `<rule>-<test>`.
    #[serde(default)]
    pub test: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}
