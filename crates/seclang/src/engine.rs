//! Rule execution as ModSecurity v2 does it (`re.c`): per phase, rules in
//! order; skip/skipAfter/markers; chains (a link runs only when the previous
//! one matched, only the last link triggers the starter's disruptive action
//! and log line); non-disruptive actions run once per matched target;
//! `ctl` changes the rest of the transaction.

use crate::actions::{
    AllowScope, Ctl, Disruptive, IdRange, NonDisruptive, RulePattern, SetVarOp, TargetName,
};
use crate::fold::{CleanOutcome, Folded};
use crate::memory::{keep_answer, recall_answer, OP_ANSWERS, STEP_ANSWERS};
use crate::ops::{Expander, Operator};
use crate::rules::{Entry, Gate, Op, Rule};
use crate::state::{MatchedName, TxState};
use crate::tcache::{TCache, UnionAcc};
use crate::variables::{self, Item, Var};
use crate::{EngineMode, Intervention, MatchedRule, RuleSet};
use std::borrow::Cow;
use std::sync::Arc;

/// A rule selector of a runtime target exclusion.
#[derive(Debug, Clone)]
pub(crate) enum RuleSel {
    Ids(Vec<IdRange>),
    /// Precomputed: a bit per rule index (see `RulePattern`).
    Set(Arc<[u64]>),
    Tag(regex::Regex),
    Msg(regex::Regex),
}

impl RuleSel {
    /// Asked of every rule once a `ctl` removed targets (CRS 941010 does on
    /// nearly every request): the precomputed set is tested inline, the
    /// patterns out of line.
    #[inline]
    fn hits(&self, r: &Rule) -> bool {
        match self {
            RuleSel::Set(bits) => crate::prefilter::bit(bits, r.idx),
            _ => self.hits_slow(r),
        }
    }

    /// [`RuleSel::hits`] given the rule's index (from its gate, so a
    /// precomputed set does not read the rule).
    #[inline]
    fn hits_idx(&self, idx: u32, r: &Rule) -> bool {
        match self {
            RuleSel::Set(bits) => crate::prefilter::bit(bits, idx),
            _ => self.hits_slow(r),
        }
    }

    #[inline(never)]
    fn hits_slow(&self, r: &Rule) -> bool {
        match self {
            RuleSel::Ids(ids) => ids.iter().any(|x| x.contains(r.meta.id)),
            RuleSel::Set(bits) => crate::prefilter::bit(bits, r.idx),
            RuleSel::Tag(re) => r.tag_text.iter().any(|t| re.is_match(t)),
            RuleSel::Msg(re) => !r.msg_text.is_empty() && re.is_match(&r.msg_text),
        }
    }
}

/// Mutable per-transaction engine settings (`ctl` and phase bookkeeping).
#[derive(Debug)]
pub(crate) struct Runtime {
    pub mode: EngineMode,
    pub removed: Vec<RuleSel>,
    pub removed_targets: Vec<(RuleSel, Vec<TargetName>)>,
    pub req_body_access: bool,
    pub resp_body_access: bool,
    pub force_body_var: bool,
    pub req_body_limit: usize,
    pub resp_body_limit: usize,
    pub allow: Option<AllowScope>,
    pub intervention: Option<Intervention>,
    pub phase: u8,
    /// Buffers `setvar` expands keys and values into (reused per match).
    scratch: [Vec<u8>; 2],
}

impl Runtime {
    /// The `setvar` buffers, for the thread's next transaction (small ones:
    /// a body-sized expansion is let go).
    pub fn take_scratch(&mut self) -> [Vec<u8>; 2] {
        std::mem::take(&mut self.scratch).map(|mut b| {
            if b.capacity() > 1024 {
                b = Vec::new();
            }
            b.clear();
            b
        })
    }

    pub fn set_scratch(&mut self, scratch: [Vec<u8>; 2]) {
        self.scratch = scratch;
    }

    pub fn new(cfg: &crate::rules::Config) -> Runtime {
        Runtime {
            mode: cfg.engine,
            removed: Vec::new(),
            removed_targets: Vec::new(),
            req_body_access: cfg.req_body_access,
            resp_body_access: cfg.resp_body_access,
            force_body_var: false,
            req_body_limit: cfg.req_body_limit,
            resp_body_limit: cfg.resp_body_limit,
            allow: None,
            intervention: None,
            phase: 0,
            scratch: Default::default(),
        }
    }
}

/// Marks a link's answers by original value (before its transformations)
/// apart from its answers by transformed value, in one memory: link ids are
/// small counters, so the top bit is free.
const ORIGINAL_VALUE: u64 = 1 << 63;

/// The largest capture buffer a thread keeps for the next match.
const MAX_KEPT_CAPTURE: usize = 1024;

/// Targets read by at least this many groups have their values'
/// contributions to the union pass remembered (`UnionAcc::contrib`).
const CONTRIB_GROUPS: usize = 4;

pub(crate) const CAPTURE_KEYS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// One matched target, recorded while the state is borrowed. Its
/// MATCHED_VAR_NAME is kept as its parts and spelt out only when read
/// (`state::MatchedName`): few rules read it, and writing `VAR:key` for
/// every match cost more than the rest of recording it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hit {
    name: MatchedName,
    value: Vec<u8>,
    caps: Vec<Vec<u8>>,
}

/// The matches of one rule evaluation. Entries past `len` are kept, so the
/// next evaluation writes its names and values into their buffers instead
/// of allocating new ones (the list lives in the per-thread cache pool).
#[derive(Debug, Default)]
pub(crate) struct Hits {
    list: Vec<Hit>,
    len: usize,
}

impl Hits {
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    pub(crate) fn as_slice(&self) -> &[Hit] {
        self.list.get(..self.len).unwrap_or_default()
    }

    /// A new, empty entry (its buffers possibly from an earlier match).
    fn push(&mut self) -> &mut Hit {
        if self.len == self.list.len() {
            self.list.push(Hit::default());
        }
        self.len += 1;
        let h = &mut self.list[self.len - 1];
        h.value.clear();
        h
    }

