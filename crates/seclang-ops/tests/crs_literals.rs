//! Required literals of the CRS `@rx` patterns: coverage count and a
//! randomized soundness check (every generated string the regex matches
//! must contain one of the literals, ASCII case-insensitively).

mod common;
use aho_corasick::AhoCorasickBuilder;
use common::Rng;
use regex_syntax::hir::{Class, Hir, HirKind};
use seclang_ops::{NoExpand, Operator};

const CRS_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/crs/rules");

/// `@rx` arguments of every rule in the CRS conf files.
fn crs_patterns() -> Option<Vec<String>> {
    let mut files: Vec<_> = std::fs::read_dir(CRS_RULES)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).ok()?;
        let b = text.as_bytes();
        let mut i = 0;
        while let Some(p) = text[i..].find("@rx ") {
            let start = i + p + 4;
            // Must be the start of a quoted operator: `"@rx ` or `"!@rx `.
            let before = &text[..i + p];
            if !(before.ends_with('"') || before.ends_with("\"!")) {
                i = start;
                continue;
            }
            let mut j = start;
            let mut pat = Vec::new();
            while j < b.len() && b[j] != b'"' {
                if b[j] == b'\\' && j + 1 < b.len() && b[j + 1] == b'"' {
                    pat.push(b'"');
                    j += 2;
                } else {
                    pat.push(b[j]);
                    j += 1;
                }
            }
            out.push(String::from_utf8(pat).ok()?);
            i = j;
        }
    }
    Some(out)
}

/// A random string following the structure of `hir` (look-arounds ignored;
/// the caller keeps only strings the regex really matches).
fn generate(hir: &Hir, rng: &mut Rng, out: &mut Vec<u8>) {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(l) => out.extend_from_slice(&l.0),
        HirKind::Class(Class::Unicode(c)) => {
            let rs = c.ranges();
            if rs.is_empty() {
                return;
            }
            // Bias towards ASCII ranges to keep strings readable.
            let r = rs[rng.below(rs.len() as u64) as usize];
            let (a, z) = (r.start() as u32, r.end() as u32);
            let mut cp = a + rng.below(u64::from(z - a) + 1) as u32;
            if rng.below(2) == 0 {
                cp = a;
            }
            let ch = char::from_u32(cp).unwrap_or(r.start());
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
        HirKind::Class(Class::Bytes(c)) => {
            let rs = c.ranges();
            if rs.is_empty() {
                return;
            }
            let r = rs[rng.below(rs.len() as u64) as usize];
            out.push(r.start() + rng.below(u64::from(r.end() - r.start()) + 1) as u8);
        }
        HirKind::Repetition(r) => {
            let max = r.max.unwrap_or(r.min + 3).min(r.min + 3);
            let n = r.min + rng.below(u64::from(max - r.min) + 1) as u32;
            for _ in 0..n {
                generate(&r.sub, rng, out);
            }
        }
        HirKind::Capture(c) => generate(&c.sub, rng, out),
        HirKind::Concat(cs) => cs.iter().for_each(|c| generate(c, rng, out)),
        HirKind::Alternation(bs) => generate(&bs[rng.below(bs.len() as u64) as usize], rng, out),
    }
}

fn flip_case(s: &mut [u8], rng: &mut Rng) {
    for c in s.iter_mut() {
        if rng.below(2) == 0 {
            *c = if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
        }
    }
}

