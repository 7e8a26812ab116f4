use seclang_ops::Transform;

fn t(name: &str, input: &[u8]) -> Vec<u8> {
    let tf = Transform::from_name(name).unwrap_or_else(|| panic!("unknown {name}"));
    tf.apply(input).unwrap_or_else(|| input.to_vec())
}

fn check(name: &str, cases: &[(&[u8], &[u8])]) {
    for (i, o) in cases {
        assert_eq!(
            t(name, i),
            o.to_vec(),
            "{name}({:?}) = {:?}, want {:?}",
            String::from_utf8_lossy(i),
            String::from_utf8_lossy(&t(name, i)),
            String::from_utf8_lossy(o)
        );
    }
}

#[test]
fn names() {
    for n in [
        "none",
        "lowercase",
        "LowerCase",
        "uppercase",
        "urlDecode",
        "urlDecodeUni",
        "htmlEntityDecode",
        "jsDecode",
        "cssDecode",
        "escapeSeqDecode",
        "utf8toUnicode",
        "removeNulls",
        "replaceNulls",
        "removeWhitespace",
        "compressWhitespace",
        "replaceComments",
        "removeComments",
        "removeCommentsChar",
        "cmdLine",
        "normalizePath",
        "normalisePath",
        "normalizePathWin",
        "normalisePathWin",
        "base64Decode",
        "base64DecodeExt",
        "base64Encode",
        "hexDecode",
        "hexEncode",
        "sqlHexDecode",
        "length",
        "sha1",
        "md5",
        "trim",
        "trimLeft",
        "trimRight",
        "urlEncode",
        "parityEven7bit",
        "parityOdd7bit",
        "parityZero7bit",
    ] {
        assert!(Transform::from_name(n).is_some(), "{n}");
    }
    assert!(Transform::from_name("bogus").is_none());
}

#[test]
fn unchanged_is_none() {
    let l = Transform::from_name("lowercase").unwrap();
    assert_eq!(l.apply(b"abc"), None);
    assert_eq!(l.apply(b"aBc"), Some(b"abc".to_vec()));
    assert_eq!(Transform::from_name("none").unwrap().apply(b"X"), None);
    assert_eq!(
        Transform::from_name("urlDecode").unwrap().apply(b"a%zz"),
        None
    );
}

#[test]
fn case() {
    check("lowercase", &[(b"HeLLo \xc3\x89", b"hello \xc3\x89")]);
    check("uppercase", &[(b"HeLLo", b"HELLO")]);
}

#[test]
fn url_decode() {
    check(
        "urlDecode",
        &[
            (b"a%20b+c", b"a b c"),
            (b"%41%4a%4A", b"AJJ"),
            (b"%", b"%"),
            (b"%4", b"%4"),
            (b"%zz%41", b"%zzA"),
            (b"%%41", b"%A"),
            (b"%u0041", b"%u0041"),
            (b"%00x", b"\x00x"),
        ],
    );
}

#[test]
fn url_decode_uni() {
    check(
        "urlDecodeUni",
        &[
            (b"%u0041%U0042", b"AB"),
            (b"%uff1c", b"<"), // full width '<' (U+FF1C) -> 0x1c + 0x20
            (b"%uFF0E%uff0f", b"./"),
            (b"%u2215", b"\x15"), // low byte only
            (b"%uff00", b"\x00"), // 0x00 is not shifted
            (b"%uff5f", b"\x5f"), // outside FF01-FF5E
            (b"%u004", b"%u004"),
            (b"%u00zz", b"%u00zz"),
            (b"%41+%2", b"A %2"),
            (b"100%", b"100%"),
        ],
    );
}