    /// Drop what a pooled list should not keep: entries beyond `max` and
    /// any with a large name or value.
    pub(crate) fn trim(&mut self, max: usize, max_bytes: usize) {
        self.len = 0;
        self.list.truncate(max);
        self.list.retain(|h| {
            h.value.capacity() <= max_bytes
                && h.name.capacity() <= max_bytes
                && h.caps.iter().all(|c| c.capacity() <= max_bytes)
        });
    }

    pub(crate) fn into_vec(mut self) -> Vec<Hit> {
        self.list.truncate(self.len);
        self.list
    }
}

pub(crate) enum Outcome {
    NoMatch,
    Match,
    /// Processing of the phase stops (intervention or allow).
    Stop,
}

pub(crate) struct Engine<'t> {
    pub rs: &'t Arc<RuleSet>,
    pub st: &'t mut TxState,
    pub rt: &'t mut Runtime,
    pub cache: &'t mut TCache,
    pub matched: &'t mut Vec<MatchedRule>,
    pub stats: &'t mut Stats,
}

/// Counters for the benchmark and tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub rules_evaluated: u64,
    pub operator_calls: u64,
    /// Operator answers taken from the thread's memory instead of a call.
    pub operator_memo: u64,
    pub prefilter_skips: u64,
    /// Rules none of whose targets passed the prefilter.
    pub rules_prefiltered: u64,
}

