//! SecLang (ModSecurity rule language) parser and rule engine, no I/O.
//!
//! `RuleSet::load` parses and compiles rule files once per policy bundle;
//! `Transaction` evaluates one request/response through phases 1-5 the way
//! ModSecurity v2 does, so the OWASP Core Rule Set runs unchanged.
//!
//! This file is the contract the data plane builds against. The engine
//! internals live in the modules below.

use std::sync::Arc;

pub use pipeline::RequestHead;

/// Where rule files and data files (`@pmFromFile`) come from: the disk when
/// a policy is built, the bundle's file table when it is served.
pub trait FileSource: Send + Sync {
    /// Read one file. `path` is as written in the policy or an `Include`,
    /// already resolved against the including file's directory.
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>>;
    /// Expand a glob (`rules/*.conf`), sorted, as `Include` does.
    fn glob(&self, pattern: &str) -> std::io::Result<Vec<String>>;
}

/// A parse or compile error pointing at file, line and column.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{col}: {msg}")]
pub struct LoadError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

/// `SecRuleEngine` (and `ctl:ruleEngine`) values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineMode {
    On,
    Off,
    DetectionOnly,
}

/// Settings the Palisade policy applies on top of the rule files.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Rule ids removed for this rule set (per-route exclusions build one
    /// `RuleSet` per distinct exclusion list).
    pub remove_ids: Vec<u64>,
    /// Extra SecLang text appended after the files (route-level tuning).
    pub extra: Option<String>,
}

/// A compiled, immutable rule set: rules in phase order, compiled regexes,
/// prefilters and loaded data files. Cheap to share across threads.
pub struct RuleSet {
    // Filled in by the engine.
    _private: (),
}

impl RuleSet {
    /// Parse and compile `entries` (paths readable from `src`) in order.
    pub fn load(
        _src: &dyn FileSource,
        _entries: &[String],
        _opts: &LoadOptions,
    ) -> Result<RuleSet, LoadError> {
        Ok(RuleSet { _private: () })
    }

    /// Every file the load read (rule files, includes, data files), for bundling.
    pub fn files_read(&self) -> Vec<String> {
        Vec::new()
    }

    /// Number of top-level rules (chains count once).
    pub fn rule_count(&self) -> usize {
        0
    }

    /// `SecRuleEngine` as configured.
    pub fn engine_mode(&self) -> EngineMode {
        EngineMode::On
    }
}

/// What a disruptive rule asks the data plane to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intervention {
    pub status: u16,
    pub rule_id: u64,
    /// `Some(url)` for `redirect`.
    pub redirect: Option<String>,
    /// `drop`: close the connection without answering.
    pub drop: bool,
    pub msg: String,
}

/// One rule that matched, as the alert log reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchedRule {
    pub id: u64,
    pub phase: u8,
    pub msg: String,
    pub data: String,
    pub severity: String,
    pub tags: Vec<String>,
    pub file: String,
    pub line: usize,
    /// `log` / `nolog` as resolved for this rule (nolog rules stay out of the alert log).
    pub log: bool,
    pub matched_var_name: String,
}

impl MatchedRule {
    /// One ModSecurity-style alert line: `... [id "942100"] [msg "..."] ...`
    /// so go-ftw and CRS tooling read it unchanged.
    pub fn alert_line(&self, unique_id: &str) -> String {
        format!(
            "ModSecurity: Warning. Matched \"{}\" [file \"{}\"] [line \"{}\"] [id \"{}\"] [msg \"{}\"] [data \"{}\"] [severity \"{}\"]{} [unique_id \"{}\"]",
            self.matched_var_name.replace('"', "\\\""),
            self.file,
            self.line,
            self.id,
            self.msg.replace('"', "\\\""),
            self.data.replace('"', "\\\""),
            self.severity,
            self.tags
                .iter()
                .map(|t| format!(" [tag \"{}\"]", t.replace('"', "\\\"")))
                .collect::<String>(),
            unique_id
        )
    }
}

/// One request/response evaluated against a [`RuleSet`].
pub struct Transaction {
    rules: Arc<RuleSet>,
    unique_id: String,
    matched: Vec<MatchedRule>,
}

impl Transaction {
    pub fn new(rules: Arc<RuleSet>, req: &RequestHead, unique_id: String) -> Self {
        let _ = req;
        Transaction {
            rules,
            unique_id,
            matched: Vec::new(),
        }
    }

    pub fn unique_id(&self) -> &str {
        &self.unique_id
    }

    /// Engine mode in force for this transaction (after `ctl:ruleEngine`).
    pub fn engine_mode(&self) -> EngineMode {
        self.rules.engine_mode()
    }

    /// Phase 1.
    pub fn process_request_headers(&mut self) -> Option<Intervention> {
        None
    }

    /// Whether phase 2 wants the body (`SecRequestBodyAccess On`).
    pub fn wants_request_body(&self) -> bool {
        false
    }

    /// `SecRequestBodyLimit` in bytes.
    pub fn request_body_limit(&self) -> usize {
        13_107_200
    }

    /// Phase 2. `truncated` is true when the body was longer than the limit.
    pub fn process_request_body(&mut self, _body: &[u8], _truncated: bool) -> Option<Intervention> {
        None
    }

    /// Phase 3.
    pub fn process_response_headers(
        &mut self,
        _status: u16,
        _protocol: &str,
        _headers: &[(String, Vec<u8>)],
    ) -> Option<Intervention> {
        None
    }

    /// Whether phase 4 wants the body (`SecResponseBodyAccess On` and a MIME type in `SecResponseBodyMimeType`).
    pub fn wants_response_body(&self) -> bool {
        false
    }

    /// `SecResponseBodyLimit` in bytes.
    pub fn response_body_limit(&self) -> usize {
        524_288
    }

    /// Phase 4.
    pub fn process_response_body(&mut self, _body: &[u8], _truncated: bool) -> Option<Intervention> {
        None
    }

    /// Phase 5.
    pub fn process_logging(&mut self) {}

    /// Rules that matched so far, in order.
    pub fn matched(&self) -> &[MatchedRule] {
        &self.matched
    }
}
