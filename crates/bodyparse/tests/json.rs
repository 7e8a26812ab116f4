use bodyparse::json::{parse, parse_with, parse_with_limit, JsonConfig, JsonError};

fn names(body: &str) -> Vec<(String, String)> {
    parse(body.as_bytes())
        .unwrap()
        .into_iter()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(&n).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn flat_object() {
    assert_eq!(
        names(r#"{"a":"x","b":12.5e3,"c":true,"d":false,"e":null}"#),
        pairs(&[
            ("a", "x"),
            ("b", "12.5e3"),
            ("c", "true"),
            ("d", "false"),
            ("e", "")
        ])
    );
}

#[test]
fn nested_objects() {
    assert_eq!(
        names(r#"{"a":{"b":{"c":"1"},"d":"2"},"e":"3"}"#),
        pairs(&[("a.b.c", "1"), ("a.d", "2"), ("e", "3")])
    );
}

#[test]
fn arrays_repeat_their_name() {
    assert_eq!(
        names(r#"{"a":[1,"two",[3]],"b":4}"#),
        pairs(&[("a.a", "1"), ("a.a", "two"), ("a.a.a", "3"), ("b", "4")])
    );
    assert_eq!(
        names(r#"{"a":{"b":[{"c":1},{"c":2}]}}"#),
        pairs(&[("a.b.b.c", "1"), ("a.b.b.c", "2")])
    );
}

#[test]
fn top_level_array_and_scalars() {
    assert_eq!(
        names(r#"[1,2]"#),
        pairs(&[("array.array", "1"), ("array.array", "2")])
    );
    assert_eq!(names(r#"[{"a":"x"}]"#), pairs(&[("array.array.a", "x")]));
    assert_eq!(names(r#""str""#), pairs(&[("", "str")]));
    assert_eq!(names(" 42 "), pairs(&[("", "42")]));
}

#[test]
fn empty_containers_give_nothing() {
    assert!(names("{}").is_empty());
    assert!(names("[]").is_empty());
    assert_eq!(names(r#"{"a":[],"b":{},"c":1}"#), pairs(&[("c", "1")]));
}

#[test]
fn string_escapes() {
    let v = parse(br#"{"k\"ey":"a\nb\t\u0041\u00e9\u20ac\ud83d\ude00\/\\"}"#).unwrap();
    assert_eq!(v[0].0, b"k\"ey");
    assert_eq!(v[0].1, "a\nb\tA\u{e9}\u{20ac}\u{1f600}/\\".as_bytes());
    // A lone high surrogate is '?', as yajl writes it.
    let v = parse(br#"["\ud800x"]"#).unwrap();
    assert_eq!(v[0].1, b"?x");
    // \u0000 is a NUL byte.
    let v = parse(br#"["a\u0000b"]"#).unwrap();
    assert_eq!(v[0].1, b"a\0b");
    // Raw UTF-8 is kept.
    let v = parse("[\"h\u{e9}\u{1f600}\"]".as_bytes()).unwrap();
    assert_eq!(v[0].1, "h\u{e9}\u{1f600}".as_bytes());
}

#[test]
fn dots_in_keys_follow_modsecurity() {
    // ModSecurity cuts the prefix at the last '.', even inside a key.
    assert_eq!(
        names(r#"{"a.b":{"c":1},"d":2}"#),
        pairs(&[("a.b.c", "1"), ("a.d", "2")])
    );
}

#[test]
fn malformed_is_an_error() {
    for bad in [
        "",
        "   ",
        "{",
        "[",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "[1,]",
        "[1 2]",
        "{a:1}",
        "{'a':1}",
        "tru",
        "nul",
        "01",
        "-",
        "1.",
        "1e",
        "\"abc",
        "\"a\u{1}b\"",
        "\"\\x\"",
        "\"\\u12G4\"",
        "{} {}",
        "[1]]",
        "// c\n1",
        "NaN",
        "{\"a\":1 \"b\":2}",
    ] {
        assert!(parse(bad.as_bytes()).is_err(), "{bad:?} should fail");
    }
    // Invalid UTF-8 inside a string.
    assert!(parse(b"[\"\xff\"]").is_err());
    assert!(parse(b"[\"\xc3\"]").is_err());
    let e = parse(b"{\"a\":[1,}").unwrap_err();
    assert!(e.to_string().contains("parse error"), "{e}");
}

#[test]
fn depth_limit() {
    // Top-level object does not count; arrays and nested objects do.
    assert!(parse_with_limit(br#"{"a":{"b":1}}"#, 1).is_ok());
    assert_eq!(
        parse_with_limit(br#"{"a":{"b":{"c":1}}}"#, 1),
        Err(JsonError::DepthLimit)
    );
    assert!(parse_with_limit(b"[1]", 1).is_ok());
    assert_eq!(parse_with_limit(b"[[1]]", 1), Err(JsonError::DepthLimit));
    assert_eq!(
        JsonError::DepthLimit.to_string(),
        "JSON depth limit exceeded"
    );
}

#[test]
fn very_deep_nesting_does_not_overflow() {
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    assert_eq!(parse(deep.as_bytes()), Err(JsonError::DepthLimit));
    assert!(parse_with_limit(deep.as_bytes(), usize::MAX).is_ok());
    let open = "{\"a\":".repeat(100_000);
    assert!(parse(open.as_bytes()).is_err());
}

#[test]
fn agrees_with_serde_json_on_validity() {
    for s in [
        r#"{"a":[1,2,{"b":null}],"c":"\u00e9"}"#,
        r#"[true,false,null,-0.5E-3,"x"]"#,
        r#"{"a":1,"a":2}"#,
        r#"{"a":"\ud83d\ude00"}"#,
    ] {
        assert!(serde_json::from_str::<serde_json::Value>(s).is_ok());
        assert!(parse(s.as_bytes()).is_ok(), "{s}");
    }
    // Duplicate keys are all kept, in order.
    assert_eq!(names(r#"{"a":1,"a":2}"#), pairs(&[("a", "1"), ("a", "2")]));
}

#[test]
fn arguments_limit() {
    let cfg = JsonConfig {
        max_args: Some(2),
        ..JsonConfig::default()
    };
    assert_eq!(parse_with(b"[1,2]", &cfg).unwrap().len(), 2);
    assert_eq!(parse_with(b"[1,2,3]", &cfg), Err(JsonError::TooManyArgs));
}

/// Plain runs inside strings are copied whole; what ends a run (a quote, an
/// escape, a control byte, a non-ASCII byte, the end of input) is still
/// handled on its own.
#[test]
fn plain_runs_end_where_they_must() {
    let v = parse(b"[\"abc def\\\\ghi\\u0041jkl\xc3\xa9mno\"]").unwrap();
    assert_eq!(v[0].1, "abc def\\ghiAjkl\u{e9}mno".as_bytes());
    assert!(matches!(
        parse(b"[\"abc\x01def\"]"),
        Err(JsonError::Lexical { offset: 5, .. })
    ));
    assert!(parse(b"[\"abc def").is_err());
    assert!(parse(b"[\"abc\xffdef\"]").is_err());
}