#[test]
fn html_entity_decode() {
    check(
        "htmlEntityDecode",
        &[
            (b"&lt;script&gt;", b"<script>"),
            (b"&LT;&quot;&amp;&nbsp;", b"<\"&\xa0"),
            (b"&#60;&#x3c;&#X3C;", b"<<<"),
            (b"&#60&#x3cx", b"<<x"),
            (b"&lt", b"<"),
            (b"&ltx", b"&ltx"),
            (b"&foo;", b"&foo;"),
            (b"&#;", b"&#;"),
            (b"&#x;", b"&#x;"),
            (b"&#", b"&#"),
            (b"&#x", b"&#x"),
            (b"&", b"&"),
            (b"& b", b"& b"),
            (b"&#0000000000000000065;", b"A"),
            (b"&#99999999999999999999999;", b"\xff"),
            (b"&#321;", b"A"), // 0x141 -> low byte
            // ModSecurity's own vectors
            (
                b"&#x0;&#X0;&#x20;&#X20;&#0;&#32;\0&#100;&quot;&amp;&lt;&gt;&nbsp;",
                b"\0\0\x20\x20\0\x20\0\x64\"&<>\xa0",
            ),
            (
                b"&#x0&#X0&#x20&#X20&#0&#32\0&#100&quot&amp&lt&gt&nbsp",
                b"\0\0\x20\x20\0\x20\0\x64\"&<>\xa0",
            ),
            (
                b"&#xg;&#Xg;&#xg0;&#X2g;&#a;\0&#a2;&#3a&#a00;&#1a0;&#10a;&foo;",
                b"&#xg;&#Xg;&#xg0;\x02g;&#a;\0&#a2;\x03a&#a00;\x01a0;\x0aa;&foo;",
            ),
            (b"javascript&colon;alert(1)", b"javascript:alert(1)"),
            (b"it&apos;s&COLON;&Apos;", b"it's:'"),
            (
                b"&num;&dollar;&percnt;&lpar;&rpar;&ast;&plus;&comma;&hyphen;&period;&sol;&semi;&equals;&quest;&commat;",
                b"#$%()*+,-./;=?@",
            ),
            (
                b"&lbrack;&bsol;&rbrack;&caret;&lowbar;&grave;&lbrace;&verbar;&rbrace;&tilde;",
                b"[\\]^_`{|}~",
            ),
        ],
    );
}

#[test]
fn js_decode() {
    check(
        "jsDecode",
        &[
            (b"\\x3cscript\\x3E", b"<script>"),
            (b"\\u003c\\u0041", b"<A"),
            (b"\\uff1c", b"<"),
            (b"\\n\\t\\r\\a\\b\\f\\v", b"\n\t\r\x07\x08\x0c\x0b"),
            (b"\\'\\\"\\\\\\z", b"'\"\\z"),
            (b"\\101\\60", b"A0"),
            (b"\\477", b"'7"), // three digits would overflow: use two
            (b"\\1a", b"\x01a"),
            (b"\\x4", b"x4"),
            (b"\\u12", b"u12"),
            (b"abc\\", b"abc\\"),
        ],
    );
}

#[test]
fn css_decode() {
    check(
        "cssDecode",
        &[
            (b"\\3c script", b"<script"),
            (b"j\\61vascript", b"javascript"),
            (b"\\00003c", b"<"),
            (b"\\ff1c", b"<"),
            (b"\\0ff1c", b"<"),
            (b"\\1ff1c", b"\x1c"),
            (b"\\a", b"\x0a"),
            (b"\\\nx", b"x"),
            (b"\\zz", b"zz"),
            (b"x\\", b"x"),
            (b"\\1234567", b"\x567"),
        ],
    );
}

#[test]
fn escape_seq_decode() {
    check(
        "escapeSeqDecode",
        &[
            (b"\\n\\t\\\\\\?\\'\\\"", b"\n\t\\?'\""),
            (b"\\x41\\X42", b"AB"),
            (b"\\101\\0", b"A\x00"),
            (b"\\q", b"q"),
            (b"\\x4g", b"x4g"),
            (b"\\", b"\\"),
            (b"\\777", b"\xff"),
            // ModSecurity's own vectors
            (b"\\8\\9\\666\\xag\\xga\\0123", b"89\xb6xagxga\x0a3"),
            (b"\\x\\x0", b"xx0"),
            (b"\\012", b"\x0a"),
            (b"\\\0", b"\0"),
        ],
    );
}

#[test]
fn utf8_to_unicode() {
    check(
        "utf8toUnicode",
        &[
            (b"a\xc3\xa9b", b"a%u00e9b"),
            ("\u{20ac}".as_bytes(), b"%u20ac"),
            ("\u{1f600}".as_bytes(), b"%u1f600"),
            ("\u{ff1c}".as_bytes(), b"%uff1c"),
            (b"\xc3", b""),               // truncated: dropped
            (b"\xc3A", b"A"),             // bad continuation: lead dropped
            (b"\xc0\xbc", b"%u003c\xc0"), // overlong: lead byte appended
            (b"\xff", b"\xff"),
            (b"plain", b"plain"),
        ],
    );
}

#[test]
fn nulls_and_whitespace() {
    check("removeNulls", &[(b"a\x00b\x00", b"ab")]);
    check("replaceNulls", &[(b"a\x00b", b"a b")]);
    check(
        "removeWhitespace",
        &[(b" a\tb\x0b\x0cc\r\n\xa0d ", b"abcd")],
    );
    check(
        "compressWhitespace",
        &[(b"a  \t\nb\xa0c", b"a b c"), (b"  x  ", b" x "), (b"", b"")],
    );
    check("trim", &[(b" \t\x0bab c\n ", b"ab c"), (b"   ", b"")]);
    check("trimLeft", &[(b"  ab ", b"ab ")]);
    check("trimRight", &[(b"  ab \x0b", b"  ab")]);
}

