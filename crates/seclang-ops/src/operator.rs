//! Operators with ModSecurity v2 semantics.

use crate::Expand;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder};
use ipnet::IpNet;
use std::net::IpAddr;

enum Kind {
    Rx(regex::bytes::Regex, String),
    /// `@rx ^.*$` (CRS 920450 and friends): every value matches whole
    /// (ModSecurity compiles with DOTALL), so no regex is run.
    RxAll,
    Pm(AhoCorasick, Vec<Vec<u8>>),
    /// The comparison, the argument, and its value when it has no macro
    /// (parsed once here instead of per value).
    Num(fn(i64, i64) -> bool, Arg, Option<i64>),
    Str(StrOp, Arg),
    Within(Arg),
    Always(bool),
    Sqli,
    Xss,
    ByteRange(Box<[bool; 256]>),
    Utf8,
    UrlEnc,
    Ip(Vec<IpNet>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StrOp {
    Streq,
    BeginsWith,
    EndsWith,
    Contains,
    ContainsWord,
}

/// An operator argument that may hold macros, classified once at load
/// time: most have none, and most that do are a lone `%{tx.name}`.
struct Arg {
    text: String,
    /// The whole argument is `%{tx.<this>}`.
    tx_key: Option<String>,
    has_macro: bool,
}

impl Arg {
    fn new(text: &str) -> Arg {
        let tx_key = text
            .strip_prefix("%{")
            .and_then(|r| r.strip_suffix('}'))
            .and_then(|r| {
                r.get(..3)
                    .filter(|p| p.eq_ignore_ascii_case("tx."))
                    .map(|_| &r[3..])
            })
            .filter(|k| !k.is_empty() && !k.contains(['%', '{', '}']))
            .map(str::to_string);
        Arg {
            text: text.to_string(),
            tx_key,
            has_macro: text.contains("%{"),
        }
    }

    fn value<'a>(&'a self, exp: &'a dyn Expand) -> std::borrow::Cow<'a, [u8]> {
        if !self.has_macro {
            return std::borrow::Cow::Borrowed(self.text.as_bytes());
        }
        if let Some(v) = self.tx_key.as_deref().and_then(|k| exp.tx_var(k)) {
            return v;
        }
        exp.expand(&self.text)
    }
}

/// A compiled operator (`@rx`, `@pm`, ...), possibly negated.
pub struct Operator {
    kind: Kind,
    negated: bool,
}

/// Make `c` the groups, in the buffers it already has.
fn set_caps<'g>(c: &mut Vec<Vec<u8>>, groups: impl IntoIterator<Item = &'g [u8]>) {
    let mut n = 0;
    for g in groups {
        match c.get_mut(n) {
            Some(b) => {
                b.clear();
                b.extend_from_slice(g);
            }
            None => c.push(g.to_vec()),
        }
        n += 1;
    }
    c.truncate(n);
}

/// C `atoi` with saturation instead of undefined overflow.
pub fn atoi(b: &[u8]) -> i64 {
    let mut i = 0;
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let neg = match b.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut n: i64 = 0;
    while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(i64::from(d - b'0'));
        i += 1;
    }
    if neg {
        n.saturating_neg()
    } else {
        n
    }
}

fn num(f: fn(i64, i64) -> bool, arg: &str) -> Kind {
    let a = Arg::new(arg);
    let constant = (!a.has_macro).then(|| atoi(a.text.as_bytes()));
    Kind::Num(f, a, constant)
}

fn pm(words: Vec<Vec<u8>>) -> Result<Kind, String> {
    let words: Vec<Vec<u8>> = words.into_iter().filter(|w| !w.is_empty()).collect();
    let ac = AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .build(&words)
        .map_err(|e| format!("cannot build @pm matcher: {e}"))?;
    Ok(Kind::Pm(ac, words))
}

/// `@pm` phrase list: whitespace-separated, with `"quoted phrases"` and
/// `|hex|` byte sequences as ModSecurity's `parse_pm_content` accepts.
fn pm_words(arg: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut words = Vec::new();
    for w in arg.split_whitespace() {
        let w = w.strip_prefix('"').unwrap_or(w);
        let w = w.strip_suffix('"').unwrap_or(w);
        words.push(unhex_pipes(w.as_bytes())?);
    }
    Ok(words)
}

