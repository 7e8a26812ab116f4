//! Literal prefilter: when every value an operator can match must contain
//! one of a set of literals, one Aho-Corasick scan of the (transformed)
//! value rules the operator out before the regex runs. Literals come
//! lower-cased from `seclang-ops` and are matched ASCII
//! case-insensitively (a superset check, so always safe).

use crate::memory::{Recall, ValueMemory};
use crate::ops::Transform;
use crate::rules::{Entry, Op, Rule};
use crate::variables::{phase_stable, Target};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
pub struct Prefilter {
    /// Distinct per prefilter built (what a thread's memories key its answers by).
    id: u64,
    ac: AhoCorasick,
    lits: Vec<Vec<u8>>,
    /// The literals' first bytes, both cases: a short value holding none of
    /// them cannot match (a table walk costs less than an automaton call);
    /// when every literal is one byte long, one that holds any does.
    first: [bool; 256],
    single: bool,
}

/// Values up to this length are checked against the first-byte table.
const SHORT_VALUE: usize = 64;

impl Prefilter {
    /// `None` when there is nothing to filter on (no literals, or an empty one).
    pub fn build(lits: Vec<Vec<u8>>) -> Option<Prefilter> {
        if lits.is_empty() || lits.iter().any(|l| l.is_empty()) {
            return None;
        }
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .ascii_case_insensitive(true)
            .build(&lits)
            .ok()?;
        let mut first = [false; 256];
        for l in &lits {
            if let Some(&b) = l.first() {
                first[usize::from(b.to_ascii_lowercase())] = true;
                first[usize::from(b.to_ascii_uppercase())] = true;
            }
        }
        let single = lits.iter().all(|l| l.len() == 1);
        Some(Prefilter {
            id: crate::memory::next_id(),
            ac,
            lits,
            first,
            single,
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// False only when the operator cannot match `value`.
    pub fn may_match(&self, value: &[u8]) -> bool {
        if value.len() <= SHORT_VALUE {
            let any = value.iter().any(|&b| self.first[usize::from(b)]);
            if !any || self.single {
                return any;
            }
        }
        self.ac.is_match(value)
    }
}

/// The prefilters of every rule that transforms its values the same way,
/// merged: one scan of a transformed value answers "may match" for all of
/// them at once (a bit per rule), instead of one scan per rule.
pub struct GroupFilter {
    /// The group's literals of two bytes or more (and rare single bytes);
    /// `None` when it has none.
    ac: Option<AhoCorasick>,
    /// The automaton could not be built: every rule may match.
    failed: bool,
    /// Pattern index -> slot of the rule it came from.
    pat_slot: Vec<u32>,
    /// Rules' common single-byte literals, by slot.
    bytes: ByteSlots,
    slots: usize,
    /// The group's transformation chain (shared by all its rules).
    pub transforms: Vec<(Transform, u32)>,
    /// Every group's literals in one automaton: a value no transformation
    /// changed is scanned once for all groups. `None` when this group has
    /// no automaton of its own or the merged one could not be built.
    pub global: Option<Arc<GlobalFilter>>,
    /// First word of this group's bits in the merged scan's output.
    pub gword: usize,
    /// Distinct per filter built (see [`remembered`]).
    id: u64,
    /// Distinct too: what this thread remembers of the group's scans of
    /// values transformed by its chain, keyed by the original value.
    pub chain_id: u64,
    /// The functions a value must be left as it is by to scan as its
    /// transformed value.
    pub chain_mask: ChainMask,
}

/// A bit per function of a group's chain (see `Transform::code`): a value
/// every one of them leaves unchanged is its own transformed value. The
/// automata find literals in either case, so in a chain whose other
/// functions are blind to case, changes of case alone do not change what a
/// scan finds and are left out (`relaxed`). Decoders blind to case only on
/// values without their escape byte (`&`, a backslash) keep them in
/// (`full`) for values with one.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChainMask {
    relaxed: u64,
    full: u64,
    /// Bit 0: `&` must be absent for `relaxed`; bit 1: a backslash.
    escapes: u8,
}

impl ChainMask {
    pub fn new(transforms: &[(Transform, u32)]) -> ChainMask {
        let full = transforms.iter().fold(0u64, |m, (t, _)| m | t.bit());
        // An escape byte `need` cannot track (only `&` and a backslash have
        // a bit) keeps the whole chain in the mask.
        let blind = transforms.iter().all(|(t, _)| {
            t.case_only() || t.case_blind() || t.escape_byte().is_some_and(|b| escape_bit(b) != 0)
        });
        if !blind {
            return ChainMask {
                relaxed: full,
                full,
                escapes: 0,
            };
        }
        let relaxed = transforms
            .iter()
            .filter(|(t, _)| !t.case_only())
            .fold(0u64, |m, (t, _)| m | t.bit());
        let escapes = transforms
            .iter()
            .filter_map(|(t, _)| t.escape_byte())
            .fold(0u8, |m, b| m | escape_bit(b));
        ChainMask {
            relaxed,
            full,
            escapes,
        }
    }

    /// The bits that must be in the "left unchanged" set of a value holding
    /// the escape bytes `esc` (from [`ChainMask::escapes_in`]) for it to scan
    /// as its transformed value.
    pub fn need(&self, esc: u8) -> u64 {
        if self.escapes & esc != 0 {
            self.full
        } else {
            self.relaxed
        }
    }

    /// The escape bytes `v` holds, as the bits `need` reads.
    pub fn escapes_in(v: &[u8]) -> u8 {
        v.iter().fold(0, |m, &b| m | escape_bit(b))
    }

    /// Every function's bit (what holds for any value).
    pub fn full(&self) -> u64 {
        self.full
    }
}

fn escape_bit(b: u8) -> u8 {
    match b {
        b'&' => 1,
        b'\\' => 2,
        _ => 0,
    }
}

/// The phase-wide unions of one phase, computed in one pass: each distinct
/// target of the phase's skippable groups is generated once, and each of
/// its values is looked up once for all the groups that target it. Bits
/// accumulate per (target, group), so a rule can also tell which of its
/// targets hold no value it can match; a group's union is the OR of its
/// targets' words.
#[derive(Default)]
pub struct UnionPlan {
    /// Distinct targets, each with the groups that read it (each with the
    /// offset of that (target, group) pair's words in the accumulator).
    pub targets: Vec<(Target, Vec<PlanGroup>)>,
    /// Per target, what its values' merged scans give its groups.
    pub merged: Vec<TargetMerge>,
    /// The phase's groups, with the offsets of their per-target words.
    pub groups: Vec<(u32, Vec<u32>)>,
    pub words: usize,
    pub global: Option<Arc<GlobalFilter>>,
    /// The phase's gates (by entry index) the rule loop visits whatever the
    /// unions say: every rule but the markers and the rules of `groups`.
    pub live: Vec<u64>,
    /// Per group of `groups` (same order), the gate of each slot's rule in
    /// this phase (`NO_GATE`: the slot's rule is in another phase).
    pub slot_gates: Vec<Vec<u32>>,
}

/// A group slot whose rule is in another phase (`UnionPlan::slot_gates`).
pub const NO_GATE: u32 = u32::MAX;

impl UnionPlan {
    /// Fill `live` and `slot_gates` from the phase's gates (built from the
    /// same entries after the plan).
    pub fn index_gates(&mut self, gates: &[crate::rules::Gate]) {
        use crate::rules::Gate;
        let group_index: HashMap<u32, usize> = self
            .groups
            .iter()
            .enumerate()
            .map(|(k, (gid, _))| (*gid, k))
            .collect();
        self.live = vec![0; gates.len().div_ceil(64)];
        self.slot_gates = vec![Vec::new(); self.groups.len()];
        for (i, g) in gates.iter().enumerate() {
            if g.flags & Gate::MARKER != 0 {
                continue;
            }
            let k = (g.gid != Gate::NO_GROUP)
                .then(|| group_index.get(&g.gid))
                .flatten();
            match k.and_then(|&k| self.slot_gates.get_mut(k)) {
                Some(sg) => {
                    let slot = g.slot as usize;
                    if sg.len() <= slot {
                        sg.resize(slot + 1, NO_GATE);
                    }
                    sg[slot] = i as u32;
                }
                None => self.live[i / 64] |= 1 << (i % 64),
            }
        }
    }
}

/// The part of a merged scan a target's groups read.
#[derive(Clone, Copy, Debug, Default)]
pub struct TargetMerge {
    /// The functions of all the groups' chains, when every group has its
    /// bits in the merged scan: a value all of them leave unchanged gives
    /// each group the bits of its merged scan, and nothing else.
    pub all_mask: Option<u64>,
    /// The words of the merged scan the groups read: `lo..hi`.
    pub lo: u32,
    pub hi: u32,
}

impl TargetMerge {
    fn of(pgs: &[PlanGroup]) -> TargetMerge {
        let mut m = TargetMerge {
            all_mask: Some(0),
            lo: u32::MAX,
            hi: 0,
        };
        for pg in pgs {
            if pg.gword == u32::MAX {
                m.all_mask = None;
                continue;
            }
            m.all_mask = m.all_mask.map(|a| a | pg.chain_mask.full());
            m.lo = m.lo.min(pg.gword);
            m.hi = m.hi.max(pg.gword + pg.words);
        }
        if m.lo > m.hi {
            m.lo = 0;
        }
        m
    }
}

/// What the union pass needs of a group, kept small for its inner loop.
#[derive(Clone, Copy)]
pub struct PlanGroup {
    pub gid: u32,
    /// Offset of the group's words in the plan's accumulator.
    pub acc: u32,
    pub words: u32,
    /// First word of the group's bits in a merged scan (`u32::MAX`: the
    /// group has no part in it).
    pub gword: u32,
    pub chain_mask: ChainMask,
}

/// Identifies a (non-negated) target, to list each once.
fn target_key(t: &Target) -> String {
    format!("{:?}/{:?}", t.var, t.sel)
}

/// One plan per phase, over the groups its skippable rules belong to and
/// the targets of its rules whose operator answers are kept per value
/// (see `Rule::answer_targets`). A group's union in a phase covers the
/// targets of its rules in that phase only: a response-phase rule's union
/// is not made of request values, and the pass does not generate them.
pub fn union_plans(phases: &mut [Vec<Entry>; 5], groups: &[GroupFilter]) -> [UnionPlan; 5] {
    let mut plans: [UnionPlan; 5] = Default::default();
    let global = groups.iter().find_map(|g| g.global.clone());
    for (plan, phase) in plans.iter_mut().zip(phases.iter_mut()) {
        // (target, gid) pairs of the phase's skippable rules, each once.
        let mut at: HashMap<(String, u32), u32> = HashMap::new();
        let mut target_index: HashMap<String, usize> = HashMap::new();
        let mut group_index: HashMap<u32, usize> = HashMap::new();
        let mut index_of = |plan: &mut UnionPlan, t: &Target, k: String| {
            *target_index.entry(k).or_insert_with(|| {
                plan.targets.push((t.clone(), Vec::new()));
                plan.targets.len() - 1
            })
        };
        for e in phase.iter_mut() {
            let Entry::Rule(r) = e else { continue };
            if answers_planned(r) {
                let mut idx = Vec::with_capacity(r.targets.len());
                for t in &r.targets {
                    idx.push((!t.negated).then(|| index_of(plan, t, target_key(t)) as u32));
                }
                r.answer_targets = idx;
            }
            let (true, Some((gid, _))) = (r.skippable, r.group) else {
                continue;
            };
            let Some(g) = groups.get(gid as usize) else {
                continue;
            };
            let mut offs = Vec::with_capacity(r.targets.len());
            for t in &r.targets {
                if t.negated {
                    offs.push(None);
                    continue;
                }
                let k = target_key(t);
                let off = *at.entry((k.clone(), gid)).or_insert_with(|| {
                    let off = plan.words as u32;
                    plan.words += g.words();
                    let ti = index_of(plan, t, k);
                    plan.targets[ti].1.push(PlanGroup {
                        gid,
                        acc: off,
                        words: g.words() as u32,
                        gword: if g.global.is_some() {
                            g.gword as u32
                        } else {
                            u32::MAX
                        },
                        chain_mask: g.chain_mask,
                    });
                    let gi = *group_index.entry(gid).or_insert_with(|| {
                        plan.groups.push((gid, Vec::new()));
                        plan.groups.len() - 1
                    });
                    plan.groups[gi].1.push(off);
                    off
                });
                offs.push(Some(off));
            }
            r.target_unions = offs;
        }
        // Chain links with operator slots take the answers of the targets
        // the pass already generates (no target is added for them): a link
        // such as CRS 920250's `@validateUtf8Encoding` over ARGS then
        // passes over a target all of whose values it is known to fail,
        // instead of looking the answer up value by value.
        for e in phase.iter_mut() {
            let Entry::Rule(r) = e else { continue };
            let mut link = r.chain.as_deref_mut();
            while let Some(l) = link {
                if answers_readable(l) {
                    let idx: Vec<Option<u32>> = l
                        .targets
                        .iter()
                        .map(|t| {
                            let i = target_index.get(&target_key(t)).filter(|_| !t.negated);
                            i.map(|&i| i as u32)
                        })
                        .collect();
                    if idx.iter().any(Option::is_some) {
                        l.answer_targets = idx;
                    }
                }
                link = l.chain.as_deref_mut();
            }
        }
        // Every group's bits and every value's answers are in the one
        // merged scan of the rule set.
        if !plan.targets.is_empty() {
            plan.global = global.clone();
        }
        plan.merged = plan
            .targets
            .iter()
            .map(|(_, pgs)| TargetMerge::of(pgs))
            .collect();
    }
    plans
}

/// Whether the union pass ORs the operator answers of the rule's values
/// (`Rule::answer_targets`): a chain starter evaluated at request time
/// (see [`answers_readable`]).
fn answers_planned(r: &Rule) -> bool {
    matches!(r.folded, crate::fold::Folded::No) && answers_readable(r)
}

/// Whether the union pass's answers can stand for a link's: its operator
/// has a slot and it reads only phase-stable request data (no counts), so
/// the values the pass sees are all the values it can read.
fn answers_readable(l: &Rule) -> bool {
    l.op_slot.is_some()
        && l.targets.iter().any(|t| !t.negated)
        && l.targets
            .iter()
            .all(|t| t.negated || !t.count && phase_stable(t.var))
}

/// The literals of all groups; each group's bits start on a word boundary.
pub struct GlobalFilter {
    ac: AhoCorasick,
    pat_bit: Vec<u32>,
    /// Rules' single-byte literals, by bit (see [`ByteSlots`]).
    bytes: ByteSlots,
    words: usize,
    /// Distinct per filter ever built in the process: what a thread's
    /// remembered scans belong to (an address could be reused).
    id: u64,
    /// Every function of the groups' transformation chains, once each.
    transforms: Vec<Transform>,
    /// The multiMatch links' step checks, by step slot (see `Rule::step_slot`).
    steps: Vec<StepCheck>,
    /// Words of operator answers per remembered value (see `Rule::op_slot`).
    op_words: usize,
}

/// A multiMatch link's transformations and literals: the link evaluates
/// the value after each step that changes it, so whether any step's value
/// holds one of its literals is a fact of the value.
pub struct StepCheck {
    pub transforms: Vec<Transform>,
    pub prefilter: Prefilter,
}

impl StepCheck {
    /// Whether the original value, or its value after any step that
    /// changes it, may match (the steps `engine::collect_hits` evaluates).
    pub fn passes(&self, value: &[u8]) -> bool {
        if self.prefilter.may_match(value) {
            return true;
        }
        let mut v: Cow<'_, [u8]> = Cow::Borrowed(value);
        for t in &self.transforms {
            if let Some(nv) = t.apply(&v) {
                if self.prefilter.may_match(&nv) {
                    return true;
                }
                v = Cow::Owned(nv);
            }
        }
        false
    }
}

/// Step slots a rule set has (one word of facts per value).
const STEP_SLOTS: usize = 64;

/// Operator answer slots a rule set has (CRS v4 has a few hundred links
/// whose operator reads the value alone).
const OP_SLOTS: usize = 1024;

/// Remembered scans per thread. Header values, cookie and
/// argument names repeat across requests (browsers, API clients), and
/// scanning a value with every group's literals is the largest single cost
/// of a benign request; a keyed hash and a copy of the result cost a
/// fraction of it.
const MEMO_ENTRIES: usize = 4096;
/// Which transformation functions (bits by [`Transform::code`]) leave a
/// value unchanged and which change it: pure functions of the value,
/// remembered with its scan so a value seen again is not transformed
/// again only to learn that nothing changes.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ValueFacts {
    pub same: u64,
    pub changes: u64,
    /// The escape bytes the value holds ([`ChainMask::escapes_in`]).
    pub esc: u8,
    /// By step slot: whether some step of that multiMatch link may match
    /// ([`StepCheck::passes`]).
    pub steps: u64,
    /// Groups (bit by group index) whose scan of the value transformed by
    /// their chain is held with the merged scan (see `ScanMemo::chains`).
    pub chains: u64,
    /// Whether the scan has no bit set: known when it was recalled (its
    /// non-zero words are held), so the caller need not look at its words.
    pub zero: Option<bool>,
}

impl ValueFacts {
    /// Apply each of `transforms` to `value` once.
    pub fn of(value: &[u8], transforms: &[Transform], steps: &[StepCheck]) -> ValueFacts {
        let mut f = ValueFacts {
            esc: ChainMask::escapes_in(value),
            ..ValueFacts::default()
        };
        for t in transforms {
            if t.apply(value).is_some() {
                f.changes |= t.bit();
            } else {
                f.same |= t.bit();
            }
        }
        for (i, s) in steps.iter().enumerate().take(STEP_SLOTS) {
            if s.passes(value) {
                f.steps |= 1 << i;
            }
        }
        f
    }
}

/// A remembered scan: its non-zero words (a scan is mostly zero words),
/// and the [`ValueFacts`] the filter asked to remember with it.
struct ScanMemo {
    words: Box<[(u32, u64)]>,
    facts: ValueFacts,
    /// Operator answers learnt for the value, by op slot: `op_words`
    /// words of "known", then as many of "matched" (none until the first).
    ops: Option<Box<[u64]>>,
    /// The non-zero words of the groups' scans of the value transformed by
    /// their chains, laid out as the merged scan (groups in `facts.chains`):
    /// at most one entry per word of the merged scan (36 for CRS v4).
    chains: Vec<(u32, u64)>,
    /// What the value adds to a union plan target's group words, by
    /// [`contrib_key`]: the non-zero words, by index in the plan's
    /// accumulator (see `TCache::union_target`).
    contribs: Vec<(u32, Contribution)>,
}

/// A value's non-zero words in a union plan's accumulator, by index.
pub type Contribution = Box<[(u32, u64)]>;

/// Most union plan targets a value's contributions are kept for.
const MAX_CONTRIBS: usize = 8;

/// The key of a value's contribution to target `target` of phase `phase`'s
/// union plan.
pub fn contrib_key(phase: u8, target: usize) -> u32 {
    u32::from(phase) << 24 | (target as u32 & 0xff_ffff)
}

/// Call `f` with the contribution `key` held with the remembered merged
/// scan of `value` by filter `id` (found by `hash`); false when there is none.
pub fn memo_with_contrib(
    id: u64,
    value: &[u8],
    hash: u64,
    key: u32,
    f: impl FnOnce(&[(u32, u64)]),
) -> bool {
    SCAN_MEMO.with(|m| {
        let Ok(mut m) = m.try_borrow_mut() else {
            return false;
        };
        let Some(held) = m.held_mut(id, value, hash) else {
            return false;
        };
        match held.contribs.iter().find(|(k, _)| *k == key) {
            Some((_, words)) => {
                f(words);
                true
            }
            None => false,
        }
    })
}

/// Hold contribution `key` (`words`) with the remembered merged scan of
/// `value` by filter `id` (found by `hash`).
pub fn memo_keep_contrib(id: u64, value: &[u8], hash: u64, key: u32, words: Contribution) {
    SCAN_MEMO.with(|m| {
        let Ok(mut m) = m.try_borrow_mut() else {
            return;
        };
        let Some(held) = m.held_mut(id, value, hash) else {
            return;
        };
        if held.contribs.len() < MAX_CONTRIBS && held.contribs.iter().all(|(k, _)| *k != key) {
            held.contribs.push((key, words));
        }
    })
}

thread_local! {
    static SCAN_MEMO: std::cell::RefCell<ValueMemory<ScanMemo>> =
        std::cell::RefCell::new(ValueMemory::new(MEMO_ENTRIES));
}

/// What this thread's memory holds for a (filter, value).
pub enum Memo {
    /// The scan was appended to `out`, with the facts remembered with it
    /// (and the hash that finds the memory entry again).
    Hit(ValueFacts, u64),
    /// Seen before but not held: the caller scans and calls [`memo_store`]
    /// with this hash.
    Store(u64),
    /// Too long to remember, or seen for the first time: the caller scans.
    Miss,
}

/// Look up the remembered scan of `value` by filter `id` (`words` words),
/// appending it to `out` when held.
pub fn memo_lookup(id: u64, words: usize, value: &[u8], out: &mut Vec<u64>) -> Memo {
    memo_lookup_ops(id, words, value, out, None)
}

/// [`memo_lookup`] for the merged filter: given `ops` (and its word count),
/// it also appends there the operator answers held with the value (`2 *
/// words` words, zero when none are; see `ScanMemo::ops`), and to `out`,
/// after the scan, the groups' chain scans held with it when there are
/// any (`ValueFacts::chains`). Copied with the scan, in the same lookup:
/// nearly every remembered value is asked about by some link.
fn memo_lookup_ops(
    id: u64,
    words: usize,
    value: &[u8],
    out: &mut Vec<u64>,
    ops: Option<(&mut Vec<u64>, usize)>,
) -> Memo {
    SCAN_MEMO.with(|m| {
        let Ok(mut m) = m.try_borrow_mut() else {
            return Memo::Miss;
        };
        match m.recall(id, value) {
            Recall::Held(held, h) => {
                let base = out.len();
                out.resize(base + words, 0);
                for &(i, w) in held.words.iter() {
                    if let Some(o) = out.get_mut(base + i as usize) {
                        *o = w;
                    }
                }
                if let Some((ops, n)) = ops {
                    match &held.ops {
                        Some(a) if a.len() == 2 * n => ops.extend_from_slice(a),
                        _ => ops.resize(ops.len() + 2 * n, 0),
                    }
                    // The chains' scans follow the merged scan, same layout.
                    if held.facts.chains != 0 {
                        let base = out.len();
                        out.resize(base + words, 0);
                        for &(i, w) in &held.chains {
                            if let Some(o) = out.get_mut(base + i as usize) {
                                *o = w;
                            }
                        }
                    }
                }
                let facts = ValueFacts {
                    zero: Some(held.words.is_empty()),
                    ..held.facts
                };
                Memo::Hit(facts, h)
            }
            Recall::Again(h) => Memo::Store(h),
            Recall::New => Memo::Miss,
        }
    })
}

/// Remember the scan `bits` of `value` by filter `id` (after
/// [`Memo::Store`] gave `hash`), with `facts`.
pub fn memo_store(id: u64, value: &[u8], hash: u64, bits: &[u64], facts: ValueFacts) {
    SCAN_MEMO.with(|m| {
        let Ok(mut m) = m.try_borrow_mut() else {
            return;
        };
        let words = bits
            .iter()
            .enumerate()
            .filter(|(_, &w)| w != 0)
            .map(|(i, &w)| (i as u32, w))
            .collect();
        m.keep(
            id,
            value,
            hash,
            ScanMemo {
                words,
                facts,
                ops: None,
                chains: Vec::new(),
                contribs: Vec::new(),
            },
        );
    })
}

/// `scan(value, out)`, which appends `words` words and is a pure function
/// of the value and the filter `id`, answered from this thread's memory
/// of recent scans when it holds them. When the value is remembered, so
/// are `facts(value)`, which are returned with the hash that finds the
/// memory entry again (`None`: the value is not remembered, or was seen
/// for the first time).
fn remembered(
    id: u64,
    words: usize,
    value: &[u8],
    out: &mut Vec<u64>,
    mut ops: Option<(&mut Vec<u64>, usize)>,
    scan: impl Fn(&[u8], &mut Vec<u64>),
    facts: impl Fn(&[u8]) -> ValueFacts,
) -> Option<(ValueFacts, u64)> {
    let asked = ops.as_mut().map(|(o, n)| (&mut **o, *n));
    match memo_lookup_ops(id, words, value, out, asked) {
        Memo::Hit(f, h) => Some((f, h)),
        Memo::Miss => {
            scan(value, out);
            None
        }
        Memo::Store(h) => {
            let base = out.len();
            scan(value, out);
            let f = facts(value);
            memo_store(id, value, h, out.get(base..).unwrap_or_default(), f);
            if let Some((ops, n)) = ops {
                ops.resize(ops.len() + 2 * n, 0);
            }
            Some((f, h))
        }
    }
}

/// Record operator answer `slot` (`matched`) with the remembered merged
/// scan of `value` by filter `id` (found by `hash`), of `words` words;
/// nothing when the value is no longer held.
pub fn memo_keep_op(id: u64, value: &[u8], hash: u64, words: usize, slot: u32, matched: bool) {
    SCAN_MEMO.with(|m| {
        let Ok(mut m) = m.try_borrow_mut() else {
            return;
        };
        let Some(held) = m.held_mut(id, value, hash) else {
            return;
        };
        let ops = held
            .ops
            .get_or_insert_with(|| vec![0; 2 * words].into_boxed_slice());
        set_answer(ops, words, slot, matched);
    })
}

/// Hold group `gid`'s scan `bits` (its words, from word `gword` of the
/// merged layout) of `value` transformed by its chain, with the value's
/// remembered merged scan by filter `id` (found by `hash`).
pub fn memo_keep_chain(id: u64, value: &[u8], hash: u64, gid: u32, gword: usize, bits: &[u64]) {
    if gid >= 64 {
        return;
    }
    SCAN_MEMO.with(|m| {
        let Ok(mut m) = m.try_borrow_mut() else {
            return;
        };
        let Some(held) = m.held_mut(id, value, hash) else {
            return;
        };
        if held.facts.chains & 1 << gid != 0 {
            return;
        }
        held.facts.chains |= 1 << gid;
        for (i, &w) in bits.iter().enumerate().filter(|(_, &w)| w != 0) {
            held.chains.push(((gword + i) as u32, w));
        }
    })
}

/// Set answer `slot` in `2 * words` words of "known" then "matched" bits.
pub fn set_answer(ops: &mut [u64], words: usize, slot: u32, matched: bool) {
    let (w, b) = (slot as usize / 64, 1u64 << (slot % 64));
    if let Some(k) = ops.get_mut(w) {
        *k |= b;
    }
    if let Some(a) = ops.get_mut(words + w) {
        if matched {
            *a |= b;
        } else {
            *a &= !b;
        }
    }
}

/// Answer `slot` in words laid out as [`set_answer`] writes them.
pub fn get_answer(ops: &[u64], words: usize, slot: u32) -> Option<bool> {
    let (w, b) = (slot as usize / 64, 1u64 << (slot % 64));
    let known = ops.get(w)? & b != 0;
    known.then(|| ops.get(words + w).is_some_and(|a| a & b != 0))
}

impl GlobalFilter {
    /// [`GlobalFilter::scan`], remembered per thread (see [`remembered`])
    /// with what the group chains' functions do to the value, and the hash
    /// of its memory entry. When it is remembered, the operator answers
    /// held with it are appended to `ops` (`2 * op_words` words; see
    /// [`set_answer`]).
    pub fn scan_remembered(
        &self,
        value: &[u8],
        out: &mut Vec<u64>,
        ops: Option<&mut Vec<u64>>,
    ) -> Option<(ValueFacts, u64)> {
        remembered(
            self.id,
            self.words,
            value,
            out,
            ops.map(|o| (o, self.op_words)),
            |v, o| self.scan(v, o),
            |v| ValueFacts::of(v, &self.transforms, &self.steps),
        )
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Words of a merged scan.
    pub fn words(&self) -> usize {
        self.words
    }

    /// Words of operator answers per value ("known", then as many "matched").
    pub fn op_words(&self) -> usize {
        self.op_words
    }

    /// Append `words` words: bit `gword * 64 + slot` set when a literal of
    /// that group's rule occurs in `value`.
    pub fn scan(&self, value: &[u8], out: &mut Vec<u64>) {
        let base = out.len();
        out.resize(base + self.words, 0);
        let out = &mut out[base..];
        for m in self.ac.find_overlapping_iter(value) {
            let b = self.pat_bit[m.pattern().as_usize()] as usize;
            out[b / 64] |= 1 << (b % 64);
        }
        self.bytes.scan(value, out);
    }
}

impl GroupFilter {
    /// Append to `out` one bit per rule of the group: set when one of the
    /// rule's literals occurs in `value`.
    pub fn slot_count(&self) -> usize {
        self.slots
    }

