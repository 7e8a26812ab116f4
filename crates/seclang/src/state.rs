//! The data one transaction's rules look at: request, body results,
//! response, collections, and the matched-variable bookkeeping.

use crate::collections::Collection;
use crate::rules::RuleMeta;
use crate::variables::Var;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Name/value byte pairs (headers, cookies, parsed arguments).
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// One argument, from the query string (`post == false`) or the body.
#[derive(Debug, Clone, Default)]
pub struct Arg {
    pub name: Arc<[u8]>,
    pub value: Arc<[u8]>,
    pub post: bool,
}

/// One uploaded file of a multipart body.
#[derive(Debug, Clone, Default)]
pub struct FileEntry {
    /// The form field name.
    pub field: Vec<u8>,
    pub filename: Vec<u8>,
    pub size: usize,
}

/// The multipart flags ModSecurity v2 exposes as MULTIPART_* variables.
#[derive(Debug, Clone, Copy, Default)]
pub struct MultipartFlags {
    pub boundary_quoted: bool,
    pub boundary_whitespace: bool,
    pub data_after: bool,
    pub data_before: bool,
    pub header_folding: bool,
    pub crlf_line: bool,
    pub crlf_lf_lines: bool,
    pub lf_line: bool,
    pub missing_semicolon: bool,
    pub invalid_part: bool,
    pub invalid_quoting: bool,
    pub invalid_header_folding: bool,
    pub file_limit_exceeded: bool,
    pub unmatched_boundary: bool,
}

impl MultipartFlags {
    /// MULTIPART_STRICT_ERROR: any of the strict-validation flags.
    pub fn strict_error(&self, reqbody_error: bool) -> bool {
        reqbody_error
            || self.boundary_quoted
            || self.boundary_whitespace
            || self.data_before
            || self.data_after
            || self.header_folding
            || self.lf_line
            || self.missing_semicolon
            || self.invalid_quoting
            || self.invalid_part
            || self.invalid_header_folding
            || self.file_limit_exceeded
    }
}

/// Shares equal byte strings among arguments: the transformation and
/// prefilter caches are keyed by buffer, so JSON arrays, which repeat every
/// field name, are transformed and scanned once per distinct name or value.
/// Returns whether any two arguments now share a buffer.
pub fn push_args(args: &mut Vec<Arg>, pairs: Vec<(Vec<u8>, Vec<u8>)>, post: bool) -> bool {
    let mut sink = ArgSink::new(args, pairs.len(), post);
    for (n, v) in &pairs {
        sink.push(n, v);
    }
    sink.shared()
}

/// [`push_args`] for a urlencoded string (the query, a form body), each
/// pair interned as it is decoded. Returns (any two arguments now share a
/// buffer, an invalid encoding was seen).
pub fn push_urlencoded(args: &mut Vec<Arg>, s: &[u8], sep: u8, post: bool) -> (bool, bool) {
    let pairs = s.split(|&b| b == sep).filter(|p| !p.is_empty()).count();
    let mut sink = ArgSink::new(args, pairs, post);
    let bad = crate::body::each_urlencoded(s, sep, |n, v| sink.push(n, v));
    (sink.shared(), bad)
}

/// Arguments added to a list, interned when there are enough of them to
/// repeat (a few are not worth a table).
struct ArgSink<'a> {
    args: &'a mut Vec<Arg>,
    interner: Option<Interner>,
    post: bool,
}