#[derive(Clone, Copy)]
enum CleanKind {
    Sqli = 0,
    Xss = 1,
}

/// Values up to this length are remembered as clean.
const CLEAN_MAX_LEN: usize = 512;
/// Entries per check and thread; the set starts over when full.
const CLEAN_MAX_ENTRIES: usize = 4096;

thread_local! {
    /// Values libinjection found clean, per check and thread. The answer is
    /// a function of the bytes alone, and the same values come back on most
    /// requests (User-Agent, Referer, cookie and JSON field names), where
    /// libinjection costs microseconds each. Only clean answers are kept,
    /// keyed by the exact bytes.
    static CLEAN: std::cell::RefCell<[std::collections::HashSet<Box<[u8]>>; 2]> =
        std::cell::RefCell::new(Default::default());
}

fn known_clean(k: CleanKind, v: &[u8]) -> bool {
    v.len() <= CLEAN_MAX_LEN && CLEAN.with(|c| c.borrow()[k as usize].contains(v))
}

fn remember_clean(k: CleanKind, v: &[u8]) {
    if v.len() > CLEAN_MAX_LEN {
        return;
    }
    CLEAN.with(|c| {
        let set = &mut c.borrow_mut()[k as usize];
        if set.len() >= CLEAN_MAX_ENTRIES {
            set.clear();
        }
        set.insert(v.into());
    });
}

/// A lone word (`shoes`, `SPRING24`) or integer (`48213`). libinjection
/// reads it as a single bareword, keyword or number token, and its SQLi
/// blacklist holds no one-token fingerprint but the "evil" token, which a
/// word or number never is: such values skip the tokenizer (about a third
/// of typical argument values; `tests/libinjection_shortcuts.rs` checks the
/// claim against the library).
pub fn lone_word_or_number(v: &[u8]) -> bool {
    match v.first() {
        Some(c) if c.is_ascii_alphabetic() => {
            v.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        }
        Some(c) if c.is_ascii_digit() => v.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// A value without whitespace, control bytes, `<`, `>`, quotes, backquote,
/// `=` or `/`. libinjection's XSS check parses it as text or as one
/// attribute value with no attribute name in every context it tries, so it
/// cannot find a tag, an event attribute or a URL (checked in
/// `tests/libinjection_shortcuts.rs`).
pub fn xss_inert(v: &[u8]) -> bool {
    !v.is_empty()
        && v.iter()
            .all(|&b| b >= 0x80 || (0x21..0x7f).contains(&b) && !b"<>'\"`=/".contains(&b))
}

/// Expands `|41 42|` hex sections; a lone `|` without a closing one is literal.
fn unhex_pipes(w: &[u8]) -> Result<Vec<u8>, String> {
    if !w.contains(&b'|') {
        return Ok(w.to_vec());
    }
    let mut o = Vec::with_capacity(w.len());
    let mut i = 0;
    while i < w.len() {
        if w[i] == b'|' {
            if let Some(end) = w[i + 1..].iter().position(|&c| c == b'|') {
                let hexpart: Vec<u8> = w[i + 1..i + 1 + end]
                    .iter()
                    .copied()
                    .filter(|c| !c.is_ascii_whitespace())
                    .collect();
                if !hexpart.is_empty() && hexpart.len() & 1 == 0 {
                    if let Ok(bytes) = hex::decode(&hexpart) {
                        o.extend_from_slice(&bytes);
                        i += end + 2;
                        continue;
                    }
                }
            }
        }
        o.push(w[i]);
        i += 1;
    }
    Ok(o)
}

fn read_lines(
    arg: &str,
    read_file: &dyn Fn(&str) -> std::io::Result<Vec<u8>>,
) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for f in arg.split_whitespace() {
        let data = read_file(f).map_err(|e| format!("cannot read {f}: {e}"))?;
        for l in data.split(|&b| b == b'\n') {
            let l = l.trim_ascii_end();
            if l.is_empty() || l.starts_with(b"#") {
                continue;
            }
            out.push(l.to_vec());
        }
    }
    Ok(out)
}

fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("invalid IP address or network: {s:?}"))
}

