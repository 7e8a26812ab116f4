use seclang_ops::{Expand, NoExpand, Operator};
use std::borrow::Cow;

fn no_files(_: &str) -> std::io::Result<Vec<u8>> {
    Err(std::io::ErrorKind::NotFound.into())
}

fn op(name: &str, arg: &str) -> Operator {
    Operator::compile(name, arg, false, &no_files).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn m(o: &Operator, v: &[u8]) -> bool {
    o.eval(v, &NoExpand, None)
}

/// `caps` arrives holding an earlier match's groups (the engine reuses the
/// buffers): a match leaves exactly its own groups, or none for an operator
/// that captures nothing; a miss need not touch them.
#[test]
fn captures_replace_what_caps_held() {
    let stale = || {
        vec![
            b"old0".to_vec(),
            b"old1".to_vec(),
            b"old2".to_vec(),
            b"old3".to_vec(),
        ]
    };
    let mut caps = stale();
    assert!(op("rx", "^(a)(b)?").eval(b"ac", &NoExpand, Some(&mut caps)));
    assert_eq!(caps, vec![b"a".to_vec(), b"a".to_vec(), Vec::new()]);
    let mut caps = stale();
    assert!(op("rx", "^.*$").eval(b"hdr", &NoExpand, Some(&mut caps)));
    assert_eq!(caps, vec![b"hdr".to_vec()]);
    let mut caps = stale();
    assert!(op("pm", "foo bar").eval(b"a bar", &NoExpand, Some(&mut caps)));
    assert_eq!(caps, vec![b"bar".to_vec()]);
    for (o, v) in [(op("streq", "x"), &b"x"[..]), (op("contains", "y"), b"ayb")] {
        let mut caps = stale();
        assert!(o.eval(v, &NoExpand, Some(&mut caps)));
        assert!(caps.is_empty(), "{caps:?}");
    }
    let negated = Operator::compile("rx", "^(n)$", true, &no_files).expect("rx");
    let mut caps = stale();
    assert!(negated.eval(b"m", &NoExpand, Some(&mut caps)));
    assert!(caps.is_empty(), "{caps:?}");
}

#[test]
fn rx_and_captures() {
    let o = op("rx", "(?i)(union)\\s+(select)");
    assert!(m(&o, b"1 UNION  select 2"));
    assert!(!m(&o, b"union"));
    let mut caps = Vec::new();
    assert!(o.eval(b"x union select", &NoExpand, Some(&mut caps)));
    assert_eq!(
        caps,
        vec![
            b"union select".to_vec(),
            b"union".to_vec(),
            b"select".to_vec()
        ]
    );
    // Dot matches newlines; byte semantics like PCRE without UTF-8 mode.
    assert!(m(&op("rx", "a.b"), b"a\nb"));
    assert!(m(&op("rx", "a.b"), b"a\xffb"));
    assert!(m(&op("rx", "\\x{c2}\\x{b4}"), b"\xc2\xb4"));
    assert!(m(&op("rx", "[\\x{7f}-\\x{ff}]"), b"\xfe"));
    assert!(m(&op("rx", "^[\\x7f-\\x{ff}]+$"), b"\x80\xff"));
    // (?i) is ASCII-only, \w is ASCII.
    assert!(!m(&op("rx", "(?i)^s$"), "\u{17f}".as_bytes()));
    assert!(!m(&op("rx", "^\\w$"), "\u{e9}".as_bytes()));
    // Unicode classes still compile (Unicode mode).
    assert!(m(&op("rx", "\\p{Greek}"), "\u{3b1}".as_bytes()));
    // More than ten groups: only TX.0..TX.9.
    let o = op("rx", "(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)");
    let mut caps = Vec::new();
    assert!(o.eval(b"abcdefghijk", &NoExpand, Some(&mut caps)));
    assert_eq!(caps.len(), 10);
}

#[test]
fn rx_rejects_backtracking_features() {
    for p in ["a(?=b)", "(?<!x)y", "(a)\\1"] {
        let e = Operator::compile("rx", p, false, &no_files).err().unwrap();
        assert!(e.contains("lookaround and backreferences"), "{e}");
    }
    assert!(Operator::compile("rx", "(", false, &no_files).is_err());
}

#[test]
fn pm() {
    let o = op("pm", "foo BAR |4142|x");
    assert!(m(&o, b"xxFOOxx"));
    assert!(m(&o, b"bar"));
    assert!(m(&o, b"ABx"));
    assert!(!m(&o, b"fo ba"));
    let mut caps = Vec::new();
    assert!(o.eval(b"a Bar b", &NoExpand, Some(&mut caps)));
    assert_eq!(caps, vec![b"Bar".to_vec()]);
    assert!(m(&op("pm", "?>"), b"<? x ?>"));
}

#[test]
fn pm_from_file() {
    let read = |f: &str| -> std::io::Result<Vec<u8>> {
        assert_eq!(f, "words.data");
        Ok(b"# comment\n\nalpha \r\nbeta\n".to_vec())
    };
    for name in ["pmFromFile", "pmf"] {
        let o = Operator::compile(name, "words.data", false, &read).unwrap();
        assert!(m(&o, b"xALPHAx"));
        assert!(m(&o, b"beta"));
        assert!(!m(&o, b"comment"));
        assert_eq!(
            o.required_literals(),
            Some(vec![b"alpha".to_vec(), b"beta".to_vec()])
        );
    }
    assert!(Operator::compile("pmFromFile", "missing", false, &no_files).is_err());
}

#[test]
fn numeric() {
    assert!(m(&op("eq", "5"), b"5"));
    assert!(m(&op("eq", "0"), b"abc"));
    assert!(m(&op("gt", "5"), b"6"));
    assert!(!m(&op("gt", "5"), b"5"));
    assert!(m(&op("ge", "5"), b" 5x"));
    assert!(m(&op("lt", "5"), b"-7"));
    assert!(m(&op("le", "5"), b"5"));
}

struct Ex;
impl Expand for Ex {
    fn expand<'a>(&'a self, t: &'a str) -> Cow<'a, [u8]> {
        Cow::Owned(t.replace("%{tx.x}", "abc").into_bytes())
    }
}

#[test]
fn strings() {
    assert!(m(&op("streq", "abc"), b"abc"));
    assert!(!m(&op("streq", "abc"), b"abcd"));
    assert!(m(&op("beginsWith", "ab"), b"abc"));
    assert!(m(&op("endsWith", "bc"), b"abc"));
    assert!(m(&op("contains", "b"), b"abc"));
    assert!(!m(&op("contains", "B"), b"abc"));
    assert!(m(&op("within", "GET POST"), b"POST"));
    assert!(!m(&op("within", "GET POST"), b"PUT"));
    assert!(op("streq", "%{tx.x}").eval(b"abc", &Ex, None));
    assert!(op("within", "x %{tx.x} y").eval(b"abc", &Ex, None));
}

/// Looks TX up directly: `%{tx.x}` is "direct", any other text is expanded.
struct Direct;
impl Expand for Direct {
    fn expand<'a>(&'a self, t: &'a str) -> Cow<'a, [u8]> {
        Cow::Owned(t.replace("%{tx.x}", "expanded").into_bytes())
    }
    fn tx_var<'a>(&'a self, key: &str) -> Option<Cow<'a, [u8]>> {
        Some(Cow::Borrowed(if key == "x" { b"direct" } else { b"" }))
    }
}

