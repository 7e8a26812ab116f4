//! Rule actions: parsed once from the action string, merged with the
//! phase's `SecDefaultAction`, and executed by the engine.

mod ctl;
pub mod setvar;

pub use ctl::{engine_mode as ctl_engine_mode, Ctl, IdRange, RulePattern, TargetName};
pub use setvar::{SetVar, SetVarOp};

use crate::macros::MacroStr;
use crate::parser::generic::Item;
use crate::variables::Var;

/// The disruptive action of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disruptive {
    Pass,
    Deny,
    Drop,
    /// Use the disruptive action of the phase's SecDefaultAction.
    Block,
    Allow(AllowScope),
    Redirect(String),
    /// `proxy:` is accepted and acts as `pass` (Palisade routes, not rules).
    Proxy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowScope {
    /// Skip the rest of the transaction except logging.
    All,
    Phase,
    /// Skip the rest of the request phases.
    Request,
}

/// Actions that change state when a rule matches.
#[derive(Debug, Clone)]
pub enum NonDisruptive {
    SetVar(SetVar),
    Ctl(Ctl),
    /// `initcol:ip=...`: collections are per transaction, so this only resets the collection.
    InitCol,
    SetEnv(MacroStr, MacroStr),
}

/// One transformation step as written (`t:none` resets, `t:-x` removes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TStep {
    None,
    Add(String),
    Remove(String),
}

/// A rule's actions as written, before merging with defaults.
#[derive(Debug, Clone, Default)]
pub struct Actions {
    pub id: Option<u64>,
    pub phase: Option<u8>,
    pub msg: Option<MacroStr>,
    pub logdata: Option<MacroStr>,
    pub tags: Vec<MacroStr>,
    pub severity: Option<u8>,
    pub ver: Option<String>,
    pub rev: Option<String>,
    pub maturity: Option<String>,
    pub accuracy: Option<String>,
    pub chain: bool,
    pub disruptive: Option<Disruptive>,
    pub status: Option<u16>,
    pub tsteps: Vec<TStep>,
    pub capture: bool,
    pub multi_match: bool,
    pub log: Option<bool>,
    pub auditlog: Option<bool>,
    pub skip: u32,
    pub skip_after: Option<String>,
    pub nd: Vec<NonDisruptive>,
}

pub const SEVERITIES: [&str; 8] = [
    "EMERGENCY",
    "ALERT",
    "CRITICAL",
    "ERROR",
    "WARNING",
    "NOTICE",
    "INFO",
    "DEBUG",
];

fn parse_phase(v: &str) -> Option<u8> {
    match v.to_ascii_lowercase().as_str() {
        "request" => Some(2),
        "response" => Some(4),
        "logging" => Some(5),
        s => s.parse::<u8>().ok().filter(|p| (1..=5).contains(p)),
    }
}

fn parse_severity(v: &str) -> Option<u8> {
    if let Ok(n) = v.parse::<u8>() {
        return (n <= 7).then_some(n);
    }
    SEVERITIES
        .iter()
        .position(|s| s.eq_ignore_ascii_case(v))
        .map(|p| p as u8)
}

/// An action error at a byte offset of the action string.
pub struct ActionError {
    pub offset: usize,
    pub msg: String,
}