    pub fn pattern_count(&self) -> usize {
        self.pat_slot.len()
    }

    pub fn words(&self) -> usize {
        self.slots.div_ceil(64)
    }

    /// [`GroupFilter::scan`], remembered per thread (see [`remembered`]).
    pub fn scan_remembered(&self, value: &[u8], out: &mut Vec<u64>) {
        remembered(
            self.id,
            self.words(),
            value,
            out,
            None,
            |v, o| self.scan(v, o),
            |_| ValueFacts::default(),
        );
    }

    pub fn scan(&self, value: &[u8], out: &mut Vec<u64>) {
        let words = self.slots.div_ceil(64);
        let base = out.len();
        if self.failed {
            out.resize(base + words, u64::MAX);
            return;
        }
        out.resize(base + words, 0);
        if let Some(ac) = &self.ac {
            for m in ac.find_overlapping_iter(value) {
                let s = self.pat_slot[m.pattern().as_usize()] as usize;
                out[base + s / 64] |= 1 << (s % 64);
            }
        }
        self.bytes.scan(value, &mut out[base..]);
    }
}

/// A group's own automaton only scans values its transformation chain
/// changed (the merged scan covers the rest), so a contiguous NFA: full
/// DFAs here took ~70 MB more and ~250 ms more to build the CRS, for no
/// measurable per-transaction gain.
fn build_ac(lits: &[Vec<u8>]) -> Option<AhoCorasick> {
    AhoCorasickBuilder::new()
        .match_kind(MatchKind::Standard)
        .ascii_case_insensitive(true)
        .kind(Some(AhoCorasickKind::ContiguousNFA))
        .build(lits)
        .or_else(|_| {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::Standard)
                .ascii_case_insensitive(true)
                .build(lits)
        })
        .ok()
}

pub fn bit(bits: &[u64], slot: u32) -> bool {
    bits.get(slot as usize / 64)
        .is_some_and(|w| w >> (slot % 64) & 1 == 1)
}

/// Shortest literal a rule may have to join a merged group.
const MIN_GROUP_LIT: usize = 2;

/// Literals the merged overlapping scans can afford: two bytes or more, or
/// a single byte that is rare in benign values (not a letter, digit,
/// whitespace or common separator), so it does not report a match at most
/// positions of every value.
fn groupable_literal(l: &[u8]) -> bool {
    match l {
        [b] => {
            !(b.is_ascii_alphanumeric() || b.is_ascii_whitespace() || b".,/-_:;=&+%".contains(b))
        }
        _ => l.len() >= MIN_GROUP_LIT,
    }
}

/// A set of byte values.
type ByteSet = [u64; 4];

fn byte_set(v: &[u8]) -> ByteSet {
    let mut s = [0u64; 4];
    for &b in v {
        s[usize::from(b >> 6)] |= 1 << (b & 63);
    }
    s
}

/// Rules' common single-byte literals (letters, digits, separators): an
/// overlapping scan would report them at most positions of every value, so
/// a value's set of bytes is taken once and met with each rule's set.
#[derive(Default)]
struct ByteSlots {
    /// (bit or slot to set, the rule's bytes in both cases).
    slots: Vec<(u32, ByteSet)>,
}

impl ByteSlots {
    fn add(&mut self, slot: u32, lits: &[Vec<u8>]) {
        let mut set = [0u64; 4];
        for l in lits.iter().filter(|l| !groupable_literal(l)) {
            for b in l
                .iter()
                .flat_map(|b| [b.to_ascii_lowercase(), b.to_ascii_uppercase()])
            {
                set[usize::from(b >> 6)] |= 1 << (b & 63);
            }
        }
        if set != [0; 4] {
            self.slots.push((slot, set));
        }
    }

