//! Stand-in operators and transformations used until `seclang-ops` lands
//! (same call shapes). Only what the engine tests need is exact; the real
//! implementations live in `seclang-ops`.

use std::borrow::Cow;

pub trait Expand {
    fn expand<'a>(&self, text: &'a str) -> Cow<'a, str>;
}

enum Kind {
    Rx(regex::bytes::Regex),
    Pm(aho_corasick::AhoCorasick),
    Num(fn(i64, i64) -> bool, String),
    Str(fn(&[u8], &[u8]) -> bool, String),
    Within(String),
    Always(bool),
    Sqli,
    Xss,
    ByteRange(Vec<(u8, u8)>),
    Utf8,
    UrlEnc,
    Ip(Vec<ipnet::IpNet>),
}

pub struct Operator {
    kind: Kind,
    negated: bool,
}

fn atoi(b: &[u8]) -> i64 {
    crate::actions::setvar::atoi(b)
}

fn pm(words: Vec<Vec<u8>>) -> Result<Kind, String> {
    aho_corasick::AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .build(words)
        .map(Kind::Pm)
        .map_err(|e| e.to_string())
}

impl Operator {
    pub fn compile(
        name: &str,
        arg: &str,
        negated: bool,
        read_file: &dyn Fn(&str) -> std::io::Result<Vec<u8>>,
    ) -> Result<Operator, String> {
        let kind = match name.to_ascii_lowercase().as_str() {
            "rx" => Kind::Rx(
                regex::bytes::RegexBuilder::new(arg)
                    .dot_matches_new_line(true)
                    .size_limit(64 << 20)
                    .build()
                    .map_err(|e| format!("invalid regex: {e}"))?,
            ),
            "pm" => pm(arg
                .split_whitespace()
                .map(|w| w.as_bytes().to_vec())
                .collect())?,
            "pmfromfile" | "pmf" => {
                let mut words = Vec::new();
                for f in arg.split_whitespace() {
                    let data = read_file(f).map_err(|e| format!("cannot read {f}: {e}"))?;
                    for l in data.split(|&b| b == b'\n') {
                        let l = l.strip_suffix(b"\r").unwrap_or(l);
                        if l.is_empty() || l.starts_with(b"#") {
                            continue;
                        }
                        words.push(l.to_vec());
                    }
                }
                pm(words)?
            }
            "eq" => Kind::Num(|a, b| a == b, arg.into()),
            "ge" => Kind::Num(|a, b| a >= b, arg.into()),
            "gt" => Kind::Num(|a, b| a > b, arg.into()),
            "le" => Kind::Num(|a, b| a <= b, arg.into()),
            "lt" => Kind::Num(|a, b| a < b, arg.into()),
            "streq" => Kind::Str(|v, a| v == a, arg.into()),
            "beginswith" => Kind::Str(|v, a| v.starts_with(a), arg.into()),
            "endswith" => Kind::Str(|v, a| v.ends_with(a), arg.into()),
            "contains" => Kind::Str(
                |v, a| a.is_empty() || v.windows(a.len()).any(|w| w == a),
                arg.into(),
            ),
            "within" => Kind::Within(arg.into()),
            "unconditionalmatch" => Kind::Always(true),
            "nomatch" => Kind::Always(false),
            "detectsqli" => Kind::Sqli,
            "detectxss" => Kind::Xss,
            "validateutf8encoding" => Kind::Utf8,
            "validateurlencoding" => Kind::UrlEnc,
            "validatebyterange" => {
                let mut r = Vec::new();
                for p in arg.split(',') {
                    let p = p.trim();
                    let (a, b) = p.split_once('-').unwrap_or((p, p));
                    let a: u8 = a.trim().parse().map_err(|_| format!("bad range {p}"))?;
                    let b: u8 = b.trim().parse().map_err(|_| format!("bad range {p}"))?;
                    r.push((a, b));
                }
                Kind::ByteRange(r)
            }
            "ipmatch" => Kind::Ip(
                arg.split(',')
                    .map(|s| {
                        let s = s.trim();
                        s.parse::<ipnet::IpNet>()
                            .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                            .map_err(|_| format!("bad ip {s}"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            other => return Err(format!("unknown operator @{other}")),
        };
        Ok(Operator { kind, negated })
    }

    pub fn eval(&self, v: &[u8], exp: &dyn Expand, caps: Option<&mut Vec<Vec<u8>>>) -> bool {
        let r = match &self.kind {
            Kind::Rx(re) => match caps {
                Some(c) => match re.captures(v) {
                    Some(m) => {
                        c.clear();
                        for g in m.iter() {
                            c.push(g.map(|g| g.as_bytes().to_vec()).unwrap_or_default());
                        }
                        true
                    }
                    None => false,
                },
                None => re.is_match(v),
            },
            Kind::Pm(ac) => match ac.find(v) {
                Some(m) => {
                    if let Some(c) = caps {
                        c.clear();
                        c.push(v[m.start()..m.end()].to_vec());
                    }
                    true
                }
                None => false,
            },
            Kind::Num(f, a) => f(atoi(v), atoi(exp.expand(a).as_bytes())),
            Kind::Str(f, a) => f(v, exp.expand(a).as_bytes()),
            Kind::Within(a) => {
                let a = exp.expand(a);
                v.is_empty() || a.as_bytes().windows(v.len()).any(|w| w == v)
            }
            Kind::Always(b) => *b,
            Kind::Sqli => {
                let r = libinjectionrs::detect_sqli(v);
                if r.is_injection() {
                    if let (Some(c), Some(fp)) = (caps, r.fingerprint) {
                        c.clear();
                        c.push(fp.to_string().into_bytes());
                    }
                    true
                } else {
                    false
                }
            }
            Kind::Xss => libinjectionrs::detect_xss(v).is_injection(),
            Kind::ByteRange(r) => v.iter().any(|b| !r.iter().any(|(a, z)| a <= b && b <= z)),
            Kind::Utf8 => std::str::from_utf8(v).is_err(),
            Kind::UrlEnc => {
                let mut i = 0;
                let mut bad = false;
                while i < v.len() {
                    if v[i] == b'%' {
                        if !(v.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                            && v.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
                        {
                            bad = true;
                            break;
                        }
                        i += 3;
                    } else {
                        i += 1;
                    }
                }
                bad
            }
            Kind::Ip(nets) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<std::net::IpAddr>().ok())
                .is_some_and(|ip| nets.iter().any(|n| n.contains(&ip))),
        };
        r != self.negated
    }

    pub fn required_literals(&self) -> Option<Vec<Vec<u8>>> {
        None
    }
}

#[derive(Clone, Copy)]
enum T {
    Lower,
    Upper,
    UrlDecode,
    RemoveNulls,
    RemoveWs,
    CompressWs,
    Length,
    HexEncode,
    Trim,
    Identity,
    ReplaceComments,
    CmdLine,
}

pub struct Transform(T);

fn hexval(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

impl Transform {
    pub fn from_name(n: &str) -> Option<Transform> {
        Some(Transform(match n.to_ascii_lowercase().as_str() {
            "lowercase" => T::Lower,
            "uppercase" => T::Upper,
            "urldecode" | "urldecodeuni" => T::UrlDecode,
            "removenulls" => T::RemoveNulls,
            "removewhitespace" => T::RemoveWs,
            "compresswhitespace" => T::CompressWs,
            "length" => T::Length,
            "hexencode" => T::HexEncode,
            "trim" | "trimleft" | "trimright" => T::Trim,
            "replacecomments" => T::ReplaceComments,
            "cmdline" => T::CmdLine,
            "none" | "utf8tounicode" | "htmlentitydecode" | "jsdecode" | "cssdecode"
            | "normalizepath" | "normalisepath" | "normalizepathwin" | "normalisepathwin"
            | "escapeseqdecode" | "base64decode" | "base64decodeext" | "base64encode" | "sha1"
            | "md5" | "hexdecode" | "removecomments" | "removecommentschar" | "replacenulls"
            | "sqlhexdecode" | "parityeven7bit" | "parityodd7bit" | "parityzero7bit"
            | "urlencode" => T::Identity,
            _ => return None,
        }))
    }

    pub fn apply(&self, v: &[u8]) -> Option<Vec<u8>> {
        let out: Vec<u8> = match self.0 {
            T::Lower => v.to_ascii_lowercase(),
            T::Upper => v.to_ascii_uppercase(),
            T::UrlDecode => {
                let mut o = Vec::with_capacity(v.len());
                let mut i = 0;
                while i < v.len() {
                    match v[i] {
                        b'+' => o.push(b' '),
                        b'%' => match (
                            v.get(i + 1).and_then(|&c| hexval(c)),
                            v.get(i + 2).and_then(|&c| hexval(c)),
                        ) {
                            (Some(a), Some(b)) => {
                                o.push(a * 16 + b);
                                i += 2;
                            }
                            _ => o.push(b'%'),
                        },
                        c => o.push(c),
                    }
                    i += 1;
                }
                o
            }
            T::RemoveNulls => v.iter().copied().filter(|&b| b != 0).collect(),
            T::RemoveWs => v
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect(),
            T::CompressWs => {
                let mut o = Vec::with_capacity(v.len());
                let mut ws = false;
                for &b in v {
                    if b.is_ascii_whitespace() {
                        if !ws {
                            o.push(b' ');
                        }
                        ws = true;
                    } else {
                        o.push(b);
                        ws = false;
                    }
                }
                o
            }
            T::Length => v.len().to_string().into_bytes(),
            T::HexEncode => v
                .iter()
                .flat_map(|b| format!("{b:02x}").into_bytes())
                .collect(),
            T::Trim => v.trim_ascii().to_vec(),
            T::ReplaceComments | T::CmdLine | T::Identity => return None,
        };
        (out != v).then_some(out)
    }
}
