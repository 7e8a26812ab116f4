use bodyparse::multipart::{parse, parse_with, MultipartConfig, PartKind};

const CT: &[u8] = b"multipart/form-data; boundary=XyZ";

fn crlf(s: &str) -> Vec<u8> {
    s.replace('\n', "\r\n").into_bytes()
}

#[test]
fn simple_crlf_body() {
    let body = crlf(
        "--XyZ\n\
         Content-Disposition: form-data; name=\"a\"\n\
         \n\
         hello\n\
         world\n\
         --XyZ\n\
         Content-Disposition: form-data; name=b\n\
         \n\
         \n\
         --XyZ--\n",
    );
    let m = parse(CT, &body).unwrap();
    let args: Vec<_> = m.args().collect();
    assert_eq!(
        args,
        vec![(&b"a"[..], &b"hello\r\nworld"[..]), (&b"b"[..], &b""[..])]
    );
    assert!(!m.flags.strict_error());
    assert!(m.flags.crlf_line && !m.flags.lf_line && !m.flags.crlf_lf_lines);
    assert_eq!(m.last_name.as_deref(), Some(&b"b"[..]));
    assert_eq!(m.last_filename, None);
}

#[test]
fn lf_only_lines_parse_and_flag() {
    let body = b"--XyZ\nContent-disposition: form-data; name=\"_charset_\"\n\nutf-7\n--XyZ\nContent-disposition: form-data; name=\"positive\"\nContent-Type: text/plain\n\nLet me see.\n--XyZ--\n";
    let m = parse(CT, body).unwrap();
    let args: Vec<_> = m.args().collect();
    assert_eq!(args[0], (&b"_charset_"[..], &b"utf-7"[..]));
    assert_eq!(args[1], (&b"positive"[..], &b"Let me see."[..]));
    assert!(m.flags.lf_line);
    assert!(!m.flags.crlf_line);
    assert!(m.flags.strict_error());
    let ph = m.part_headers();
    assert_eq!(
        ph,
        vec![
            (
                b"_charset_".to_vec(),
                b"Content-disposition: form-data; name=\"_charset_\"".to_vec()
            ),
            (
                b"positive".to_vec(),
                b"Content-disposition: form-data; name=\"positive\"".to_vec()
            ),
            (b"positive".to_vec(), b"Content-Type: text/plain".to_vec()),
        ]
    );
    assert_eq!(m.parts[1].content_type(), Some(&b"text/plain"[..]));
}

#[test]
fn mixed_line_endings() {
    let body = b"--XyZ\r\nContent-Disposition: form-data; name=a\n\r\nv\r\n--XyZ--\r\n";
    let m = parse(CT, body).unwrap();
    assert!(m.flags.crlf_line && m.flags.lf_line && m.flags.crlf_lf_lines);
}

#[test]
fn file_parts() {
    let body = crlf(
        "--XyZ\n\
         Content-Disposition: form-data; name=\"up\"; filename=\"a b.php\"\n\
         Content-Type: application/x-php\n\
         \n\
         <?php echo 1;\n\
         ?>\n\
         --XyZ\n\
         Content-Disposition: form-data; name=\"f\"\n\
         \n\
         x\n\
         --XyZ--\n",
    );
    let m = parse(CT, &body).unwrap();
    let files: Vec<_> = m.files().collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].kind, PartKind::File);
    assert_eq!(files[0].name, b"up");
    assert_eq!(files[0].filename.as_deref(), Some(&b"a b.php"[..]));
    assert_eq!(files[0].data, b"<?php echo 1;\r\n?>");
    assert_eq!(files[0].size(), 17);
    assert_eq!(files[0].content_type(), Some(&b"application/x-php"[..]));
    // Files are not arguments.
    let args: Vec<_> = m.args().collect();
    assert_eq!(args, vec![(&b"f"[..], &b"x"[..])]);
    assert_eq!(m.last_filename.as_deref(), Some(&b"a b.php"[..]));
    assert_eq!(m.last_name.as_deref(), Some(&b"f"[..]));
}