    /// Set the bit of each rule whose bytes occur in `value`.
    fn scan(&self, value: &[u8], out: &mut [u64]) {
        if self.slots.is_empty() {
            return;
        }
        let have = byte_set(value);
        for (bit, set) in &self.slots {
            if set.iter().zip(&have).any(|(a, b)| a & b != 0) {
                if let Some(w) = out.get_mut(*bit as usize / 64) {
                    *w |= 1 << (bit % 64);
                }
            }
        }
    }
}

/// A group being collected.
struct Pending {
    gid: u32,
    /// Literals for the automaton (see [`groupable_literal`]).
    lits: Vec<Vec<u8>>,
    pat_slot: Vec<u32>,
    bytes: ByteSlots,
    slots: u32,
    transforms: Vec<(Transform, u32)>,
}

/// Assign every prefiltered rule (and chain link) to the group of its
/// transformation chain, and build one merged automaton per group.
pub fn build_groups(phases: &mut [Vec<Entry>; 5]) -> Vec<GroupFilter> {
    // chain id (None: no transformations) -> (literals, their slots, slot count)
    let mut by_chain: HashMap<Option<u32>, Pending> = HashMap::new();
    let mut next_gid = 0u32;
    let mut steps: Vec<StepCheck> = Vec::new();
    let mut op_slots = 0usize;
    for phase in phases.iter_mut() {
        for e in phase.iter_mut() {
            let Entry::Rule(r) = e else { continue };
            let mut cur: Option<&mut Rule> = Some(r);
            let mut starter = true;
            while let Some(rule) = cur {
                if let (Some(pf), true, false) = (
                    &rule.prefilter,
                    rule.multi_match,
                    rule.transforms.is_empty(),
                ) {
                    if steps.len() < STEP_SLOTS {
                        rule.step_slot = Some(steps.len() as u32);
                        steps.push(StepCheck {
                            transforms: rule.transforms.iter().map(|t| t.0).collect(),
                            prefilter: pf.clone(),
                        });
                    }
                }
                let value_only = matches!(&rule.op, Op::Real { op, .. } if op.value_only());
                if value_only && op_slots < OP_SLOTS {
                    rule.op_slot = Some(op_slots as u32);
                    op_slots += 1;
                }
                // Common single-byte literals would flood the merged
                // overlapping scan: they are met as byte sets instead.
                if let (Some(pf), false) = (&rule.prefilter, rule.multi_match) {
                    let chain = rule.transforms.last().map(|t| t.1);
                    let g = by_chain.entry(chain).or_insert_with(|| {
                        next_gid += 1;
                        Pending {
                            gid: next_gid - 1,
                            lits: Vec::new(),
                            pat_slot: Vec::new(),
                            bytes: ByteSlots::default(),
                            slots: 0,
                            transforms: rule.transforms.clone(),
                        }
                    });
                    let slot = g.slots;
                    g.slots += 1;
                    for l in pf.lits.iter().filter(|l| groupable_literal(l)) {
                        g.lits.push(l.clone());
                        g.pat_slot.push(slot);
                    }
                    g.bytes.add(slot, &pf.lits);
                    rule.group = Some((g.gid, slot));
                    let stable = rule
                        .targets
                        .iter()
                        .all(|t| t.negated || !t.count && phase_stable(t.var));
                    rule.skippable = starter && stable;
                }
                starter = false;
                cur = rule.chain.as_deref_mut();
            }
        }
    }
    let mut pending: Vec<Pending> = by_chain.into_values().collect();
    pending.sort_by_key(|p| p.gid);
    let mut glits: Vec<Vec<u8>> = Vec::new();
    let mut gbits: Vec<u32> = Vec::new();
    let mut gbytes = ByteSlots::default();
    let mut gwords = Vec::with_capacity(pending.len());
    let mut words = 0usize;
    for p in &pending {
        gwords.push(words);
        for (l, &slot) in p.lits.iter().zip(&p.pat_slot) {
            glits.push(l.clone());
            gbits.push((words * 64) as u32 + slot);
        }
        for &(slot, set) in &p.bytes.slots {
            gbytes.slots.push(((words * 64) as u32 + slot, set));
        }
        words += (p.slots as usize).div_ceil(64);
    }
    // A contiguous NFA too: a full DFA over every group's literals took
    // ~80 MB more memory and longer to build, for no measurable scan speed-up.
    let mut functions: Vec<Transform> = Vec::new();
    for (t, _) in pending.iter().flat_map(|p| &p.transforms) {
        if !functions.iter().any(|f| f.bit() == t.bit()) {
            functions.push(*t);
        }
    }
    let global = build_ac(&glits).map(|ac| {
        Arc::new(GlobalFilter {
            ac,
            pat_bit: gbits,
            bytes: gbytes,
            words,
            id: crate::memory::next_id(),
            transforms: functions,
            steps,
            op_words: op_slots.div_ceil(64),
        })
    });
    let mut groups: Vec<(u32, GroupFilter)> = pending
        .into_iter()
        .zip(gwords)
        .map(|(p, gword)| {
            let Pending {
                gid,
                lits,
                pat_slot,
                bytes,
                slots,
                transforms,
            } = p;
            let ac = if lits.is_empty() {
                None
            } else {
                build_ac(&lits)
            };
            let failed = ac.is_none() && !lits.is_empty();
            let chain_mask = ChainMask::new(&transforms);
            (
                gid,
                GroupFilter {
                    id: crate::memory::next_id(),
                    chain_id: crate::memory::next_id(),
                    global: if failed { None } else { global.clone() },
                    gword,
                    chain_mask,
                    ac,
                    failed,
                    pat_slot,
                    bytes,
                    slots: slots as usize,
                    transforms,
                },
            )
        })
        .collect();
    groups.sort_by_key(|g| g.0);
    groups.into_iter().map(|g| g.1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(lits: &[&str]) -> GlobalFilter {
        let lits: Vec<Vec<u8>> = lits.iter().map(|l| l.as_bytes().to_vec()).collect();
        GlobalFilter {
            ac: build_ac(&lits).unwrap(),
            pat_bit: (0..lits.len() as u32).collect(),
            bytes: ByteSlots::default(),
            words: lits.len().div_ceil(64),
            id: crate::memory::next_id(),
            transforms: ["lowercase", "urlDecodeUni", "removeWhitespace", "none"]
                .iter()
                .map(|n| Transform::from_name(n).unwrap())
                .collect(),
            steps: Vec::new(),
            op_words: 0,
        }
    }

    /// A remembered value comes back with what each function does to it,
    /// as applying the functions says; a value seen once comes back with
    /// nothing known.
    #[test]
    fn remembered_values_carry_what_the_functions_do() {
        let g = global(&["union"]);
        let bit = |n: &str| Transform::from_name(n).unwrap().bit();
        let cases: [(&[u8], &[&str]); 3] = [
            (
                b"plain-text-value-1",
                &["lowercase", "urlDecodeUni", "removeWhitespace", "none"],
            ),
            (b"Mixed Case%20value-2", &["none"]),
            (b"a b-3", &["lowercase", "urlDecodeUni", "none"]),
        ];
        for (v, same) in cases {
            let mut out = Vec::new();
            assert_eq!(
                g.scan_remembered(v, &mut out, None),
                None,
                "first sighting of {v:?}"
            );
            for _ in 0..2 {
                let (f, _) = g.scan_remembered(v, &mut out, None).expect("remembered");
                let want: u64 = same.iter().map(|n| bit(n)).sum();
                assert_eq!(f.same, want, "{v:?}");
                let all =
                    bit("lowercase") | bit("urlDecodeUni") | bit("removeWhitespace") | bit("none");
                assert_eq!(f.changes, all & !want, "{v:?}");
            }
        }
    }

    /// Values that differ in a few bytes of one word (header names such as
    /// `Sec-Fetch-Site` and `Sec-Fetch-Mode`) are remembered side by side:
    /// they do not keep taking each other's slot of the seen table.
    #[test]
    fn similar_values_are_all_remembered() {
        let g = global(&["union"]);
        let values: Vec<String> = (0..300).map(|i| format!("Sec-Fetch-{i:04}")).collect();
        let mut out = Vec::new();
        for _ in 0..2 {
            for v in &values {
                g.scan_remembered(v.as_bytes(), &mut out, None);
            }
        }
        let held = values
            .iter()
            .filter(|v| g.scan_remembered(v.as_bytes(), &mut out, None).is_some())
            .count();
        assert!(held >= 285, "{held} of 300 remembered");
    }

    /// The remembered scan answers as the scan does, per filter: a value
    /// remembered for one filter is scanned again for another.
    #[test]
    fn remembered_scans_match_fresh_ones() {
        let a = global(&["select", "union", "<script"]);
        let b = global(&["shoes", "union"]);
        let values: [&[u8]; 5] = [
            b"1 UNION select",
            b"red shoes",
            b"",
            b"<script>",
            b"1 union",
        ];
        for round in 0..3 {
            for f in [&a, &b] {
                for v in values {
                    let (mut fresh, mut kept) = (vec![7u64], vec![7u64]);
                    f.scan(v, &mut fresh);
                    f.scan_remembered(v, &mut kept, None);
                    assert_eq!(fresh, kept, "round {round}, value {v:?}");
                }
            }
        }
        // Long values are not remembered, and still answer.
        let long = [b"x".repeat(crate::memory::MAX_VALUE), b"union".to_vec()].concat();
        let mut out = Vec::new();
        a.scan_remembered(&long, &mut out, None);
        assert_eq!(out, vec![0b10]);
        // A full memory replaces values without changing answers (a value is
        // remembered the second time it is seen, answered from memory the third).
        for i in 0..MEMO_ENTRIES + 10 {
            let v = format!("v{i} union");
            for _ in 0..3 {
                let mut out = Vec::new();
                b.scan_remembered(v.as_bytes(), &mut out, None);
                assert_eq!(out, vec![0b10], "{v}");
            }
        }
    }

    #[test]
    fn filters() {
        let p = Prefilter::build(vec![b"select".to_vec(), b"union".to_vec()]).unwrap();
        assert!(p.may_match(b"1 union all"));
        assert!(!p.may_match(b"shoes"));
        assert!(p.may_match(b"1 UnIoN all"));
        assert!(Prefilter::build(vec![]).is_none());
        // One-byte literals are answered from the table on short values.
        let p = Prefilter::build(vec![b"\n".to_vec(), b"e".to_vec()]).unwrap();
        assert!(p.may_match(b"abE"));
        assert!(p.may_match(b"x\ny"));
        assert!(!p.may_match(b"abc"));
        assert!(p.may_match(&[b"a".repeat(100), b"E".to_vec()].concat()));
        assert!(!p.may_match(&b"a".repeat(100)));
        // First bytes present but no literal: the automaton decides.
        let p = Prefilter::build(vec![b"data:".to_vec(), b"@".to_vec()]).unwrap();
        assert!(!p.may_match(b"dat"));
        assert!(p.may_match(b"xDATA:y"));
        assert!(p.may_match(b"a@b"));
        assert!(!p.may_match(b"none here"));
        assert!(Prefilter::build(vec![b"".to_vec()]).is_none());
    }
}
