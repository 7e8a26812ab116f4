//! The policy file (`palisade.yaml`): what a team writes and reviews in git.
//!
//! Unknown fields are errors (a typo must not silently disable a defence);
//! every setting has a production-safe default.

use pipeline::Mode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The policy file name inside a policy directory and a bundle.
pub const POLICY_FILE: &str = "palisade.yaml";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Format version of this file; only 1 exists.
    pub version: u32,
    pub name: String,
    #[serde(default)]
    pub server: Server,
    #[serde(default)]
    pub limits: Limits,
    pub upstreams: BTreeMap<String, Upstream>,
    pub routes: Vec<Route>,
    #[serde(default)]
    pub waf: Waf,
    /// Globs of policy test-case files (`palisade test`).
    #[serde(default)]
    pub tests: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Peers (IPs or CIDRs) whose `X-Forwarded-For`/`Forwarded` is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Add `X-Palisade-Digest` to public responses (always on for admin).
    #[serde(default)]
    pub digest_header: bool,
    #[serde(default)]
    pub tls: Option<Tls>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain, relative to the policy directory.
    pub cert: String,
    /// PEM private key, relative to the policy directory.
    pub key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub header_read_timeout_ms: u64,
    pub body_read_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub max_header_count: usize,
    pub max_header_bytes: usize,
    pub max_url_bytes: usize,
    pub max_body_bytes: u64,
    pub max_conns: usize,
    pub max_conns_per_ip: usize,
    /// How much of a body the inspecting stages (WAF) may buffer.
    pub inspect_body_bytes: usize,
    /// Slow-POST guard: minimum average body rate in bytes/s (after 5 s).
    pub min_body_rate: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            idle_timeout_ms: 60_000,
            max_header_count: 100,
            max_header_bytes: 32 * 1024,
            max_url_bytes: 8 * 1024,
            max_body_bytes: 10 * 1024 * 1024,
            max_conns: 10_000,
            max_conns_per_ip: 256,
            inspect_body_bytes: 128 * 1024,
            min_body_rate: 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// `host:port` targets, used round-robin.
    pub targets: Vec<String>,
    #[serde(default = "default_response_timeout")]
    pub response_timeout_ms: u64,
}