impl<'a> ArgSink<'a> {
    fn new(args: &'a mut Vec<Arg>, pairs: usize, post: bool) -> ArgSink<'a> {
        args.reserve(pairs);
        let interner = (pairs >= 4).then(|| Interner::with_capacity(pairs.saturating_mul(2)));
        ArgSink {
            args,
            interner,
            post,
        }
    }

    fn push(&mut self, name: &[u8], value: &[u8]) {
        let (name, value) = match self.interner.as_mut() {
            Some(i) => (i.intern(name), i.intern(value)),
            None => (name.into(), value.into()),
        };
        self.args.push(Arg {
            name,
            value,
            post: self.post,
        });
    }

    /// Whether any two of the arguments share a buffer.
    fn shared(self) -> bool {
        self.interner.is_some_and(|i| i.shared)
    }
}

/// Equal byte strings as one shared buffer (see [`push_args`]), taken from
/// the thread's strings of earlier requests when they were seen there: a
/// form's or a JSON API's names and common values repeat from request to
/// request, and a buffer handed out again costs a reference count instead
/// of an allocation, a copy and a free.
pub struct Interner {
    strings: ArgStrings,
    /// This interner's number among the thread's (see `ArgStrings::table`).
    stamp: u64,
    /// Whether any string was handed out twice.
    pub shared: bool,
}

/// A thread's argument strings (see [`Interner`]).
#[derive(Default)]
struct ArgStrings {
    /// Each with the stamp of the interner that last handed it out. Keyed
    /// by request data: a hash seeded at random per process, so names
    /// cannot be crafted to collide without reading the seed out of the
    /// process (foldhash costs a fraction of SipHash per key). A table of
    /// its own, so a new string is hashed and probed once, not once to
    /// look and again to insert.
    table: hashbrown::HashTable<(Arc<[u8]>, u64)>,
    hasher: foldhash::fast::RandomState,
    /// Bytes of the strings in `table`.
    bytes: usize,
    /// The last interner's stamp.
    stamp: u64,
}

/// Strings longer than this are not kept past their request (nor shared).
const ARG_STRING_MAX: usize = 256;
/// Bytes a thread's strings may take (with a table entry and a reference
/// count's header each), checked when a request is done with them: past
/// this the thread starts again.
const ARG_STRINGS_BYTES: usize = 256 * 1024;
/// What a kept string costs beyond its bytes (its table entry and header).
const ARG_STRING_OVERHEAD: usize = 48;

thread_local! {
    static ARG_STRINGS: std::cell::RefCell<ArgStrings> = std::cell::RefCell::default();
}

impl Interner {
    pub fn with_capacity(n: usize) -> Interner {
        let mut strings = ARG_STRINGS
            .with(|c| c.try_borrow_mut().map(|mut c| std::mem::take(&mut *c)))
            .unwrap_or_default();
        let hasher = &strings.hasher;
        strings.table.reserve(n.min(8192), |a| {
            std::hash::BuildHasher::hash_one(hasher, &*a.0)
        });
        strings.stamp += 1;
        Interner {
            stamp: strings.stamp,
            strings,
            shared: false,
        }
    }

    pub fn intern(&mut self, b: &[u8]) -> Arc<[u8]> {
        use std::hash::BuildHasher;
        if b.len() > ARG_STRING_MAX {
            return b.into();
        }
        let ArgStrings {
            table,
            hasher,
            bytes,
            ..
        } = &mut self.strings;
        let h = hasher.hash_one(b);
        match table.entry(h, |a| *a.0 == *b, |a| hasher.hash_one(&*a.0)) {
            hashbrown::hash_table::Entry::Occupied(mut o) => {
                let (a, stamp) = o.get_mut();
                self.shared |= *stamp == self.stamp;
                *stamp = self.stamp;
                a.clone()
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                let a: Arc<[u8]> = b.into();
                *bytes += b.len() + ARG_STRING_OVERHEAD;
                v.insert((a.clone(), self.stamp));
                a
            }
        }
    }
}

impl Drop for Interner {
    fn drop(&mut self) {
        let mut strings = std::mem::take(&mut self.strings);
        if strings.bytes > ARG_STRINGS_BYTES {
            // Let a large request's strings go now, not at the next one.
            strings.table = hashbrown::HashTable::new();
            strings.bytes = 0;
        }
        ARG_STRINGS.with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                *c = strings;
            }
        });
    }
}

