//! Load-time evaluation of rules that read only constant TX variables.
//!
//! A large share of CRS is decided by the configuration alone:
//! initialisation (`SecAction ... setvar:tx.inbound_anomaly_score_pl1=0`),
//! paranoia-level gates (`SecRule TX:DETECTION_PARANOIA_LEVEL "@lt 2"
//! "skipAfter:END-..."`) and score sums guarded by the paranoia level.
//! Running them on every request costs more than all of the inspection of a
//! benign GET, so they are evaluated once here.
//!
//! A TX variable is constant at a rule when no rule that can run before it
//! may write it (any setvar, with a macro key counted by its literal prefix,
//! and captures writing TX:0-9).
//! - At the start of phase 1, while every earlier rule is folded or cannot
//!   change what runs next (no skip, no stopping action, no `ctl` that
//!   removes rules or switches the engine), a constant `nolog` rule is run
//!   here and dropped; its setvars go into the TX snapshot every transaction
//!   starts from.
//! - After that prefix, a constant rule without side effects is dropped when
//!   it cannot match and becomes a jump when it matches with skip/skipAfter;
//!   a constant single rule with side effects keeps its actions, only its
//!   matches are precomputed.
//!
//! Jumps and precomputed matches fall back to full evaluation when a runtime
//! `ctl:ruleRemoveTarget*` is in force, so exclusions keep working.

use crate::actions::{Ctl, Disruptive, NonDisruptive};
use crate::collections::Collection;
use crate::engine::{Engine, Hit, Outcome, Runtime, Stats};
use crate::macros::MacroStr;
use crate::rules::{Config, Entry, Op, Rule};
use crate::state::TxState;
use crate::tcache::TCache;
use crate::variables::{Selector, Var};
use crate::{EngineMode, RuleSet};
use std::collections::HashSet;
use std::sync::Arc;

/// What load-time evaluation decided for a rule that stays in the list.
#[derive(Debug, Default)]
pub enum Folded {
    /// Evaluated at request time.
    #[default]
    No,
    /// Always matches and has no effect but its skip/skipAfter.
    Jump,
    /// Its condition is constant: these are its matches.
    Hits(Vec<Hit>),
}

/// TX keys that rules seen so far may write at request time.
#[derive(Default)]
struct Taint {
    all: bool,
    exact: HashSet<String>,
    prefixes: Vec<String>,
}

impl Taint {
    fn has(&self, key: &str) -> bool {
        let k = key.to_ascii_lowercase();
        self.all || self.exact.contains(&k) || self.prefixes.iter().any(|p| k.starts_with(p))
    }

    fn add_rule(&mut self, r: &Rule) {
        for link in r.links() {
            if link.capture {
                self.exact.extend((0..10).map(|i| i.to_string()));
            }
            for a in &link.nd {
                let NonDisruptive::SetVar(sv) = a else {
                    continue;
                };
                if sv.coll != Var::Tx {
                    continue;
                }
                let (p, literal) = sv.key.literal_prefix();
                let p = String::from_utf8_lossy(&p).to_ascii_lowercase();
                if literal {
                    self.exact.insert(p);
                } else if p.is_empty() {
                    self.all = true;
                } else {
                    self.prefixes.push(p);
                }
            }
        }
    }
}

/// TX keys that rules kept in the phase-1 prefix read at request time. A
/// later rule folded into the snapshot every transaction starts from must
/// not write one of them: the kept rule would see the later value.
#[derive(Default)]
struct Reads {
    all: bool,
    keys: HashSet<String>,
}

impl Reads {
    fn add_key(&mut self, t: &crate::variables::Target) {
        if t.var != Var::Tx {
            return;
        }
        match &t.sel {
            Selector::Key(k) => {
                self.keys.insert(k.to_ascii_lowercase());
            }
            _ => self.all = true,
        }
    }

    fn add_macro(&mut self, m: &MacroStr) {
        m.refs().for_each(|t| self.add_key(t));
    }

