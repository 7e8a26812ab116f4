//! Literal prefilter: when every value an operator can match must contain
//! one of a set of literals, one Aho-Corasick scan of the (transformed)
//! value rules the operator out before the regex runs. Literals come
//! lower-cased from `seclang-ops` and are matched ASCII
//! case-insensitively (a superset check, so always safe).

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

pub struct Prefilter {
    ac: AhoCorasick,
}

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
        Some(Prefilter { ac })
    }

    /// False only when the operator cannot match `value`.
    pub fn may_match(&self, value: &[u8]) -> bool {
        self.ac.is_match(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        let p = Prefilter::build(vec![b"select".to_vec(), b"union".to_vec()]).unwrap();
        assert!(p.may_match(b"1 union all"));
        assert!(!p.may_match(b"shoes"));
        assert!(p.may_match(b"1 UnIoN all"));
        assert!(Prefilter::build(vec![]).is_none());
        assert!(Prefilter::build(vec![b"".to_vec()]).is_none());
    }
}