/// Everything variables read. Filled by the engine as phases advance.
///
/// Invariant the transformation cache relies on: a buffer that holds a
/// request or response value is never freed or changed before the
/// transaction ends; later phases only add values (body arguments, files,
/// the response). Cached results are keyed by buffer address.
#[derive(Debug, Default)]
pub struct TxState {
    // Request line and headers (phase 1).
    pub method: Vec<u8>,
    pub uri_raw: Vec<u8>,
    /// `path?query` without scheme/host: REQUEST_URI.
    pub uri: Vec<u8>,
    pub path: Vec<u8>,
    pub basename: Vec<u8>,
    pub query: Option<Vec<u8>>,
    pub protocol: Vec<u8>,
    pub request_line: Vec<u8>,
    pub req_headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub cookies: Vec<(Vec<u8>, Vec<u8>)>,
    pub args: Vec<Arg>,
    pub remote_addr: Vec<u8>,
    pub remote_port: Vec<u8>,
    pub server_addr: Vec<u8>,
    pub server_port: Vec<u8>,
    pub server_name: Vec<u8>,
    pub unique_id: Vec<u8>,
    pub auth_type: Vec<u8>,
    pub urlencoded_error: bool,

    // Request body (phase 2).
    pub request_body: Option<Vec<u8>>,
    pub request_body_length: usize,
    pub reqbody_processor: Option<String>,
    pub reqbody_error: bool,
    pub reqbody_error_msg: Vec<u8>,
    pub reqbody_processor_error: bool,
    pub reqbody_processor_error_msg: Vec<u8>,
    pub inbound_data_error: bool,
    pub files: Vec<FileEntry>,
    pub files_combined_size: usize,
    pub multipart: MultipartFlags,
    pub multipart_seen: bool,
    pub part_headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub multipart_filename: Option<Vec<u8>>,
    pub multipart_name: Option<Vec<u8>>,
    /// XML:/* (all text content) and XML://@* (attribute values), when parsed.
    pub xml_text: Option<Vec<u8>>,
    pub xml_attrs: Vec<Vec<u8>>,

    // Response (phases 3-4).
    pub status: Option<u16>,
    pub status_line: Vec<u8>,
    pub resp_protocol: Vec<u8>,
    pub resp_headers: Pairs,
    /// The last transaction's response header buffers, for phase 3 to fill
    /// (empty until then: a request stopped before a response has none).
    pub resp_headers_spare: Pairs,
    pub resp_body: Option<Vec<u8>>,
    pub resp_content_type: Vec<u8>,
    pub resp_content_length: Vec<u8>,
    pub outbound_data_error: bool,

    // Collections.
    /// Some arguments share a buffer (equal names or values, see `push_args`).
    pub args_shared: bool,
    pub tx: Collection,
    /// TX:0..n were last set by a capture (TX:n..9 are known to be unset
    /// unless a setvar wrote them; `setvar` on a digit key resets this to 10).
    pub captures_set: usize,
    pub ip: Collection,
    pub global: Collection,
    pub session: Collection,
    pub user: Collection,
    pub resource: Collection,
    pub env: Collection,
    pub geo: Collection,

    // Matched variables of the rule being run.
    pub matched_var: Vec<u8>,
    pub matched_var_name: MatchedName,
    pub matched_vars: MatchedVars,
    pub highest_severity: u8,

    pub started: Option<Instant>,
    pub wall: Option<SystemTime>,
    /// The rule being evaluated (RULE variable, `%{rule.id}`): its index
    /// in `rule_metas`. An index, not a reference-counted pointer: it is
    /// set for every rule run and read only by the few rules that ask.
    pub cur_rule: Option<u32>,
    pub rule_metas: Arc<[Arc<RuleMeta>]>,
}

impl TxState {
    /// The first request header with this name (case-insensitive).
    pub fn req_header(&self, name: &str) -> Option<&[u8]> {
        self.req_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
    }
}

