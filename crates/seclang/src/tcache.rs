//! Transformation cache: within a transaction, a request value transformed
//! by a given chain prefix (`t:utf8toUnicode,t:urlDecodeUni`, ...) is
//! computed once and shared by every rule using that prefix, in every
//! phase. Keys are the value's address and length (a value's buffer lives,
//! unchanged, until the transaction ends: see `TxState`) and the interned
//! prefix id.

use crate::fxhash::FxHashMap;
use crate::ops::Transform;
use crate::prefilter::{
    bit, memo_lookup, memo_store, ChainMask, GlobalFilter, GroupFilter, Memo, PlanGroup,
    TargetMerge, ValueFacts,
};
use crate::variables::Item;
use std::collections::hash_map::Entry;
use std::ops::Deref;
use std::sync::Arc;

/// A transformed value: the original, a cached result, or a fresh one.
pub enum Val<'v> {
    Borrowed(&'v [u8]),
    Shared(Arc<[u8]>),
}

impl Deref for Val<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Val::Borrowed(b) => b,
            Val::Shared(a) => a,
        }
    }
}

/// Bound on cached entries per phase, so a request with very many values cannot grow it without limit.
const MAX_ENTRIES: usize = 50_000;

/// Bit words a pooled cache may keep allocated (8 MiB).
const MAX_RETAINED_BITS: usize = 1 << 20;

/// (value address, value length, transformation-prefix id).
type Key = (usize, usize, u32);

/// Per value: bit sets over [`Transform::code`], and where its merged
/// prefilter scan is.
#[derive(Clone, Copy)]
struct ItemRec {
    same: u64,
    changes: u64,
    /// Offset in `bits` of the merged scan of the untransformed value ([`NO_SCAN`]: not yet).
    goff: u32,
    /// The merged scan found no literal of any group.
    zero: bool,
    /// Escape bytes the value holds (see `ChainMask::escapes_in`), taken
    /// with the merged scan.
    esc: u8,
    /// The multiMatch step facts remembered with the merged scan
    /// (`ValueFacts::steps`), when it was remembered.
    steps: Option<u64>,
    /// Offset in `TCache::ops` of the operator answers remembered with the
    /// merged scan ([`NO_SCAN`]: not remembered), and the hash of that
    /// memory entry (to add the answers learnt now).
    ooff: u32,
    memo: u64,
    /// Groups whose chain scans of the value came with the merged scan
    /// (`ValueFacts::chains`), at `goff + words` in the merged layout.
    cknown: u64,
    coff: u32,
}

const NO_SCAN: u32 = u32::MAX;

impl Default for ItemRec {
    fn default() -> Self {
        ItemRec {
            same: 0,
            changes: 0,
            goff: NO_SCAN,
            esc: 0,
            zero: false,
            steps: None,
            ooff: NO_SCAN,
            memo: 0,
            cknown: 0,
            coff: NO_SCAN,
        }
    }
}

/// Value buffers (address, length), as a small direct-mapped table: a
/// buffer whose slot another took is simply not found, which only costs it
/// being evaluated again. Entries of earlier uses are told apart by a
/// generation, so starting over clears nothing.
#[derive(Default)]
pub struct BufSet {
    slots: Vec<(usize, usize, u32)>,
    generation: u32,
}

const BUF_SET_SLOTS: usize = 256;

impl BufSet {
    /// Start empty.
    pub fn clear(&mut self) {
        if self.slots.is_empty() {
            self.slots = vec![(0, 0, 0); BUF_SET_SLOTS];
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.slots.fill((0, 0, 0));
            self.generation = 1;
        }
    }

    fn slot(buf: (usize, usize)) -> usize {
        (buf.0 >> 4 ^ buf.0 >> 12 ^ buf.1) % BUF_SET_SLOTS
    }

    pub fn contains(&self, buf: &(usize, usize)) -> bool {
        self.slots
            .get(Self::slot(*buf))
            .is_some_and(|&(a, l, g)| g == self.generation && (a, l) == *buf)
    }

    pub fn insert(&mut self, buf: (usize, usize)) {
        let generation = self.generation;
        if let Some(s) = self.slots.get_mut(Self::slot(buf)) {
            *s = (buf.0, buf.1, generation);
        }
    }
}

/// OR each group's bits of a merged scan into the group's words of `accs`
/// (`scan` starts at the scan's word `lo`). A group whose bits are not in
/// it (a plan without its merge data) gets "may match".
fn or_group_bits(accs: &mut [u64], pgs: &[PlanGroup], scan: &[u64], lo: usize) {
    for pg in pgs.iter().filter(|pg| pg.gword != u32::MAX) {
        let (off, words) = (pg.acc as usize, pg.words as usize);
        let from = (pg.gword as usize).saturating_sub(lo);
        let Some(acc) = accs.get_mut(off..off + words) else {
            continue;
        };
        match scan.get(from..from + words) {
            Some(src) => acc.iter_mut().zip(src).for_each(|(a, b)| *a |= b),
            None => acc.fill(u64::MAX),
        }
    }
}

/// OR `words` (non-zero words by index, see `prefilter::Contribution`) into `accs`.
fn or_words(accs: &mut [u64], words: &[(u32, u64)]) {
    for &(i, w) in words {
        if let Some(a) = accs.get_mut(i as usize) {
            *a |= w;
        }
    }
}