#[test]
fn comments() {
    check(
        "replaceComments",
        &[
            (b"UNION/**/SELECT", b"UNION SELECT"),
            (b"a/*x*/b/*", b"a b "),
            (b"a*/b", b"a*/b"),
            (b"/*/a", b" "),
        ],
    );
    check(
        "removeComments",
        &[
            (b"UNION/**/SELECT", b"UNIONSELECT"),
            (b"SELECT/**//**/UNION", b"SELECTUNION"),
            (b"foo<!-- comment 1 --><!-- comment 2 -->bar", b"foobar"),
            (
                b"Before/* T*/ /* e */ /* s */ /* t */\r\nCase ",
                b"Before   \r\nCase ",
            ),
            (
                b"Before /* */ ops */ Test\nCase ",
                b"Before  ops */ Test\nCase ",
            ),
            (b"/*Before/* Test\r\nCase ", b" "),
            (b"1 -- x", b"1 "),
            (b"1 # x", b"1 "),
            (b"a<!--x-->b", b"ab"),
            (b"a/*x", b"a "),
        ],
    );
    check(
        "removeCommentsChar",
        &[
            (b"UNION/**/SELECT", b"UNIONSELECT"),
            (b"a<!--b-->c--d#e", b"abcde"),
            (b"a*/b/*c", b"abc"),
        ],
    );
}

#[test]
fn cmd_line() {
    check(
        "cmdLine",
        &[
            (b"C^OMMAND /C DIR", b"command/c dir"),
            (b"\"c\"at  /etc/pa'ss'wd", b"cat/etc/passwd"),
            (b"a,;\t\nb", b"a b"),
            (b"echo (1)", b"echo(1)"),
            (b"a \\ b", b"a b"),
            (b"x\x0by", b"x\x0by"),
        ],
    );
}

#[test]
fn normalize_path() {
    check(
        "normalizePath",
        &[
            (b"/a/b/../c", b"/a/c"),
            (b"/a/./b", b"/a/b"),
            (b"/a//b", b"/a/b"),
            (b"/../../etc/passwd", b"/etc/passwd"),
            (b"../../etc/passwd", b"../../etc/passwd"),
            (b"a/../../b", b"../b"),
            (b"./a", b"a"),
            (b"/a/b/", b"/a/b/"),
            (b"/a/b/..", b"/a"),
            (b"/a/.", b"/a"),
            (b"/..", b"/"),
            (b"a\\..\\b", b"a\\..\\b"),
            (b"", b""),
        ],
    );
    check(
        "normalizePathWin",
        &[
            (b"a\\..\\b", b"b"),
            (b"c:\\windows\\..\\boot.ini", b"c:/boot.ini"),
            (b"\\a\\\\b\\.\\c", b"/a/b/c"),
        ],
    );
}

#[test]
fn base64() {
    check(
        "base64Decode",
        &[
            (b"SGVsbG8=", b"Hello"),
            (b"SGVsbG8", b"Hello"),
            (b"SGVs bG8=", b"Hel"),
            (b"YQ", b"a"),
            (b"Y", b""),
            (b"!!", b""),
        ],
    );
    check(
        "base64DecodeExt",
        &[
            (b"SGVs bG8=", b"Hello"),
            (b"S.G.V.s.b.G.8", b"Hello"),
            (b"dzBzV==YWxlcnQoMSk=", b""),
            (
                b"eyJwIjoieHh-IiwiYWxnIjoibm9uZSIsInR5cCI6IkpXVCJ9",
                b"{\"p\":\"xx~\",\"alg\":\"none\",\"typ\":\"JWT\"}",
            ),
        ],
    );
    check(
        "base64Decode",
        &[
            (b"VGVzdENhc2UxMg==", b"TestCase12"),
            (b"VGVzdABDYXNl", b"Test\0Case"),
            (b"VGVzdENhc2U=\0VGVzdENhc2U=", b"TestCase"),
        ],
    );
    check(
        "base64Encode",
        &[(b"Hello", b"SGVsbG8="), (b"\xff", b"/w==")],
    );
}

