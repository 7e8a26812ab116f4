//! `setvar`: `coll.key=value`, `=+n`, `=-n`, `!coll.key`, with macros in
//! key and value. Arithmetic follows v2: both sides are read as integers
//! (atoi: leading digits, else 0).

use crate::macros::MacroStr;
use crate::variables::Var;

#[derive(Debug, Clone)]
pub enum SetVarOp {
    Set(MacroStr),
    Add(MacroStr),
    Sub(MacroStr),
    Delete,
}

#[derive(Debug, Clone)]
pub struct SetVar {
    pub coll: Var,
    pub key: MacroStr,
    /// The key when it has no macro, hashed at load time.
    pub name: Option<crate::collections::Name>,
    pub op: SetVarOp,
}

impl SetVar {
    pub fn parse(v: &str) -> Result<SetVar, String> {
        let v = v.trim();
        let (delete, v) = match v.strip_prefix('!') {
            Some(r) => (true, r),
            None => (false, v),
        };
        let (lhs, rhs) = match v.split_once('=') {
            Some((l, r)) => (l, Some(r)),
            None => (v, None),
        };
        let (coll, key) = lhs
            .split_once('.')
            .ok_or_else(|| format!("setvar {v:?}: expected collection.name"))?;
        let coll = Var::from_name(coll.trim())
            .filter(|c| {
                matches!(
                    c,
                    Var::Tx | Var::Ip | Var::Global | Var::Session | Var::User | Var::Resource
                )
            })
            .ok_or_else(|| format!("setvar {v:?}: unknown collection {coll:?}"))?;
        if key.is_empty() {
            return Err(format!("setvar {v:?}: empty variable name"));
        }
        let op = if delete {
            SetVarOp::Delete
        } else {
            match rhs {
                None => SetVarOp::Set(MacroStr::parse("1")),
                Some(r) => match r.as_bytes().first() {
                    Some(b'+') => SetVarOp::Add(MacroStr::parse(&r[1..])),
                    Some(b'-') => SetVarOp::Sub(MacroStr::parse(&r[1..])),
                    _ => SetVarOp::Set(MacroStr::parse(r)),
                },
            }
        };
        let key = MacroStr::parse(key);
        let name = match key.literal_prefix() {
            (k, true) => Some(crate::collections::Name::new(&String::from_utf8_lossy(&k))),
            _ => None,
        };
        Ok(SetVar {
            coll,
            key,
            name,
            op,
        })
    }
}

/// C `atoi`: optional whitespace and sign, then leading digits; 0 if none.
pub fn atoi(b: &[u8]) -> i64 {
    seclang_ops::atoi(b)
}

/// `n` in decimal, appended (as `to_string` writes it, without the
/// formatting machinery: scores are rewritten many times per request).
pub fn push_int(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_print_as_to_string_does() {
        for n in [
            0,
            7,
            -7,
            10,
            99,
            -100,
            123_456,
            i64::MAX,
            i64::MIN,
            i64::MIN + 1,
        ] {
            let mut out = b"x".to_vec();
            push_int(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }

    #[test]
    fn parse_forms() {
        assert!(matches!(
            SetVar::parse("tx.a=1").unwrap().op,
            SetVarOp::Set(_)
        ));
        assert!(matches!(
            SetVar::parse("tx.a=+%{tx.b}").unwrap().op,
            SetVarOp::Add(_)
        ));
        assert!(matches!(
            SetVar::parse("tx.a=-5").unwrap().op,
            SetVarOp::Sub(_)
        ));
        assert!(matches!(
            SetVar::parse("!tx.a").unwrap().op,
            SetVarOp::Delete
        ));
        assert!(matches!(
            SetVar::parse("tx.flag").unwrap().op,
            SetVarOp::Set(_)
        ));
        assert_eq!(SetVar::parse("IP.x=1").unwrap().coll, Var::Ip);
        assert!(SetVar::parse("nope").is_err());
        assert!(SetVar::parse("args.x=1").is_err());
    }

    #[test]
    fn atoi_like_c() {
        for (s, n) in [
            ("12", 12),
            (" -3x", -3),
            ("abc", 0),
            ("", 0),
            ("+7", 7),
            ("99999999999999999999999", i64::MAX),
        ] {
            assert_eq!(atoi(s.as_bytes()), n, "{s}");
        }
    }
}