/// What an item's merged scan gave (see `TCache::merged_scan`).
#[derive(Clone, Copy)]
struct Merged {
    /// Offset of the scan in `bits`.
    goff: usize,
    /// Functions known to leave the value unchanged, and to change it.
    same: u64,
    changes: u64,
    /// The scan found no literal of any group.
    zero: bool,
    /// Escape bytes the value holds.
    esc: u8,
    /// Groups whose chain scans follow (see `ItemRec::cknown`), at `coff`.
    cknown: u64,
    coff: usize,
    /// Offset of its remembered operator answers in `ops` (`NO_SCAN`: none).
    ooff: u32,
    /// The hash of its memory entry (with `ooff`).
    memo: u64,
}

/// Where the union pass ORs one target's values into: its words per
/// group (`UnionPlan`), and its operator answer words (see
/// `TCache::target_answer`).
pub struct UnionAcc<'a> {
    pub groups: &'a mut [u64],
    pub answers: &'a mut [u64],
    /// For a target read by many groups: the key its values'
    /// contributions are remembered by (`prefilter::contrib_key`).
    pub contrib: Option<u32>,
}

/// A group whose union is not computed (see `TCache::unions`).
const NO_UNION: u32 = u32::MAX;

#[derive(Default)]
pub struct TCache {
    /// (value address, length) -> which transformation functions leave
    /// the original value unchanged, and which change it.
    items: FxHashMap<(usize, usize), ItemRec>,
    /// The union pass's OR of one target's merged scans (kept for its allocation).
    merged_buf: Vec<u64>,
    /// A value's group words while its contribution is worked out.
    contrib_buf: Vec<u64>,
    /// Value buffers one target's union already took in.
    union_seen: BufSet,
    /// The transaction's arguments share buffers (`TxState::args_shared`):
    /// the union pass looks for repeats.
    pub args_shared: bool,
    /// Values a prefix transformed (prefixes past the value's first change only).
    map: FxHashMap<Key, Arc<[u8]>>,
    /// (value address, length, prefilter group) -> offset of the group's
    /// bits for that value in `bits`.
    groups: FxHashMap<Key, u32>,
    /// The value `transformed` last looked up and its merged-scan offset
    /// (the prefilter asks about the same value next).
    last: Option<((usize, usize), u32)>,
    bits: Vec<u64>,
    /// Operator answers of remembered values (see `ItemRec::ooff`), of
    /// `op_words` words each half.
    ops: Vec<u64>,
    op_words: usize,
    /// The merged filter whose remembered scans the records came from (the
    /// key of their memory entries, to add what is learnt now).
    memo_id: u64,
    /// Prefilter group (index) -> offset in `bits` of the phase-wide union
    /// over all the items the group's skippable rules can target; `NO_UNION`
    /// or past the end: not computed. Asked once per skippable rule, so a
    /// direct index rather than a map.
    unions: Vec<u32>,
    /// The phase's union words per (target, group) (see `UnionPlan`);
    /// empty until the phase's unions are computed.
    target_unions: Vec<u64>,
    /// Per plan target, `answer_words` words: the operator slots for which
    /// some value of the target has no remembered answer or a match (see
    /// `target_answer`).
    target_answers: Vec<u64>,
    answer_words: usize,
    /// The phase's union pass ran.
    unions_done: bool,
    /// Once it ran: the phase's gates (by entry index) the rule loop visits
    /// (see `UnionPlan::live`); a rule the unions rule out has no bit.
    pub live: Vec<u64>,
    pub hits: u64,
    /// The allocation rule item lists reuse (always empty between uses; see `recycle`).
    pub item_buf: Vec<Item<'static>>,
    /// The value buffers a rule's evaluation found no match in.
    pub no_match_buf: BufSet,
    /// The list of runtime target exclusions a rule's evaluation checks, reused.
    pub excl_buf: Vec<&'static crate::actions::TargetName>,
    /// The list a rule's evaluation collects its matches in, reused.
    pub(crate) hits_buf: crate::engine::Hits,
    /// The capture groups' buffers a rule's evaluation writes into, reused.
    pub caps_buf: Vec<Vec<u8>>,
    /// The last transaction's state buffers, for the next one.
    pub(crate) spare: crate::state::Spare,
}

/// An empty list with the allocation of `v`, for items of another lifetime
/// (the collect runs in place: same element layout, no element survives).
// `filter_map` is what changes the element lifetime; `filter` cannot.
#[allow(clippy::unnecessary_filter_map)]
pub fn recycle<'b>(mut v: Vec<Item<'_>>) -> Vec<Item<'b>> {
    // Nearly every item borrows its key and value: those need no drop call
    // (thousands per JSON transaction), only owned ones are dropped.
    for it in v.drain(..) {
        if matches!(it.key, std::borrow::Cow::Owned(_))
            || matches!(it.value, std::borrow::Cow::Owned(_))
        {
            drop(it);
        } else {
            std::mem::forget(it);
        }
    }
    v.into_iter().filter_map(|_| None).collect()
}

/// An empty list of references with the allocation of `v`, for another
/// lifetime (as `recycle`: nothing survives the in-place collect).
#[allow(clippy::unnecessary_filter_map)]
pub fn recycle_refs<'b, T: ?Sized + 'b>(mut v: Vec<&T>) -> Vec<&'b T> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