#[test]
fn lone_tx_arguments_are_looked_up_directly() {
    assert!(op("streq", "%{tx.x}").eval(b"direct", &Direct, None));
    assert!(op("streq", "%{TX.x}").eval(b"direct", &Direct, None));
    assert!(op("within", "%{tx.x}").eval(b"rec", &Direct, None));
    assert!(op("eq", "%{tx.unset}").eval(b"0", &Direct, None));
    // Not a lone TX macro: expanded as text.
    assert!(op("streq", "%{tx.x}!").eval(b"expanded!", &Direct, None));
    assert!(op("streq", "%{matched_var}").eval(b"%{matched_var}", &Direct, None));
    // No macro: the text itself, the expander is not asked.
    assert!(op("streq", "tx.x").eval(b"tx.x", &Direct, None));
}

#[test]
fn contains_word() {
    let o = op("containsWord", "select");
    assert!(m(&o, b"select"));
    assert!(m(&o, b"1 select 2"));
    assert!(m(&o, b"(select)"));
    assert!(m(&o, b"xselect select"));
    assert!(!m(&o, b"selection"));
    assert!(!m(&o, b"_select"));
    assert!(!m(&o, b"select1"));
    assert!(!m(&o, b"SELECT"));
    assert!(!m(&o, b"sel"));
    // Long haystacks take the memmem path, short ones the first-byte scan.
    let long = [b"selection ".repeat(80), b"x select".to_vec()].concat();
    assert!(m(&o, &long));
    assert!(!m(&o, &b"selection ".repeat(80)));
}