impl Engine<'_> {
    /// Run every rule of `phase`. Returns an intervention when one was decided.
    pub fn run_phase(&mut self, phase: u8) -> Option<Intervention> {
        self.rt.phase = phase;
        // As in v2, an intercepted transaction still runs its logging phase
        // (CRS's correlation rules report on blocked requests there).
        if self.rt.intervention.is_some() && phase != 5 {
            return self.rt.intervention.clone();
        }
        match (self.rt.allow, phase) {
            (Some(AllowScope::All), 2..=4) | (Some(AllowScope::Request), 2) => return None,
            _ => {}
        }
        if self.rt.mode == EngineMode::Off {
            return None;
        }
        if matches!(self.rt.allow, Some(AllowScope::Phase)) {
            self.rt.allow = None;
        }
        self.cache.next_phase();
        self.st.matched_vars.clear();
        let rs = self.rs.clone();
        let pi = usize::from(phase.saturating_sub(1));
        let entries = rs.phases.get(pi)?;
        let gates = rs.gates.get(pi).map_or(&[][..], Vec::as_slice);
        // The union pass runs first: its unions tell which gates need a
        // look at all (`TCache::live`), and the loop goes from one to the
        // next; a rule they rule out is not visited. (It reads only request
        // data, which the phase's rules do not change: run here or at the
        // first rule that asks, it finds the same.)
        self.compute_unions();
        let live = std::mem::take(&mut self.cache.live);
        let out = self.walk_gates(
            entries,
            gates,
            self.cache.unions_done().then_some(&live[..]),
        );
        self.cache.live = live;
        out
    }

    /// The rule loop of `run_phase` over the phase's gates: all of them in
    /// order, or only those set in `live` (while no `skip:N` is counting
    /// rules, which counts the rules `live` leaves out too).
    fn walk_gates(
        &mut self,
        entries: &[Entry],
        gates: &[Gate],
        live: Option<&[u64]>,
    ) -> Option<Intervention> {
        let mut skip: u32 = 0;
        // skipAfter targets are resolved to entry indexes at load time.
        let mut i = 0;
        // The rule at entry `at` (its gate says it is one).
        let rule_at = |at: usize| match entries.get(at) {
            Some(Entry::Rule(r)) => Some(&**r),
            _ => None,
        };
        // The gates are walked, not the entries: a rule is read only once
        // its gate lets it through (`rs.gates` is built from `rs.phases`).
        loop {
            let at = match live {
                Some(live) if skip == 0 => match next_live(live, i) {
                    Some(at) => at,
                    None => break,
                },
                _ => i,
            };
            let Some(gate) = gates.get(at) else { break };
            i = at + 1;
            if gate.flags & Gate::MARKER != 0 {
                continue;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            #[cfg(feature = "rule-profile")]
            let _timer = rule_at(at).map(crate::profile::Timer::start);
            if self.rt.mode == EngineMode::Off {
                continue;
            }
            if !self.rt.removed.is_empty() {
                let Some(rule) = rule_at(at) else { continue };
                if self.rt.removed.iter().any(|s| s.hits_idx(gate.idx, rule)) {
                    continue;
                }
            }
            if gate.flags & Gate::JUMP != 0
                && (self.rt.removed_targets.is_empty()
                    || rule_at(at).is_some_and(|r| !self.targets_removed(gate.idx, r)))
            {
                // Decided at load time: the rule matches and only skips.
                if gate.flags & Gate::SKIP_AFTER != 0 {
                    i = gate.jump as usize;
                    self.st.matched_vars.clear();
                } else {
                    skip = gate.jump;
                }
                continue;
            }
            if gate.gid != Gate::NO_GROUP && !self.union_may_match((gate.gid, gate.slot)) {
                // None of the rule's literals occurs in any value it can
                // target this phase: it cannot match.
                self.stats.rules_prefiltered += 1;
                self.st.matched_vars.clear();
                continue;
            }
            let Some(rule) = rule_at(at) else { continue };
            if gate.flags & Gate::ANSWERS != 0 && !self.answers_may_match(rule) {
                // Every value the rule can read this phase is remembered to
                // fail its operator.
                self.stats.rules_prefiltered += 1;
                self.st.matched_vars.clear();
                continue;
            }
            match self.run_chain(rule) {
                Outcome::NoMatch => self.st.matched_vars.clear(),
                Outcome::Match => {
                    self.st.matched_vars.clear();
                    if rule.skip_after.is_some() {
                        i = rule.skip_to;
                    } else if rule.skip > 0 {
                        skip = rule.skip;
                    }
                }
                Outcome::Stop => {
                    self.st.matched_vars.clear();
                    return self.rt.intervention.clone();
                }
            }
        }
        None
    }

    /// A runtime `ctl:ruleRemoveTarget*` names this rule.
    /// (`idx` is the rule's `Rule::idx`, from its gate in the rule loop.)
    fn targets_removed(&self, idx: u32, r: &Rule) -> bool {
        self.rt
            .removed_targets
            .iter()
            .any(|(s, _)| s.hits_idx(idx, r))
    }

    /// The phase-wide prefilter: whether any item the rule's group can
    /// target this phase passes the rule's literals (a superset of the
    /// rule's own items). All of a phase's groups are computed at once, on
    /// the first ask; a group the plan lacks answers "may match".
    fn union_may_match(&mut self, (gid, slot): (u32, u32)) -> bool {
        if self.cache.union_bit(gid, slot).is_none() {
            self.compute_unions();
        }
        self.cache.union_bit(gid, slot).unwrap_or(true)
    }

    /// Whether some value of the starter's targets may pass its operator,
    /// by the remembered answers the phase's union pass ORed per target
    /// (see `Rule::answer_targets`).
    fn answers_may_match(&mut self, rule: &Rule) -> bool {
        let Some(slot) = rule.op_slot else {
            return true;
        };
        if !self.cache.unions_done() {
            self.compute_unions();
        }
        // A target whose values all lack the rule's literals cannot match
        // either (and is not visited when the rule runs, so its values get
        // no answers from it).
        let group_slot = rule.group.map(|g| g.1);
        rule.answer_targets
            .iter()
            .zip(&rule.targets)
            .enumerate()
            .any(|(i, (ti, t))| match ti {
                Some(ti) => {
                    let scanned_out = match (rule.target_unions.get(i), group_slot) {
                        (Some(Some(off)), Some(gs)) => {
                            self.cache.target_union_bit(*off, gs) == Some(false)
                        }
                        _ => false,
                    };
                    !scanned_out && self.cache.target_answer(*ti, slot) != Some(false)
                }
                None => !t.negated,
            })
    }

    /// Compute every union of the phase's plan in one pass over the targets
    /// (nothing when the phase has no plan or it was already computed).
    fn compute_unions(&mut self) {
        let rs: &RuleSet = self.rs;
        let Some(plan) = rs.plans.get(usize::from(self.rt.phase.saturating_sub(1))) else {
            return;
        };
        if plan.targets.is_empty() || self.cache.unions_done() {
            return;
        }
        // Empty, and `Item` is covariant: the 'static list is one of any lifetime.
        let mut items: Vec<Item<'_>> = std::mem::take(&mut self.cache.item_buf);
        let st: &TxState = self.st;
        let cache: &mut TCache = self.cache;
        // The previous phase's words give their allocation.
        let mut accs = cache.target_unions_buf();
        accs.clear();
        accs.resize(plan.words, 0);
        let aw = plan.global.as_ref().map_or(0, |g| g.op_words());
        let mut answers = cache.answers_buf(plan.targets.len(), aw);
        cache.args_shared = st.args_shared;
        for (i, (t, gids)) in plan.targets.iter().enumerate() {
            items.clear();
            variables::generate(t, st, &mut items);
            let tm = plan.merged.get(i).copied().unwrap_or_default();
            let ans = answers.get_mut(i * aw..(i + 1) * aw).unwrap_or_default();
            cache.union_target(
                &items,
                gids,
                tm,
                &rs.groups,
                plan.global.as_deref(),
                UnionAcc {
                    groups: &mut accs,
                    answers: ans,
                    // Worth a memory lookup per value only when many groups read the target.
                    contrib: (gids.len() >= CONTRIB_GROUPS)
                        .then(|| crate::prefilter::contrib_key(self.rt.phase, i)),
                },
            );
        }
        let mut union = Vec::new();
        // The gates the rule loop visits: the plan's, and those of the
        // rules whose union bit is set.
        let mut live = std::mem::take(&mut cache.live);
        live.clear();
        live.extend_from_slice(&plan.live);
        for (k, (gid, offs)) in plan.groups.iter().enumerate() {
            let slot_gates = plan.slot_gates.get(k).map_or(&[][..], Vec::as_slice);
            // A group whose union is not recorded answers "may match" (always sound).
            let Some(words) = rs.groups.get(*gid as usize).map(|g| g.words()) else {
                mark_live(&mut live, slot_gates, None);
                continue;
            };
            if words == 1 {
                // Most groups have under 64 rules: one word, no slices.
                let w = offs.iter().fold(0, |u, &off| {
                    u | accs.get(off as usize).copied().unwrap_or(0)
                });
                cache.set_union(*gid, &[w]);
                mark_live(&mut live, slot_gates, Some(&[w]));
                continue;
            }
            union.clear();
            union.resize(words, 0u64);
            for &off in offs {
                let off = off as usize;
                for (u, w) in union
                    .iter_mut()
                    .zip(accs.get(off..off + words).unwrap_or_default())
                {
                    *u |= w;
                }
            }
            cache.set_union(*gid, &union);
            mark_live(&mut live, slot_gates, Some(&union));
        }
        cache.live = live;
        cache.set_unions_done(accs, answers);
        cache.item_buf = crate::tcache::recycle(items);
    }

    pub(crate) fn run_chain(&mut self, starter: &Rule) -> Outcome {
        self.st.cur_rule = Some(starter.idx);
        if let Some(c) = starter.clean.as_deref() {
            if c.reads.iter().all(|&b| self.st.tx.untouched(b))
                && (self.rt.removed_targets.is_empty()
                    || !self.targets_removed(starter.idx, starter))
            {
                return self.run_clean(starter, c);
            }
        }
        let mut cur = starter;
        let mut logged = false;
        loop {
            self.stats.rules_evaluated += 1;
            // Folded hits are used in place: no copy of the load-time list.
            let mut collected = Hits::default();
            let folded = match &cur.folded {
                Folded::Hits(h) if !self.targets_removed(starter.idx, starter) => Some(h),
                _ => None,
            };
            if folded.is_none() {
                collected = self.collect_hits(cur, starter);
            }
            let hits: &[Hit] = folded.map_or(collected.as_slice(), |h| h);
            if hits.is_empty() {
                if collected.list.capacity() > 0 {
                    self.cache.hits_buf = collected;
                }
                return Outcome::NoMatch;
            }
            let last = cur.chain.is_none();
            for h in hits {
                if cur.capture && !h.caps.is_empty() {
                    // TX:0-9 hold this match's groups; slots it has no group for are cleared.
                    let n = h.caps.len().min(10);
                    for (i, c) in h.caps.iter().enumerate().take(10) {
                        self.st.tx.assign(CAPTURE_KEYS[i], c);
                    }
                    // Only slots an earlier capture filled can need clearing.
                    let filled = self.st.captures_set.max(n);
                    for k in &CAPTURE_KEYS[n..filled] {
                        self.st.tx.remove(k);
                    }
                    self.st.captures_set = n;
                }
                // Into the buffers of the previous match (no allocation).
                self.st.matched_var_name.copy_from(&h.name);
                self.st.matched_var.clear();
                self.st.matched_var.extend_from_slice(&h.value);
                if starter.reads_matched_vars {
                    self.st
                        .matched_vars
                        .push_with(|n| h.name.write(n), &h.value);
                }
                for a in &cur.nd {
                    self.non_disruptive(a);
                }
                if last {
                    if !logged {
                        logged = true;
                        self.log(starter);
                    }
                    if self.disrupt(starter) {
                        return Outcome::Stop;
                    }
                }
            }
            if collected.list.capacity() > 0 {
                self.cache.hits_buf = collected;
            }
            match &cur.chain {
                Some(n) => cur = n,
                None => return Outcome::Match,
            }
        }
    }

    /// [`Engine::run_chain`] for a rule whose TX members are untouched: its
    /// outcome is the one worked out at load time (`fold::Clean`), and its
    /// setvars are not run: they change nothing, or they leave the values
    /// `Clean::sets` holds, written on the match.
    #[inline(never)]
    fn run_clean(&mut self, starter: &Rule, clean: &crate::fold::Clean) -> Outcome {
        let outcome = &clean.outcome;
        self.stats.rules_evaluated += 1;
        let n = match outcome {
            CleanOutcome::NoMatch => return Outcome::NoMatch,
            CleanOutcome::Hits(h) => h.len(),
            CleanOutcome::Always => 1,
        };
        for i in 0..n {
            let st = &mut *self.st;
            st.matched_var.clear();
            match outcome.hit(i) {
                Some(h) => {
                    st.matched_var_name.copy_from(&h.name);
                    st.matched_var.extend_from_slice(&h.value);
                }
                None => {
                    // v2 runs SecAction as `SecRule REQUEST_URI "@unconditionalMatch"`.
                    st.matched_var_name.set_bare(Var::RequestUri);
                    st.matched_var.extend_from_slice(&st.uri);
                }
            }
            if starter.reads_matched_vars {
                let name = &st.matched_var_name;
                st.matched_vars
                    .push_with(|n| name.write(n), &st.matched_var);
            }
            // (`sets` is empty unless the rule matches once.)
            for (k, v) in &clean.sets {
                st.tx.assign_named(k, v);
            }
            if i == 0 {
                self.log(starter);
            }
            if self.disrupt(starter) {
                return Outcome::Stop;
            }
        }
        Outcome::Match
    }

    /// Evaluate one rule or link against its targets without changing state.
    pub(crate) fn collect_hits(&mut self, rule: &Rule, starter: &Rule) -> Hits {
        let st: &TxState = self.st;
        // The previous evaluation's list gives its allocation (see `run_chain`).
        let mut hits = std::mem::take(&mut self.cache.hits_buf);
        hits.clear();
        let op = match &rule.op {
            Op::Always => {
                // v2 runs SecAction as `SecRule REQUEST_URI "@unconditionalMatch"`.
                let h = hits.push();
                h.name.set_bare(Var::RequestUri);
                h.value.extend_from_slice(&st.uri);
                h.caps.clear();
                return hits;
            }
            Op::Real { op, .. } => op,
        };
        // A runtime target exclusion naming the rule takes the general path.
        if rule.plain
            && (!std::ptr::eq(rule, starter)
                || !self.rt.removed_targets.iter().any(|(s, _)| s.hits(rule)))
        {
            return self.collect_plain(rule, op, hits);
        }
        // Empty, and `Item` is covariant: the 'static list is one of any lifetime.
        let mut items: Vec<Item<'_>> = std::mem::take(&mut self.cache.item_buf);
        items.reserve(item_capacity(st));
        for (ti, t) in rule.targets.iter().enumerate() {
            if t.negated {
                // An excluded value is not evaluated, so it would never get
                // this link's answer, and its target's answer bit would keep
                // the rule from being skipped whole (CRS excludes the Cookie
                // header from REQUEST_HEADERS in 19 rules): its answer is
                // learnt here, once per value, with no hit.
                if let (Some(slot), false, false) = (
                    rule.op_slot,
                    rule.multi_match,
                    rule.answer_targets.is_empty(),
                ) {
                    let exp = Expander::new(st);
                    for it in items.iter() {
                        let excluded = it.stable && it.var == t.var && t.sel.selects(&it.key);
                        if !(excluded && self.cache.answer_missing(it, slot)) {
                            continue;
                        }
                        let v = transform(self.cache, it, rule);
                        self.stats.operator_calls += 1;
                        let matched = op.eval(&v, &exp, None);
                        self.cache.keep_op_answer(it, slot, matched);
                    }
                }
                items.retain(|it| !(it.var == t.var && t.sel.selects(&it.key)));
                continue;
            }
            if let (Some(Some(off)), Some((_, slot))) = (rule.target_unions.get(ti), rule.group) {
                if self.cache.target_union_bit(*off, slot) == Some(false) {
                    // No value of this target passes the rule's literals.
                    self.stats.prefilter_skips += 1;
                    continue;
                }
            }
            if answered_no(self.cache, self.stats, rule, ti) {
                continue;
            }
            push_target(t, st, &mut items);
        }
        // Runtime target exclusions that name this rule (v2 checks the rule
        // itself, so chain links are not affected) and a variable it reads:
        // CRS 941010 removes REQUEST_FILENAME from the XSS rules on nearly
        // every request, and the rules without that target need no check.
        // Kept as the names they are (a reused list, not allocated per rule).
        let mut excl: Vec<&TargetName> =
            crate::tcache::recycle_refs(std::mem::take(&mut self.cache.excl_buf));
        if std::ptr::eq(rule, starter) {
            for (sel, names) in &self.rt.removed_targets {
                if !sel.hits(rule) {
                    continue;
                }
                for x in names {
                    let reads = rule
                        .targets
                        .iter()
                        .any(|t| !t.negated && x.var == Some(t.var));
                    if reads {
                        excl.push(x);
                    }
                }
            }
        }
        let exp = Expander::new(st);
        // Capture groups of the next match, written into the buffers of an
        // earlier one (it trades places with each match's hit entry).
        let mut caps: Vec<Vec<u8>> = std::mem::take(&mut self.cache.caps_buf);
        let mut any_passed_filter = rule.prefilter.is_none();
        // Value buffers this rule found no match in: equal argument names and
        // values share a buffer (see `push_args`), so a JSON array's repeated
        // names are evaluated once per rule.
        let dedup = st.args_shared && items.len() > 4;
        let mut no_match = std::mem::take(&mut self.cache.no_match_buf);
        no_match.clear();
        for it in &items {
            if !excl.is_empty() {
                let key = if it.var.is_collection() {
                    Some(&*it.key)
                } else {
                    None
                };
                if excl.iter().any(|x| x.matches(it.var, key)) {
                    continue;
                }
            }
            let buf = (it.value.as_ptr() as usize, it.value.len());
            if dedup && it.stable && no_match.contains(&buf) {
                continue;
            }
            // A match's value goes straight into a reused hit entry.
            let mut matched = false;
            // The original value's memory entry, when its answer is to be kept.
            let mut before: Option<(u64, u64)> = None;
            // Left early when the rule's literals rule the value out: like a
            // value evaluated without a match, its buffer is not looked at
            // again for this rule.
            'eval: {
                if rule.multi_match && !rule.transforms.is_empty() {
                    // Functions known to leave the original value as it is,
                    // the value's step facts, and the link's answer (any
                    // step matched): functions of the value as well, kept
                    // with its merged scan.
                    let slot = rule.op_slot.filter(|_| it.stable);
                    let (mut same, steps, answer) = self.cache.item_facts(it, slot);
                    // Whether any step's value passes the rule's literals is a
                    // function of the value, remembered per thread: with the
                    // value's merged scan (one lookup for all such rules), or
                    // else on its own.
                    let known = match (rule.step_slot, steps) {
                        (Some(s), Some(w)) => Some(w >> s & 1 == 1),
                        _ => None,
                    };
                    if answer == Some(false) {
                        self.stats.operator_memo += 1;
                        break 'eval;
                    }
                    if known == Some(false) {
                        self.stats.prefilter_skips += 1;
                        if let Some(s) = slot {
                            self.cache.keep_op_answer(it, s, false);
                        }
                        break 'eval;
                    }
                    let memo = match rule.prefilter.as_ref().filter(|_| known.is_none()) {
                        Some(pf) => match recall_answer(&STEP_ANSWERS, pf.id(), &it.value) {
                            (Some(false), _) => {
                                self.stats.prefilter_skips += 1;
                                if let Some(s) = slot {
                                    self.cache.keep_op_answer(it, s, false);
                                }
                                break 'eval;
                            }
                            (None, Some(h)) => Some((pf.id(), h)),
                            _ => None,
                        },
                        None => None,
                    };
                    let mut passed = false;
                    let mut v: Cow<'_, [u8]> = Cow::Borrowed(&it.value);
                    let mut changed = true;
                    for k in 0..=rule.transforms.len() {
                        // The literal prefilter holds for any value, so for each step's value too.
                        if changed && rule.prefilter.as_ref().is_some_and(|pf| !pf.may_match(&v)) {
                            self.stats.prefilter_skips += 1;
                            changed = false;
                        }
                        if changed {
                            passed = true;
                            any_passed_filter = true;
                            self.stats.operator_calls += 1;
                            if op.eval(&v, &exp, if rule.capture { Some(&mut caps) } else { None })
                            {
                                hits.push().value.extend_from_slice(&v);
                                matched = true;
                                break;
                            }
                        }
                        let Some((t, _)) = rule.transforms.get(k) else {
                            break;
                        };
                        if same & t.bit() != 0 {
                            changed = false;
                            continue;
                        }
                        match t.apply(&v) {
                            Some(nv) => {
                                v = Cow::Owned(nv);
                                changed = true;
                                // What is known is about the original value only.
                                same = 0;
                            }
                            None => changed = false,
                        }
                    }
                    if let Some((id, h)) = memo {
                        keep_answer(&STEP_ANSWERS, id, &it.value, h, passed);
                    }
                    if let (Some(s), None) = (slot, answer) {
                        self.cache.keep_op_answer(it, s, matched);
                    }
                } else {
                    // A scan recorded for the item answers before transforming it.
                    let recorded = match (rule.group, &rule.prefilter) {
                        (Some(g), Some(_)) => self
                            .rs
                            .groups
                            .get(g.0 as usize)
                            .and_then(|gf| self.cache.recorded_bit(it, g, gf, rule.op_slot)),
                        _ => None,
                    };
                    if recorded == Some(false) {
                        self.stats.prefilter_skips += 1;
                        break 'eval;
                    }
                    // The link's chain and pure operator are fixed, so its
                    // answer is a function of the original value: kept with
                    // the value's remembered merged scan (one lookup for
                    // every such link), or else on its own.
                    let slot = rule.op_slot.filter(|_| it.stable);
                    let answer = slot.and_then(|s| self.cache.op_answer(it, s));
                    if answer == Some(false) {
                        self.stats.operator_memo += 1;
                        break 'eval;
                    }
                    // A value it failed on before is not transformed again
                    // (a match is, for the matched value it reports).
                    if let Some(id) = rule
                        .op_memo
                        .filter(|_| !rule.transforms.is_empty() && answer.is_none())
                    {
                        match recall_answer(&OP_ANSWERS, id | ORIGINAL_VALUE, &it.value) {
                            (Some(false), _) => {
                                self.stats.operator_memo += 1;
                                if let Some(s) = slot {
                                    self.cache.keep_op_answer(it, s, false);
                                }
                                break 'eval;
                            }
                            (None, Some(h)) => before = Some((id | ORIGINAL_VALUE, h)),
                            _ => {}
                        }
                    }
                    let v = transform(self.cache, it, rule);
                    if let Some(pf) = rule.prefilter.as_ref().filter(|_| answer.is_none()) {
                        let may = match (recorded, rule.group, it.stable) {
                            (Some(known), _, _) => known,
                            (None, Some(g), true) => match self.rs.groups.get(g.0 as usize) {
                                Some(gf) => self.cache.group_may_match(it, g, gf, &v),
                                None => pf.may_match(&v),
                            },
                            _ => pf.may_match(&v),
                        };
                        if !may {
                            self.stats.prefilter_skips += 1;
                            if let Some(s) = slot {
                                self.cache.keep_op_answer(it, s, false);
                            }
                            break 'eval;
                        }
                    }
                    if rule.prefilter.is_some() {
                        any_passed_filter = true;
                    }
                    // A pure operator's answer on a value seen before is
                    // remembered; a remembered match is evaluated again when
                    // the rule captures (the groups are not kept).
                    let memo = rule
                        .op_memo
                        .filter(|_| answer.is_none())
                        .map(|id| (id, recall_answer(&OP_ANSWERS, id, &v)));
                    let known = match (answer, memo) {
                        (Some(r), _) | (_, Some((_, (Some(r), _)))) if !(r && rule.capture) => {
                            Some(r)
                        }
                        _ => None,
                    };
                    let r = match known {
                        Some(r) => {
                            self.stats.operator_memo += 1;
                            r
                        }
                        None => {
                            self.stats.operator_calls += 1;
                            let r = op.eval(
                                &v,
                                &exp,
                                if rule.capture { Some(&mut caps) } else { None },
                            );
                            if let Some((id, (_, Some(h)))) = memo {
                                keep_answer(&OP_ANSWERS, id, &v, h, r);
                            }
                            r
                        }
                    };
                    if let (Some(s), None) = (slot, answer) {
                        self.cache.keep_op_answer(it, s, r);
                    }
                    if r {
                        hits.push().value.extend_from_slice(&v);
                        matched = true;
                    }
                }
            }
            if let (false, Some((id, h))) = (matched, before) {
                // Only failures: a match reports the transformed value.
                keep_answer(&OP_ANSWERS, id, &it.value, h, false);
            }
            if !matched && dedup && it.stable {
                no_match.insert(buf);
            }
            if let (true, Some(h)) = (
                matched,
                hits.len.checked_sub(1).and_then(|i| hits.list.get_mut(i)),
            ) {
                set_hit_name(it, rule, &mut h.name);
                // The entry's old capture list becomes the next scratch list.
                std::mem::swap(&mut h.caps, &mut caps);
            }
        }
        if !any_passed_filter && !items.is_empty() {
            self.stats.rules_prefiltered += 1;
        }
        self.cache.item_buf = crate::tcache::recycle(items);
        caps.retain(|c| c.capacity() <= MAX_KEPT_CAPTURE);
        self.cache.caps_buf = caps;
        self.cache.no_match_buf = no_match;
        self.cache.excl_buf = crate::tcache::recycle_refs(excl);
        hits
    }

    /// [`Engine::collect_hits`] for a plain link (`Rule::plain`): each value
    /// is transformed and evaluated, unless its kept answer (`Rule::op_slot`)
    /// is a failure, with none of the general path's set-up for prefilters,
    /// remembered answers, multiMatch, exclusions and shared buffers. Most
    /// rules that run on every request (TX, counts, the request line) are
    /// plain, and that set-up cost several times their evaluation.
    fn collect_plain(&mut self, rule: &Rule, op: &Operator, mut hits: Hits) -> Hits {
        let st: &TxState = self.st;
        let mut caps: Vec<Vec<u8>> = if rule.capture {
            std::mem::take(&mut self.cache.caps_buf)
        } else {
            Vec::new()
        };
        let exp = Expander::new(st);
        if let Some(name) = rule.tx_key() {
            // One TX member at most (most rules that run on every request
            // read one): looked up in place, without an item list.
            if let Some((key, value)) = st.tx.get_entry_named(name) {
                let it = Item {
                    var: Var::Tx,
                    key: Cow::Borrowed(key.as_bytes()),
                    value: Cow::Borrowed(value),
                    stable: false,
                };
                plain_item(
                    self.cache, self.stats, rule, op, &it, &exp, &mut caps, &mut hits,
                );
            }
        } else {
            // Empty, and `Item` is covariant: the 'static list is one of any lifetime.
            let mut items: Vec<Item<'_>> = std::mem::take(&mut self.cache.item_buf);
            for (ti, t) in rule.targets.iter().enumerate() {
                if answered_no(self.cache, self.stats, rule, ti) {
                    continue;
                }
                push_target(t, st, &mut items);
            }
            for it in &items {
                plain_item(
                    self.cache, self.stats, rule, op, it, &exp, &mut caps, &mut hits,
                );
            }
            self.cache.item_buf = crate::tcache::recycle(items);
        }
        if rule.capture {
            caps.retain(|c| c.capacity() <= MAX_KEPT_CAPTURE);
            self.cache.caps_buf = caps;
        }
        hits
    }

    // Out of line, as `disrupt` and `non_disruptive`: they run on matches
    // only, and inlined into `run_chain` their set-up ran on every rule.
    #[inline(never)]
    fn log(&mut self, starter: &Rule) {
        let st: &TxState = self.st;
        let m = &starter.meta;
        if !starter.log {
            // `nolog` rules (CRS initialisation, scoring) are recorded as
            // matched without the message text nobody will read.
            self.matched.push(MatchedRule {
                id: m.id,
                phase: self.rt.phase,
                msg: String::new(),
                data: String::new(),
                severity: m.severity_name(),
                tags: Vec::new(),
                file: String::new(),
                line: m.line,
                ver: String::new(),
                log: false,
                matched_var_name: String::new(),
            });
            return;
        }
        self.matched.push(MatchedRule {
            id: m.id,
            phase: self.rt.phase,
            msg: m
                .msg
                .as_ref()
                .map(|x| x.expand_string(st))
                .unwrap_or_default(),
            data: m
                .logdata
                .as_ref()
                .map(|x| x.expand_string(st))
                .unwrap_or_default(),
            severity: m.severity_name(),
            tags: m.tags.iter().map(|t| t.expand_string(st)).collect(),
            file: m.file.to_string(),
            line: m.line,
            ver: m.ver.clone().unwrap_or_default(),
            log: starter.log,
            matched_var_name: st.matched_var_name.text(),
        });
    }

    /// Carry out the starter's disruptive action; true when the phase stops.
    #[inline(never)]
    fn disrupt(&mut self, starter: &Rule) -> bool {
        if self.rt.mode != EngineMode::On || self.rt.phase == 5 {
            return false;
        }
        if matches!(
            starter.disruptive,
            Disruptive::Pass | Disruptive::Proxy | Disruptive::Block
        ) {
            return false;
        }
        let msg = starter
            .meta
            .msg
            .as_ref()
            .map(|x| x.expand_string(self.st))
            .unwrap_or_default();
        let iv = |status: u16, redirect: Option<String>, drop: bool| Intervention {
            status,
            rule_id: starter.meta.id,
            redirect,
            drop,
            msg: msg.clone(),
        };
        match &starter.disruptive {
            Disruptive::Pass | Disruptive::Proxy | Disruptive::Block => false,
            Disruptive::Deny => {
                self.rt.intervention = Some(iv(starter.status.unwrap_or(403), None, false));
                true
            }
            Disruptive::Drop => {
                self.rt.intervention = Some(iv(starter.status.unwrap_or(403), None, true));
                true
            }
            Disruptive::Redirect(url) => {
                let url = crate::macros::MacroStr::parse(url).expand_string(self.st);
                let status = starter
                    .status
                    .filter(|s| (300..400).contains(s))
                    .unwrap_or(302);
                self.rt.intervention = Some(iv(status, Some(url), false));
                true
            }
            Disruptive::Allow(scope) => {
                self.rt.allow = Some(*scope);
                true
            }
        }
    }

    #[inline(never)]
    pub(crate) fn non_disruptive(&mut self, a: &NonDisruptive) {
        match a {
            NonDisruptive::SetVar(sv) => {
                let [mut kbuf, mut vbuf] = std::mem::take(&mut self.rt.scratch);
                // Most keys are literal: borrowed, not copied per match.
                let key = sv.key.expand_str_in(self.st, &mut kbuf);
                if sv.coll == Var::Tx && key.len() == 1 && key.as_bytes()[0].is_ascii_digit() {
                    self.st.captures_set = 10;
                }
                // The value is written in place: one lookup, no new buffer.
                match &sv.op {
                    SetVarOp::Delete => {
                        if let Some(c) = variables::collection_of_mut(self.st, sv.coll) {
                            c.remove(&key);
                        }
                    }
                    SetVarOp::Set(v) => {
                        let v = v.expand_in(self.st, &mut vbuf);
                        if let Some(c) = variables::collection_of_mut(self.st, sv.coll) {
                            match &sv.name {
                                Some(n) => c.assign_named(n, v),
                                None => c.assign(&key, v),
                            }
                        }
                    }
                    SetVarOp::Add(v) | SetVarOp::Sub(v) => {
                        // Scores add a literal or one TX variable: read in place.
                        let rhs = crate::actions::setvar::atoi(match v.expand_borrowed(self.st) {
                            Some(b) => b,
                            None => v.expand_in(self.st, &mut vbuf),
                        });
                        let add = matches!(sv.op, SetVarOp::Add(_));
                        if let Some(c) = variables::collection_of_mut(self.st, sv.coll) {
                            let slot = match &sv.name {
                                Some(n) => c.value_mut_named(n),
                                None => c.value_mut(&key),
                            };
                            let cur = crate::actions::setvar::atoi(slot);
                            let n = if add {
                                cur.saturating_add(rhs)
                            } else {
                                cur.saturating_sub(rhs)
                            };
                            slot.clear();
                            crate::actions::setvar::push_int(slot, n);
                        }
                    }
                }
                drop(key);
                self.rt.scratch = [kbuf, vbuf];
            }
            NonDisruptive::Ctl(c) => self.ctl(c),
            NonDisruptive::InitCol => {}
            NonDisruptive::SetEnv(k, v) => {
                let k = k.expand_string(self.st);
                let v = v.expand(self.st).into_owned();
                self.st.env.set(&k, v);
            }
        }
    }

    fn ctl(&mut self, c: &Ctl) {
        match c {
            Ctl::RuleEngine(m) => self.rt.mode = *m,
            Ctl::RuleRemoveById(ids) => self.rt.removed.push(RuleSel::Ids(ids.clone())),
            Ctl::RuleRemoveByTag(p) => self.rt.removed.push(sel(p, RuleSel::Tag)),
            Ctl::RuleRemoveByMsg(p) => self.rt.removed.push(sel(p, RuleSel::Msg)),
            Ctl::RuleRemoveTargetById(ids, t) => self
                .rt
                .removed_targets
                .push((RuleSel::Ids(ids.clone()), t.clone())),
            Ctl::RuleRemoveTargetByTag(p, t) => self
                .rt
                .removed_targets
                .push((sel(p, RuleSel::Tag), t.clone())),
            Ctl::RuleRemoveTargetByMsg(p, t) => self
                .rt
                .removed_targets
                .push((sel(p, RuleSel::Msg), t.clone())),
            Ctl::RequestBodyProcessor(p) => {
                if self.rt.phase <= 1 {
                    self.st.reqbody_processor = Some(p.clone());
                }
            }
            Ctl::RequestBodyAccess(b) => self.rt.req_body_access = *b,
            Ctl::ResponseBodyAccess(b) => self.rt.resp_body_access = *b,
            Ctl::ForceRequestBodyVariable(b) => self.rt.force_body_var = *b,
            Ctl::RequestBodyLimit(n) => self.rt.req_body_limit = *n,
            Ctl::ResponseBodyLimit(n) => self.rt.resp_body_limit = *n,
            Ctl::Ignored => {}
        }
    }
}