thread_local! {
    /// Caches of finished transactions, reused so their tables keep their
    /// capacity instead of growing again on every request.
    /// Boxed: a transaction takes and gives back a pointer, not the
    /// cache's 900 bytes (moved several times a request otherwise).
    #[allow(clippy::vec_box)]
    static POOL: std::cell::RefCell<Vec<Box<TCache>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl TCache {
    pub fn clear(&mut self) {
        self.items.clear();
        self.map.clear();
        self.groups.clear();
        self.last = None;
        self.bits.clear();
        self.ops.clear();
        self.unions.clear();
        self.target_unions.clear();
        self.target_answers.clear();
        self.unions_done = false;
        self.hits_buf.clear();
    }

    /// Start a new phase of the same transaction. Per-value results stay:
    /// request values keep their buffers until the transaction ends (later
    /// phases only add data, see `TxState`), so phase 2 reuses what phase 1
    /// computed for headers, cookies and the query. The phase-wide unions
    /// are recomputed: a new phase adds values (body arguments, response).
    pub fn next_phase(&mut self) {
        self.unions.clear();
        self.target_unions.clear();
        self.target_answers.clear();
        self.unions_done = false;
    }

    /// Whether the phase's union pass ran (see `Engine::compute_unions`).
    pub fn unions_done(&self) -> bool {
        self.unions_done
    }

    /// The per-target answer words' buffer, emptied and sized for `targets`
    /// targets of `words` words each, for the union pass.
    pub fn answers_buf(&mut self, targets: usize, words: usize) -> Vec<u64> {
        let mut v = std::mem::take(&mut self.target_answers);
        v.clear();
        v.resize(targets * words, 0);
        self.answer_words = words;
        v
    }

    /// Keep the phase's unions: per (target, group) and per target's answers.
    pub fn set_unions_done(&mut self, accs: Vec<u64>, answers: Vec<u64>) {
        self.target_unions = accs;
        self.target_answers = answers;
        self.unions_done = true;
    }

    /// Whether some value of plan target `ti` may pass the link with
    /// operator slot `slot`: `Some(false)` when the phase's union pass found
    /// every value's answer remembered as a failure (a target with no value
    /// included); `None` before the pass.
    pub fn target_answer(&self, ti: u32, slot: u32) -> Option<bool> {
        let w = self.answer_words;
        let from = ti as usize * w;
        match self.target_answers.get(from..from + w) {
            Some(a) if w > 0 => Some(bit(a, slot)),
            _ => None,
        }
    }

    /// The per-(target, group) words' buffer, for reuse.
    pub fn target_unions_buf(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.target_unions)
    }

    /// Whether `slot` is set in the words of one (target, group) pair at
    /// `off`; `None` before the phase's unions are computed.
    pub fn target_union_bit(&self, off: u32, slot: u32) -> Option<bool> {
        self.target_unions
            .get(off as usize..)
            .filter(|w| !w.is_empty())
            .map(|w| bit(w, slot))
    }

    /// Whether `slot` is set in the phase-wide union of group `gid`, once computed.
    pub fn union_bit(&self, gid: u32, slot: u32) -> Option<bool> {
        self.unions
            .get(gid as usize)
            .filter(|&&off| off != NO_UNION)
            .map(|&off| bit(self.bits.get(off as usize..).unwrap_or_default(), slot))
    }

    /// When `v` is the item's own (untransformed) value, or differs from it
    /// only in ASCII case (`t:lowercase`; the automata match literals
    /// case-insensitively, so the scans agree): offset in `bits` of group
    /// `g`'s bits from the merged scan of the item's value.
    fn global_off(&mut self, it: &Item<'_>, g: &GroupFilter, v: &[u8]) -> Option<usize> {
        let gf = g.global.as_ref()?;
        let original = &*it.value;
        if !it.stable
            || v.len() != original.len()
            || v.as_ptr() != original.as_ptr() && !v.eq_ignore_ascii_case(original)
        {
            return None;
        }
        let v = original;
        let ik = (v.as_ptr() as usize, v.len());
        if let Some((k, off)) = self.last {
            if k == ik && off != NO_SCAN {
                return Some(off as usize + g.gword);
            }
        }
        let goff = self.merged_scan(it, gf)?.goff;
        self.last = Some((ik, goff as u32));
        Some(goff + g.gword)
    }

    /// Where group `g`'s bits for the item's transformed value `v` are: in
    /// `bits` (scanned once per value), or, for a value that cannot be
    /// cached, in a fresh vector.
    fn item_bits(
        &mut self,
        it: &Item<'_>,
        gid: u32,
        g: &GroupFilter,
        v: &[u8],
    ) -> Result<usize, Vec<u64>> {
        if let Some(off) = self.global_off(it, g, v) {
            if it.stable && v.as_ptr() != it.value.as_ptr() && self.groups.len() < MAX_ENTRIES {
                // Case-only difference: recorded so `recorded_bit` finds it
                // without transforming the value again.
                let key = (it.value.as_ptr() as usize, it.value.len(), gid);
                self.groups.insert(key, off as u32);
            }
            return Ok(off);
        }
        if it.stable {
            let key = (it.value.as_ptr() as usize, it.value.len(), gid);
            if let Some(&off) = self.groups.get(&key) {
                return Ok(off as usize);
            }
            if self.groups.len() < MAX_ENTRIES {
                let off = self.bits.len();
                g.scan_remembered(v, &mut self.bits);
                self.groups.insert(key, off as u32);
                return Ok(off);
            }
        }
        let mut tmp = Vec::new();
        g.scan_remembered(v, &mut tmp);
        Err(tmp)
    }

    /// OR the bits of one (transformed) item into `acc`.
    pub fn or_item_bits(
        &mut self,
        it: &Item<'_>,
        gid: u32,
        g: &GroupFilter,
        v: &[u8],
        acc: &mut [u64],
    ) {
        let bits = self.item_bits(it, gid, g, v);
        let src = match &bits {
            Ok(off) => self.bits.get(*off..*off + g.words()).unwrap_or_default(),
            Err(tmp) => tmp.as_slice(),
        };
        for (a, b) in acc.iter_mut().zip(src) {
            *a |= b;
        }
    }

    /// Add a target's items to the unions of the groups `pgs` that read it
    /// (their words in `accs`). Each value is looked up once, and a buffer
    /// listed again is passed over when the request's arguments share
    /// buffers (`args_shared`). The merged
    /// scans of the values are ORed into one block, and a group takes its
    /// bits from that block; a group whose chain changes a value also gets
    /// the bits of the transformed value. Taking the original's bits too
    /// makes the union a superset at worst, which is sound (a rule that
    /// might match is evaluated), and a value's literals rarely vanish
    /// under decoding or lower-casing.
    pub fn union_target(
        &mut self,
        items: &[Item<'_>],
        pgs: &[PlanGroup],
        tm: TargetMerge,
        groups: &[GroupFilter],
        global: Option<&GlobalFilter>,
        acc: UnionAcc<'_>,
    ) {
        let UnionAcc {
            groups: accs,
            answers: ans,
            contrib,
        } = acc;
        if items.is_empty() {
            // Nothing to add (an absent header, no body arguments).
            return;
        }
        let (lo, hi) = (tm.lo as usize, tm.hi as usize);
        let mut merged = std::mem::take(&mut self.merged_buf);
        merged.clear();
        merged.resize(hi - lo, 0);
        // A buffer repeated in the target (JSON's names and equal values
        // share one) adds nothing to the union the first one did not.
        let dedup = self.args_shared && items.len() > 4;
        let mut seen = BufSet::default();
        if dedup {
            seen = std::mem::take(&mut self.union_seen);
            seen.clear();
        }
        // Some value's merged scan found a literal (else the groups' words
        // stay as they are).
        let mut found = false;
        for it in items {
            if dedup && it.stable {
                let buf = (it.value.as_ptr() as usize, it.value.len());
                if seen.contains(&buf) {
                    continue;
                }
                seen.insert(buf);
            }
            let known = match (global, it.stable) {
                (Some(gf), true) => self.merged_scan(it, gf),
                _ => None,
            };
            let Some(m) = known else {
                // No answers to go by: any slot may pass.
                ans.fill(u64::MAX);
                for pg in pgs {
                    self.union_transformed(it, pg, groups, accs);
                }
                continue;
            };
            // A slot may pass unless the value's answer is a known failure.
            let w = ans.len();
            let ooff = m.ooff;
            match self
                .ops
                .get(ooff as usize..(ooff as usize).saturating_add(2 * w))
            {
                Some(ops) if ooff != NO_SCAN && w == self.op_words => {
                    let (known, matched) = ops.split_at(w);
                    for ((a, k), m) in ans.iter_mut().zip(known).zip(matched) {
                        *a |= !k | m;
                    }
                }
                _ => ans.fill(u64::MAX),
            }
            // A remembered value's contribution to a target many groups read
            // is remembered whole (it is a function of the value): its few
            // non-zero words instead of the group by group work below.
            if let Some(key) = contrib.filter(|_| ooff != NO_SCAN) {
                let (id, v): (u64, &[u8]) = (self.memo_id, &it.value);
                let held = crate::prefilter::memo_with_contrib(id, v, m.memo, key, |words| {
                    or_words(accs, words);
                });
                if !held {
                    let words = self.contribution(it, m, pgs, tm, groups, accs.len());
                    or_words(accs, &words);
                    crate::prefilter::memo_keep_contrib(id, v, m.memo, key, words);
                }
                continue;
            }
            if !m.zero {
                found = true;
                if let Some(src) = self.bits.get(m.goff + lo..m.goff + hi) {
                    for (a, b) in merged.iter_mut().zip(src) {
                        *a |= b;
                    }
                }
            }
            self.chain_bits(it, m, pgs, tm, groups, accs);
        }
        if merged.is_empty() || found {
            or_group_bits(accs, pgs, &merged, lo);
        }
        self.merged_buf = merged;
        if dedup {
            self.union_seen = seen;
        }
    }

    /// What a remembered value adds to the words (`accs_len` of them) of
    /// the groups `pgs` that read its target: its merged scan's bits of
    /// each group and the bits its groups' chains give it, as the non-zero
    /// words by index.
    fn contribution(
        &mut self,
        it: &Item<'_>,
        m: Merged,
        pgs: &[PlanGroup],
        tm: TargetMerge,
        groups: &[GroupFilter],
        accs_len: usize,
    ) -> crate::prefilter::Contribution {
        let mut out = std::mem::take(&mut self.contrib_buf);
        out.clear();
        out.resize(accs_len, 0);
        if !m.zero {
            or_group_bits(
                &mut out,
                pgs,
                self.bits.get(m.goff..).unwrap_or_default(),
                0,
            );
        }
        self.chain_bits(it, m, pgs, tm, groups, &mut out);
        let mut words = Vec::new();
        for pg in pgs {
            let (off, n) = (pg.acc as usize, pg.words as usize);
            for (i, &w) in out.iter().enumerate().skip(off).take(n) {
                if w != 0 {
                    words.push((i as u32, w));
                }
            }
        }
        self.contrib_buf = out;
        words.into_boxed_slice()
    }

    /// OR into the groups' words (`accs`) the bits of the item's value
    /// transformed by each group's chain that changes it (the merged scan's
    /// bits are the caller's).
    fn chain_bits(
        &mut self,
        it: &Item<'_>,
        m: Merged,
        pgs: &[PlanGroup],
        tm: TargetMerge,
        groups: &[GroupFilter],
        accs: &mut [u64],
    ) {
        let Merged {
            mut same,
            mut changes,
            esc,
            cknown,
            coff,
            ..
        } = m;
        if tm.all_mask.is_some_and(|m| same & m == m) {
            return;
        }
        {
            for pg in pgs {
                if pg.gword != u32::MAX {
                    let need = pg.chain_mask.need(esc);
                    if same & need != need {
                        // Tried only when the chain's first function not
                        // known to keep the value is untried as well.
                        if let Some(g) = groups
                            .get(pg.gid as usize)
                            .filter(|g| untried(same, changes, &g.transforms))
                        {
                            (same, changes) = self.learn(it, &g.transforms);
                        }
                    }
                    if same & need == need {
                        continue;
                    }
                    // The chain's scan came with the merged scan.
                    if pg.gid < 64 && cknown & 1 << pg.gid != 0 {
                        let (off, words) = (pg.acc as usize, pg.words as usize);
                        let from = coff + pg.gword as usize;
                        if let (Some(acc), Some(src)) = (
                            accs.get_mut(off..off + words),
                            self.bits.get(from..from + words),
                        ) {
                            acc.iter_mut().zip(src).for_each(|(a, b)| *a |= b);
                            continue;
                        }
                    }
                }
                self.union_transformed(it, pg, groups, accs);
            }
        }
    }

    /// OR the bits of the item's value transformed by the group's chain into
    /// the group's words.
    fn union_transformed(
        &mut self,
        it: &Item<'_>,
        pg: &PlanGroup,
        groups: &[GroupFilter],
        accs: &mut [u64],
    ) {
        let (off, words) = (pg.acc as usize, pg.words as usize);
        let (Some(acc), Some(g)) = (accs.get_mut(off..off + words), groups.get(pg.gid as usize))
        else {
            return;
        };
        if !it.stable {
            let v = self.transformed(it, &g.transforms);
            self.or_item_bits(it, pg.gid, g, &v, acc);
            return;
        }
        let key = (it.value.as_ptr() as usize, it.value.len(), pg.gid);
        let off = match self.groups.get(&key) {
            Some(&off) => Some(off as usize),
            None => self.chain_scan(it, pg.gid, g),
        };
        match off.and_then(|o| self.bits.get(o..o + words)) {
            Some(src) => acc.iter_mut().zip(src).for_each(|(a, b)| *a |= b),
            None => {
                let v = self.transformed(it, &g.transforms);
                self.or_item_bits(it, pg.gid, g, &v, acc);
            }
        }
    }

    /// The group's bits for the item's value transformed by its chain,
    /// recorded for the item: from this thread's memory of the value when it
    /// holds them (no transformation at all), else by transforming and
    /// scanning, remembered when the value comes again. `None` when the
    /// record is full.
    fn chain_scan(&mut self, it: &Item<'_>, gid: u32, g: &GroupFilter) -> Option<usize> {
        if self.groups.len() >= MAX_ENTRIES {
            return None;
        }
        let key = (it.value.as_ptr() as usize, it.value.len(), gid);
        let off = self.bits.len();
        match memo_lookup(g.chain_id, g.words(), &it.value, &mut self.bits) {
            Memo::Hit(..) => {
                self.groups.insert(key, off as u32);
                Some(off)
            }
            miss => {
                let v = self.transformed(it, &g.transforms);
                let off = match self.item_bits(it, gid, g, &v) {
                    Ok(off) => off,
                    Err(_) => return None,
                };
                if let Memo::Store(h) = miss {
                    if let Some(bits) = self.bits.get(off..off + g.words()) {
                        memo_store(g.chain_id, &it.value, h, bits, ValueFacts::default());
                    }
                }
                self.keep_chain(it, gid, g, off);
                Some(off)
            }
        }
    }

    /// Hold group `gid`'s chain scan of the item's value (at `off` in
    /// `bits`) with the value's remembered merged scan, when it has one:
    /// the next transaction gets it with that scan.
    fn keep_chain(&self, it: &Item<'_>, gid: u32, g: &GroupFilter, off: usize) {
        let v: &[u8] = &it.value;
        let Some(rec) = self.items.get(&(v.as_ptr() as usize, v.len())) else {
            return;
        };
        // Op answers are set up exactly when the merged scan was remembered.
        if rec.ooff == NO_SCAN || g.global.is_none() {
            return;
        }
        if let Some(bits) = self.bits.get(off..off + g.words()) {
            crate::prefilter::memo_keep_chain(self.memo_id, v, rec.memo, gid, g.gword, bits);
        }
    }

    /// Try the chain's functions not yet tried on the item's original value,
    /// up to the first that changes it (whose output is kept for
    /// `transformed`); returns the functions known to leave it unchanged
    /// and to change it (the value must have a record: see `merged_scan`).
    fn learn(&mut self, it: &Item<'_>, transforms: &[(Transform, u32)]) -> (u64, u64) {
        let base: &[u8] = &it.value;
        let ik = (base.as_ptr() as usize, base.len());
        let Some(rec) = self.items.get_mut(&ik) else {
            return (0, 0);
        };
        let (j, first) = unchanged_prefix(rec, base, transforms);
        let known = (rec.same, rec.changes);
        if let (Some(nv), Some((_, id))) = (first, transforms.get(j)) {
            if self.map.len() < MAX_ENTRIES {
                self.map.insert((ik.0, ik.1, *id), nv);
            }
        }
        known
    }

    /// What the item's merged scan gave (scanning it now if needed).
    fn merged_scan(&mut self, it: &Item<'_>, gf: &GlobalFilter) -> Option<Merged> {
        let v: &[u8] = &it.value;
        let ik = (v.as_ptr() as usize, v.len());
        let full = self.items.len() >= MAX_ENTRIES;
        let rec = match self.items.entry(ik) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(e) if !full => e.insert(ItemRec::default()),
            Entry::Vacant(_) => return None,
        };
        if rec.goff == NO_SCAN {
            rec.goff = self.bits.len() as u32;
            // A value seen before comes with what each function does to it
            // and its escape bytes.
            let ooff = self.ops.len() as u32;
            let mut zero = None;
            rec.esc = match gf.scan_remembered(v, &mut self.bits, Some(&mut self.ops)) {
                Some((f, h)) => {
                    zero = f.zero;
                    rec.same |= f.same;
                    rec.changes |= f.changes;
                    rec.steps = Some(f.steps);
                    rec.ooff = ooff;
                    rec.memo = h;
                    if f.chains != 0 {
                        rec.cknown = f.chains;
                        rec.coff = rec.goff + gf.words() as u32;
                    }
                    self.op_words = gf.op_words();
                    self.memo_id = gf.id();
                    f.esc
                }
                None => ChainMask::escapes_in(v),
            };
            let end = rec.goff as usize + gf.words();
            rec.zero = zero.unwrap_or_else(|| {
                self.bits
                    .get(rec.goff as usize..end)
                    .is_some_and(|b| b.iter().all(|&w| w == 0))
            });
        }
        Some(Merged {
            memo: rec.memo,
            goff: rec.goff as usize,
            same: rec.same,
            changes: rec.changes,
            zero: rec.zero,
            esc: rec.esc,
            cknown: rec.cknown,
            coff: rec.coff as usize,
            ooff: rec.ooff,
        })
    }

    /// The answer of the link with operator slot `slot` (`Rule::op_slot`)
    /// on the item's value, when the value's remembered merged scan holds
    /// it: a pure operator after fixed transformations answers the same
    /// for the same original value.
    pub fn op_answer(&self, it: &Item<'_>, slot: u32) -> Option<bool> {
        let (off, _) = self.op_offset(it)?;
        let w = self.op_words;
        crate::prefilter::get_answer(self.ops.get(off..off + 2 * w)?, w, slot)
    }

    /// Whether the item's value has a remembered merged scan that holds no
    /// answer yet for operator slot `slot` (one could be kept for it).
    pub fn answer_missing(&self, it: &Item<'_>, slot: u32) -> bool {
        let Some((off, _)) = self.op_offset(it) else {
            return false;
        };
        let w = self.op_words;
        self.ops
            .get(off..off + 2 * w)
            .is_some_and(|ops| crate::prefilter::get_answer(ops, w, slot).is_none())
    }

    /// Where the item's operator answers are in `ops`, and the hash of its
    /// memory entry, when its merged scan was remembered.
    fn op_offset(&self, it: &Item<'_>) -> Option<(usize, u64)> {
        if !it.stable {
            return None;
        }
        let rec = self
            .items
            .get(&(it.value.as_ptr() as usize, it.value.len()))?;
        (rec.ooff != NO_SCAN).then_some((rec.ooff as usize, rec.memo))
    }

    /// Keep the answer of the link with operator slot `slot` on the item's
    /// value, for this transaction and with the value's remembered merged
    /// scan (when it has one).
    pub fn keep_op_answer(&mut self, it: &Item<'_>, slot: u32, matched: bool) {
        let Some((off, h)) = self.op_offset(it) else {
            return;
        };
        let w = self.op_words;
        if let Some(ops) = self.ops.get_mut(off..off + 2 * w) {
            crate::prefilter::set_answer(ops, w, slot, matched);
            crate::prefilter::memo_keep_op(self.memo_id, &it.value, h, w, slot, matched);
        }
    }

    /// The functions (bits by [`Transform::code`]) known to leave the
    /// item's original value unchanged (0 when nothing is known), the
    /// multiMatch step facts of the value when its merged scan was
    /// remembered (`ValueFacts::steps`), and the answer of the link with
    /// operator slot `slot` when the record holds it (see `op_answer`): one
    /// lookup of the value's record for all three.
    pub fn item_facts(&self, it: &Item<'_>, slot: Option<u32>) -> (u64, Option<u64>, Option<bool>) {
        if !it.stable {
            return (0, None, None);
        }
        let v: &[u8] = &it.value;
        let Some(r) = self.items.get(&(v.as_ptr() as usize, v.len())) else {
            return (0, None, None);
        };
        let w = self.op_words;
        let answer = match slot {
            Some(s) if r.ooff != NO_SCAN => self
                .ops
                .get(r.ooff as usize..r.ooff as usize + 2 * w)
                .and_then(|ops| crate::prefilter::get_answer(ops, w, s)),
            _ => None,
        };
        (r.same, r.steps, answer)
    }

    pub fn set_union(&mut self, gid: u32, acc: &[u64]) {
        let off = self.bits.len();
        match acc {
            // Most groups' union is one word: a push, not a call to memcpy.
            [w] => self.bits.push(*w),
            _ => self.bits.extend_from_slice(acc),
        }
        let g = gid as usize;
        if self.unions.len() <= g {
            self.unions.resize(g + 1, NO_UNION);
        }
        if let Some(u) = self.unions.get_mut(g) {
            *u = off as u32;
        }
    }

    /// An empty cache, recycled from this thread's pool when there is one.
    pub fn take() -> Box<TCache> {
        POOL.with(|p| p.borrow_mut().pop()).unwrap_or_default()
    }

    /// Return a cache to this thread's pool (bounded; oversized tables are dropped).
    pub fn give(mut c: Box<TCache>) {
        if c.map.capacity().max(c.items.capacity()) > 4 * MAX_ENTRIES
            || c.bits.capacity() > MAX_RETAINED_BITS
        {
            return;
        }
        c.clear();
        c.hits = 0;
        if c.item_buf.capacity() > 4096 {
            c.item_buf = Vec::new();
        }
        // Kept match buffers: a typical rule's worth, none holding a body.
        c.hits_buf.trim(64, 4096);
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < 64 {
                p.push(c);
            }
        });
    }

    /// Rule `slot`'s prefilter bit for the item's transformed value, when a
    /// scan already recorded the group's bits for it (the union pass does,
    /// for every stable item a skippable rule of the group targets): no
    /// lookup or application of the transformation chain. `None`: not known.
    ///
    /// A value the rule's literals rule out fails its operator too: for a
    /// link with operator slot `op_slot`, that answer is kept with the
    /// value's remembered merged scan when it is not known yet, so the union
    /// pass of later transactions counts the value as failing (see
    /// `target_answer`).
    pub fn recorded_bit(
        &mut self,
        it: &Item<'_>,
        (gid, slot): (u32, u32),
        g: &GroupFilter,
        op_slot: Option<u32>,
    ) -> Option<bool> {
        if !it.stable {
            return None;
        }
        let ik = (it.value.as_ptr() as usize, it.value.len());
        let rec = self.items.get(&ik).filter(|_| g.global.is_some());
        let off = match rec {
            Some(rec)
                if rec.goff != NO_SCAN
                    && rec.same & g.chain_mask.need(rec.esc) == g.chain_mask.need(rec.esc) =>
            {
                Some(rec.goff as usize + g.gword)
            }
            Some(rec) if gid < 64 && rec.cknown & 1 << gid != 0 => {
                Some(rec.coff as usize + g.gword)
            }
            _ => None,
        };
        let off = match off {
            Some(off) => off,
            None => *self.groups.get(&(ik.0, ik.1, gid))? as usize,
        };
        let passes = bit(self.bits.get(off..).unwrap_or_default(), slot);
        if let (false, Some(s), Some(rec)) = (passes, op_slot, rec) {
            let (ooff, memo) = (rec.ooff, rec.memo);
            self.learn_failure(it, ooff, memo, s);
        }
        Some(passes)
    }

    /// Keep a failure of the link with operator slot `slot` on the item's
    /// value when its remembered answers (at `ooff` in `ops`) lack it.
    fn learn_failure(&mut self, it: &Item<'_>, ooff: u32, memo: u64, slot: u32) {
        let w = self.op_words;
        if ooff == NO_SCAN {
            return;
        }
        let Some(ops) = self.ops.get_mut(ooff as usize..ooff as usize + 2 * w) else {
            return;
        };
        if crate::prefilter::get_answer(ops, w, slot).is_none() {
            crate::prefilter::set_answer(ops, w, slot, false);
            crate::prefilter::memo_keep_op(self.memo_id, &it.value, memo, w, slot, false);
        }
    }

    /// Whether rule `slot` of group `gid` may match the item's value once
    /// transformed (`v`); the group's merged scan runs once per value.
    pub fn group_may_match(
        &mut self,
        it: &Item<'_>,
        (gid, slot): (u32, u32),
        g: &GroupFilter,
        v: &[u8],
    ) -> bool {
        match self.item_bits(it, gid, g, v) {
            Ok(off) => bit(self.bits.get(off..).unwrap_or_default(), slot),
            Err(tmp) => bit(&tmp, slot),
        }
    }

    pub fn transformed<'v>(
        &mut self,
        it: &'v Item<'_>,
        transforms: &[(Transform, u32)],
    ) -> Val<'v> {
        let base: &'v [u8] = &it.value;
        if transforms.is_empty() {
            return Val::Borrowed(base);
        }
        if !it.stable {
            return apply_all(Val::Borrowed(base), transforms);
        }
        let ik = (base.as_ptr() as usize, base.len());
        let full = self.items.len() >= MAX_ENTRIES;
        let rec = match self.items.entry(ik) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) if !full => v.insert(ItemRec::default()),
            Entry::Vacant(_) => return apply_all(Val::Borrowed(base), transforms),
        };
        self.last = Some((ik, rec.goff));
        let (j, mut first) = unchanged_prefix(rec, base, transforms);
        if j == transforms.len() {
            self.hits += 1;
            return Val::Borrowed(base);
        }
        let key = |id: u32| (ik.0, ik.1, id);
        // Longest cached prefix past the first change.
        let mut start = j;
        let mut cur = Val::Borrowed(base);
        if first.is_none() {
            for k in (j..transforms.len()).rev() {
                if let Some(a) = self.map.get(&key(transforms[k].1)) {
                    self.hits += 1;
                    cur = Val::Shared(a.clone());
                    start = k + 1;
                    break;
                }
            }
        }
        for (t, id) in &transforms[start..] {
            if let Some(nv) = first.take().or_else(|| t.apply_shared(&cur)) {
                cur = Val::Shared(nv);
            }
            if let (Val::Shared(a), true) = (&cur, self.map.len() < MAX_ENTRIES) {
                self.map.insert(key(*id), a.clone());
            }
        }
        cur
    }
}

