//! Compiled rules as the engine runs them.

use crate::actions::{Disruptive, NonDisruptive, SEVERITIES};
use crate::macros::MacroStr;
use crate::ops::{Operator, Transform};
use crate::prefilter::Prefilter;
use crate::variables::Target;
use crate::EngineMode;
use std::sync::Arc;

/// Metadata of a rule (of the chain starter for chains).
#[derive(Debug, Default)]
pub struct RuleMeta {
    pub id: u64,
    pub phase: u8,
    pub msg: Option<MacroStr>,
    pub logdata: Option<MacroStr>,
    pub tags: Vec<MacroStr>,
    pub severity: Option<u8>,
    pub ver: Option<String>,
    pub rev: Option<String>,
    pub maturity: Option<String>,
    pub accuracy: Option<String>,
    pub file: Arc<str>,
    pub line: usize,
}

impl RuleMeta {
    pub fn severity_name(&self) -> &'static str {
        self.severity
            .and_then(|s| SEVERITIES.get(usize::from(s)))
            .copied()
            .unwrap_or_default()
    }
}

/// The operator of a rule; `SecAction` has none and always matches.
pub enum Op {
    Real {
        op: Operator,
        name: String,
        arg: String,
        negated: bool,
    },
    Always,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Real {
                name, arg, negated, ..
            } => write!(f, "{}@{} {}", if *negated { "!" } else { "" }, name, arg),
            Op::Always => write!(f, "@unconditionalMatch"),
        }
    }
}

/// One rule or chain link.
#[derive(Debug)]
pub struct Rule {
    pub meta: Arc<RuleMeta>,
    pub targets: Vec<Target>,
    pub op: Op,
    /// Transformations in order, each with the id of the chain prefix ending there
    /// (the transformation-cache key).
    pub transforms: Vec<(Transform, u32)>,
    pub capture: bool,
    pub multi_match: bool,
    pub nd: Vec<NonDisruptive>,
    pub chain: Option<Box<Rule>>,
    // Effective for chain starters (after SecDefaultAction and `block`):
    pub disruptive: Disruptive,
    /// The rule said `block` (log text only).
    pub status: Option<u16>,
    pub log: bool,
    pub skip: u32,
    pub skip_after: Option<String>,
    /// Index in the phase's entries where execution resumes after `skip_after`.
    pub skip_to: usize,
    pub prefilter: Option<Prefilter>,
    /// Distinct per rule link whose operator's answers a thread remembers
    /// per value (see `memory::OP_ANSWERS`).
    pub op_memo: Option<u64>,
    /// (group, slot) in the merged prefilter of rules sharing this transformation chain.
    pub group: Option<(u32, u32)>,
    /// A multiMatch link with a prefilter and transformations: its bit in
    /// the step facts remembered with a value's merged scan
    /// (`ValueFacts::steps`), when the rule set has room for it.
    pub step_slot: Option<u32>,
    /// A link whose operator's answer is a function of the value alone
    /// (`Operator::value_only`): its bit in the answers kept with a value's
    /// remembered merged scan, when the rule set has room for it. For a
    /// multiMatch link the answer is whether any step's value matched.
    pub op_slot: Option<u32>,
    /// A chain starter whose targets are all phase-stable request data: it can
    /// be skipped whole when its group's phase-wide scan finds none of its literals.
    pub skippable: bool,
    /// Per target (parallel to `targets`), for a skippable rule: where the
    /// phase's union pass keeps this group's bits over that target's items
    /// alone (see `UnionPlan`), so a target none of whose values can match
    /// is not generated at all.
    pub target_unions: Vec<Option<u32>>,
    /// Per target (parallel to `targets`), for a chain starter with an
    /// operator slot whose targets are all phase-stable request data: the
    /// index of the target in the phase's union plan, which also ORs what
    /// its values' remembered operator answers allow (see
    /// `TCache::target_answer`). A target whose every value is known to
    /// fail the operator is not generated, and a rule all of whose targets
    /// are is not evaluated. Empty for other rules.
    pub answer_targets: Vec<Option<u32>>,
    /// Tags as written (ctl:ruleRemoveByTag matches these).
    pub tag_text: Vec<String>,
    pub msg_text: String,
    /// Index among the rule set's chain starters (runtime rule selections are bit sets over it).
    pub idx: u32,
    /// Load-time evaluation result (see `fold`).
    pub folded: crate::fold::Folded,
    /// The outcome while the TX members it reads are as every transaction
    /// starts with them (see `fold::Clean`).
    pub clean: Option<Box<crate::fold::Clean>>,
    /// For a chain starter: some link reads MATCHED_VARS(_NAMES), as a
    /// target or in a macro. The list lives for one rule only, so a rule
    /// that never reads it need not fill it on every match.
    pub reads_matched_vars: bool,
    /// A link with nothing to consult before evaluating a value but its
    /// kept operator answer: no literal prefilter or group, no remembered
    /// answers of its own, no multiMatch, no negated target (see
    /// `Rule::set_plain`). Most rules reading TX, counts and the request
    /// line are; they take a short path (`Engine::collect_plain`).
    pub plain: bool,
    /// No other link transforms values through any prefix of this link's
    /// chain, and no group scans for it: the transformation cache could
    /// only ever hand its entries back to this link, so its values are
    /// transformed without one (an entry cost several times a short
    /// value's `t:lowercase`).
    pub private_chain: bool,
}

