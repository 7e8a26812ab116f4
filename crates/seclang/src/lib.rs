//! SecLang (ModSecurity rule language) parser and rule engine, no I/O.
//!
//! `RuleSet::load` parses and compiles rule files once per policy bundle;
//! `Transaction` evaluates one request/response through phases 1-5 the way
//! ModSecurity v2 does, so the OWASP Core Rule Set runs unchanged.
//!
//! This file is the contract the data plane builds against. The engine
//! internals live in the modules below.

mod actions;
mod body;
mod bodyproc;
mod collections;
mod compile;
mod engine;
mod fold;
mod fs;
mod fxhash;
mod macros;
mod memory;
mod ops;
pub mod parser;
mod prefilter;
#[cfg(feature = "rule-profile")]
pub mod profile;
mod request;
mod rules;
mod state;
mod tcache;
mod variables;

use std::sync::Arc;

pub use engine::Stats;
pub use fs::DirSource;
pub use pipeline::RequestHead;

/// The settings of ModSecurity's `modsecurity.conf-recommended` that CRS
/// expects (engine, body access and limits, and the JSON/XML body-processor
/// rules 200000/200001, plus the body-error rules 200002-200004), for
/// callers that load CRS without a ModSecurity base configuration.
pub const RECOMMENDED_CONF: &str = include_str!("recommended.conf");

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
    phases: [Vec<rules::Entry>; 5],
    /// Per phase, parallel to `phases`: what the rule loop reads first.
    pub(crate) gates: [Vec<rules::Gate>; 5],
    pub(crate) groups: Vec<prefilter::GroupFilter>,
    /// Per phase: how the phase-wide prefilter unions are computed.
    pub(crate) plans: [prefilter::UnionPlan; 5],
    cfg: rules::Config,
    files_read: Vec<String>,
    rule_count: usize,
    /// TX as the rules folded at load time leave it (see `fold`).
    tx_init: Arc<collections::Collection>,
    /// `tx_init` holds a one-digit key (a capture slot).
    tx_init_digits: bool,
    /// Chain starters' metadata by `Rule::idx` (the RULE variable's source).
    metas: Arc<[Arc<rules::RuleMeta>]>,
}

impl RuleSet {
    /// Parse and compile `entries` (paths readable from `src`) in order.
    /// An entry with glob characters (`rules/*.conf`) is expanded, sorted.
    pub fn load(
        src: &dyn FileSource,
        entries: &[String],
        opts: &LoadOptions,
    ) -> Result<RuleSet, LoadError> {
        let l = compile::load(src, entries, opts)?;
        Ok(RuleSet {
            phases: l.phases,
            gates: l.gates,
            groups: l.groups,
            plans: l.plans,
            cfg: l.cfg,
            files_read: l.files_read,
            rule_count: l.rule_count,
            tx_init_digits: engine::CAPTURE_KEYS
                .iter()
                .any(|k| l.tx_init.get(k).is_some()),
            tx_init: Arc::new(l.tx_init),
            metas: l.metas,
        })
    }