/// Substring search at the edges, with repeated first bytes, on both sides
/// of the short-haystack threshold.
#[test]
fn contains_edges() {
    for pad in [0usize, 10, 600] {
        let p = "a".repeat(pad);
        let c = |needle: &str, hay: &str| m(&op("contains", needle), hay.as_bytes());
        assert!(c("aab", &format!("{p}aab")), "pad {pad}");
        assert!(c("aab", &format!("{p}aaab")), "pad {pad}");
        assert!(!c("aab", &format!("{p}aa")), "pad {pad}");
        assert!(c("b", &format!("b{p}")), "pad {pad}");
        assert_eq!(c("ab", &format!("{p}b")), pad > 0, "pad {pad}");
        let w = |arg: &str, v: &str| m(&op("within", arg), v.as_bytes());
        assert!(w(&format!("{p}/proxy/ /if/"), "/if/"), "pad {pad}");
        assert!(!w(&format!("{p}/proxy/ /if/"), "/iff/"), "pad {pad}");
        // A value longer than the argument is never within it.
        assert!(!w("/if/", &format!("/if/{p}x")), "pad {pad}");
    }
}

/// `@contains` agrees with a naive search on every needle and haystack of
/// up to 5 bytes over a two-letter alphabet, and on long haystacks.
#[test]
fn contains_agrees_with_naive_search() {
    let naive = |h: &[u8], n: &[u8]| n.is_empty() || h.windows(n.len()).any(|w| w == n);
    let words = |max: usize| {
        let mut all = vec![Vec::new()];
        for len in 1..=max {
            for bits in 0..1u32 << len {
                all.push(
                    (0..len)
                        .map(|i| b"ab"[(bits >> i & 1) as usize])
                        .collect::<Vec<u8>>(),
                );
            }
        }
        all
    };
    let (needles, hays) = (words(4), words(5));
    // `abab...` of each length around the short-haystack and short-list sizes.
    let long_runs = [511, 512, 513, 2000].map(|len| {
        let mut h = b"ab".repeat(len / 2 + 1);
        h.truncate(len);
        h
    });
    for n in needles.iter().filter(|n| !n.is_empty()) {
        let o = op("contains", std::str::from_utf8(n).unwrap());
        for h in &hays {
            assert_eq!(m(&o, h), naive(h, n), "{n:?} in {h:?}");
        }
        for run in &long_runs {
            let len = run.len();
            assert_eq!(m(&o, run), naive(run, n), "{n:?} in {len} bytes");
            let h = [run, n.as_slice()].concat();
            assert!(m(&o, &h), "{n:?} at the end of {len} bytes");
        }
    }
    // `@within` searches the value in the argument: every pair, both sides
    // of the short-list size, the value at the start and the end.
    for h in hays.iter().filter(|h| !h.is_empty()) {
        let o = op("within", std::str::from_utf8(h).unwrap());
        for n in &needles {
            assert_eq!(m(&o, n), naive(h, n), "{n:?} within {h:?}");
        }
    }
    // Bytes of every rank, so that the byte searched for is at any place
    // of the value.
    let mixed = |max: usize| {
        let mut all = vec![Vec::new()];
        for len in 1..=max {
            for code in 0..4usize.pow(len as u32) {
                all.push(
                    (0..len)
                        .map(|i| b"/aZ%"[code / 4usize.pow(i as u32) % 4])
                        .collect::<Vec<u8>>(),
                );
            }
        }
        all
    };
    let (needles4, hays4) = (mixed(3), mixed(4));
    for h in hays4.iter().filter(|h| !h.is_empty()) {
        let o = op("within", std::str::from_utf8(h).unwrap());
        for n in &needles4 {
            assert_eq!(m(&o, n), naive(h, n), "{n:?} within {h:?}");
        }
    }
    for run in &long_runs {
        let list = [&b"ba"[..], run, b"bb"].concat();
        let o = op("within", std::str::from_utf8(&list).unwrap());
        for n in &needles {
            assert_eq!(
                m(&o, n),
                naive(&list, n),
                "{n:?} within {} bytes",
                run.len()
            );
        }
    }
}