/// Whether `unchanged_prefix` would try a function: the chain's first
/// function not known to leave the value unchanged is not known to change
/// it either.
fn untried(same: u64, changes: u64, transforms: &[(Transform, u32)]) -> bool {
    transforms
        .iter()
        .map(|(t, _)| t.bit())
        .find(|b| same & b == 0)
        .is_some_and(|b| changes & b == 0)
}

/// How many of `transforms`, from the first, leave the original value
/// `base` unchanged, trying those its record does not know yet. While the
/// value is still the original, a function's effect depends on the function
/// alone, not on the prefix before it, so per-value bit sets answer without
/// a table entry per prefix. Also returns the output of the first function
/// that changes the value when it was computed now (`None` when the record
/// already knew it changes the value).
fn unchanged_prefix(
    rec: &mut ItemRec,
    base: &[u8],
    transforms: &[(Transform, u32)],
) -> (usize, Option<Arc<[u8]>>) {
    for (j, (t, _)) in transforms.iter().enumerate() {
        let b = t.bit();
        if rec.same & b != 0 {
            continue;
        }
        if rec.changes & b != 0 {
            return (j, None);
        }
        match t.apply_shared(base) {
            None => rec.same |= b,
            Some(nv) => {
                rec.changes |= b;
                return (j, Some(nv));
            }
        }
    }
    (transforms.len(), None)
}