/// One value of a plain link: transformed and evaluated, unless its
/// kept answer is a failure; a match is added to `hits`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn plain_item(
    cache: &mut TCache,
    stats: &mut Stats,
    rule: &Rule,
    op: &Operator,
    it: &Item<'_>,
    exp: &Expander<'_>,
    caps: &mut Vec<Vec<u8>>,
    hits: &mut Hits,
) {
    let slot = rule.op_slot.filter(|_| it.stable);
    let answer = slot.and_then(|s| cache.op_answer(it, s));
    if answer == Some(false) {
        stats.operator_memo += 1;
        return;
    }
    let v = transform(cache, it, rule);
    // A remembered match is evaluated again when the rule captures
    // (the groups are not kept).
    let matched = match answer {
        Some(true) if !rule.capture => {
            stats.operator_memo += 1;
            true
        }
        _ => {
            stats.operator_calls += 1;
            op.eval(&v, exp, if rule.capture { Some(caps) } else { None })
        }
    };
    if let (Some(s), None) = (slot, answer) {
        cache.keep_op_answer(it, s, matched);
    }
    if matched {
        let h = hits.push();
        h.value.extend_from_slice(&v);
        set_hit_name(it, rule, &mut h.name);
        if rule.capture {
            std::mem::swap(&mut h.caps, caps);
        }
    }
}