    fn add_rule(&mut self, r: &Rule) {
        for m in [&r.meta.msg, &r.meta.logdata].into_iter().flatten() {
            self.add_macro(m);
        }
        for l in r.links() {
            l.targets.iter().for_each(|t| self.add_key(t));
            if let Op::Real { arg, .. } = &l.op {
                self.add_macro(&MacroStr::parse(arg));
            }
            for a in &l.nd {
                match a {
                    NonDisruptive::SetVar(sv) => {
                        self.add_macro(&sv.key);
                        if let crate::actions::SetVarOp::Set(v)
                        | crate::actions::SetVarOp::Add(v)
                        | crate::actions::SetVarOp::Sub(v) = &sv.op
                        {
                            self.add_macro(v);
                        }
                        // `+=` and `-=` read the key they write.
                        if sv.coll == Var::Tx
                            && matches!(
                                sv.op,
                                crate::actions::SetVarOp::Add(_) | crate::actions::SetVarOp::Sub(_)
                            )
                        {
                            match sv.key.literal_prefix() {
                                (k, true) => {
                                    self.keys
                                        .insert(String::from_utf8_lossy(&k).to_ascii_lowercase());
                                }
                                _ => self.all = true,
                            }
                        }
                    }
                    NonDisruptive::SetEnv(k, v) => {
                        self.add_macro(k);
                        self.add_macro(v);
                    }
                    NonDisruptive::Ctl(_) | NonDisruptive::InitCol => {}
                }
            }
        }
    }
}

/// Whether folding `r` into the snapshot could change what a kept rule
/// sees or leaves: `r` may write a TX key a kept rule reads (`reads`) or
/// writes (`taint`; the kept rule's write comes later at request time).
fn write_conflict(r: &Rule, reads: &Reads, taint: &Taint) -> bool {
    let hits = |key: &str, literal: bool| {
        if reads.all || taint.all {
            return true;
        }
        let overlaps = |k: &str| {
            if literal {
                k == key
            } else {
                k.starts_with(key)
            }
        };
        reads.keys.iter().any(|k| overlaps(k))
            || taint.exact.iter().any(|k| overlaps(k))
            || taint
                .prefixes
                .iter()
                .any(|p| key.starts_with(p.as_str()) || p.starts_with(key))
    };
    r.links().any(|l| {
        (l.capture && (0..10).any(|i| hits(&i.to_string(), true)))
            || l.nd.iter().any(|a| match a {
                NonDisruptive::SetVar(sv) if sv.coll == Var::Tx => {
                    let (p, literal) = sv.key.literal_prefix();
                    hits(&String::from_utf8_lossy(&p).to_ascii_lowercase(), literal)
                }
                _ => false,
            })
    })
}

/// A macro string reads nothing that can change at request time.
fn macro_constant(m: &MacroStr, taint: &Taint, matched_ok: bool) -> bool {
    m.refs().all(|t| match (t.var, &t.sel) {
        (Var::Tx, Selector::Key(k)) => !taint.has(k),
        (Var::Rule, _) => true,
        (Var::MatchedVar | Var::MatchedVarName, _) => matched_ok,
        _ => false,
    })
}

/// Every link reads only constant TX members (targets and operator argument).
fn condition_constant(r: &Rule, taint: &Taint) -> bool {
    r.links().all(|l| {
        let targets_ok = l.targets.iter().all(|t| match (t.var, &t.sel) {
            (Var::Tx, Selector::Key(k)) => !taint.has(k),
            _ => false,
        });
        let op_ok = match &l.op {
            Op::Always => true,
            Op::Real { arg, .. } => {
                !l.targets.is_empty() && macro_constant(&MacroStr::parse(arg), taint, false)
            }
        };
        targets_ok && op_ok
    })
}

