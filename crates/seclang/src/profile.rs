//! Per-rule time accounting (feature `rule-profile`, for the engine benchmark).

use crate::rules::{Op, Rule};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Instant;

thread_local! {
    static TOTALS: RefCell<HashMap<u64, (u64, u64, &'static str)>> = RefCell::new(HashMap::new());
}

/// Charges the time until drop to the rule.
pub(crate) struct Timer {
    start: Instant,
    id: u64,
    kind: &'static str,
}

impl Timer {
    pub(crate) fn start(r: &Rule) -> Timer {
        let kind = match (&r.op, r.skippable, r.prefilter.is_some()) {
            (Op::Always, _, _) => "always",
            (_, true, _) => "skippable",
            (_, false, true) => "prefiltered",
            _ => "unfiltered",
        };
        Timer {
            start: Instant::now(),
            id: r.meta.id,
            kind,
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let ns = self.start.elapsed().as_nanos() as u64;
        TOTALS.with(|t| {
            let mut t = t.borrow_mut();
            let e = t.entry(self.id).or_insert((0, 0, self.kind));
            e.0 += ns;
            e.1 += 1;
        });
    }
}

/// (rule id, total ns, evaluations, kind), most expensive first; resets the totals.
pub fn take() -> Vec<(u64, u64, u64, &'static str)> {
    TOTALS.with(|t| {
        let mut v: Vec<_> = t
            .borrow_mut()
            .drain()
            .map(|(id, (ns, n, k))| (id, ns, n, k))
            .collect();
        v.sort_by_key(|x| std::cmp::Reverse(x.1));
        v
    })
}