#[test]
fn filename_star_is_decoded() {
    let body = crlf(
        "--XyZ\n\
         Content-Disposition: form-data; name=\"up\"; filename*=utf-8''a%20b%27.txt\n\
         \n\
         data\n\
         --XyZ--\n",
    );
    let m = parse(CT, &body).unwrap();
    let f = m.files().next().unwrap();
    assert_eq!(f.filename.as_deref(), Some(&b"a b'.txt"[..]));
}

#[test]
fn quoted_boundary() {
    let ct = b"multipart/form-data; boundary=\"a'b c\"";
    let body = b"--a'b c\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--a'b c--\r\n";
    let m = parse(ct, body).unwrap();
    assert!(m.flags.boundary_quoted);
    assert_eq!(m.boundary, b"a'b c");
    assert_eq!(m.args().next(), Some((&b"x"[..], &b"1"[..])));
    assert!(m.flags.strict_error());
}

#[test]
fn quotes_around_boundary_in_body_are_an_error() {
    let ct = b"multipart/form-data; boundary=\"abc\"";
    let body = b"--\"abc\"\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--abc--\r\n";
    let e = parse(ct, body).unwrap_err();
    assert!(e.message.contains("quotes"), "{}", e.message);
}

#[test]
fn boundary_header_errors() {
    for (ct, what) in [
        (&b"multipart/form-data"[..], "not found"),
        (b"multipart/form-data; Boundary=abc", "case sensitivity"),
        (b"multipart/form-data; boundary=a; boundary=b", "Multiple"),
        (b"multipart/form-data; boundary=", "empty"),
        (b"multipart/form-data; boundary=\"abc", "quote"),
        (b"multipart/form-data; boundary=abc\"", "quote"),
        (b"multipart/form-data; boundary=a/b", "characters"),
        (b"multipart/form-data; charset=x; boundary=abc", "malformed"),
        (b"multipart/form-data; boundaryx=abc", "parameter name"),
        (b"text/plain; boundary=abc", "MIME"),
        (b"", "not available"),
    ] {
        let e = parse(ct, b"--abc--\r\n").unwrap_err();
        assert!(
            e.message.contains(what),
            "{}: {}",
            String::from_utf8_lossy(ct),
            e.message
        );
    }
    let long = [b"multipart/form-data; boundary=".to_vec(), vec![b'a'; 2000]].concat();
    assert!(parse(&long, b"").unwrap_err().message.contains("length"));
}

#[test]
fn boundary_flags() {
    let body = b"--abc\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--abc--\r\n";
    let m = parse(b"multipart/form-data boundary=abc", body).unwrap();
    assert!(m.flags.missing_semicolon);
    let m = parse(b"multipart/form-data; boundary =abc", body).unwrap();
    assert!(m.flags.boundary_whitespace);
    let m = parse(b"Multipart/Form-Data;boundary=abc", body).unwrap();
    assert!(!m.flags.strict_error());
}

#[test]
fn data_before_and_after() {
    let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--XyZ--\r\nepilogue";
    let m = parse(CT, body).unwrap();
    assert!(m.flags.data_before);
    assert!(m.flags.data_after);
    assert_eq!(m.args().count(), 1);
}

#[test]
fn missing_final_boundary_is_an_error() {
    let body = b"--XyZ\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n";
    let e = parse(CT, body).unwrap_err();
    assert!(
        e.message.contains("Final boundary missing"),
        "{}",
        e.message
    );
    // Unterminated final boundary is still accepted.
    let body = b"--XyZ\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--XyZ--";
    let m = parse(CT, body).unwrap();
    assert_eq!(m.args().next(), Some((&b"x"[..], &b"1"[..])));
    // No boundary at all.
    let e = parse(CT, b"just text\r\n").unwrap_err();
    assert!(e.message.contains("No boundaries"), "{}", e.message);
    assert!(e.flags.data_before);
}

