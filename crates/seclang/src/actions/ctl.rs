//! `ctl:` runtime configuration changes.

use crate::variables::Var;
use crate::EngineMode;
use std::sync::{Arc, OnceLock};

/// An id or an inclusive id range (`SecRuleRemoveById 1-99`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange(pub u64, pub u64);

impl IdRange {
    pub fn contains(&self, id: u64) -> bool {
        self.0 <= id && id <= self.1
    }

    /// `1`, `1-9`, several separated by spaces or commas.
    pub fn parse_list(s: &str) -> Result<Vec<IdRange>, String> {
        let mut out = Vec::new();
        for part in s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
        {
            let part = part.trim_matches(|c| c == '"' || c == '\'');
            let r = match part.split_once('-') {
                Some((a, b)) => {
                    let a = a
                        .trim()
                        .parse()
                        .map_err(|_| format!("invalid id range {part:?}"))?;
                    let b = b
                        .trim()
                        .parse()
                        .map_err(|_| format!("invalid id range {part:?}"))?;
                    if a > b {
                        return Err(format!("invalid id range {part:?}"));
                    }
                    IdRange(a, b)
                }
                None => {
                    let a = part
                        .parse()
                        .map_err(|_| format!("invalid rule id {part:?}"))?;
                    IdRange(a, a)
                }
            };
            out.push(r);
        }
        if out.is_empty() {
            return Err("empty id list".into());
        }
        Ok(out)
    }
}

/// A target named in ctl:ruleRemoveTarget* (`ARGS:foo`, `REQUEST_FILENAME`).
#[derive(Debug, Clone)]
pub struct TargetName {
    /// The variable it names (`None`: no variable has that name, so the
    /// exclusion removes nothing).
    pub var: Option<Var>,
    pub key: Option<TargetKey>,
}

#[derive(Debug, Clone)]
pub enum TargetKey {
    Exact(String),
    /// `/re/` (a Coraza/v3 extension; v2 compares names only).
    Regex(regex::bytes::Regex),
}

impl TargetName {
    pub fn parse(s: &str) -> Result<TargetName, String> {
        let (v, k) = match s.split_once(':') {
            Some((v, k)) => (v, Some(k)),
            None => (s, None),
        };
        let key = match k {
            None | Some("") => None,
            Some(k) if k.len() > 2 && k.starts_with('/') && k.ends_with('/') => {
                Some(TargetKey::Regex(
                    regex::bytes::RegexBuilder::new(&k[1..k.len() - 1])
                        .case_insensitive(true)
                        .build()
                        .map_err(|e| format!("invalid target regex {k:?}: {e}"))?,
                ))
            }
            Some(k) => Some(TargetKey::Exact(k.to_string())),
        };
        Ok(TargetName {
            var: Var::from_name(v.trim()),
            key,
        })
    }

    /// v2 `fetch_target_exception`: same variable, and same key or no key given.
    pub fn matches(&self, var: Var, key: Option<&[u8]>) -> bool {
        if self.var != Some(var) {
            return false;
        }
        match (&self.key, key) {
            (None, _) => true,
            (Some(TargetKey::Exact(k)), Some(key)) => k.as_bytes().eq_ignore_ascii_case(key),
            (Some(TargetKey::Regex(re)), Some(key)) => re.is_match(key),
            (Some(_), None) => false,
        }
    }
}

/// The tag or msg pattern of a runtime `ctl:ruleRemove*ByTag/ByMsg`.
/// The rules it selects are fixed once the rule set is built, so they are
/// computed then (a bit per rule index) instead of matching the pattern
/// against every later rule's tags on every request (CRS 941010 does this
/// for nearly every request).
#[derive(Debug, Clone)]
pub struct RulePattern {
    pub re: regex::Regex,
    pub selected: Arc<OnceLock<Arc<[u64]>>>,
}

impl RulePattern {
    fn new(re: regex::Regex) -> RulePattern {
        RulePattern {
            re,
            selected: Arc::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Ctl {
    RuleEngine(EngineMode),
    RuleRemoveById(Vec<IdRange>),
    RuleRemoveByTag(RulePattern),
    RuleRemoveByMsg(RulePattern),
    RuleRemoveTargetById(Vec<IdRange>, Vec<TargetName>),
    RuleRemoveTargetByTag(RulePattern, Vec<TargetName>),
    RuleRemoveTargetByMsg(RulePattern, Vec<TargetName>),
    RequestBodyProcessor(String),
    RequestBodyAccess(bool),
    ResponseBodyAccess(bool),
    ForceRequestBodyVariable(bool),
    RequestBodyLimit(usize),
    ResponseBodyLimit(usize),
    /// auditEngine, auditLogParts, debugLogLevel, hashEngine ...: accepted, no effect.
    Ignored,
}

fn on_off(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "on" | "1" | "true" => Ok(true),
        "off" | "0" | "false" => Ok(false),
        _ => Err(format!("expected On or Off, got {v:?}")),
    }
}

pub fn engine_mode(v: &str) -> Result<EngineMode, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "on" => Ok(EngineMode::On),
        "off" => Ok(EngineMode::Off),
        "detectiononly" => Ok(EngineMode::DetectionOnly),
        _ => Err(format!("invalid engine mode {v:?}")),
    }
}

