//! `name[:value]` list parsing shared by rule targets and action lists, as
//! ModSecurity v2's `msre_parse_generic` does it: items are separated by
//! `,` or `|`, a value may be single-quoted (only `\'` and `\\` escape).

/// One `name[:value]` item and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub name: String,
    pub value: Option<String>,
    pub offset: usize,
    /// Offset of the value (for error positions inside it).
    pub value_offset: usize,
}

/// A syntax error at a byte offset of the parsed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericError {
    pub offset: usize,
    pub msg: String,
}

pub fn parse(text: &str) -> Result<Vec<Item>, GenericError> {
    let b = text.as_bytes();
    let mut p = 0;
    let mut out = Vec::new();
    let is_sep = |c: u8| c == b',' || c == b'|';
    while p < b.len() {
        while p < b.len() && b[p].is_ascii_whitespace() {
            p += 1;
        }
        if p >= b.len() {
            break;
        }
        let start = p;
        while p < b.len() && !is_sep(b[p]) && b[p] != b':' && !b[p].is_ascii_whitespace() {
            p += 1;
        }
        let name = text.get(start..p).unwrap_or("").to_string();
        if p >= b.len() || b[p] != b':' {
            // v2 would report an empty action name here; an empty item is harmless.
            if !name.is_empty() {
                out.push(Item {
                    name,
                    value: None,
                    offset: start,
                    value_offset: p,
                });
            }
            while p < b.len() && b[p].is_ascii_whitespace() {
                p += 1;
            }
            if p >= b.len() {
                break;
            }
            if is_sep(b[p]) {
                p += 1;
                continue;
            }
            return Err(GenericError {
                offset: p,
                msg: format!("unexpected character {:?}", b[p] as char),
            });
        }
        p += 1; // the colon
        if p >= b.len() || is_sep(b[p]) {
            out.push(Item {
                name,
                value: None,
                offset: start,
                value_offset: p,
            });
            p += 1;
            continue;
        }
        let value_offset = p;
        let value = if b[p] == b'\'' {
            p += 1;
            let mut v = Vec::new();
            loop {
                match b.get(p) {
                    None => {
                        return Err(GenericError {
                            offset: value_offset,
                            msg: "missing closing quote".into(),
                        })
                    }
                    Some(b'\\') => match b.get(p + 1) {
                        Some(&c) if c == b'\'' || c == b'\\' => {
                            v.push(c);
                            p += 2;
                        }
                        _ => {
                            return Err(GenericError {
                                offset: p,
                                msg: "invalid quoted pair (only \\' and \\\\ may be escaped)"
                                    .into(),
                            })
                        }
                    },
                    Some(b'\'') => {
                        p += 1;
                        break;
                    }
                    Some(&c) => {
                        v.push(c);
                        p += 1;
                    }
                }
            }
            String::from_utf8_lossy(&v).into_owned()
        } else {
            let s = p;
            while p < b.len() && !is_sep(b[p]) && !b[p].is_ascii_whitespace() {
                p += 1;
            }
            text.get(s..p).unwrap_or("").to_string()
        };
        out.push(Item {
            name,
            value: Some(value),
            offset: start,
            value_offset,
        });
        while p < b.len() && (b[p].is_ascii_whitespace() || is_sep(b[p])) {
            p += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nv(s: &str) -> Vec<(String, Option<String>)> {
        parse(s)
            .unwrap()
            .into_iter()
            .map(|i| (i.name, i.value))
            .collect()
    }

    #[test]
    fn items() {
        let o = |n: &str, v: Option<&str>| (n.to_string(), v.map(str::to_string));
        assert_eq!(
            nv("id:1,phase:2"),
            vec![o("id", Some("1")), o("phase", Some("2"))]
        );
        assert_eq!(
            nv("ARGS|!ARGS:foo|&TX:x"),
            vec![
                o("ARGS", None),
                o("!ARGS", Some("foo")),
                o("&TX", Some("x"))
            ]
        );
        assert_eq!(nv("msg:'a, b \\'c\\''"), vec![o("msg", Some("a, b 'c'"))]);
        assert_eq!(nv("msg:'x\\\\y'"), vec![o("msg", Some("x\\y"))]);
        assert_eq!(
            nv("  pass ,  nolog,,"),
            vec![o("pass", None), o("nolog", None)]
        );
        assert_eq!(
            nv("ctl:ruleRemoveTargetById=1;ARGS:a"),
            vec![o("ctl", Some("ruleRemoveTargetById=1;ARGS:a"))]
        );
        assert_eq!(nv("XML:/*"), vec![o("XML", Some("/*"))]);
        assert_eq!(nv("a:,b"), vec![o("a", None), o("b", None)]);
    }

    #[test]
    fn errors() {
        assert_eq!(parse("msg:'abc").unwrap_err().offset, 4);
        assert_eq!(parse("msg:'a\\b'").unwrap_err().offset, 6);
        assert!(parse("pass x").is_err());
    }
}