#[test]
fn empty_body_is_fine() {
    let m = parse(CT, b"").unwrap();
    assert!(m.parts.is_empty());
}

#[test]
fn invalid_boundary_line_is_an_error() {
    let body = b"--XyZ\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--XyZ  \r\n";
    assert!(parse(CT, body)
        .unwrap_err()
        .message
        .contains("Invalid boundary"));
}

#[test]
fn whitespace_before_boundary_is_an_error() {
    let body = b"--XyZ\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n-- XyZ--\r\n";
    assert!(parse(CT, body).unwrap_err().message.contains("whitespace"));
}

#[test]
fn unmatched_boundary() {
    let body = b"--XyZ\r\nContent-Disposition: form-data; name=x\r\n\r\n--other\r\nfoo --XyZ bar\r\n--XyZ--\r\n";
    let m = parse(CT, body).unwrap();
    assert!(m.flags.unmatched_boundary);
    assert_eq!(m.args().next().unwrap().1, b"--other\r\nfoo --XyZ bar");
}

#[test]
fn header_folding() {
    let body = b"--XyZ\r\nContent-Disposition: form-data;\r\n name=x\r\n\r\n1\r\n--XyZ--\r\n";
    let m = parse(CT, body).unwrap();
    assert!(m.flags.header_folding);
    assert!(!m.flags.invalid_header_folding);
    assert_eq!(m.parts[0].name, b"x");
    assert_eq!(
        m.part_headers()[0].1,
        b"Content-Disposition: form-data; name=x".to_vec()
    );
    let body = b"--XyZ\r\nContent-Disposition: form-data;\r\n\x0b name=x\r\n\r\n1\r\n--XyZ--\r\n";
    let m = parse(CT, body).unwrap();
    assert!(m.flags.invalid_header_folding);
    // Folding with no header to continue.
    let body = b"--XyZ\r\n name=x\r\n\r\n1\r\n--XyZ--\r\n";
    assert!(parse(CT, body).unwrap_err().message.contains("folding"));
}

#[test]
fn invalid_quoting() {
    let body = b"--XyZ\r\nContent-Disposition: form-data; name='x'\r\n\r\n1\r\n--XyZ--\r\n";
    let m = parse(CT, body).unwrap();
    assert!(m.flags.invalid_quoting);
    assert_eq!(m.parts[0].name, b"x");
    let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"a'b\"\r\n\r\n1\r\n--XyZ--\r\n";
    assert!(parse(CT, body).unwrap().flags.invalid_quoting);
    let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"b\r\n\r\n1\r\n--XyZ--\r\n";
    let e = parse(CT, body).unwrap_err();
    assert!(e.flags.invalid_quoting);
    assert!(e.message.contains("(-12)"), "{}", e.message);
}

#[test]
fn escapes_in_quoted_values() {
    let body =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"a\\\"b\\\\c\\d\"\r\n\r\n1\r\n--XyZ--\r\n";
    let m = parse(CT, body).unwrap();
    assert_eq!(m.parts[0].name, b"a\"b\\c\\d");
}

#[test]
fn invalid_part_without_headers_end() {
    let body = b"--XyZ\r\nContent-Disposition: form-data; name=x\r\n--XyZ\r\nContent-Disposition: form-data; name=y\r\n\r\n2\r\n--XyZ--\r\n";
    let m = parse(CT, body).unwrap();
    assert!(m.flags.invalid_part);
    assert_eq!(m.args().collect::<Vec<_>>(), vec![(&b"y"[..], &b"2"[..])]);
}