pub(crate) fn apply_all<'v>(mut cur: Val<'v>, transforms: &[(Transform, u32)]) -> Val<'v> {
    for (t, _) in transforms {
        if let Some(nv) = t.apply_shared(&cur) {
            cur = Val::Shared(nv);
        }
    }
    cur
}

#[cfg(test)]
mod recycle_tests {
    #[test]
    fn recycle_keeps_the_allocation() {
        let mut v: Vec<super::Item<'static>> = Vec::with_capacity(64);
        let ptr = v.as_ptr() as usize;
        let data = vec![1u8, 2, 3];
        let mut w: Vec<super::Item<'_>> = super::recycle(std::mem::take(&mut v));
        w.push(super::Item {
            var: crate::variables::Var::Args,
            key: std::borrow::Cow::Borrowed(&data),
            value: std::borrow::Cow::Borrowed(&data),
            stable: true,
        });
        let back: Vec<super::Item<'static>> = super::recycle(w);
        assert!(back.is_empty() && back.capacity() >= 64);
        assert_eq!(back.as_ptr() as usize, ptr);
    }
}

#[cfg(test)]
mod buf_set_tests {
    use super::{BufSet, BUF_SET_SLOTS};

    /// Found after insertion, gone after `clear`; a buffer whose slot
    /// another took is not found (never the other one mistaken for it).
    #[test]
    fn buffers_are_found_until_cleared_and_never_confused() {
        let mut s = BufSet::default();
        s.clear();
        let a = (0x1000usize, 5usize);
        assert!(!s.contains(&a));
        s.insert(a);
        assert!(s.contains(&a));
        assert!(!s.contains(&(0x1000, 6)));
        s.clear();
        assert!(!s.contains(&a));
        // Many buffers: each is either found or not, and only itself.
        let bufs: Vec<(usize, usize)> = (0..4 * BUF_SET_SLOTS)
            .map(|i| (0x10_000 + 48 * i, 7))
            .collect();
        for &b in &bufs {
            s.insert(b);
            assert!(s.contains(&b));
        }
        let found = bufs.iter().filter(|b| s.contains(b)).count();
        assert!(found > 0 && found <= BUF_SET_SLOTS, "{found}");
        // The generation wraps without old entries coming back.
        s.generation = u32::MAX;
        s.insert(a);
        s.clear();
        assert!(!s.contains(&a));
        s.insert(a);
        assert!(s.contains(&a));
    }
}