#[test]
fn hex() {
    check("hexEncode", &[(b"A\x00\xff", b"4100ff")]);
    check(
        "hexDecode",
        &[
            (b"414a4A", b"AJJ"),
            (b"414", b"A4"),
            (b"546573740043617365", b"Test\0Case"),
            (b"01234567890a0z0123", b"\x01#Eg\x89\n0z\x01#"),
        ],
    );
    check(
        "sqlHexDecode",
        &[
            (b"0x414243", b"ABC"),
            (b"SELECT 0x61646d696e", b"SELECT admin"),
            (b"0x4", b"0x4"),
            (b"0X41z", b"Az"),
            (b"10x", b"10x"),
        ],
    );
}

#[test]
fn digests_and_length() {
    check("length", &[(b"", b"0"), (b"hello", b"5")]);
    assert_eq!(
        hex::encode(t("sha1", b"abc")),
        "a9993e364706816aba3e25717850c26c9cd0d89d"
    );
    assert_eq!(
        hex::encode(t("md5", b"abc")),
        "900150983cd24fb0d6963f7d28e17f72"
    );
    assert_eq!(t("md5", b"").len(), 16);
}

#[test]
fn url_encode_and_parity() {
    check("urlEncode", &[(b"a b*c/<\xff", b"a+b*c%2f%3c%ff")]);
    check("parityZero7bit", &[(b"\xc1a", b"Aa")]);
    // 'A' = 0x41 has two bits set (even): even parity leaves bit 7 clear.
    check(
        "parityEven7bit",
        &[
            (b"AC", b"A\xc3"),
            (
                b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                b"\xe1\xe2c\xe4ef\xe7\xe8ij\xebl\xed\xeeo\xf0qr\xf3t\xf5\xf6wx\xf9\xfa0\xb1\xb23\xb456\xb7\xb89AB\xc3D\xc5\xc6GH\xc9\xcaK\xccMN\xcfP\xd1\xd2S\xd4UV\xd7\xd8YZ",
            ),
        ],
    );
    check("parityOdd7bit", &[(b"AC", b"\xc1C")]);
}

#[test]
fn no_panic_on_odd_input() {
    let inputs: Vec<Vec<u8>> = vec![
        b"%".to_vec(),
        b"%u".to_vec(),
        b"\\".to_vec(),
        b"&#x".to_vec(),
        b"\\u00".to_vec(),
        b"/".to_vec(),
        b".".to_vec(),
        b"..".to_vec(),
        b"\\\\".to_vec(),
        b"/./..//../.".to_vec(),
        (0u8..=255).collect(),
        b"\xf4\x90\x80\x80\xed\xa0\x80".to_vec(),
    ];
    let names = [
        "urlDecode",
        "urlDecodeUni",
        "htmlEntityDecode",
        "jsDecode",
        "cssDecode",
        "escapeSeqDecode",
        "utf8toUnicode",
        "removeComments",
        "removeCommentsChar",
        "replaceComments",
        "cmdLine",
        "normalizePath",
        "normalizePathWin",
        "base64Decode",
        "base64DecodeExt",
        "hexDecode",
        "sqlHexDecode",
        "compressWhitespace",
        "trim",
    ];
    for n in names {
        let tf = Transform::from_name(n).unwrap();
        for i in &inputs {
            let _ = tf.apply(i);
            for k in 0..i.len() {
                let _ = tf.apply(&i[..k]);
            }
        }
    }
}

#[test]
fn random_inputs_do_not_panic() {
    const ALPHA: &[u8] =
        b"%uUxX0123456789abcdefABCDEF&#;\\/.*-<!>'\"^ ,\t\n\x00\xa0\xc3\xa9\xf0\xff+=lgtampqo";
    let mut s: u64 = 0x1234_5678_9abc_def1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let names = [
        "urlDecode",
        "urlDecodeUni",
        "htmlEntityDecode",
        "jsDecode",
        "cssDecode",
        "escapeSeqDecode",
        "utf8toUnicode",
        "removeComments",
        "removeCommentsChar",
        "replaceComments",
        "cmdLine",
        "normalizePath",
        "normalizePathWin",
        "base64Decode",
        "base64DecodeExt",
        "hexDecode",
        "sqlHexDecode",
        "compressWhitespace",
        "trim",
        "removeWhitespace",
        "urlEncode",
        "parityEven7bit",
    ];
    let tfs: Vec<Transform> = names
        .iter()
        .map(|n| Transform::from_name(n).unwrap())
        .collect();
    for _ in 0..3000 {
        let len = (next() % 24) as usize;
        let v: Vec<u8> = (0..len)
            .map(|_| ALPHA[(next() % ALPHA.len() as u64) as usize])
            .collect();
        for t in &tfs {
            if let Some(out) = t.apply(&v) {
                assert_ne!(out, v);
            }
        }
    }
}