#[test]
fn part_header_errors() {
    for (headers, what) in [
        (
            &b"Content-Type: text/plain\r\n"[..],
            "missing Content-Disposition",
        ),
        (b"Content-Disposition: form-data\r\n", "missing name"),
        (b"Content-Disposition: attachment; name=x\r\n", "(-1)"),
        (
            b"Content-Disposition: form-data; name=x; foo=y\r\n",
            "(-11)",
        ),
        (
            b"Content-Disposition: form-data; name=x; name=y\r\n",
            "(-14)",
        ),
        (b"Content-Disposition: form-data; name=\"x\r\n", "(-10)"),
        (
            b"Content-Disposition: form-data; name=x\r\nContent-Disposition: form-data; name=y\r\n",
            "Duplicate part header",
        ),
        (
            b"Content-Disposition: form-data; name=x\r\nbogus\r\n",
            "colon missing",
        ),
        (
            b"Content-Disposition: form-data; name=x\r\n: v\r\n",
            "header name missing",
        ),
        (
            b"Content-Disposition: form-data; name=x\r\nX-A: a\0b\r\n",
            "Nul byte",
        ),
    ] {
        let body = [&b"--XyZ\r\n"[..], headers, b"\r\nv\r\n--XyZ--\r\n"].concat();
        let e = parse(CT, &body).unwrap_err();
        assert!(e.message.contains(what), "{what}: {}", e.message);
    }
}

#[test]
fn long_header_line_is_an_error_long_data_is_not() {
    let long = "a".repeat(5000);
    let body = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=x\r\nX-Long: {long}\r\n\r\nv\r\n--XyZ--\r\n"
    );
    assert!(parse(CT, body.as_bytes())
        .unwrap_err()
        .message
        .contains("over 4096"));
    let body = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=x\r\n\r\n{long}\r\n{long}\r\n--XyZ--\r\n"
    );
    let m = parse(CT, body.as_bytes()).unwrap();
    assert_eq!(
        m.args().next().unwrap().1,
        format!("{long}\r\n{long}").as_bytes()
    );
}

#[test]
fn cr_at_buffer_edge_stays_with_its_lf() {
    let data = "b".repeat(4095);
    let body =
        format!("--XyZ\r\nContent-Disposition: form-data; name=x\r\n\r\n{data}\r\n--XyZ--\r\n");
    let m = parse(CT, body.as_bytes()).unwrap();
    assert_eq!(m.args().next().unwrap().1, data.as_bytes());
}

#[test]
fn file_limit() {
    let body = crlf(
        "--XyZ\n\
         Content-Disposition: form-data; name=a; filename=1.txt\n\
         \n\
         1\n\
         --XyZ\n\
         Content-Disposition: form-data; name=b; filename=2.txt\n\
         \n\
         2\n\
         --XyZ--\n",
    );
    let m = parse_with(
        CT,
        &body,
        &MultipartConfig {
            file_limit: Some(1),
        },
    )
    .unwrap();
    assert!(m.flags.file_limit_exceeded);
    assert_eq!(m.files().count(), 2);
    let m = parse(CT, &body).unwrap();
    assert!(!m.flags.file_limit_exceeded);
}

#[test]
fn nothing_panics_on_garbage() {
    let inputs: Vec<Vec<u8>> = vec![
        b"--".to_vec(),
        b"--XyZ".to_vec(),
        b"--XyZ\r".to_vec(),
        b"--XyZ\n".to_vec(),
        b"--XyZ\n\n".to_vec(),
        b"--XyZ--\n--XyZ--\n".to_vec(),
        b"\n\n\n--XyZ\nContent-Disposition: form-data; name=\n\n".to_vec(),
        b"--XyZ\nContent-Disposition: form-data; name=\"\\".to_vec(),
        b"--XyZ\nContent-Disposition: form-data; name=\"\\\n\n--XyZ--\n".to_vec(),
        b"--XyZ\nContent-Disposition: form-data; name=a; filename*=''\n\n--XyZ--\n".to_vec(),
        b"--XyZ\nContent-Disposition: form-data; name=a; filename*=%\n\n%\n--XyZ--\n".to_vec(),
        vec![b'-'; 9000],
        vec![b'\r'; 9000],
        vec![0; 100],
    ];
    for body in inputs {
        let _ = parse(CT, &body);
    }
    // Every prefix of a valid body.
    let body = crlf(
        "--XyZ\n\
         Content-Disposition: form-data; name=\"up\"; filename=\"x\"\n\
         \n\
         1\n\
         --XyZ--\n",
    );
    for i in 0..body.len() {
        let _ = parse(CT, &body[..i]);
    }
}

