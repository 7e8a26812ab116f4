use bodyparse::xml::parse;

#[test]
fn text_and_attributes() {
    let d = parse(
        br#"<?xml version="1.0"?>
<!-- c -->
<root a="1" b='x &amp; y'><x>hello</x> <y k="v"/><z>wor<![CDATA[<ld>]]></z><?pi data?><!-- no --></root>
"#,
    )
    .unwrap();
    assert_eq!(d.text, b"hello wor<ld>");
    assert_eq!(
        d.attrs,
        vec![b"1".to_vec(), b"x & y".to_vec(), b"v".to_vec()]
    );
}

#[test]
fn whitespace_text_is_kept_inside_root() {
    let d = parse(b"<a>\r\n  <b>1</b>\n  <c>2</c>\n</a>").unwrap();
    assert_eq!(d.text, b"\n  1\n  2\n");
}

#[test]
fn entities_and_char_refs() {
    let d =
        parse(b"<a t=\"&#x41;&#66;\tc\">&lt;script&gt;&#x61;&#98;&quot;&apos;&unknown;&#0;</a>")
            .unwrap();
    assert_eq!(d.text, b"<script>ab\"'&unknown;&#0;");
    assert_eq!(d.attrs, vec![b"AB c".to_vec()]);
}

#[test]
fn doctype_is_not_processed() {
    let d = parse(
        br#"<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd"> <!ENTITY i "inner">]>
<r>&xxe;&i;</r>"#,
    )
    .unwrap();
    assert_eq!(d.text, b"&xxe;&i;");
}

#[test]
fn utf8_text() {
    let d = parse("<a b=\"é\">日本</a>".as_bytes()).unwrap();
    assert_eq!(d.text, "日本".as_bytes());
    assert_eq!(d.attrs, vec!["é".as_bytes().to_vec()]);
}

#[test]
fn empty_root() {
    let d = parse(b"<a/>").unwrap();
    assert!(d.text.is_empty());
}

#[test]
fn malformed_is_an_error() {
    for bad in [
        &b""[..],
        b"   ",
        b"text",
        b"<a>",
        b"<a><b></a>",
        b"<a></b>",
        b"</a>",
        b"<a></a><b></b>",
        b"<a></a>trailing",
        b"<a x=1></a>",
        b"<a x=\"1></a>",
        b"<a x=\"1\" x=\"2\"></a>",
        b"<a",
        b"<a><!-- unclosed</a>",
        b"<a><![CDATA[ x</a>",
    ] {
        assert!(
            parse(bad).is_err(),
            "{:?} should fail",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn deep_nesting_is_refused_without_overflow() {
    let deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
    assert!(parse(deep.as_bytes()).is_err());
    let ok = format!("{}x{}", "<a>".repeat(500), "</a>".repeat(500));
    assert_eq!(parse(ok.as_bytes()).unwrap().text, b"x");
}

#[test]
fn garbage_does_not_panic() {
    let doc = b"<?xml version=\"1.0\"?><r a=\"&#x110000;\"><![CDATA[x]]>&#xZZ;&;&#;</r>";
    for i in 0..doc.len() {
        let _ = parse(&doc[..i]);
    }
    let _ = parse(doc);
    let _ = parse(&[0xff, 0xfe, b'<', 0, b'a', 0, b'>']);
}