/// Set in `live` the gates of a group's slots whose union bit is set
/// (every slot's, when the union is not known).
fn mark_live(live: &mut [u64], slot_gates: &[u32], union: Option<&[u64]>) {
    let mut set = |g: u32| {
        if g != crate::prefilter::NO_GATE {
            if let Some(w) = live.get_mut(g as usize / 64) {
                *w |= 1 << (g % 64);
            }
        }
    };
    match union {
        None => slot_gates.iter().for_each(|&g| set(g)),
        Some(words) => {
            for (wi, &w) in words.iter().enumerate() {
                let mut bits = w;
                while bits != 0 {
                    let slot = wi * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if let Some(&g) = slot_gates.get(slot) {
                        set(g);
                    }
                }
            }
        }
    }
}

/// The first gate index at or after `i` whose bit is set in `live`.
fn next_live(live: &[u64], i: usize) -> Option<usize> {
    let mut wi = i / 64;
    let mut w = live.get(wi)? & (u64::MAX << (i % 64));
    loop {
        if w != 0 {
            return Some(wi * 64 + w.trailing_zeros() as usize);
        }
        wi += 1;
        w = *live.get(wi)?;
    }
}

/// Room for the items a typical rule generates (headers, cookies and
/// arguments, names and values), so the list is allocated once instead of
/// growing through several reallocations per rule.
fn item_capacity(st: &TxState) -> usize {
    (st.req_headers.len() + 2 * (st.cookies.len() + st.args.len()) + 4).min(4096)
}