fn regex_of(v: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(v).map_err(|e| format!("invalid regex {v:?}: {e}"))
}

fn targets(v: &str) -> Result<Vec<TargetName>, String> {
    v.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| TargetName::parse(s.trim()))
        .collect()
}

impl Ctl {
    pub fn parse(v: &str) -> Result<Ctl, String> {
        let (name, value) = v
            .split_once('=')
            .ok_or_else(|| format!("ctl {v:?}: expected name=value"))?;
        let value = value.trim();
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "ruleengine" => Ctl::RuleEngine(engine_mode(value)?),
            "ruleremovebyid" => Ctl::RuleRemoveById(IdRange::parse_list(value)?),
            "ruleremovebytag" => Ctl::RuleRemoveByTag(RulePattern::new(regex_of(value)?)),
            "ruleremovebymsg" => Ctl::RuleRemoveByMsg(RulePattern::new(regex_of(value)?)),
            "ruleremovetargetbyid" => {
                let (ids, t) = value
                    .split_once(';')
                    .ok_or_else(|| format!("ctl {v:?}: expected id;target"))?;
                Ctl::RuleRemoveTargetById(IdRange::parse_list(ids)?, targets(t)?)
            }
            "ruleremovetargetbytag" => {
                let (tag, t) = value
                    .split_once(';')
                    .ok_or_else(|| format!("ctl {v:?}: expected tag;target"))?;
                Ctl::RuleRemoveTargetByTag(RulePattern::new(regex_of(tag)?), targets(t)?)
            }
            "ruleremovetargetbymsg" => {
                let (m, t) = value
                    .split_once(';')
                    .ok_or_else(|| format!("ctl {v:?}: expected msg;target"))?;
                Ctl::RuleRemoveTargetByMsg(RulePattern::new(regex_of(m)?), targets(t)?)
            }
            "requestbodyprocessor" => {
                let p = value.to_ascii_uppercase();
                if !matches!(p.as_str(), "URLENCODED" | "MULTIPART" | "JSON" | "XML") {
                    return Err(format!("unknown request body processor {value:?}"));
                }
                Ctl::RequestBodyProcessor(p)
            }
            "requestbodyaccess" => Ctl::RequestBodyAccess(on_off(value)?),
            "responsebodyaccess" => Ctl::ResponseBodyAccess(on_off(value)?),
            "forcerequestbodyvariable" => Ctl::ForceRequestBodyVariable(on_off(value)?),
            "requestbodylimit" => Ctl::RequestBodyLimit(
                value
                    .parse()
                    .map_err(|_| format!("invalid limit {value:?}"))?,
            ),
            "responsebodylimit" => Ctl::ResponseBodyLimit(
                value
                    .parse()
                    .map_err(|_| format!("invalid limit {value:?}"))?,
            ),
            "auditengine" | "auditlogparts" | "debugloglevel" | "hashengine"
            | "hashenforcement" | "parsexmlintoargs" => Ctl::Ignored,
            other => return Err(format!("unknown ctl {other:?}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = IdRange::parse_list("1-9 20,30").unwrap();
        assert_eq!(r, vec![IdRange(1, 9), IdRange(20, 20), IdRange(30, 30)]);
        assert!(IdRange::parse_list("9-1").is_err());
        assert!(IdRange::parse_list("x").is_err());
    }

    #[test]
    fn ctl_forms() {
        assert!(matches!(
            Ctl::parse("ruleEngine=DetectionOnly").unwrap(),
            Ctl::RuleEngine(EngineMode::DetectionOnly)
        ));
        assert!(matches!(
            Ctl::parse("ruleRemoveById=910000").unwrap(),
            Ctl::RuleRemoveById(_)
        ));
        match Ctl::parse("ruleRemoveTargetById=942100;ARGS:foo").unwrap() {
            Ctl::RuleRemoveTargetById(ids, t) => {
                assert_eq!(ids, vec![IdRange(942100, 942100)]);
                assert!(t[0].matches(Var::Args, Some(b"FOO")));
                assert!(!t[0].matches(Var::Args, Some(b"bar")));
                assert!(!t[0].matches(Var::ArgsNames, Some(b"foo")));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(Ctl::parse("requestBodyProcessor=JSON").unwrap(), Ctl::RequestBodyProcessor(ref p) if p == "JSON")
        );
        assert!(Ctl::parse("requestBodyProcessor=YAML").is_err());
        assert!(matches!(
            Ctl::parse("auditEngine=Off").unwrap(),
            Ctl::Ignored
        ));
        assert!(Ctl::parse("bogus=1").is_err());
        let t = TargetName::parse("request_filename").unwrap();
        assert!(t.matches(Var::RequestFilename, None));
        assert!(t.matches(Var::RequestFilename, Some(b"x")));
        assert!(!t.matches(Var::RequestUri, None));
        // A name no variable has removes nothing.
        let t = TargetName::parse("REQUEST_FILENAMES").unwrap();
        assert!(t.var.is_none() && !t.matches(Var::RequestFilename, None));
    }
}
