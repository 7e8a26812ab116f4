//! The values `@detectSQLi` and `@detectXSS` answer without running
//! libinjection must be values libinjection itself never flags. These tests
//! hold that claim against the library version in use: every SQL keyword
//! that is a plain word, and many generated values, including XSS trigger
//! words packed into inert values.

use libinjectionrs::sqli::sqli_data::SQL_KEYWORDS;
use seclang_ops::{lone_word_or_number, xss_inert};

mod common;
use common::Rng;

#[test]
fn lone_words_and_numbers_are_never_sqli() {
    let mut checked = 0;
    for k in SQL_KEYWORDS {
        for v in [k.word.to_string(), k.word.to_ascii_lowercase()] {
            if lone_word_or_number(v.as_bytes()) {
                checked += 1;
                assert!(
                    !libinjectionrs::detect_sqli(v.as_bytes()).is_injection(),
                    "{v}"
                );
            }
        }
    }
    assert!(checked > 1000, "only {checked} keywords checked");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let word = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_";
    for _ in 0..50_000 {
        let n = 1 + (rng.next() % 24) as usize;
        let mut v = vec![rng.pick(&word[..52])];
        v.extend((1..n).map(|_| rng.pick(word)));
        assert!(lone_word_or_number(&v));
        assert!(!libinjectionrs::detect_sqli(&v).is_injection(), "{v:?}");
        let d: Vec<u8> = (0..n).map(|_| rng.pick(b"0123456789")).collect();
        assert!(lone_word_or_number(&d));
        assert!(!libinjectionrs::detect_sqli(&d).is_injection(), "{d:?}");
    }
    for v in ["1 union", "1union", "a-b", "x'", "", "a.b", "1e5x"] {
        assert!(!lone_word_or_number(v.as_bytes()), "{v}");
    }
}

#[test]
fn inert_values_are_never_xss() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let alphabet: Vec<u8> = (0x21u8..0x7f)
        .filter(|c| !b"<>'\"`=/".contains(c))
        .chain([0x80, 0xc3, 0xa9, 0xef, 0xbc, 0x9c, 0xff])
        .collect();
    let words = [
        "javascript:",
        "vbscript:",
        "data:text/html;base64,",
        "onerror",
        "onload",
        "alert(1)",
        "expression(",
        "url(",
        "&#106;",
        "&lt;script&gt;",
        "script",
        "style",
        "src",
        "href",
        "xmlns",
        "<!--",
    ];
    let mut checked = 0;
    for _ in 0..100_000 {
        let mut v = Vec::new();
        for _ in 0..1 + rng.next() % 5 {
            if rng.next().is_multiple_of(2) {
                v.extend_from_slice(rng.pick(&words).as_bytes());
            } else {
                for _ in 0..rng.next() % 8 {
                    v.push(rng.pick(&alphabet));
                }
            }
        }
        if xss_inert(&v) {
            checked += 1;
            assert!(!libinjectionrs::detect_xss(&v).is_injection(), "{v:?}");
        }
    }
    assert!(checked > 30_000, "only {checked} values checked");
    for v in ["a b", "<b>", "x=1", "a/b", "'", "", "\x00"] {
        assert!(!xss_inert(v.as_bytes()), "{v:?}");
    }
}