#[test]
fn repetitive_boundary_is_linear() {
    let b = "-".repeat(200);
    let ct = format!("multipart/form-data; boundary={b}");
    let line = format!("x{}\r\n", "-".repeat(4000));
    let body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=x\r\n\r\n{}--{b}--\r\n",
        line.repeat(500)
    );
    let t = std::time::Instant::now();
    let m = parse(ct.as_bytes(), body.as_bytes()).unwrap();
    assert!(m.flags.unmatched_boundary);
    assert!(t.elapsed().as_secs() < 5);
}

const FORM: &[u8] = b"--0000\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\nv\r\n--0000\r\nContent-Disposition: form-data; name=\"f\"; filename=\"i.jpg\"\r\nContent-Type: image/jpeg\r\n\r\nBIN\r\n--0000--\r\n";

#[test]
fn content_type_variants() {
    // Surrounding whitespace of the header value is not part of it.
    let m = parse(b" multipart/form-data; boundary=0000 ", FORM).unwrap();
    assert!(!m.flags.strict_error());
    assert_eq!(m.parts.len(), 2);
    // A space inside the value makes another boundary: nothing matches.
    let e = parse(b"multipart/form-data; boundary=0000 1111", FORM).unwrap_err();
    assert!(e.message.contains("No boundaries"), "{}", e.message);
    assert!(e.flags.unmatched_boundary);
    // Comma-separated second parameter.
    let e = parse(b"multipart/form-data; boundary=0000,1111", FORM).unwrap_err();
    assert!(e.message.contains("characters"), "{}", e.message);
    let e = parse(
        b"multipart/form-data; boundary=\"0000\"; boundary=1111",
        FORM,
    )
    .unwrap_err();
    assert!(e.message.contains("Multiple"), "{}", e.message);
    let e = parse(b"multipart/form-data, boundary=0000", FORM).unwrap_err();
    assert!(e.message.contains("malformed"), "{}", e.message);
    // Whitespace in front of the value stays part of the boundary.
    let body = b"-- 0000\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n-- 0000--\r\n";
    let m = parse(b"multipart/form-data; boundary=\" 0000\"", body).unwrap();
    assert!(m.flags.boundary_quoted);
    assert_eq!(m.args().next(), Some((&b"a"[..], &b"1"[..])));
    let m = parse(b"multipart/form-data; boundary= 0000", body).unwrap();
    assert!(m.flags.boundary_whitespace);
}

#[test]
fn single_quoted_name_cannot_smuggle_a_second_name() {
    let body = b"--0000\r\nContent-Disposition: form-data; name=';filename=\"x';name=b;\"\r\n\r\n2\r\n--0000--\r\n";
    let e = parse(b"multipart/form-data; boundary=0000", body).unwrap_err();
    assert!(e.flags.invalid_quoting);
    assert!(e.message.contains("(-14)"), "{}", e.message);
}

#[test]
fn dashes_in_data_are_data() {
    let body = b"--0000\r\nContent-Disposition: form-data; name=a\r\n\r\n--test\r\n--0000\r\nContent-Disposition: form-data; name=b\r\n\r\n--\r\n--0000--";
    let m = parse(b"multipart/form-data; boundary=0000", body).unwrap();
    let args: Vec<_> = m.args().collect();
    assert_eq!(
        args,
        vec![(&b"a"[..], &b"--test"[..]), (&b"b"[..], &b"--"[..])]
    );
    assert!(m.flags.unmatched_boundary);
    assert!(!m.flags.strict_error());
}