/// The precomputed selection of a tag/msg pattern, or the pattern itself
/// when the rule set did not compute one.
fn sel(p: &RulePattern, by: fn(regex::Regex) -> RuleSel) -> RuleSel {
    match p.selected.get() {
        Some(bits) => RuleSel::Set(bits.clone()),
        None => by(p.re.clone()),
    }
}

/// Counted targets report the bare variable name (`&TX:foo` -> `TX`).
/// Whether every value of the rule's target `ti` is remembered to fail its
/// operator (see `Rule::answer_targets`): the target need not be generated.
fn answered_no(cache: &TCache, stats: &mut Stats, rule: &Rule, ti: usize) -> bool {
    match (rule.answer_targets.get(ti), rule.op_slot) {
        (Some(Some(pi)), Some(slot)) if cache.target_answer(*pi, slot) == Some(false) => {
            stats.prefilter_skips += 1;
            true
        }
        _ => false,
    }
}

/// Push target `t`'s items, or their count for a count target.
fn push_target<'a>(t: &crate::variables::Target, st: &'a TxState, items: &mut Vec<Item<'a>>) {
    if t.count {
        push_count(t, st, items);
    } else {
        variables::generate(t, st, items);
    }
}

/// Push the count of target `t`'s items as one item (the items are
/// generated and dropped again; the number stays).
fn push_count<'a>(t: &crate::variables::Target, st: &'a TxState, items: &mut Vec<Item<'a>>) {
    let before = items.len();
    let n = variables::generate(t, st, items);
    items.truncate(before);
    items.push(Item {
        var: t.var,
        key: Cow::Borrowed(&[]),
        value: variables::decimal(n),
        stable: false,
    });
}

/// The item's value through the link's transformations: from the
/// transformation cache, or straight for a chain no other link shares.
#[inline]
fn transform<'v>(cache: &mut TCache, it: &'v Item<'_>, rule: &Rule) -> crate::tcache::Val<'v> {
    if rule.private_chain {
        crate::tcache::apply_all(crate::tcache::Val::Borrowed(&it.value), &rule.transforms)
    } else {
        cache.transformed(it, &rule.transforms)
    }
}

/// A hit's MATCHED_VAR_NAME: the variable's name for a scalar or a count,
/// else `VAR:key`.
fn set_hit_name(it: &Item<'_>, rule: &Rule, name: &mut MatchedName) {
    if !it.var.is_collection() || is_count_item(it, rule) {
        name.set_bare(it.var);
    } else {
        name.set_keyed(it.var, &it.key);
    }
}

fn is_count_item(it: &Item<'_>, rule: &Rule) -> bool {
    it.key.is_empty() && rule.targets.iter().any(|t| t.count && t.var == it.var) && !it.stable
}