#[test]
fn negation() {
    let o = Operator::compile("rx", "abc", true, &no_files).unwrap();
    assert!(!m(&o, b"xabc"));
    assert!(m(&o, b"xyz"));
    assert_eq!(o.required_literals(), None);
    let o = Operator::compile("streq", "abc", true, &no_files).unwrap();
    assert_eq!(o.required_literals(), None);
}

#[test]
fn validate_byte_range() {
    let o = op("validateByteRange", "32-126, 9,10");
    assert!(!m(&o, b"hello world\t\n"));
    assert!(m(&o, b"a\x00"));
    assert!(m(&o, b"\x7f"));
    assert!(m(&op("validateByteRange", "1-255"), b"a\x00b"));
    assert!(Operator::compile("validateByteRange", "1-256", false, &no_files).is_err());
    assert!(Operator::compile("validateByteRange", "9-1", false, &no_files).is_err());
}

#[test]
fn validate_url_encoding() {
    let o = op("validateUrlEncoding", "");
    assert!(!m(&o, b"a%20b%2F"));
    assert!(m(&o, b"a%2"));
    assert!(m(&o, b"%"));
    assert!(m(&o, b"%zz"));
    assert!(m(&o, b"%2g"));
    assert!(!m(&o, b"plain"));
}

#[test]
fn validate_utf8() {
    let o = op("validateUtf8Encoding", "");
    assert!(!m(&o, "héllo €  😀".as_bytes()));
    assert!(m(&o, b"\xc3")); // truncated
    assert!(m(&o, b"\xc3A")); // bad continuation
    assert!(m(&o, b"\xc0\xbc")); // overlong '<'
    assert!(m(&o, b"\xe0\x80\xbc")); // overlong
    assert!(m(&o, b"\xf0\x80\x80\xbc")); // overlong
    assert!(m(&o, b"\xed\xa0\x80")); // surrogate
    assert!(m(&o, b"\xf5\x80\x80\x80"));
    assert!(m(&o, b"\x80"));
    assert!(m(&o, b"\xff"));
}

#[test]
fn ip_match() {
    let o = op("ipMatch", "127.0.0.1,10.0.0.0/8, ::1,2001:db8::/32");
    assert!(m(&o, b"127.0.0.1"));
    assert!(m(&o, b"10.1.2.3"));
    assert!(m(&o, b"::1"));
    assert!(m(&o, b"2001:db8::5"));
    assert!(!m(&o, b"192.168.0.1"));
    assert!(!m(&o, b"garbage"));
    assert!(Operator::compile("ipMatch", "300.1.1.1", false, &no_files).is_err());
    let read = |_: &str| -> std::io::Result<Vec<u8>> {
        Ok(b"# list\n192.168.0.0/16\n\n1.2.3.4\n".to_vec())
    };
    for name in ["ipMatchFromFile", "ipMatchF"] {
        let o = Operator::compile(name, "ips.data", false, &read).unwrap();
        assert!(m(&o, b"192.168.4.4"));
        assert!(m(&o, b"1.2.3.4"));
        assert!(!m(&o, b"1.2.3.5"));
    }
}