impl Actions {
    /// Parse an action list (already split by the generic parser).
    pub fn parse(items: &[Item]) -> Result<Actions, ActionError> {
        let mut a = Actions::default();
        for it in items {
            let err = |msg: String| ActionError {
                offset: it.offset,
                msg,
            };
            let verr = |msg: String| ActionError {
                offset: it.value_offset,
                msg,
            };
            let val = it.value.as_deref();
            let need = || val.ok_or_else(|| err(format!("action {} needs a value", it.name)));
            match it.name.to_ascii_lowercase().as_str() {
                "id" => {
                    let v = need()?;
                    let id = v
                        .trim()
                        .parse::<u64>()
                        .map_err(|_| verr(format!("invalid rule id {v:?}")))?;
                    if id == 0 {
                        return Err(verr("rule id 0 is not allowed".into()));
                    }
                    a.id = Some(id);
                }
                "phase" => {
                    let v = need()?;
                    a.phase =
                        Some(parse_phase(v).ok_or_else(|| verr(format!("invalid phase {v:?}")))?);
                }
                "msg" => a.msg = Some(MacroStr::parse(need()?)),
                "logdata" => a.logdata = Some(MacroStr::parse(need()?)),
                "tag" => a.tags.push(MacroStr::parse(need()?)),
                "severity" => {
                    let v = need()?;
                    a.severity = Some(
                        parse_severity(v).ok_or_else(|| verr(format!("invalid severity {v:?}")))?,
                    );
                }
                "ver" => a.ver = Some(need()?.to_string()),
                "rev" => a.rev = Some(need()?.to_string()),
                "maturity" => a.maturity = Some(need()?.to_string()),
                "accuracy" => a.accuracy = Some(need()?.to_string()),
                "chain" => a.chain = true,
                "pass" => a.disruptive = Some(Disruptive::Pass),
                "deny" => a.disruptive = Some(Disruptive::Deny),
                "drop" => a.disruptive = Some(Disruptive::Drop),
                "block" => a.disruptive = Some(Disruptive::Block),
                "proxy" => a.disruptive = Some(Disruptive::Proxy),
                "allow" => {
                    let scope = match val.map(|v| v.to_ascii_lowercase()) {
                        None => AllowScope::All,
                        Some(v) if v == "phase" => AllowScope::Phase,
                        Some(v) if v == "request" => AllowScope::Request,
                        Some(v) => return Err(verr(format!("invalid allow scope {v:?}"))),
                    };
                    a.disruptive = Some(Disruptive::Allow(scope));
                }
                "redirect" => a.disruptive = Some(Disruptive::Redirect(need()?.to_string())),
                "status" => {
                    let v = need()?;
                    a.status = Some(
                        v.trim()
                            .parse()
                            .map_err(|_| verr(format!("invalid status {v:?}")))?,
                    );
                }
                "t" => {
                    let v = need()?;
                    if v.eq_ignore_ascii_case("none") {
                        a.tsteps.push(TStep::None);
                    } else if let Some(r) = v.strip_prefix('-') {
                        a.tsteps.push(TStep::Remove(r.to_string()));
                    } else {
                        a.tsteps.push(TStep::Add(v.to_string()));
                    }
                }
                "capture" => a.capture = true,
                "multimatch" => a.multi_match = true,
                "log" => a.log = Some(true),
                "nolog" => {
                    a.log = Some(false);
                    if a.auditlog.is_none() {
                        a.auditlog = Some(false);
                    }
                }
                "auditlog" => a.auditlog = Some(true),
                "noauditlog" => a.auditlog = Some(false),
                "skip" => {
                    let v = need()?;
                    a.skip = v
                        .trim()
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| verr(format!("invalid skip count {v:?}")))?;
                }
                "skipafter" => a.skip_after = Some(need()?.to_string()),
                "setvar" => {
                    a.nd.push(NonDisruptive::SetVar(SetVar::parse(need()?).map_err(verr)?))
                }
                "ctl" => {
                    a.nd.push(NonDisruptive::Ctl(Ctl::parse(need()?).map_err(verr)?))
                }
                "initcol" => {
                    let v = need()?;
                    let (c, _) = v
                        .split_once('=')
                        .ok_or_else(|| verr(format!("invalid initcol {v:?}")))?;
                    let var = Var::from_name(c.trim())
                        .filter(|v| {
                            matches!(
                                v,
                                Var::Ip | Var::Global | Var::Session | Var::User | Var::Resource
                            )
                        })
                        .ok_or_else(|| verr(format!("invalid initcol collection {c:?}")))?;
                    let _ = var;
                    a.nd.push(NonDisruptive::InitCol);
                }
                "setenv" => {
                    let v = need()?;
                    let (k, val) = v.split_once('=').unwrap_or((v, "1"));
                    a.nd.push(NonDisruptive::SetEnv(
                        MacroStr::parse(k),
                        MacroStr::parse(val),
                    ));
                }
                // Accepted, no effect in Palisade (persistent storage, sanitising
                // the audit log, Lua, per-rule audit settings).
                "expirevar"
                | "deprecatevar"
                | "setuid"
                | "setsid"
                | "setrsc"
                | "sanitisearg"
                | "sanitisematched"
                | "sanitisematchedbytes"
                | "sanitiserequestheader"
                | "sanitiseresponseheader"
                | "exec"
                | "append"
                | "prepend"
                | "xmlns"
                | "pause"
                | "sanitizearg"
                | "sanitizematched"
                | "sanitizematchedbytes"
                | "sanitizerequestheader"
                | "sanitizeresponseheader" => {}
                other => return Err(err(format!("unknown action {other:?}"))),
            }
        }
        Ok(a)
    }

    /// Whether any metadata action appears (not allowed in chain links).
    pub fn has_metadata(&self) -> bool {
        self.id.is_some()
            || self.msg.is_some()
            || self.severity.is_some()
            || self.logdata.is_some()
            || self.ver.is_some()
            || self.rev.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::generic;

    fn p(s: &str) -> Actions {
        Actions::parse(&generic::parse(s).unwrap()).unwrap_or_else(|e| panic!("{}: {}", s, e.msg))
    }

    #[test]
    fn parses_crs_style() {
        let a = p("id:942100,phase:2,block,capture,t:none,t:utf8toUnicode,t:urlDecodeUni,msg:'SQL Injection Attack Detected via libinjection',logdata:'Matched Data: %{TX.0} found within %{MATCHED_VAR_NAME}: %{MATCHED_VAR}',tag:'application-multi',tag:'OWASP_CRS',ver:'OWASP_CRS/4.28.0',severity:'CRITICAL',setvar:'tx.inbound_anomaly_score_pl1=+%{tx.critical_anomaly_score}'");
        assert_eq!(a.id, Some(942100));
        assert_eq!(a.phase, Some(2));
        assert_eq!(a.disruptive, Some(Disruptive::Block));
        assert!(a.capture);
        assert_eq!(
            a.tsteps,
            vec![
                TStep::None,
                TStep::Add("utf8toUnicode".into()),
                TStep::Add("urlDecodeUni".into())
            ]
        );
        assert_eq!(a.severity, Some(2));
        assert_eq!(a.tags.len(), 2);
        assert_eq!(a.nd.len(), 1);
    }

    #[test]
    fn values() {
        assert_eq!(p("phase:request").phase, Some(2));
        assert_eq!(p("phase:response").phase, Some(4));
        assert_eq!(p("phase:logging").phase, Some(5));
        assert_eq!(p("severity:5").severity, Some(5));
        assert_eq!(p("severity:'warning'").severity, Some(4));
        assert_eq!(
            p("allow:request").disruptive,
            Some(Disruptive::Allow(AllowScope::Request))
        );
        assert_eq!(p("deny,status:403").status, Some(403));
        assert_eq!(p("nolog").auditlog, Some(false));
        assert_eq!(p("nolog,auditlog").auditlog, Some(true));
        assert_eq!(p("skipAfter:END-X").skip_after.as_deref(), Some("END-X"));
        assert_eq!(
            p("t:-lowercase").tsteps,
            vec![TStep::Remove("lowercase".into())]
        );
    }

    #[test]
    fn errors() {
        for bad in [
            "id:abc",
            "id:0",
            "phase:9",
            "severity:bogus",
            "frobnicate",
            "skip:0",
            "msg",
            "allow:forever",
        ] {
            assert!(
                Actions::parse(&generic::parse(bad).unwrap()).is_err(),
                "{bad}"
            );
        }
    }
}