/// The rule's actions can be carried out here: setvars of TX computed from
/// constants only, no ctl or setenv.
fn effects_constant(r: &Rule, taint: &Taint) -> bool {
    r.links().all(|l| {
        // SecAction's MATCHED_VAR is REQUEST_URI, which is request data.
        let matched_ok = !matches!(l.op, Op::Always);
        l.nd.iter().all(|a| match a {
            NonDisruptive::SetVar(sv) => {
                sv.coll == Var::Tx
                    && macro_constant(&sv.key, taint, matched_ok)
                    && match &sv.op {
                        crate::actions::SetVarOp::Set(v)
                        | crate::actions::SetVarOp::Add(v)
                        | crate::actions::SetVarOp::Sub(v) => macro_constant(v, taint, matched_ok),
                        crate::actions::SetVarOp::Delete => true,
                    }
            }
            NonDisruptive::Ctl(Ctl::Ignored) | NonDisruptive::InitCol => true,
            NonDisruptive::Ctl(_) | NonDisruptive::SetEnv(..) => false,
        })
    })
}

/// Nothing happens when the rule matches except skip/skipAfter.
fn no_effects(r: &Rule) -> bool {
    !r.log
        && matches!(r.disruptive, Disruptive::Pass | Disruptive::Proxy)
        && r.links().all(|l| {
            !l.capture
                && l.nd
                    .iter()
                    .all(|a| matches!(a, NonDisruptive::InitCol | NonDisruptive::Ctl(Ctl::Ignored)))
        })
}

/// A dynamic rule that cannot change which rules run next nor stop the phase.
fn transparent(r: &Rule) -> bool {
    r.skip == 0
        && r.skip_after.is_none()
        && matches!(r.disruptive, Disruptive::Pass | Disruptive::Proxy)
        && r.links().all(|l| {
            l.nd.iter().all(|a| match a {
                NonDisruptive::Ctl(c) => matches!(
                    c,
                    Ctl::RequestBodyProcessor(_)
                        | Ctl::RequestBodyAccess(_)
                        | Ctl::ResponseBodyAccess(_)
                        | Ctl::ForceRequestBodyVariable(_)
                        | Ctl::RequestBodyLimit(_)
                        | Ctl::ResponseBodyLimit(_)
                        | Ctl::Ignored
                ),
                _ => true,
            })
        })
}

/// Runs single rules against a TX snapshot with the real engine.
struct Evaluator {
    rs: Arc<RuleSet>,
    st: TxState,
    rt: Runtime,
    cache: TCache,
    matched: Vec<crate::MatchedRule>,
    stats: Stats,
}

impl Evaluator {
    fn new(cfg: &Config) -> Self {
        let rs = Arc::new(RuleSet {
            phases: Default::default(),
            groups: Vec::new(),
            plans: Default::default(),
            cfg: cfg.clone(),
            files_read: Vec::new(),
            rule_count: 0,
            tx_init: Arc::new(Collection::default()),
            metas: Arc::new([]),
        });
        let mut rt = Runtime::new(cfg);
        // Any disruptive action shows as a stop, whatever the configured mode.
        rt.mode = EngineMode::On;
        Evaluator {
            rs,
            st: TxState {
                captures_set: 10,
                ..TxState::default()
            },
            rt,
            cache: TCache::default(),
            matched: Vec::new(),
            stats: Stats::default(),
        }
    }

