//! SecLang syntax: configuration lexing (`lexer`), `name:value` lists
//! (`generic`) and the operator string.

pub mod generic;
pub mod lexer;

/// A parsed operator string: `[!]@name arg` or a bare regex (implicit `@rx`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpSpec {
    pub name: String,
    pub arg: String,
    pub negated: bool,
}

pub fn parse_operator(s: &str) -> OpSpec {
    let t = s.trim_start();
    let (negated, t) = match t.strip_prefix('!') {
        Some(r) => (true, r.trim_start()),
        None => (false, t),
    };
    match t.strip_prefix('@') {
        Some(r) => {
            let end = r.find(|c: char| c.is_ascii_whitespace()).unwrap_or(r.len());
            let name = r[..end].to_string();
            let arg = r[end..].trim_start().to_string();
            OpSpec { name, arg, negated }
        }
        None => OpSpec {
            name: "rx".into(),
            arg: t.to_string(),
            negated,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators() {
        let o = |n: &str, a: &str, neg| OpSpec {
            name: n.into(),
            arg: a.into(),
            negated: neg,
        };
        assert_eq!(parse_operator("@rx ^a b$"), o("rx", "^a b$", false));
        assert_eq!(parse_operator("!@eq 0"), o("eq", "0", true));
        assert_eq!(
            parse_operator("@unconditionalMatch"),
            o("unconditionalMatch", "", false)
        );
        assert_eq!(parse_operator("^foo"), o("rx", "^foo", false));
        assert_eq!(parse_operator("!^foo"), o("rx", "^foo", true));
        assert_eq!(parse_operator(""), o("rx", "", false));
    }
}