    /// Parse and compile SecLang text held in memory (tests, fuzzing, inline
    /// policy snippets). `Include` and data files are not available.
    pub fn from_text(name: &str, text: &str) -> Result<RuleSet, LoadError> {
        struct One<'a>(&'a str, &'a str);
        impl FileSource for One<'_> {
            fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
                if path == self.0 {
                    Ok(self.1.as_bytes().to_vec())
                } else {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        path.to_string(),
                    ))
                }
            }
            fn glob(&self, _pattern: &str) -> std::io::Result<Vec<String>> {
                Ok(Vec::new())
            }
        }
        RuleSet::load(
            &One(name, text),
            &[name.to_string()],
            &LoadOptions::default(),
        )
    }

    /// Every file the load read (rule files, includes, data files), for bundling.
    pub fn files_read(&self) -> Vec<String> {
        self.files_read.clone()
    }

    /// Number of top-level rules (chains count once).
    /// Diagnostics: (rules, literals) of each merged prefilter group.
    pub fn prefilter_groups(&self) -> Vec<(usize, usize)> {
        self.groups
            .iter()
            .map(|g| (g.slot_count(), g.pattern_count()))
            .collect()
    }

    pub fn rule_count(&self) -> usize {
        self.rule_count
    }

    /// `SecRuleEngine` as configured.
    pub fn engine_mode(&self) -> EngineMode {
        self.cfg.engine
    }

    /// Ids of the rules in `phase` (1-5), in evaluation order.
    pub fn phase_rule_ids(&self, phase: u8) -> Vec<u64> {
        self.phases
            .get(usize::from(phase.saturating_sub(1)))
            .map(|p| {
                p.iter()
                    .filter_map(|e| match e {
                        rules::Entry::Rule(r) => Some(r.meta.id),
                        rules::Entry::Marker(_) => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
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
    pub severity: &'static str,
    pub tags: Vec<String>,
    pub file: String,
    pub line: usize,
    /// The rule's `ver` (empty when it has none, and for `nolog` rules).
    pub ver: String,
    /// `log` / `nolog` as resolved for this rule (nolog rules stay out of the alert log).
    pub log: bool,
    pub matched_var_name: String,
}

/// One request/response evaluated against a [`RuleSet`].
///
/// Collections: TX is per transaction; IP, GLOBAL, SESSION, USER and
/// RESOURCE are also kept per transaction only (`initcol` starts them
/// empty), which is all CRS v4 needs.
pub struct Transaction {
    rules: Arc<RuleSet>,
    unique_id: String,
    matched: Vec<MatchedRule>,
    st: state::TxState,
    rt: engine::Runtime,
    /// Always present but while the transaction is dropped (handed back
    /// to the thread's pool then).
    cache: Option<Box<tcache::TCache>>,
    stats: engine::Stats,
    /// Phases already run (index 1-5).
    done: [bool; 6],
}

impl Drop for Transaction {
    fn drop(&mut self) {
        // Hand the cache's tables and the state's buffers back for the
        // thread's next transaction.
        let Some(mut cache) = self.cache.take() else {
            return;
        };
        cache.spare = state::Spare::keep(&mut self.st);
        cache.spare.scratch = self.rt.take_scratch();
        // A list grown by an unusual request is let go.
        if self.matched.capacity() <= 256 {
            self.matched.clear();
            cache.spare.matched = std::mem::take(&mut self.matched);
        }
        tcache::TCache::give(cache);
    }
}

impl Transaction {
    pub fn new(rules: Arc<RuleSet>, req: &RequestHead, unique_id: String) -> Self {
        let cfg = &rules.cfg;
        let mut rt = engine::Runtime::new(cfg);
        let mut cache = tcache::TCache::take();
        let mut spare = std::mem::take(&mut cache.spare);
        rt.set_scratch(std::mem::take(&mut spare.scratch));
        let mut matched = std::mem::take(&mut spare.matched);
        // Room for a typical request's matches (CRS records its
        // initialisation and scoring rules too), grown once if at all.
        matched.reserve(32);
        // The last transaction's TX layer, emptied, over this rule set's start.
        let tx = match spare.tx.take() {
            Some(mut tx) => {
                tx.relayer(rules.tx_init.clone());
                tx
            }
            None => collections::Collection::layered(rules.tx_init.clone()),
        };
        let mut st = request::initial_state(req, &unique_id, cfg.arg_separator, spare);
        st.tx = tx;
        st.rule_metas = rules.metas.clone();
        // Capture slots TX:0-9 a capture may have to clear: none unless the
        // starting TX holds one (a rule set that sets `tx.1` itself).
        st.captures_set = if rules.tx_init_digits { 10 } else { 0 };
        Transaction {
            rules,
            unique_id,
            matched,
            st,
            rt,
            cache: Some(cache),
            stats: engine::Stats::default(),
            done: [false; 6],
        }
    }

    /// The disruptive action a rule decided (status, rule id), once one did.
    pub fn intervention(&self) -> Option<&Intervention> {
        self.rt.intervention.as_ref()
    }

    pub fn unique_id(&self) -> &str {
        &self.unique_id
    }

    /// Engine mode in force for this transaction (after `ctl:ruleEngine`).
    pub fn engine_mode(&self) -> EngineMode {
        self.rt.mode
    }

    fn run(&mut self, phase: u8) -> Option<Intervention> {
        if self.done.get(usize::from(phase)).copied().unwrap_or(true) {
            return None;
        }
        if let Some(d) = self.done.get_mut(usize::from(phase)) {
            *d = true;
        }
        let cache = self.cache.as_deref_mut()?;
        let mut e = engine::Engine {
            rs: &self.rules,
            st: &mut self.st,
            rt: &mut self.rt,
            cache,
            matched: &mut self.matched,
            stats: &mut self.stats,
        };
        e.run_phase(phase)
    }

    /// Phase 1. When the request body will not be inspected
    /// (`SecRequestBodyAccess Off`), phase 2 runs here too.
    pub fn process_request_headers(&mut self) -> Option<Intervention> {
        if let Some(iv) = self.run(1) {
            return Some(iv);
        }
        if !self.rt.req_body_access {
            self.st.request_body_length = 0;
            return self.run(2);
        }
        None
    }

    /// Whether phase 2 wants the body (`SecRequestBodyAccess On`, and no intervention yet).
    pub fn wants_request_body(&self) -> bool {
        self.rt.req_body_access && self.rt.intervention.is_none() && !self.done[2]
    }

    /// `SecRequestBodyLimit` in bytes.
    pub fn request_body_limit(&self) -> usize {
        self.rt.req_body_limit
    }

    /// Phase 2. `truncated` is true when the body was longer than the limit.
    pub fn process_request_body(&mut self, body: &[u8], truncated: bool) -> Option<Intervention> {
        if self.done[2] {
            return self.rt.intervention.clone();
        }
        if let Some(iv) =
            body::process(&mut self.st, &mut self.rt, &self.rules.cfg, body, truncated)
        {
            self.done[2] = true;
            return Some(iv);
        }
        self.run(2)
    }

    /// Phase 3. When the response body will not be inspected, phase 4 runs here too.
    pub fn process_response_headers(
        &mut self,
        status: u16,
        protocol: &str,
        headers: &[(String, Vec<u8>)],
    ) -> Option<Intervention> {
        if self.done[3] {
            // Once only: the response values must keep their buffers (see `TxState`).
            return self.rt.intervention.clone();
        }
        body::response_headers(&mut self.st, status, protocol, headers);
        if let Some(iv) = self.run(3) {
            return Some(iv);
        }
        if !self.wants_response_body() {
            return self.run(4);
        }
        None
    }

    /// Whether phase 4 wants the body (`SecResponseBodyAccess On` and a MIME type in `SecResponseBodyMimeType`).
    pub fn wants_response_body(&self) -> bool {
        if !self.rt.resp_body_access || self.rt.intervention.is_some() || self.done[4] {
            return false;
        }
        // Compared in place (asked more than once per response); the
        // configured types are lower-cased at load.
        let ct = &self.st.resp_content_type;
        let mime = ct
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        let mime: &[u8] = if mime.is_empty() { b"null" } else { mime };
        self.rules
            .cfg
            .resp_mime
            .iter()
            .any(|m| m.as_bytes().eq_ignore_ascii_case(mime))
    }

    /// `SecResponseBodyLimit` in bytes.
    pub fn response_body_limit(&self) -> usize {
        self.rt.resp_body_limit
    }

    /// Phase 4.
    pub fn process_response_body(&mut self, body: &[u8], truncated: bool) -> Option<Intervention> {
        if self.done[4] {
            return self.rt.intervention.clone();
        }
        let limit = self.rt.resp_body_limit;
        if body.len() > limit || truncated {
            if self.rules.cfg.resp_body_limit_action == rules::LimitAction::Reject
                && self.rt.mode == EngineMode::On
            {
                self.done[4] = true;
                let iv = Intervention {
                    status: 500,
                    rule_id: 0,
                    redirect: None,
                    drop: false,
                    msg: "Response body too large".into(),
                };
                self.rt.intervention = Some(iv.clone());
                return Some(iv);
            }
            self.st.outbound_data_error = true;
        }
        self.st.resp_body = Some(body.get(..limit.min(body.len())).unwrap_or(body).to_vec());
        self.run(4)
    }

    /// Phase 5.
    pub fn process_logging(&mut self) {
        let _ = self.run(5);
    }

    /// Rules that matched so far, in order.
    pub fn matched(&self) -> &[MatchedRule] {
        &self.matched
    }

    /// A TX variable as text (`anomaly_score`, `blocking_inbound_anomaly_score` ...).
    pub fn tx_var(&self, name: &str) -> Option<String> {
        self.st
            .tx
            .get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// CRS inbound anomaly score (`tx.blocking_inbound_anomaly_score`), 0 when unset.
    pub fn inbound_anomaly_score(&self) -> i64 {
        self.st
            .tx
            .get("blocking_inbound_anomaly_score")
            .map(actions::setvar::atoi)
            .unwrap_or(0)
    }

    /// CRS outbound anomaly score (`tx.blocking_outbound_anomaly_score`), 0 when unset.
    pub fn outbound_anomaly_score(&self) -> i64 {
        self.st
            .tx
            .get("blocking_outbound_anomaly_score")
            .map(actions::setvar::atoi)
            .unwrap_or(0)
    }

    /// Engine counters (rules evaluated, operator calls, prefilter skips).
    pub fn stats(&self) -> Stats {
        self.stats
    }
}
