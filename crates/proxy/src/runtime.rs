//! A loaded bundle turned into what the data plane runs: limits, routes,
//! upstreams, compiled rule sets and the stage pipeline. Built once per
//! bundle, then shared read-only by every request until the next swap.

use crate::pipeline::Pipeline;
use crate::stages::{l7::L7Stage, route::RouteStage, waf::WafStage};
use ipnet::IpNet;
use pipeline::Mode;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// L7 limits in force: the policy's `limits:` section as validated.
pub use policy::Limits;

pub struct UpstreamRt {
    pub name: String,
    pub targets: Vec<String>,
    next: AtomicUsize,
    pub response_timeout: Duration,
}

impl UpstreamRt {
    /// Round-robin over the targets.
    pub fn pick(&self) -> &str {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.targets[i % self.targets.len()]
    }
}

pub struct RouteRt {
    pub name: String,
    pub host: String,
    pub path_prefix: String,
    pub upstream: Arc<UpstreamRt>,
    pub mode: Mode,
    /// Per-stage mode overrides for this route (e.g. `waf` in monitor).
    pub stage_modes: HashMap<&'static str, Mode>,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Bundle(#[from] policy::BundleError),
    #[error("WAF rules for route `{route}`: {source}")]
    Rules {
        route: String,
        #[source]
        source: seclang::LoadError,
    },
    #[error("TLS certificate: {0}")]
    Tls(String),
    #[error("policy: {0}")]
    Policy(String),
}

pub struct Runtime {
    pub digest: String,
    pub meta: serde_json::Value,
    pub name: String,
    pub limits: Limits,
    pub routes: Arc<[RouteRt]>,
    pub pipeline: Pipeline,
    pub trusted: Vec<IpNet>,
    pub digest_header_public: bool,
    pub tls: Option<Arc<rustls::sign::CertifiedKey>>,
    pub loaded_at: SystemTime,
    pub rule_count: usize,
}

impl Runtime {
    /// Read, verify and compile a bundle file.
    pub fn load(
        path: &std::path::Path,
        trust: &[ed25519_dalek::VerifyingKey],
    ) -> Result<Runtime, RuntimeError> {
        let bundle = policy::Bundle::read(path, trust)?;
        Runtime::from_bundle(&bundle)
    }

    pub fn from_bundle(bundle: &policy::Bundle) -> Result<Runtime, RuntimeError> {
        let p = &bundle.policy;
        let limits = p.limits.clone();
        let mut upstreams: HashMap<String, Arc<UpstreamRt>> = HashMap::new();
        for (name, u) in &p.upstreams {
            if u.targets.is_empty() {
                return Err(RuntimeError::Policy(format!(
                    "upstream `{name}` has no targets"
                )));
            }
            upstreams.insert(
                name.clone(),
                Arc::new(UpstreamRt {
                    name: name.clone(),
                    targets: u.targets.clone(),
                    next: AtomicUsize::new(0),
                    response_timeout: Duration::from_millis(u.response_timeout_ms),
                }),
            );
        }
        // One compiled rule set per distinct WAF configuration, shared by the
        // routes that use it (exclusions and modes make configurations differ).
        let rule_files = bundle.waf_rule_files();
        let mut compiled: HashMap<String, Arc<seclang::RuleSet>> = HashMap::new();
        let mut by_route = HashMap::new();
        let mut routes = Vec::new();
        let mut rule_count = 0;
        for r in &p.routes {
            let upstream = upstreams
                .get(&r.upstream)
                .ok_or_else(|| {
                    RuntimeError::Policy(format!(
                        "route `{}`: unknown upstream `{}`",
                        r.name, r.upstream
                    ))
                })?
                .clone();
            let waf = p.effective_waf(r);
            let mut stage_modes = HashMap::new();
            if waf.enabled {
                stage_modes.insert("waf", waf.mode);
                let key = format!("{waf:?}");
                let rs = match compiled.get(&key) {
                    Some(rs) => rs.clone(),
                    None => {
                        let rs =
                            policy::compile_waf(bundle, &rule_files, &waf).map_err(|source| {
                                RuntimeError::Rules {
                                    route: r.name.clone(),
                                    source,
                                }
                            })?;
                        rule_count = rule_count.max(rs.rule_count());
                        let rs = Arc::new(rs);
                        compiled.insert(key, rs.clone());
                        rs
                    }
                };
                by_route.insert(r.name.clone(), rs);
            }
            routes.push(RouteRt {
                name: r.name.clone(),
                host: r.host.clone().unwrap_or_else(|| "*".into()),
                path_prefix: r.path_prefix.clone().unwrap_or_else(|| "/".into()),
                upstream,
                mode: r.mode.unwrap_or_default(),
                stage_modes,
            });
        }
        let routes: Arc<[RouteRt]> = routes.into();
        let pipeline = Pipeline::new(vec![
            Arc::new(L7Stage::new(limits.clone())),
            Arc::new(RouteStage::new(routes.clone())),
            Arc::new(WafStage::new(by_route)),
        ]);
        let trusted = p
            .server
            .trusted_proxies
            .iter()
            .map(|s| parse_net(s))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = match &p.server.tls {
            Some(t) => Some(Arc::new(crate::tls::certified_key(
                bundle
                    .file(&t.cert)
                    .ok_or_else(|| RuntimeError::Tls(format!("{} not in bundle", t.cert)))?,
                bundle
                    .file(&t.key)
                    .ok_or_else(|| RuntimeError::Tls(format!("{} not in bundle", t.key)))?,
            )?)),
            None => None,
        };
        Ok(Runtime {
            digest: bundle.digest.clone(),
            meta: serde_json::to_value(&bundle.meta).unwrap_or_default(),
            name: p.name.clone(),
            limits,
            routes,
            pipeline,
            trusted,
            digest_header_public: p.server.digest_header,
            tls,
            loaded_at: SystemTime::now(),
            rule_count,
        })
    }

    /// Send every route to `target` instead (benchmarks, `palisade test`, the demo).
    pub fn with_upstream(mut self, target: &str) -> Self {
        let routes: Vec<RouteRt> = self
            .routes
            .iter()
            .map(|r| RouteRt {
                name: r.name.clone(),
                host: r.host.clone(),
                path_prefix: r.path_prefix.clone(),
                upstream: Arc::new(UpstreamRt {
                    name: r.upstream.name.clone(),
                    targets: vec![target.to_string()],
                    next: AtomicUsize::new(0),
                    response_timeout: r.upstream.response_timeout,
                }),
                mode: r.mode,
                stage_modes: r.stage_modes.clone(),
            })
            .collect();
        self.routes = routes.into();
        self
    }

    pub fn route(&self, name: &str) -> Option<&RouteRt> {
        self.routes.iter().find(|r| r.name == name)
    }

    /// The mode a stage runs in for a route: the route's per-stage override,
    /// else the route's mode, else enforce.
    pub fn mode(&self, stage: &str, route: Option<&str>) -> Mode {
        match route.and_then(|r| self.route(r)) {
            Some(r) => r.stage_modes.get(stage).copied().unwrap_or(r.mode),
            None => Mode::Enforce,
        }
    }
}

fn parse_net(s: &str) -> Result<IpNet, RuntimeError> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| RuntimeError::Policy(format!("bad trusted proxy `{s}`")))
}