fn byte_ranges(arg: &str) -> Result<[bool; 256], String> {
    let mut table = [false; 256];
    for p in arg.split(',') {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        let (a, b) = p.split_once('-').unwrap_or((p, p));
        let parse = |s: &str| -> Result<u8, String> {
            s.trim()
                .parse::<u8>()
                .map_err(|_| format!("invalid range value in @validateByteRange: {p:?}"))
        };
        let (a, b) = (parse(a)?, parse(b)?);
        if a > b {
            return Err(format!("invalid range in @validateByteRange: {p:?}"));
        }
        for x in a..=b {
            table[x as usize] = true;
        }
    }
    Ok(table)
}

/// v2 `validate_url_encoding`: true when a `%` is not followed by two hex digits.
fn invalid_url_encoding(v: &[u8]) -> bool {
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            if i + 2 >= v.len() || !(v[i + 1].is_ascii_hexdigit() && v[i + 2].is_ascii_hexdigit()) {
                return true;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

/// v2 `detect_utf8_character` over the whole value: true on a missing or
/// bad continuation byte, an invalid lead byte, an overlong form, a
/// surrogate, or a lead byte above 0xF4.
fn invalid_utf8(v: &[u8]) -> bool {
    let mut i = 0;
    while i < v.len() {
        let c = v[i];
        let (len, min) = if c & 0x80 == 0 {
            i += 1;
            continue;
        } else if c & 0xe0 == 0xc0 {
            (2, 0x80)
        } else if c & 0xf0 == 0xe0 {
            (3, 0x800)
        } else if c & 0xf8 == 0xf0 {
            if c >= 0xf5 {
                return true;
            }
            (4, 0x10000)
        } else {
            return true;
        };
        if i + len > v.len() {
            return true;
        }
        let mut d: u32 = u32::from(c) & (0x7f >> len);
        for k in 1..len {
            if v[i + k] & 0xc0 != 0x80 {
                return true;
            }
            d = (d << 6) | u32::from(v[i + k] & 0x3f);
        }
        if d < min || (0xd800..=0xdfff).contains(&d) {
            return true;
        }
        i += len;
    }
    false
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn contains_word(v: &[u8], w: &[u8]) -> bool {
    if w.is_empty() {
        return true;
    }
    memchr::memmem::find_iter(v, w)
        .any(|i| (i == 0 || !is_word(v[i - 1])) && v.get(i + w.len()).is_none_or(|&c| !is_word(c)))
}

fn contains(v: &[u8], a: &[u8]) -> bool {
    memchr::memmem::find(v, a).is_some()
}

/// `@within`: whether `v` occurs in the argument `list`. Building a
/// searcher for each value costs more than searching a short list (CRS's
/// allowed methods, content types, restricted headers) directly: the
/// places where the value's second byte occurs are checked, as the first
/// is often a delimiter (`/x-forwarded-host/`, `|application/json|`) the
/// list repeats between every entry.
fn within(list: &[u8], v: &[u8]) -> bool {
    const SHORT_LIST: usize = 512;
    if list.len() > SHORT_LIST || v.len() < 2 {
        return contains(list, v);
    }
    let Some(last) = list.len().checked_sub(v.len()) else {
        return false;
    };
    // Candidate starts `i` with `list[i + 1] == v[1]`.
    memchr::memchr_iter(v[1], &list[1..=last + 1]).any(|i| list[i..i + v.len()] == *v)
}

/// `@rx` with ModSecurity v2's PCRE semantics (no UTF-8 mode, DOTALL):
/// byte-oriented classes, ASCII `\w \s \d \b`, ASCII-only `(?i)`.
/// Patterns needing Unicode (`\p{..}`, non-ASCII class members) are
/// compiled in Unicode mode instead.
fn compile_rx(arg: &str) -> Result<regex::bytes::Regex, String> {
    let bytes_pattern = crate::literals::pcre_bytes(arg);
    let build = |unicode: bool| {
        regex::bytes::RegexBuilder::new(if unicode { arg } else { &bytes_pattern })
            .unicode(unicode)
            .dot_matches_new_line(true)
            .size_limit(64 << 20)
            .dfa_size_limit(8 << 20)
            .build()
    };
    build(false).or_else(|_| build(true)).map_err(|e| {
        let lookaround = ["(?=", "(?!", "(?<=", "(?<!"]
            .iter()
            .any(|s| arg.contains(s));
        let backref = arg
            .as_bytes()
            .windows(2)
            .any(|w| w[0] == b'\\' && (b'1'..=b'9').contains(&w[1]));
        let why = if lookaround || backref {
            " (lookaround and backreferences are not supported: \
             @rx uses a linear-time engine)"
        } else {
            ""
        };
        format!("cannot compile @rx pattern{why}: {e}")
    })
}

impl Operator {
    /// Compiles `@name arg`; `read_file` resolves data files of
    /// `@pmFromFile` and `@ipMatchFromFile`.
    pub fn compile(
        name: &str,
        arg: &str,
        negated: bool,
        read_file: &dyn Fn(&str) -> std::io::Result<Vec<u8>>,
    ) -> Result<Operator, String> {
        let kind = match name.to_ascii_lowercase().as_str() {
            "rx" if arg == "^.*$" => Kind::RxAll,
            "rx" => Kind::Rx(compile_rx(arg)?, arg.to_string()),
            "pm" => pm(pm_words(arg)?)?,
            "pmfromfile" | "pmf" => pm(read_lines(arg, read_file)?)?,
            "eq" => num(|a, b| a == b, arg),
            "ge" => num(|a, b| a >= b, arg),
            "gt" => num(|a, b| a > b, arg),
            "le" => num(|a, b| a <= b, arg),
            "lt" => num(|a, b| a < b, arg),
            "streq" => Kind::Str(StrOp::Streq, Arg::new(arg)),
            "beginswith" => Kind::Str(StrOp::BeginsWith, Arg::new(arg)),
            "endswith" => Kind::Str(StrOp::EndsWith, Arg::new(arg)),
            "contains" => Kind::Str(StrOp::Contains, Arg::new(arg)),
            "containsword" => Kind::Str(StrOp::ContainsWord, Arg::new(arg)),
            "within" => Kind::Within(Arg::new(arg)),
            "unconditionalmatch" => Kind::Always(true),
            "nomatch" => Kind::Always(false),
            // Real-time block lists need DNS at request time; documented
            // as never matching.
            "rbl" => Kind::Always(false),
            "detectsqli" => Kind::Sqli,
            "detectxss" => Kind::Xss,
            "validateutf8encoding" => Kind::Utf8,
            "validateurlencoding" => Kind::UrlEnc,
            "validatebyterange" => Kind::ByteRange(Box::new(byte_ranges(arg)?)),
            "ipmatch" => Kind::Ip(
                arg.split([',', ' '])
                    .filter(|s| !s.trim().is_empty())
                    .map(parse_net)
                    .collect::<Result<_, _>>()?,
            ),
            "ipmatchfromfile" | "ipmatchf" => Kind::Ip(
                read_lines(arg, read_file)?
                    .iter()
                    .map(|l| parse_net(&String::from_utf8_lossy(l)))
                    .collect::<Result<_, _>>()?,
            ),
            other => return Err(format!("unknown operator @{other}")),
        };
        Ok(Operator { kind, negated })
    }

    /// Whether the answer is a function of the value alone and costs more
    /// than looking it up in a keyed memory: `@rx` (a regex search runs
    /// hundreds of instructions even on short values). `^.*$`, `@pm` (one
    /// automaton pass) and the libinjection operators (which remember clean
    /// values themselves) are not.
    pub fn worth_remembering(&self) -> bool {
        matches!(&self.kind, Kind::Rx(..))
    }

    /// Whether the answer is a function of the value alone and costs more
    /// than a bit test: the operators that read no argument at run time
    /// and look at every byte (`@rx`, `@pm`, libinjection, the byte and
    /// encoding checks). An answer kept per value in the transaction
    /// record (see `seclang`'s merged scan) costs a bit test.
    pub fn value_only(&self) -> bool {
        matches!(
            &self.kind,
            Kind::Rx(..)
                | Kind::Pm(..)
                | Kind::Sqli
                | Kind::Xss
                | Kind::ByteRange(_)
                | Kind::Utf8
                | Kind::UrlEnc
        )
    }

    /// Evaluates the operator against `v` (negation applied). With `caps`,
    /// `@rx` fills the capture groups (TX.0..), `@pm` the matched phrase and
    /// `@detectSQLi` the fingerprint; on a match `caps` holds exactly those
    /// (none for other operators), written into the buffers it already has
    /// (a capturing rule matches every header name: CRS 920450).
    pub fn eval(&self, v: &[u8], exp: &dyn Expand, mut caps: Option<&mut Vec<Vec<u8>>>) -> bool {
        // Whether `caps` now holds this evaluation's groups.
        let mut filled = false;
        let r = match &self.kind {
            Kind::RxAll => {
                if let Some(c) = caps.as_deref_mut() {
                    set_caps(c, [v]);
                    filled = true;
                }
                true
            }
            Kind::Rx(re, _) => match caps.as_deref_mut() {
                // Most values do not match: the capture-free search answers
                // that without allocating capture slots.
                Some(_) if !re.is_match(v) => false,
                Some(c) => match re.captures(v) {
                    Some(m) => {
                        let groups = m.iter().take(10);
                        set_caps(c, groups.map(|g| g.map_or(&[][..], |g| g.as_bytes())));
                        filled = true;
                        true
                    }
                    None => false,
                },
                None => re.is_match(v),
            },
            Kind::Pm(ac, _) => match ac.find(v) {
                Some(m) => {
                    if let Some(c) = caps.as_deref_mut() {
                        set_caps(c, [v.get(m.start()..m.end()).unwrap_or_default()]);
                        filled = true;
                    }
                    true
                }
                None => false,
            },
            Kind::Num(f, _, Some(n)) => f(atoi(v), *n),
            Kind::Num(f, a, None) => f(atoi(v), atoi(&a.value(exp))),
            Kind::Str(op, a) => {
                let a = a.value(exp);
                let a: &[u8] = &a;
                match op {
                    StrOp::Streq => v == a,
                    StrOp::BeginsWith => v.starts_with(a),
                    StrOp::EndsWith => v.ends_with(a),
                    StrOp::Contains => contains(v, a),
                    StrOp::ContainsWord => contains_word(v, a),
                }
            }
            Kind::Within(a) => within(&a.value(exp), v),
            Kind::Always(b) => *b,
            Kind::Sqli if lone_word_or_number(v) => false,
            Kind::Xss if xss_inert(v) => false,
            Kind::Sqli if known_clean(CleanKind::Sqli, v) => false,
            Kind::Xss if known_clean(CleanKind::Xss, v) => false,
            Kind::Sqli => {
                let r = libinjectionrs::detect_sqli(v);
                if r.is_injection() {
                    if let (Some(c), Some(fp)) = (caps.as_deref_mut(), r.fingerprint) {
                        set_caps(c, [fp.to_string().as_bytes()]);
                        filled = true;
                    }
                    true
                } else {
                    remember_clean(CleanKind::Sqli, v);
                    false
                }
            }
            Kind::Xss => {
                let hit = libinjectionrs::detect_xss(v).is_injection();
                if !hit {
                    remember_clean(CleanKind::Xss, v);
                }
                hit
            }
            Kind::ByteRange(t) => v.iter().any(|&b| !t[b as usize]),
            Kind::Utf8 => invalid_utf8(v),
            Kind::UrlEnc => invalid_url_encoding(v),
            Kind::Ip(nets) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<IpAddr>().ok())
                .is_some_and(|ip| nets.iter().any(|n| n.contains(&ip))),
        };
        let matched = r != self.negated;
        if let (true, false, Some(c)) = (matched, filled, caps) {
            c.truncate(0);
        }
        matched
    }

    /// Literals (lower-cased; match them ASCII case-insensitively) of which
    /// at least one occurs in every value the operator can match, or `None`
    /// when no such set is known. Always `None` for negated operators.
    pub fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        if self.negated {
            return None;
        }
        match &self.kind {
            Kind::Rx(_, pattern) => crate::literals::regex_literals(pattern),
            Kind::Pm(_, words) => {
                if words.is_empty() {
                    return None;
                }
                let mut w: Vec<Vec<u8>> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
                w.sort();
                w.dedup();
                Some(w)
            }
            Kind::Str(_, a) if !a.text.is_empty() && !a.has_macro => {
                Some(vec![a.text.as_bytes().to_ascii_lowercase()])
            }
            _ => None,
        }
    }
}