#[test]
fn misc() {
    assert!(m(&op("unconditionalMatch", ""), b""));
    assert!(!m(&op("noMatch", ""), b"x"));
    assert!(!m(&op("rbl", "sbl-xbl.spamhaus.org"), b"127.0.0.2"));
    assert!(Operator::compile("bogus", "", false, &no_files).is_err());
    let mut caps = Vec::new();
    assert!(op("detectSQLi", "").eval(b"1' OR '1'='1", &NoExpand, Some(&mut caps)));
    assert!(!caps.is_empty());
    assert!(!m(&op("detectSQLi", ""), b"hello world"));
    assert!(m(&op("detectXSS", ""), b"<script>alert(1)</script>"));
    assert!(!m(&op("detectXSS", ""), b"hello"));
}

#[test]
fn required_literals() {
    let lits = |n: &str, a: &str| op(n, a).required_literals();
    assert_eq!(
        lits("pm", "Foo bar foo"),
        Some(vec![b"bar".to_vec(), b"foo".to_vec()])
    );
    assert_eq!(lits("streq", "AbC"), Some(vec![b"abc".to_vec()]));
    assert_eq!(lits("contains", "x"), Some(vec![b"x".to_vec()]));
    assert_eq!(
        lits("containsWord", "select"),
        Some(vec![b"select".to_vec()])
    );
    assert_eq!(lits("beginsWith", "%{tx.x}"), None);
    assert_eq!(lits("endsWith", ""), None);
    assert_eq!(lits("eq", "1"), None);
    let l = lits("rx", "(?i)union[\\s/*]+select").unwrap();
    assert!(l == vec![b"union".to_vec()] || l == vec![b"select".to_vec()]);
    assert!(lits("rx", "^.*$").is_none());
    assert!(lits("detectSQLi", "").is_none());
}

/// `^.*$` is answered without the regex engine; the answer must be the
/// regex's own (DOTALL: the whole value, newlines included).
#[test]
fn match_all_rx_captures_whole_value() {
    let shortcut = op("rx", "^.*$");
    let real = op("rx", "^(?:.*)$");
    for v in [&b""[..], b"accept", b"a\nb", b"x\r\n", b"\xff\x00z"] {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        assert_eq!(
            shortcut.eval(v, &NoExpand, Some(&mut a)),
            real.eval(v, &NoExpand, Some(&mut b)),
            "{v:?}"
        );
        assert_eq!(a.first(), b.first(), "{v:?}");
        assert_eq!(a.first().map(|c| c.as_slice()), Some(v));
    }
}

/// Clean answers are remembered per thread; asking again, or asking about
/// an attack after clean values, gives libinjection's own answers.
#[test]
fn libinjection_answers_stable_when_remembered() {
    let sqli = op("detectSQLi", "");
    let xss = op("detectXSS", "");
    let values: [&[u8]; 6] = [
        b"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",
        b"1' or '1'='1",
        b"<script>alert(1)</script>",
        b"blue cotton shirt",
        b"x onerror=alert(1)",
        b"jane.doe@example.com",
    ];
    for round in 0..3 {
        for v in values {
            let want_s = libinjectionrs::detect_sqli(v).is_injection();
            let want_x = libinjectionrs::detect_xss(v).is_injection();
            assert_eq!(m(&sqli, v), want_s, "round {round} sqli {v:?}");
            assert_eq!(m(&xss, v), want_x, "round {round} xss {v:?}");
        }
    }
    assert!(m(&sqli, b"1' or '1'='1") && m(&xss, b"<script>alert(1)</script>"));
}