impl TxState {
    /// RULE collection members of the current rule.
    pub fn rule_meta(&self) -> Vec<(&'static str, Vec<u8>)> {
        let Some(m) = self.cur_rule.and_then(|i| self.rule_metas.get(i as usize)) else {
            return Vec::new();
        };
        let mut v = vec![
            ("id", m.id.to_string().into_bytes()),
            ("phase", m.phase.to_string().into_bytes()),
        ];
        if let Some(s) = m.severity {
            v.push(("severity", s.to_string().into_bytes()));
        }
        if let Some(r) = &m.rev {
            v.push(("rev", r.clone().into_bytes()));
        }
        if let Some(r) = &m.ver {
            v.push(("ver", r.clone().into_bytes()));
        }
        if let Some(r) = &m.maturity {
            v.push(("maturity", r.clone().into_bytes()));
        }
        if let Some(r) = &m.accuracy {
            v.push(("accuracy", r.clone().into_bytes()));
        }
        if let Some(r) = &m.msg {
            v.push(("msg", r.raw.clone().into_bytes()));
        }
        if let Some(r) = &m.logdata {
            v.push(("logdata", r.raw.clone().into_bytes()));
        }
        v
    }
}

/// Buffers of a thread's last finished transaction that its next one fills
/// again instead of allocating: the request and response headers, the cookies, the TX
/// layer's entries and the matched-variable list. Kept with the thread's
/// transformation cache (`TCache::spare`).
#[derive(Debug, Default)]
pub struct Spare {
    pub req_headers: Pairs,
    pub cookies: Pairs,
    pub resp_headers: Pairs,
    pub tx: Option<Collection>,
    pub matched_vars: MatchedVars,
    pub matched_var: Vec<u8>,
    pub matched_var_name: MatchedName,
    /// The buffers `setvar` expands into (`engine::Runtime`).
    pub scratch: [Vec<u8>; 2],
    /// The matched-rules list, emptied (CRS records a score of `nolog`
    /// rules on every request: 5 KiB allocated each time otherwise).
    pub matched: Vec<crate::MatchedRule>,
}

impl Spare {
    /// Take the reusable buffers of a finished transaction's state; large
    /// ones are let go rather than kept by the thread.
    pub fn keep(st: &mut TxState) -> Spare {
        let small = |p: &Pairs| {
            p.len() <= 64
                && p.iter()
                    .all(|(n, v)| n.capacity() <= 1024 && v.capacity() <= 8192)
        };
        let mut s = Spare::default();
        if small(&st.req_headers) {
            s.req_headers = std::mem::take(&mut st.req_headers);
        }
        if small(&st.cookies) {
            s.cookies = std::mem::take(&mut st.cookies);
        }
        if st.resp_headers.is_empty() {
            // No response this time: the buffers kept from before.
            std::mem::swap(&mut st.resp_headers, &mut st.resp_headers_spare);
        }
        if small(&st.resp_headers) {
            s.resp_headers = std::mem::take(&mut st.resp_headers);
        }
        // A layer grown by an unusual request (thousands of TX keys) is let go.
        if st.tx.own_capacity() <= 1024 {
            s.tx = Some(std::mem::take(&mut st.tx));
        }
        s.matched_vars = std::mem::take(&mut st.matched_vars);
        s.matched_vars.trim(32, 1024);
        // Grown again on every transaction otherwise (a few reallocations each).
        if st.matched_var.capacity() <= 1024 {
            s.matched_var = std::mem::take(&mut st.matched_var);
            s.matched_var.clear();
        }
        if st.matched_var_name.capacity() <= 1024 {
            s.matched_var_name = std::mem::take(&mut st.matched_var_name);
            s.matched_var_name = MatchedName::emptied(s.matched_var_name);
        }
        s
    }
}

/// Copy `src` into `dst`, into the buffers `dst` already has (entries past
/// the end of `src` are dropped).
pub fn fill_pairs<'s>(dst: &mut Pairs, src: impl Iterator<Item = (&'s [u8], &'s [u8])>) {
    let mut n = 0;
    for (a, b) in src {
        match dst.get_mut(n) {
            Some((x, y)) => {
                x.clear();
                x.extend_from_slice(a);
                y.clear();
                y.extend_from_slice(b);
            }
            None => dst.push((a.to_vec(), b.to_vec())),
        }
        n += 1;
    }
    dst.truncate(n);
}

/// A MATCHED_VAR_NAME as its parts: the variable, and the member key when
/// the name carries one (`ARGS:q`). Spelt out (`write`, `text`) only when
/// something reads it; most matches are never named.
#[derive(Debug, Clone, Default)]
pub struct MatchedName {
    /// `None`: nothing matched yet (the name is empty).
    var: Option<Var>,
    /// Written after the variable's name and a colon.
    keyed: bool,
    key: Vec<u8>,
}

