//! Bridge to the `bodyparse` crate (multipart, JSON, XML), shaped for the
//! variables this engine fills.

use crate::state::{Arg, FileEntry, Interner, MultipartFlags, Pairs};

pub struct Multipart {
    pub args: Pairs,
    pub files: Vec<FileEntry>,
    pub part_headers: Pairs,
    pub flags: MultipartFlags,
    pub last_filename: Option<Vec<u8>>,
    pub last_name: Option<Vec<u8>>,
}

fn flags(f: &bodyparse::MultipartFlags) -> MultipartFlags {
    MultipartFlags {
        boundary_quoted: f.boundary_quoted,
        boundary_whitespace: f.boundary_whitespace,
        data_after: f.data_after,
        data_before: f.data_before,
        header_folding: f.header_folding,
        crlf_line: f.crlf_line,
        crlf_lf_lines: f.crlf_lf_lines,
        lf_line: f.lf_line,
        missing_semicolon: f.missing_semicolon,
        invalid_part: f.invalid_part,
        invalid_quoting: f.invalid_quoting,
        invalid_header_folding: f.invalid_header_folding,
        file_limit_exceeded: f.file_limit_exceeded,
        unmatched_boundary: f.unmatched_boundary,
    }
}

/// `multipart/form-data` with the boundary of `content_type` (the raw
/// Content-Type header value). Form fields become `args`, file parts
/// `files`; on error the message is ModSecurity's ("Multipart: ...") with
/// the flags raised before the parser stopped (v2 keeps them too, so the
/// MULTIPART_* variables still tell what was wrong).
pub fn multipart(content_type: &[u8], body: &[u8]) -> Result<Multipart, (String, MultipartFlags)> {
    let m =
        bodyparse::parse_multipart(content_type, body).map_err(|e| (e.message, flags(&e.flags)))?;
    Ok(Multipart {
        args: m.args().map(|(n, v)| (n.to_vec(), v.to_vec())).collect(),
        files: m
            .files()
            .map(|p| FileEntry {
                field: p.name.clone(),
                filename: p.filename.clone().unwrap_or_default(),
                size: p.size(),
            })
            .collect(),
        part_headers: m.part_headers(),
        flags: flags(&m.flags),
        last_filename: m.last_filename,
        last_name: m.last_name,
    })
}

/// Flattened `ARGS`, named as ModSecurity v2 names them: `a`, `a.b` for
/// nested objects, array elements repeat the array's name (`a.a`), a
/// top-level array is `array.array`.
/// Nesting deeper than `depth_limit` or more than `max_args` values is an
/// error (SecRequestBodyJsonDepthLimit, SecArgumentsLimit), as in v2.
/// Names and values are interned as they are found (see
/// [`crate::state::push_args`]); returns whether any two share a buffer.
pub fn json(
    body: &[u8],
    depth_limit: usize,
    max_args: usize,
    args: &mut Vec<Arg>,
) -> Result<bool, String> {
    let cfg = bodyparse::JsonConfig {
        depth_limit,
        max_args: Some(max_args),
    };
    let mut interner = Interner::with_capacity(body.len() / 8);
    // Sized for the body (an argument per 16 bytes or so), not regrown.
    let mut found = Vec::with_capacity((body.len() / 16).min(4096));
    bodyparse::json::parse_each(body, &cfg, &mut |n, v| {
        found.push(Arg {
            name: interner.intern(n),
            value: interner.intern(v),
            post: true,
        })
    })
    .map_err(|e| e.to_string())?;
    // Only a body parsed whole gives arguments, as in ModSecurity.
    args.append(&mut found);
    Ok(interner.shared)
}

/// (all text content, attribute values).
pub fn xml(body: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u8>>), String> {
    let doc = bodyparse::parse_xml(body).map_err(|e| e.to_string())?;
    Ok((doc.text, doc.attrs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_bridge() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.php\"\r\nContent-Type: text/plain\r\n\r\nabc\r\n--b--\r\n";
        let m = multipart(b"multipart/form-data; boundary=b", body).unwrap();
        assert_eq!(m.args, vec![(b"a".to_vec(), b"1".to_vec())]);
        assert_eq!(m.files.len(), 1);
        assert_eq!(m.files[0].field, b"f");
        assert_eq!(m.files[0].filename, b"x.php");
        assert_eq!(m.files[0].size, 3);
        assert_eq!(m.part_headers.len(), 3);
        assert_eq!(m.part_headers[2].0, b"f");
        assert_eq!(m.part_headers[2].1, b"Content-Type: text/plain");
        assert!(m.flags.crlf_line && !m.flags.lf_line);
        assert!(!m.flags.strict_error(false));
        assert_eq!(m.last_name.as_deref(), Some(&b"f"[..]));
        assert_eq!(m.last_filename.as_deref(), Some(&b"x.php"[..]));
        assert!(multipart(b"multipart/form-data", body).is_err());
        let lf = b"--b\nContent-Disposition: form-data; name=a\n\n1\n--b--\n";
        let m = multipart(b"multipart/form-data; boundary=b", lf).unwrap();
        assert!(m.flags.lf_line && m.flags.strict_error(false));
        // A parse that fails keeps the flags raised before it stopped.
        let cut = b"--b\nContent-Disposition: form-data; name=a\n\n1\n";
        let (msg, flags) = multipart(b"multipart/form-data; boundary=b", cut)
            .err()
            .expect("no final boundary");
        assert!(msg.contains("Final boundary missing"), "{msg}");
        assert!(flags.lf_line);
    }

    #[test]
    fn json_bridge() {
        let json = |b: &[u8]| {
            let mut args = Vec::new();
            json(b, bodyparse::DEFAULT_DEPTH_LIMIT, 1000, &mut args).map(|shared| {
                let pairs: Vec<(Vec<u8>, Vec<u8>)> = args
                    .iter()
                    .map(|a| (a.name.to_vec(), a.value.to_vec()))
                    .collect();
                (pairs, shared, args)
            })
        };
        let (a, shared, args) = json(br#"{"a":{"b":[1,"x"]},"c":null}"#).unwrap();
        assert_eq!(
            a,
            vec![
                (b"a.b.b".to_vec(), b"1".to_vec()),
                (b"a.b.b".to_vec(), b"x".to_vec()),
                (b"c".to_vec(), b"".to_vec()),
            ]
        );
        // Repeated names share one buffer.
        assert!(shared && std::sync::Arc::ptr_eq(&args[0].name, &args[1].name));
        assert!(args.iter().all(|a| a.post));
        assert!(json(b"{").is_err());
        // A body that fails part way gives no arguments at all.
        let mut args = Vec::new();
        assert!(super::json(br#"{"a":1,"b":}"#, 10, 1000, &mut args).is_err());
        assert!(args.is_empty());
        let many = format!("[{}1]", "1,".repeat(1000));
        assert!(json(many.as_bytes()).is_err());
    }

    #[test]
    fn xml_bridge() {
        let (text, attrs) = xml(b"<a k=\"v\"><b>x</b>y</a>").unwrap();
        assert_eq!(text, b"xy");
        assert_eq!(attrs, vec![b"v".to_vec()]);
        assert!(xml(b"<a>").is_err());
    }
}