impl Rule {
    /// The rule and its chain links, in order.
    pub fn links(&self) -> impl Iterator<Item = &Rule> {
        std::iter::successors(Some(self), |r| r.chain.as_deref())
    }

    /// The one TX member the link reads, when that is all it reads
    /// (`TX:name`, not counted).
    #[inline]
    pub fn tx_key(&self) -> Option<&crate::collections::Name> {
        match self.targets.as_slice() {
            [crate::variables::Target {
                var: crate::variables::Var::Tx,
                sel: crate::variables::Selector::Key(k),
                negated: false,
                count: false,
            }] => Some(k),
            _ => None,
        }
    }

    /// Set `plain` on the rule and its links, once their prefilters and
    /// groups are decided.
    pub fn set_plain(&mut self) {
        let mut link = Some(self);
        while let Some(r) = link {
            r.plain = matches!(r.op, Op::Real { .. })
                && !r.multi_match
                && r.prefilter.is_none()
                && r.group.is_none()
                && r.op_memo.is_none()
                && r.step_slot.is_none()
                && r.targets.iter().all(|t| !t.negated);
            link = r.chain.as_deref_mut();
        }
    }
}

impl std::fmt::Debug for Prefilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Prefilter")
    }
}

impl std::fmt::Debug for crate::ops::Transform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Transform")
    }
}

/// What the rule loop reads of a rule before it runs it, kept apart from
/// the (large, boxed) rule in one small array per phase: most rules of a
/// request are passed over by these fields alone, and reading them from the
/// rule itself cost a cache miss per rule (a fifth of the loop's time).
#[derive(Clone, Copy, Debug)]
pub struct Gate {
    /// `Rule::idx` (runtime rule selections test it).
    pub idx: u32,
    /// `Rule::group` of a skippable rule: (`NO_GROUP`, 0) for the others.
    pub gid: u32,
    pub slot: u32,
    /// For a load-time jump (`Folded::Jump`): the entry to go on at when
    /// the rule has a skipAfter, else the number of rules to skip.
    pub jump: u32,
    pub flags: u8,
}

impl Gate {
    pub const NO_GROUP: u32 = u32::MAX;
    /// `Folded::Jump`.
    pub const JUMP: u8 = 1;
    /// The jump is a skipAfter (`jump` is an entry index).
    pub const SKIP_AFTER: u8 = 2;
    /// `Rule::answer_targets` is not empty.
    pub const ANSWERS: u8 = 4;
    /// The entry is a marker.
    pub const MARKER: u8 = 8;

    pub fn of(r: &Rule) -> Gate {
        let (gid, slot) = r
            .group
            .filter(|_| r.skippable)
            .unwrap_or((Gate::NO_GROUP, 0));
        let mut flags = 0;
        let mut jump = 0;
        if matches!(r.folded, crate::fold::Folded::Jump) {
            flags |= Gate::JUMP;
            jump = r.skip;
            if r.skip_after.is_some() {
                flags |= Gate::SKIP_AFTER;
                jump = u32::try_from(r.skip_to).unwrap_or(u32::MAX);
            }
        }
        if !r.answer_targets.is_empty() {
            flags |= Gate::ANSWERS;
        }
        Gate {
            idx: r.idx,
            gid,
            slot,
            jump,
            flags,
        }
    }
}

/// The gates of a phase's entries, by entry index: the rule loop walks
/// these, and reads an entry only for a rule its gate lets through.
pub fn gates(entries: &[Entry]) -> Vec<Gate> {
    entries
        .iter()
        .map(|e| match e {
            Entry::Rule(r) => Gate::of(r),
            Entry::Marker(_) => Gate {
                idx: 0,
                gid: Gate::NO_GROUP,
                slot: 0,
                jump: 0,
                flags: Gate::MARKER,
            },
        })
        .collect()
}

#[derive(Debug)]
pub enum Entry {
    Rule(Box<Rule>),
    Marker(String),
}

/// What to do when the request body is over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitAction {
    Reject,
    ProcessPartial,
}

/// Engine settings from the Sec* directives.
#[derive(Debug, Clone)]
pub struct Config {
    pub engine: EngineMode,
    pub req_body_access: bool,
    pub resp_body_access: bool,
    pub req_body_limit: usize,
    pub req_body_nofiles_limit: usize,
    pub req_body_limit_action: LimitAction,
    pub resp_body_limit: usize,
    pub resp_body_limit_action: LimitAction,
    pub resp_mime: Vec<String>,
    pub arg_separator: u8,
    /// SecArgumentsLimit: a JSON body with more values is a request body error.
    pub args_limit: usize,
    /// SecRequestBodyJsonDepthLimit: deeper JSON is a request body error.
    pub json_depth_limit: usize,
}

impl Default for Config {
    fn default() -> Self {
        // ModSecurity v2 defaults.
        Config {
            engine: EngineMode::Off,
            req_body_access: false,
            resp_body_access: false,
            req_body_limit: 134_217_728,
            req_body_nofiles_limit: 1_048_576,
            req_body_limit_action: LimitAction::Reject,
            resp_body_limit: 524_288,
            resp_body_limit_action: LimitAction::Reject,
            resp_mime: vec!["text/plain".into(), "text/html".into()],
            arg_separator: b'&',
            args_limit: 1000,
            json_depth_limit: bodyparse::DEFAULT_DEPTH_LIMIT,
        }
    }
}