    fn engine(&mut self) -> Engine<'_> {
        Engine {
            rs: &self.rs,
            st: &mut self.st,
            rt: &mut self.rt,
            cache: &mut self.cache,
            matched: &mut self.matched,
            stats: &mut self.stats,
        }
    }

    /// Run the whole chain; `None` when it cannot be folded (it stopped or logged).
    fn run(&mut self, r: &Rule, phase: u8) -> Option<Outcome> {
        self.rt.phase = phase;
        self.rt.intervention = None;
        self.rt.allow = None;
        self.matched.clear();
        self.cache.clear();
        self.set_rule(r);
        let out = self.engine().run_chain(r);
        self.st.matched_vars.clear();
        match out {
            Outcome::Stop => None,
            _ if self.matched.iter().any(|m| m.log) => None,
            o => Some(o),
        }
    }

    fn hits(&mut self, r: &Rule, phase: u8) -> Vec<Hit> {
        self.rt.phase = phase;
        self.cache.clear();
        self.set_rule(r);
        self.engine().collect_hits(r, r).into_vec()
    }

    /// The RULE variable's source for `r`: rules are not numbered yet at
    /// load time, so the table maps whatever `r.idx` is to `r`.
    fn set_rule(&mut self, r: &Rule) {
        self.st.rule_metas = std::iter::repeat_n(r.meta.clone(), r.idx as usize + 1).collect();
        self.st.cur_rule = Some(r.idx);
    }
}

/// Fold what can be folded in `phases`; returns the TX every transaction starts with.
pub(crate) fn fold(phases: &mut [Vec<Entry>; 5], cfg: &Config) -> Collection {
    let mut ev = Evaluator::new(cfg);
    if cfg.engine == EngineMode::Off {
        return Collection::default();
    }
    let mut taint = Taint::default();
    let mut reads = Reads::default();
    let mut prefix = true;
    for (pi, entries) in phases.iter_mut().enumerate() {
        let phase = pi as u8 + 1;
        let old = std::mem::take(entries);
        let mut out: Vec<Entry> = Vec::with_capacity(old.len());
        // Static skipping inside the phase-1 prefix.
        let mut skip_after: Option<String> = None;
        let mut skip: u32 = 0;
        for e in old {
            let mut rule = match e {
                Entry::Marker(m) => {
                    if skip_after.as_deref() == Some(m.as_str()) {
                        skip_after = None;
                    }
                    out.push(Entry::Marker(m));
                    continue;
                }
                Entry::Rule(r) => r,
            };
            if let Some(t) = &skip_after {
                if t.parse::<u64>().ok() == Some(rule.meta.id) {
                    skip_after = None;
                }
                continue;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if prefix && phase == 1 {
                if condition_constant(&rule, &taint)
                    && effects_constant(&rule, &taint)
                    && !write_conflict(&rule, &reads, &taint)
                {
                    let saved = ev.st.tx.clone();
                    match ev.run(&rule, phase) {
                        Some(o) => {
                            if let Outcome::Match = o {
                                if let Some(sa) = &rule.skip_after {
                                    skip_after = Some(sa.clone());
                                } else {
                                    skip = rule.skip;
                                }
                            }
                            continue;
                        }
                        None => {
                            ev.st.tx = saved;
                            prefix = false;
                        }
                    }
                } else if !transparent(&rule) {
                    prefix = false;
                }
                reads.add_rule(&rule);
                taint.add_rule(&rule);
                out.push(Entry::Rule(rule));
                continue;
            }
            prefix = false;
            if condition_constant(&rule, &taint) {
                if no_effects(&rule) {
                    // Nothing to undo: the rule writes no TX.
                    match ev.run(&rule, phase) {
                        Some(Outcome::NoMatch) => continue,
                        Some(Outcome::Match) if rule.skip == 0 && rule.skip_after.is_none() => {
                            continue
                        }
                        Some(Outcome::Match) => rule.folded = Folded::Jump,
                        _ => {}
                    }
                } else if rule.chain.is_none() && !matches!(rule.op, Op::Always) {
                    // (A SecAction's match is REQUEST_URI, request data: it stays as it is.)
                    let hits = ev.hits(&rule, phase);
                    if hits.is_empty() {
                        continue;
                    }
                    rule.folded = Folded::Hits(hits);
                }
            }
            taint.add_rule(&rule);
            out.push(Entry::Rule(rule));
        }
        *entries = out;
        if phase == 1 {
            prefix = false;
        }
    }
    ev.st.tx
}
