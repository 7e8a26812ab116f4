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
//!   matches are precomputed. A chain whose first link is constant is left
//!   out when that link cannot match, else that link's matches are
//!   precomputed and the links after it run per request.
//!
//! Jumps and precomputed matches fall back to full evaluation when a runtime
//! `ctl:ruleRemoveTarget*` is in force, so exclusions keep working.

use crate::actions::{Ctl, Disruptive, NonDisruptive, SetVarOp};
use crate::collections::{Collection, Name};
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
    /// Its condition (a chain's: its first link's) is constant: these are
    /// its (first link's) matches.
    Hits(Vec<Hit>),
}

/// What a rule does while every TX member it reads (and every one its
/// setvars write) is as every transaction starts with it: its outcome was
/// worked out against that TX when the rules were loaded.
///
/// CRS sums its anomaly scores in rules that read only TX: the scores a
/// matching attack rule raises, the paranoia levels and thresholds. They
/// cannot be folded (an attack changes the scores), yet on a request no
/// rule matched the scores are still the starting zeros and the sums add
/// zero to zero. Such a rule is decided by looking at whether its members
/// were touched (`Collection::untouched`) instead of evaluating it.
#[derive(Debug)]
pub struct Clean {
    /// Indexes in the starting TX (`RuleSet::tx_init`) of the members.
    pub reads: Box<[u32]>,
    pub outcome: CleanOutcome,
    /// What its setvars leave in TX when it matches, when that is not what
    /// the starting TX holds (CRS 980099 sums the scores into keys of its
    /// own): written as these values instead of running them.
    pub sets: Vec<(Name, Vec<u8>)>,
}

#[derive(Debug)]
pub enum CleanOutcome {
    /// It does not match.
    NoMatch,
    /// These are its matches.
    Hits(Vec<Hit>),
    /// A SecAction (its match is REQUEST_URI, request data, taken when it
    /// runs).
    Always,
}

impl CleanOutcome {
    /// Match `i` of `Hits`.
    pub(crate) fn hit(&self, i: usize) -> Option<&Hit> {
        match self {
            CleanOutcome::Hits(h) => h.get(i),
            _ => None,
        }
    }
}

/// A set of TX keys: exact (lower-cased), by prefix (a macro key counted
/// by its literal prefix), or all of them.
#[derive(Default)]
struct Keys {
    all: bool,
    exact: HashSet<String>,
    prefixes: Vec<String>,
}

impl Keys {
    fn has(&self, key: &str) -> bool {
        let k = key.to_ascii_lowercase();
        self.all || self.exact.contains(&k) || self.prefixes.iter().any(|p| k.starts_with(p))
    }

    /// The key a setvar names: exact when literal, else by its literal prefix.
    fn add_setvar_key(&mut self, key: &MacroStr) {
        let (p, literal) = key.literal_prefix();
        let p = String::from_utf8_lossy(&p).to_ascii_lowercase();
        if literal {
            self.exact.insert(p);
        } else if p.is_empty() {
            self.all = true;
        } else {
            self.prefixes.push(p);
        }
    }

    /// A TX variable a target or macro reads.
    fn add_target(&mut self, t: &crate::variables::Target) {
        if t.var != Var::Tx {
            return;
        }
        match &t.sel {
            Selector::Key(k) => {
                self.exact.insert(k.to_ascii_lowercase());
            }
            _ => self.all = true,
        }
    }

    fn add_macro(&mut self, m: &MacroStr) {
        m.refs().for_each(|t| self.add_target(t));
    }

    /// The TX keys the rule may write at request time (setvar, captures).
    fn writes_of(r: &Rule) -> Keys {
        let mut w = Keys::default();
        for link in r.links() {
            if link.capture {
                w.exact.extend((0..10).map(|i| i.to_string()));
            }
            for a in &link.nd {
                if let NonDisruptive::SetVar(sv) = a {
                    if sv.coll == Var::Tx {
                        w.add_setvar_key(&sv.key);
                    }
                }
            }
        }
        w
    }