impl MatchedName {
    /// The variable's name alone (a scalar, a count, SecAction's REQUEST_URI).
    pub fn set_bare(&mut self, var: Var) {
        self.var = Some(var);
        self.keyed = false;
    }

    /// `VAR:key`.
    pub fn set_keyed(&mut self, var: Var, key: &[u8]) {
        self.var = Some(var);
        self.keyed = true;
        self.key.clear();
        self.key.extend_from_slice(key);
    }

    /// The same name, into this one's buffer.
    pub fn copy_from(&mut self, other: &MatchedName) {
        self.var = other.var;
        self.keyed = other.keyed;
        self.key.clear();
        if other.keyed {
            self.key.extend_from_slice(&other.key);
        }
    }

    /// The name as ModSecurity reports it, appended to `out`.
    pub fn write(&self, out: &mut String) {
        let Some(var) = self.var else {
            return;
        };
        out.push_str(var.name());
        if self.keyed {
            out.push(':');
            crate::variables::escape_name(&self.key, out);
        }
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }

    pub fn capacity(&self) -> usize {
        self.key.capacity()
    }

    /// Nothing matched, keeping the key buffer.
    pub fn emptied(mut self) -> MatchedName {
        self.var = None;
        self.keyed = false;
        self.key.clear();
        self
    }
}
/// MATCHED_VARS of the rule being run. Cleared after every rule, so the
/// entries keep their buffers for the next rule's matches instead of being
/// freed and allocated again.
#[derive(Debug, Default, Clone)]
pub struct MatchedVars {
    list: Vec<(String, Vec<u8>)>,
    len: usize,
}

impl MatchedVars {
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Add a match, its name written by `name` into the entry's buffer.
    pub fn push_with(&mut self, name: impl FnOnce(&mut String), value: &[u8]) {
        match self.list.get_mut(self.len) {
            Some((n, v)) => {
                n.clear();
                name(n);
                v.clear();
                v.extend_from_slice(value);
            }
            None => {
                let mut n = String::new();
                name(&mut n);
                self.list.push((n, value.to_vec()));
            }
        }
        self.len += 1;
    }

    /// Keep at most `entries` buffers, none over `bytes` (the rest are freed).
    pub fn trim(&mut self, entries: usize, bytes: usize) {
        self.len = 0;
        self.list.truncate(entries);
        self.list
            .retain(|(n, v)| n.capacity() <= bytes && v.capacity() <= bytes);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.list[..self.len]
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread's interners hand out one buffer per string, across requests
    /// too; "shared" says whether this request got a string twice.
    #[test]
    fn interned_strings_outlive_their_request() {
        let mut i = Interner::with_capacity(4);
        let a = i.intern(b"name");
        let b = i.intern(b"value");
        assert!(!i.shared && !Arc::ptr_eq(&a, &b));
        let a2 = i.intern(b"name");
        assert!(i.shared && Arc::ptr_eq(&a, &a2));
        drop(i);
        let mut j = Interner::with_capacity(4);
        let a3 = j.intern(b"name");
        assert!(Arc::ptr_eq(&a, &a3), "kept from the request before");
        assert!(!j.shared, "once in this request");
        // Long strings are this request's alone.
        let long = vec![b'x'; ARG_STRING_MAX + 1];
        let (l1, l2) = (j.intern(&long), j.intern(&long));
        assert!(!Arc::ptr_eq(&l1, &l2) && *l1 == *long);
        assert!(!j.shared);
        drop(j);
        // A request that takes the thread past its bound lets them all go.
        let mut k = Interner::with_capacity(4);
        for n in 0..ARG_STRINGS_BYTES / 64 {
            k.intern(format!("{n:040}").as_bytes());
        }
        drop(k);
        let mut l = Interner::with_capacity(4);
        assert!(!Arc::ptr_eq(&a, &l.intern(b"name")), "let go");
    }
}