#[test]
fn crs_rx_literal_coverage_and_soundness() {
    let Some(pats) = crs_patterns() else {
        assert!(
            std::env::var("PALISADE_REQUIRE_CRS").as_deref() != Ok("1"),
            "{CRS_RULES} missing and PALISADE_REQUIRE_CRS=1"
        );
        eprintln!("CRS rules not found at {CRS_RULES}: skipped");
        return;
    };
    assert!(pats.len() >= 300, "found only {} @rx patterns", pats.len());
    let none = |_: &str| -> std::io::Result<Vec<u8>> { Err(std::io::ErrorKind::NotFound.into()) };
    let mut with_lits = 0;
    let mut checked = 0usize;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for p in &pats {
        let op = Operator::compile("rx", p, false, &none)
            .unwrap_or_else(|e| panic!("CRS @rx does not compile: {e}\n{p}"));
        let Some(lits) = op.required_literals() else {
            continue;
        };
        with_lits += 1;
        assert!(lits.iter().all(|l| !l.is_empty()));
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .build(&lits)
            .unwrap();
        let hir = seclang_ops::parse_rx(p, false)
            .or_else(|| seclang_ops::parse_rx(p, true))
            .unwrap();
        for _ in 0..200 {
            let mut s = Vec::new();
            if rng.below(3) == 0 {
                s.extend_from_slice(b"x=1&q=");
            }
            generate(&hir, &mut rng, &mut s);
            if rng.below(4) == 0 {
                flip_case(&mut s, &mut rng);
            }
            if op.eval(&s, &NoExpand, None) {
                checked += 1;
                assert!(
                    ac.is_match(&s),
                    "literal set misses a match\npattern: {p}\nvalue: {:?}\nliterals: {:?}",
                    String::from_utf8_lossy(&s),
                    lits.iter()
                        .map(|l| String::from_utf8_lossy(l).into_owned())
                        .collect::<Vec<_>>()
                );
            }
        }
    }
    eprintln!(
        "CRS @rx patterns: {}, with a required-literal set: {with_lits}; matching samples checked: {checked}",
        pats.len()
    );
    assert!(checked > 1000, "too few matching samples: {checked}");
}

/// All lines of the CRS regression tests (payload-bearing YAML).
fn regression_lines() -> Vec<Vec<u8>> {
    fn walk(dir: &std::path::Path, out: &mut Vec<Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if let Ok(data) = std::fs::read(&p) {
                for l in data.split(|&b| b == b'\n') {
                    let l = l.trim_ascii();
                    if l.len() > 2 && !l.starts_with(b"#") {
                        out.push(l.to_vec());
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(
        std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/crs/tests/regression/tests"
        )),
        &mut out,
    );
    out.sort();
    out.dedup();
    out
}

/// Soundness on real attack payloads: every CRS regression-test line,
/// raw and through common CRS transformation chains; wherever an `@rx`
/// matches, its literal set must match too.
#[test]
fn crs_rx_literals_sound_on_regression_payloads() {
    let Some(pats) = crs_patterns() else {
        return;
    };
    let lines = regression_lines();
    if lines.is_empty() {
        return;
    }
    let none = |_: &str| -> std::io::Result<Vec<u8>> { Err(std::io::ErrorKind::NotFound.into()) };
    let chains: &[&[&str]] = &[
        &[],
        &["urlDecodeUni"],
        &["urlDecodeUni", "lowercase"],
        &[
            "utf8toUnicode",
            "urlDecodeUni",
            "htmlEntityDecode",
            "jsDecode",
            "cssDecode",
            "removeNulls",
        ],
        &["urlDecodeUni", "cmdLine"],
        &["urlDecodeUni", "removeWhitespace", "lowercase"],
        &["urlDecodeUni", "replaceComments"],
        &["base64Decode"],
    ];
    let mut values: Vec<Vec<u8>> = Vec::new();
    for l in &lines {
        for chain in chains {
            let mut v = l.clone();
            for n in *chain {
                if let Some(nv) = seclang_ops::Transform::from_name(n).unwrap().apply(&v) {
                    v = nv;
                }
            }
            values.push(v);
        }
    }
    values.sort();
    values.dedup();
    let mut with = Vec::new();
    for p in &pats {
        let op = Operator::compile("rx", p, false, &none).unwrap();
        if let Some(lits) = op.required_literals() {
            let ac = AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .build(&lits)
                .unwrap();
            with.push((p, op, ac));
        }
    }
    let mut matches = 0usize;
    for v in &values {
        for (p, op, ac) in &with {
            if !ac.is_match(v) && op.eval(v, &NoExpand, None) {
                panic!(
                    "literal set misses a match\npattern: {p}\nvalue: {:?}",
                    String::from_utf8_lossy(v)
                );
            }
            if ac.is_match(v) {
                matches += 1;
            }
        }
    }
    eprintln!(
        "regression values: {}, patterns with literals: {}, prefilter passes: {matches}",
        values.len(),
        with.len()
    );
}