    /// The TX keys the rule reads at request time: targets, operator
    /// argument, setvar keys and values (`+=`/`-=` read the key they
    /// write), setenv, msg and logdata.
    fn add_reads_of(&mut self, r: &Rule) {
        for m in [&r.meta.msg, &r.meta.logdata].into_iter().flatten() {
            self.add_macro(m);
        }
        for l in r.links() {
            l.targets.iter().for_each(|t| self.add_target(t));
            if let Op::Real { arg, .. } = &l.op {
                self.add_macro(&MacroStr::parse(arg));
            }
            for a in &l.nd {
                match a {
                    NonDisruptive::SetVar(sv) => {
                        self.add_macro(&sv.key);
                        match &sv.op {
                            SetVarOp::Add(v) | SetVarOp::Sub(v) => {
                                self.add_macro(v);
                                if sv.coll == Var::Tx {
                                    self.add_setvar_key(&sv.key);
                                }
                            }
                            SetVarOp::Set(v) => self.add_macro(v),
                            SetVarOp::Delete => {}
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

    fn union(&mut self, other: Keys) {
        self.all |= other.all;
        self.exact.extend(other.exact);
        self.prefixes.extend(other.prefixes);
    }

    /// Whether some key may be in both sets.
    fn overlaps(&self, other: &Keys) -> bool {
        let prefix_meets = |p: &str, o: &Keys| {
            o.exact.iter().any(|k| k.starts_with(p))
                || o.prefixes
                    .iter()
                    .any(|q| q.starts_with(p) || p.starts_with(q.as_str()))
        };
        self.all && (other.all || !other.exact.is_empty() || !other.prefixes.is_empty())
            || other.all && (!self.exact.is_empty() || !self.prefixes.is_empty())
            || self.exact.iter().any(|k| other.has(k))
            || self.prefixes.iter().any(|p| prefix_meets(p, other))
    }
}

/// A macro string reads nothing that can change at request time.
fn macro_constant(m: &MacroStr, taint: &Keys, matched_ok: bool) -> bool {
    m.refs().all(|t| match (t.var, &t.sel) {
        (Var::Tx, Selector::Key(k)) => !taint.has(k),
        (Var::Rule, _) => true,
        (Var::MatchedVar | Var::MatchedVarName, _) => matched_ok,
        _ => false,
    })
}

/// Every link reads only constant TX members (targets and operator argument).
fn condition_constant(r: &Rule, taint: &Keys) -> bool {
    r.links().all(|l| link_constant(l, taint))
}

/// The link (not the links chained to it) reads only constant TX members.
fn link_constant(l: &Rule, taint: &Keys) -> bool {
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
}

/// The rule's actions can be carried out here: setvars of TX computed from
/// constants only, no ctl or setenv.
fn effects_constant(r: &Rule, taint: &Keys) -> bool {
    r.links().all(|l| {
        // SecAction's MATCHED_VAR is REQUEST_URI, which is request data.
        let matched_ok = !matches!(l.op, Op::Always);
        l.nd.iter().all(|a| match a {
            NonDisruptive::SetVar(sv) => {
                sv.coll == Var::Tx
                    && macro_constant(&sv.key, taint, matched_ok)
                    && match &sv.op {
                        SetVarOp::Set(v) | SetVarOp::Add(v) | SetVarOp::Sub(v) => {
                            macro_constant(v, taint, matched_ok)
                        }
                        SetVarOp::Delete => true,
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
            gates: Default::default(),
            groups: Vec::new(),
            plans: Default::default(),
            cfg: cfg.clone(),
            files_read: Vec::new(),
            rule_count: 0,
            tx_init: Arc::new(Collection::default()),
            tx_init_digits: false,
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

    /// Whether `r` is a chain whose first link reads only constant TX and
    /// cannot match, so that the chain never matches (a link's actions run
    /// only on its match: nothing else happens). CRS starts its optional
    /// checks this way (`&TX:MAX_FILE_SIZE "@eq 1"`, `TX:CRS_VALIDATE_UTF8_ENCODING
    /// "@eq 1"`): unconfigured, they cost a rule evaluation per request.
    fn chain_never_matches(&mut self, r: &Rule, phase: u8, taint: &Keys) -> bool {
        self.starter_hits(r, phase, taint)
            .is_some_and(|h| h.is_empty())
    }

    /// The matches of a chain's first link when it reads only constant TX
    /// (they are the same on every request; the links after it are not).
    fn starter_hits(&mut self, r: &Rule, phase: u8, taint: &Keys) -> Option<Vec<Hit>> {
        (r.chain.is_some() && !matches!(r.op, Op::Always) && link_constant(r, taint))
            .then(|| self.hits(r, phase))
    }

    /// The rule's [`Clean`] outcome, when its condition reads only TX
    /// members the starting TX (this evaluator's, once folding is done)
    /// has, and so do its setvars when it matches.
    fn clean(&mut self, r: &Rule, phase: u8) -> Option<Clean> {
        // A rule folded to its matches has no condition left to read.
        let folded = match &r.folded {
            Folded::No => None,
            Folded::Hits(h) => Some(h.clone()),
            Folded::Jump => return None,
        };
        let base = &self.st.tx;
        let member = |t: &crate::variables::Target| match (t.var, &t.sel) {
            (Var::Tx, Selector::Key(k)) if !t.negated => base.index_of(k),
            _ => None,
        };
        // The first link's condition.
        let mut reads = Vec::new();
        for t in r.targets.iter().filter(|_| folded.is_none()) {
            reads.push(member(t)?);
        }
        if let (Op::Real { arg, .. }, None) = (&r.op, &folded) {
            if r.targets.is_empty() {
                return None;
            }
            for t in MacroStr::parse(arg).refs() {
                reads.push(member(t)?);
            }
        }
        // Its setvars, for a match: literal TX keys, values computed from
        // members of the starting TX. A key the starting TX has is read too
        // (the value a setvar writes is the one it finds only while its key
        // is untouched); a key it lacks must be set before it is added to
        // (`blocking_anomaly_score=%{..}`, then `=+%{..}`), so that what
        // it held before does not matter.
        let mut effects: Option<(Vec<u32>, Vec<&Name>)> =
            (r.chain.is_none() && !r.capture).then(|| (Vec::new(), Vec::new()));
        let mut deletes = false;
        for a in &r.nd {
            let Some((er, writes)) = effects.as_mut() else {
                break;
            };
            let known = match a {
                NonDisruptive::SetVar(sv) => {
                    let value = match &sv.op {
                        SetVarOp::Set(v) | SetVarOp::Add(v) | SetVarOp::Sub(v) => Some(v),
                        SetVarOp::Delete => None,
                    };
                    deletes |= value.is_none();
                    let value_ok = value
                        .is_none_or(|v| v.refs().all(|t| member(t).map(|i| er.push(i)).is_some()));
                    match (&sv.name, sv.coll) {
                        (Some(k), Var::Tx) if value_ok => {
                            let set_before = writes.contains(&k);
                            writes.push(k);
                            match base.index_of(k) {
                                Some(i) => {
                                    er.push(i);
                                    true
                                }
                                None => set_before || matches!(sv.op, SetVarOp::Set(_)),
                            }
                        }
                        _ => false,
                    }
                }
                NonDisruptive::InitCol | NonDisruptive::Ctl(Ctl::Ignored) => true,
                NonDisruptive::Ctl(_) | NonDisruptive::SetEnv(..) => false,
            };
            if !known {
                effects = None;
            }
        }
        let outcome = if let Some(h) = folded {
            CleanOutcome::Hits(h)
        } else if matches!(r.op, Op::Always) {
            CleanOutcome::Always
        } else {
            match self.hits(r, phase) {
                h if h.is_empty() => CleanOutcome::NoMatch,
                h => CleanOutcome::Hits(h),
            }
        };
        let mut sets = Vec::new();
        if !matches!(outcome, CleanOutcome::NoMatch) {
            let (er, writes) = effects?;
            // The setvars, run on the starting TX: what they change is
            // written as the values they leave, once per request; so only
            // for a rule that matches once, and not for a removal.
            let saved = self.st.tx.clone();
            self.set_rule(r);
            for a in &r.nd {
                self.engine().non_disruptive(a);
            }
            let mut removes = false;
            for k in writes {
                match (self.st.tx.get_named(k), saved.get_named(k)) {
                    (after, before) if after == before => {}
                    (Some(v), _) => {
                        if !sets.iter().any(|(n, _)| n == k) {
                            sets.push((k.clone(), v.to_vec()));
                        }
                    }
                    (None, _) => removes = true,
                }
            }
            self.st.tx = saved;
            if removes {
                return None;
            }
            let once = match &outcome {
                CleanOutcome::Hits(h) => h.len() == 1,
                _ => true,
            };
            if !sets.is_empty() && (deletes || !once) {
                return None;
            }
            reads.extend(er);
        }
        reads.sort_unstable();
        reads.dedup();
        Some(Clean {
            reads: reads.into(),
            outcome,
            sets,
        })
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

/// How rules found to do nothing leave a phase's list. Rules after the
/// phase-1 prefix are removed only where nothing counts them: in a phase
/// with a `skip:N` they stay (dropping one would change what N rules
/// are), and a rule a `skipAfter` names by id leaves a marker of that name
/// where it stood, which `skipAfter` resumes after as it would after the
/// rule.
struct Leave {
    counted: bool,
    named: HashSet<u64>,
}

impl Leave {
    fn new(entries: &[Entry]) -> Leave {
        let rules = entries.iter().filter_map(|e| match e {
            Entry::Rule(r) => Some(r),
            Entry::Marker(_) => None,
        });
        Leave {
            counted: rules.clone().any(|r| r.skip > 0),
            named: rules
                .filter_map(|r| r.skip_after.as_deref()?.parse().ok())
                .collect(),
        }
    }

    /// Whether the rule may go (a marker for it is pushed when it is named).
    fn out(&self, out: &mut Vec<Entry>, r: &Rule) -> bool {
        if self.counted {
            return false;
        }
        if self.named.contains(&r.meta.id) {
            out.push(Entry::Marker(r.meta.id.to_string()));
        }
        true
    }
}

/// Fold what can be folded in `phases`; returns the TX every transaction starts with.
pub(crate) fn fold(phases: &mut [Vec<Entry>; 5], cfg: &Config) -> Collection {
    let mut ev = Evaluator::new(cfg);
    if cfg.engine == EngineMode::Off {
        return Collection::default();
    }
    // TX keys rules kept so far may write, and (in the phase-1 prefix) read,
    // at request time. A rule folded into the snapshot every transaction
    // starts from runs ahead of every kept rule, so it must not write a key
    // a kept rule reads (that rule would see the later value) or writes
    // (the kept rule's earlier write would win).
    let mut taint = Keys::default();
    let mut reads = Keys::default();
    let mut prefix = true;
    for (pi, entries) in phases.iter_mut().enumerate() {
        let phase = pi as u8 + 1;
        let old = std::mem::take(entries);
        let mut out: Vec<Entry> = Vec::with_capacity(old.len());
        let leave = Leave::new(&old);
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
                let writes = Keys::writes_of(&rule);
                if condition_constant(&rule, &taint)
                    && effects_constant(&rule, &taint)
                    && !writes.overlaps(&taint)
                    && !writes.overlaps(&reads)
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
                } else if ev.chain_never_matches(&rule, phase, &taint) {
                    // Never runs its actions: nothing to read or write, and
                    // the prefix goes on.
                    continue;
                } else if !transparent(&rule) {
                    prefix = false;
                }
                reads.add_reads_of(&rule);
                taint.union(writes);
                out.push(Entry::Rule(rule));
                continue;
            }
            prefix = false;
            if condition_constant(&rule, &taint) {
                if no_effects(&rule) {
                    // Nothing to undo: the rule writes no TX.
                    match ev.run(&rule, phase) {
                        Some(Outcome::NoMatch) if leave.out(&mut out, &rule) => continue,
                        Some(Outcome::Match)
                            if rule.skip == 0
                                && rule.skip_after.is_none()
                                && leave.out(&mut out, &rule) =>
                        {
                            continue
                        }
                        Some(Outcome::Match) if rule.skip > 0 || rule.skip_after.is_some() => {
                            rule.folded = Folded::Jump
                        }
                        _ => {}
                    }
                } else if rule.chain.is_none() && !matches!(rule.op, Op::Always) {
                    // (A SecAction's match is REQUEST_URI, request data: it stays as it is.)
                    let hits = ev.hits(&rule, phase);
                    if hits.is_empty() && leave.out(&mut out, &rule) {
                        continue;
                    }
                    if !hits.is_empty() {
                        rule.folded = Folded::Hits(hits);
                    }
                }
            } else if let Some(hits) = ev.starter_hits(&rule, phase, &taint) {
                // The chain's first link is decided here; its actions still
                // run per match, and the links after it per request.
                if hits.is_empty() && leave.out(&mut out, &rule) {
                    continue;
                }
                if !hits.is_empty() {
                    rule.folded = Folded::Hits(hits);
                }
            }
            taint.union(Keys::writes_of(&rule));
            out.push(Entry::Rule(rule));
        }
        *entries = out;
        if phase == 1 {
            prefix = false;
        }
    }
    // What a transaction starts with is now known: the rules kept can be
    // decided against it while their members stay untouched.
    for (pi, entries) in phases.iter_mut().enumerate() {
        for e in entries.iter_mut() {
            if let Entry::Rule(r) = e {
                r.clean = ev.clean(r, pi as u8 + 1).map(Box::new);
            }
        }
    }
    ev.st.tx
}

#[cfg(test)]
mod keys_tests {
    use super::Keys;

    fn keys(exact: &[&str], prefixes: &[&str], all: bool) -> Keys {
        Keys {
            all,
            exact: exact.iter().map(|k| k.to_string()).collect(),
            prefixes: prefixes.iter().map(|k| k.to_string()).collect(),
        }
    }

    #[test]
    fn overlap_of_exact_keys_prefixes_and_all() {
        let cases = [
            (keys(&["a"], &[], false), keys(&["a"], &[], false), true),
            (keys(&["a"], &[], false), keys(&["b"], &[], false), false),
            (
                keys(&["score_pl1"], &[], false),
                keys(&[], &["score_"], false),
                true,
            ),
            (
                keys(&[], &["score_"], false),
                keys(&[], &["score_pl"], false),
                true,
            ),
            (
                keys(&[], &["header_"], false),
                keys(&["score"], &["ip_"], false),
                false,
            ),
            (keys(&[], &[], true), keys(&["x"], &[], false), true),
            (keys(&[], &[], true), keys(&[], &[], false), false),
        ];
        for (a, b, want) in &cases {
            assert_eq!(a.overlaps(b), *want, "{:?} / {:?}", a.exact, b.exact);
            assert_eq!(
                b.overlaps(a),
                *want,
                "reversed: {:?} / {:?}",
                b.exact,
                a.exact
            );
        }
    }
}
