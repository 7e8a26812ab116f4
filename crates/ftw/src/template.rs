//! A small subset of Go `text/template` + Sprig, enough for go-ftw's `data`
//! templating (`{{ "1" | repeat 64200 }}`).
//!
//! Supported: text, `{{- ... -}}` trimming, comments `{{/* */}}`, pipelines
//! of commands separated by `|`, string (`"..."`, `` `...` ``) and integer
//! literals, and the functions `repeat`, `upper`, `lower`, `trim`, `print`,
//! `quote`, `squote`, `cat`, `nospace`, `trimAll`, `replace`.
//! As in go-ftw, any error means the template yields no data at all.

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    Int(i64),
}

impl Val {
    fn into_string(self) -> String {
        match self {
            Val::Str(s) => s,
            Val::Int(i) => i.to_string(),
        }
    }
    fn as_int(&self) -> Option<i64> {
        match self {
            Val::Int(i) => Some(*i),
            Val::Str(_) => None,
        }
    }
}

/// Evaluate `src` as a template. `Err` when it does not parse or execute.
pub fn render(src: &str) -> Result<String, String> {
    if !src.contains("{{") {
        return Ok(src.to_string());
    }
    let mut out = String::new();
    let mut rest = src;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        let mut action = &rest[open + 2..];
        if let Some(a) = action
            .strip_prefix("- ")
            .or_else(|| action.strip_prefix("-\t"))
            .or_else(|| action.strip_prefix("-\n"))
        {
            text = text.trim_end();
            action = a;
        }
        out.push_str(text);
        let close = find_close(action).ok_or("unclosed action")?;
        let mut inner = &action[..close];
        let mut after = &action[close + 2..];
        if inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-") {
            inner = &inner[..inner.len() - 2];
            after = after.trim_start();
        }
        out.push_str(&eval_action(inner)?);
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

/// Position of the closing `}}`, skipping string literals.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(Val),
    Ident(String),
    Pipe,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut toks = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '|' {
            toks.push(Tok::Pipe);
            i += 1;
        } else if c == '"' {
            let mut v = String::new();
            i += 1;
            loop {
                let c = *chars.get(i).ok_or("unterminated string")?;
                i += 1;
                match c {
                    '"' => break,
                    '\\' => {
                        let e = *chars.get(i).ok_or("bad escape")?;
                        i += 1;
                        v.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            '0' => '\0',
                            '\\' => '\\',
                            '"' => '"',
                            '\'' => '\'',
                            _ => return Err(format!("unsupported escape \\{e}")),
                        });
                    }
                    c => v.push(c),
                }
            }
            toks.push(Tok::Lit(Val::Str(v)));
        } else if c == '`' {
            let mut v = String::new();
            i += 1;
            loop {
                let c = *chars.get(i).ok_or("unterminated raw string")?;
                i += 1;
                if c == '`' {
                    break;
                }
                v.push(c);
            }
            toks.push(Tok::Lit(Val::Str(v)));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()))
        {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let n: String = chars[start..i].iter().collect();
            toks.push(Tok::Lit(Val::Int(n.parse().map_err(|_| "bad number")?)));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            toks.push(Tok::Ident(chars[start..i].iter().collect()));
        } else {
            return Err(format!("unsupported character {c:?} in action"));
        }
    }
    Ok(toks)
}

fn eval_action(inner: &str) -> Result<String, String> {
    let t = inner.trim();
    if t.starts_with("/*") {
        if t.ends_with("*/") {
            return Ok(String::new());
        }
        return Err("unclosed comment".into());
    }
    let toks = tokenize(t)?;
    if toks.is_empty() {
        return Err("missing value for command".into());
    }
    let mut prev: Option<Val> = None;
    for cmd in toks.split(|t| *t == Tok::Pipe) {
        if cmd.is_empty() {
            return Err("missing command in pipeline".into());
        }
        let mut args: Vec<Val> = Vec::new();
        let func = match &cmd[0] {
            Tok::Ident(f) => {
                for a in &cmd[1..] {
                    match a {
                        Tok::Lit(v) => args.push(v.clone()),
                        _ => return Err("nested function calls are not supported".into()),
                    }
                }
                Some(f.clone())
            }
            Tok::Lit(v) => {
                if cmd.len() > 1 || prev.is_some() {
                    return Err("can't give argument to non-function".into());
                }
                args.push(v.clone());
                None
            }
            Tok::Pipe => unreachable!("split on pipes"),
        };
        if let Some(p) = prev.take() {
            args.push(p);
        }
        prev = Some(match func {
            None => args.pop().ok_or("empty command")?,
            Some(f) => call(&f, args)?,
        });
    }
    Ok(prev.map(Val::into_string).unwrap_or_default())
}

fn call(f: &str, args: Vec<Val>) -> Result<Val, String> {
    let arity = |n: usize| -> Result<(), String> {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "wrong number of args for {f}: want {n} got {}",
                args.len()
            ))
        }
    };
    let s = |i: usize| -> String { args[i].clone().into_string() };
    Ok(match f {
        "repeat" => {
            arity(2)?;
            let n = args[0].as_int().ok_or("repeat: count must be an integer")?;
            Val::Str(s(1).repeat(n.max(0) as usize))
        }
        "upper" => {
            arity(1)?;
            Val::Str(s(0).to_uppercase())
        }
        "lower" => {
            arity(1)?;
            Val::Str(s(0).to_lowercase())
        }
        "trim" => {
            arity(1)?;
            Val::Str(s(0).trim().to_string())
        }
        "nospace" => {
            arity(1)?;
            Val::Str(s(0).chars().filter(|c| !c.is_whitespace()).collect())
        }
        "quote" => Val::Str(
            args.into_iter()
                .map(|a| format!("{:?}", a.into_string()))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "squote" => Val::Str(
            args.into_iter()
                .map(|a| format!("'{}'", a.into_string()))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "cat" => Val::Str(
            args.into_iter()
                .map(Val::into_string)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "print" => {
            // Go's fmt.Sprint: spaces only between operands when neither is a string.
            let mut out = String::new();
            let mut prev_str = true;
            for (i, a) in args.into_iter().enumerate() {
                let is_str = matches!(a, Val::Str(_));
                if i > 0 && !is_str && !prev_str {
                    out.push(' ');
                }
                prev_str = is_str;
                out.push_str(&a.into_string());
            }
            Val::Str(out)
        }
        "trimAll" => {
            arity(2)?;
            let cut: Vec<char> = s(0).chars().collect();
            Val::Str(s(1).trim_matches(|c| cut.contains(&c)).to_string())
        }
        "replace" => {
            arity(3)?;
            Val::Str(s(2).replace(&s(0), &s(1)))
        }
        _ => return Err(format!("function {f:?} not defined")),
    })
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn plain_text_unchanged() {
        assert_eq!(render("a=b&c=d\n").unwrap(), "a=b&c=d\n");
    }

    #[test]
    fn repeat_pipeline() {
        assert_eq!(render("x={{ \"1\" | repeat 5 }};").unwrap(), "x=11111;");
        assert_eq!(render("{{ repeat 3 \"ab\" }}").unwrap(), "ababab");
        assert_eq!(render("a {{- \"b\" -}} c").unwrap(), "abc");
        assert_eq!(render("{{ \"x\" | repeat 2 | upper }}").unwrap(), "XX");
        assert_eq!(render("{{/* c */}}z").unwrap(), "z");
    }

    #[test]
    fn errors() {
        assert!(render("{{constructor.constructor('alert(1)')()}}").is_err());
        assert!(render("{{ nope 1 }}").is_err());
        assert!(render("{{ \"1\" ").is_err());
    }
}