fn default_response_timeout() -> u64 {
    30_000
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub name: String,
    /// Exact host (port ignored) or `*.example.com`; absent: any host.
    #[serde(default)]
    pub host: Option<String>,
    /// Path prefix; absent: `/`.
    #[serde(default)]
    pub path_prefix: Option<String>,
    pub upstream: String,
    /// Default mode of every stage on this route (enforce or monitor).
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Route-level WAF tuning on top of the global `waf:` section.
    #[serde(default)]
    pub waf: Option<RouteWaf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Waf {
    pub enabled: bool,
    pub mode: Mode,
    /// CRS blocking paranoia level (1-4).
    pub paranoia_level: u8,
    /// CRS detection paranoia level (>= paranoia_level): higher-PL rules log only.
    pub detection_paranoia_level: Option<u8>,
    pub inbound_anomaly_threshold: u32,
    pub outbound_anomaly_threshold: u32,
    /// Rule files in load order (globs allowed), relative to the policy dir.
    pub rules: Vec<String>,
    /// Rules removed everywhere (false-positive tuning as code).
    pub exclude_rule_ids: Vec<u64>,
    /// Targets removed from rules everywhere.
    pub exclude_targets: Vec<TargetExclusion>,
    /// Response content types the outbound rules inspect.
    pub response_body_mime_types: Vec<String>,
}

impl Default for Waf {
    fn default() -> Self {
        Waf {
            enabled: false,
            mode: Mode::Enforce,
            paranoia_level: 1,
            detection_paranoia_level: None,
            inbound_anomaly_threshold: 5,
            outbound_anomaly_threshold: 4,
            rules: Vec::new(),
            exclude_rule_ids: Vec::new(),
            exclude_targets: Vec::new(),
            response_body_mime_types: ["text/plain", "text/html", "text/xml", "application/json"]
                .map(String::from)
                .to_vec(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteWaf {
    pub enabled: Option<bool>,
    pub mode: Option<Mode>,
    pub paranoia_level: Option<u8>,
    pub inbound_anomaly_threshold: Option<u32>,
    /// Added to the global exclusions for this route.
    pub exclude_rule_ids: Vec<u64>,
    pub exclude_targets: Vec<TargetExclusion>,
}

/// `SecRuleUpdateTargetById ID "!TARGET"` as data, e.g. `{rule_id: 942100, target: "ARGS:password"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetExclusion {
    pub rule_id: u64,
    pub target: String,
}

/// The WAF configuration in force on one route (global merged with the route's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WafSettings {
    pub enabled: bool,
    pub mode: Mode,
    pub paranoia_level: u8,
    pub detection_paranoia_level: u8,
    pub inbound_anomaly_threshold: u32,
    pub outbound_anomaly_threshold: u32,
    pub exclude_rule_ids: Vec<u64>,
    pub exclude_targets: Vec<TargetExclusion>,
    pub response_body_mime_types: Vec<String>,
}

impl WafSettings {
    /// SecLang loaded before the rule files: the base engine configuration
    /// CRS expects, then the policy's CRS settings (`tx.*`), which CRS's
    /// initialisation rules respect because they are set first.
    pub fn seclang_preamble(&self) -> String {
        let mut s = String::from(seclang::RECOMMENDED_CONF);
        s.push_str("\n# palisade.yaml waf settings\n");
        s.push_str(&format!(
            "SecResponseBodyMimeType {}\n",
            self.response_body_mime_types.join(" ")
        ));
        s.push_str(&format!(
            "SecAction \"id:190001,phase:1,pass,nolog,t:none,\
             setvar:tx.blocking_paranoia_level={},\
             setvar:tx.detection_paranoia_level={},\
             setvar:tx.inbound_anomaly_score_threshold={},\
             setvar:tx.outbound_anomaly_score_threshold={}\"\n",
            self.paranoia_level,
            self.detection_paranoia_level,
            self.inbound_anomaly_threshold,
            self.outbound_anomaly_threshold
        ));
        s
    }

    /// SecLang loaded after the rule files (target exclusions need the rules to exist).
    pub fn seclang_epilogue(&self) -> Option<String> {
        if self.exclude_targets.is_empty() {
            return None;
        }
        let mut s = String::new();
        for t in &self.exclude_targets {
            s.push_str(&format!(
                "SecRuleUpdateTargetById {} \"!{}\"\n",
                t.rule_id,
                t.target.replace('"', "\\\"")
            ));
        }
        Some(s)
    }
}

impl Policy {
    /// The WAF settings for `route`.
    pub fn effective_waf(&self, route: &Route) -> WafSettings {
        let g = &self.waf;
        let r = route.waf.clone().unwrap_or_default();
        let pl = r.paranoia_level.unwrap_or(g.paranoia_level);
        let mut ids = g.exclude_rule_ids.clone();
        ids.extend(&r.exclude_rule_ids);
        ids.sort_unstable();
        ids.dedup();
        let mut targets = g.exclude_targets.clone();
        targets.extend(r.exclude_targets.iter().cloned());
        WafSettings {
            enabled: r.enabled.unwrap_or(g.enabled),
            mode: r.mode.or(route.mode).unwrap_or(g.mode),
            paranoia_level: pl,
            detection_paranoia_level: g.detection_paranoia_level.unwrap_or(pl).max(pl),
            inbound_anomaly_threshold: r
                .inbound_anomaly_threshold
                .unwrap_or(g.inbound_anomaly_threshold),
            outbound_anomaly_threshold: g.outbound_anomaly_threshold,
            exclude_rule_ids: ids,
            exclude_targets: targets,
            response_body_mime_types: g.response_body_mime_types.clone(),
        }
    }
}
