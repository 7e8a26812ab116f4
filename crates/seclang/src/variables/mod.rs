//! Rule targets: the variable table, selectors (`ARGS:foo`, `ARGS:/re/`,
//! `XML:/xpath`), exclusions (`!`) and counts (`&`), and the generation of
//! target items from the transaction state, one file per variable family.

mod args;
mod body;
mod collections;
mod headers;
mod matched;
mod request;
mod response;
mod server;

use crate::state::TxState;
use std::borrow::Cow;

macro_rules! vars {
    ($( $v:ident = $n:literal, $coll:literal; )*) => {
        /// Every variable ModSecurity v2 knows by name (variant names mirror them, hence MatchedVar).
        #[allow(clippy::enum_variant_names)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Var { $($v,)* }
        impl Var {
            pub fn name(self) -> &'static str { match self { $(Var::$v => $n,)* } }
            /// Whether the variable is a collection addressed with `:key`.
            pub fn is_collection(self) -> bool { match self { $(Var::$v => $coll,)* } }
            pub fn from_name(s: &str) -> Option<Var> {
                $( if s.eq_ignore_ascii_case($n) { return Some(Var::$v); } )*
                None
            }
        }
    };
}

vars! {
    Args = "ARGS", true;
    ArgsCombinedSize = "ARGS_COMBINED_SIZE", false;
    ArgsGet = "ARGS_GET", true;
    ArgsGetNames = "ARGS_GET_NAMES", true;
    ArgsNames = "ARGS_NAMES", true;
    ArgsPost = "ARGS_POST", true;
    ArgsPostNames = "ARGS_POST_NAMES", true;
    AuthType = "AUTH_TYPE", false;
    Env = "ENV", true;
    Files = "FILES", true;
    FilesCombinedSize = "FILES_COMBINED_SIZE", false;
    FilesNames = "FILES_NAMES", true;
    FilesSizes = "FILES_SIZES", true;
    FilesTmpnames = "FILES_TMPNAMES", true;
    FilesTmpContent = "FILES_TMP_CONTENT", true;
    Geo = "GEO", true;
    Global = "GLOBAL", true;
    HighestSeverity = "HIGHEST_SEVERITY", false;
    Ip = "IP", true;
    MatchedVar = "MATCHED_VAR", false;
    MatchedVarName = "MATCHED_VAR_NAME", false;
    MatchedVars = "MATCHED_VARS", true;
    MatchedVarsNames = "MATCHED_VARS_NAMES", true;
    ModsecBuild = "MODSEC_BUILD", false;
    MultipartPartHeaders = "MULTIPART_PART_HEADERS", true;
    MultipartFilename = "MULTIPART_FILENAME", false;
    MultipartName = "MULTIPART_NAME", false;
    MultipartBoundaryQuoted = "MULTIPART_BOUNDARY_QUOTED", false;
    MultipartBoundaryWhitespace = "MULTIPART_BOUNDARY_WHITESPACE", false;
    MultipartDataAfter = "MULTIPART_DATA_AFTER", false;
    MultipartDataBefore = "MULTIPART_DATA_BEFORE", false;
    MultipartHeaderFolding = "MULTIPART_HEADER_FOLDING", false;
    MultipartCrlfLine = "MULTIPART_CRLF_LINE", false;
    MultipartCrlfLfLines = "MULTIPART_CRLF_LF_LINES", false;
    MultipartLfLine = "MULTIPART_LF_LINE", false;
    MultipartMissingSemicolon = "MULTIPART_MISSING_SEMICOLON", false;
    MultipartSemicolonMissing = "MULTIPART_SEMICOLON_MISSING", false;
    MultipartInvalidPart = "MULTIPART_INVALID_PART", false;
    MultipartInvalidQuoting = "MULTIPART_INVALID_QUOTING", false;
    MultipartInvalidHeaderFolding = "MULTIPART_INVALID_HEADER_FOLDING", false;
    MultipartFileLimitExceeded = "MULTIPART_FILE_LIMIT_EXCEEDED", false;
    MultipartStrictError = "MULTIPART_STRICT_ERROR", false;
    MultipartUnmatchedBoundary = "MULTIPART_UNMATCHED_BOUNDARY", false;
    PathInfo = "PATH_INFO", false;
    QueryString = "QUERY_STRING", false;
    UseragentIp = "USERAGENT_IP", false;
    RemoteAddr = "REMOTE_ADDR", false;
    RemoteHost = "REMOTE_HOST", false;
    RemotePort = "REMOTE_PORT", false;
    RemoteUser = "REMOTE_USER", false;
    Resource = "RESOURCE", true;
    ReqbodyProcessor = "REQBODY_PROCESSOR", false;
    SdbmDeleteError = "SDBM_DELETE_ERROR", false;
    ReqbodyProcessorError = "REQBODY_PROCESSOR_ERROR", false;
    ReqbodyProcessorErrorMsg = "REQBODY_PROCESSOR_ERROR_MSG", false;
    ReqbodyError = "REQBODY_ERROR", false;
    ReqbodyErrorMsg = "REQBODY_ERROR_MSG", false;
    RequestBasename = "REQUEST_BASENAME", false;
    FullRequest = "FULL_REQUEST", false;
    FullRequestLength = "FULL_REQUEST_LENGTH", false;
    RequestBody = "REQUEST_BODY", false;
    RequestBodyLength = "REQUEST_BODY_LENGTH", false;
    RequestCookies = "REQUEST_COOKIES", true;
    RequestCookiesNames = "REQUEST_COOKIES_NAMES", true;
    RequestFilename = "REQUEST_FILENAME", false;
    RequestHeaders = "REQUEST_HEADERS", true;
    RequestHeadersNames = "REQUEST_HEADERS_NAMES", true;
    RequestLine = "REQUEST_LINE", false;
    RequestMethod = "REQUEST_METHOD", false;
    RequestProtocol = "REQUEST_PROTOCOL", false;
    RequestUri = "REQUEST_URI", false;
    RequestUriRaw = "REQUEST_URI_RAW", false;
    UniqueId = "UNIQUE_ID", false;
    StreamOutputBody = "STREAM_OUTPUT_BODY", false;
    StreamInputBody = "STREAM_INPUT_BODY", false;
    ResponseBody = "RESPONSE_BODY", false;
    ResponseContentLength = "RESPONSE_CONTENT_LENGTH", false;
    ResponseContentType = "RESPONSE_CONTENT_TYPE", false;
    ResponseHeaders = "RESPONSE_HEADERS", true;
    ResponseHeadersNames = "RESPONSE_HEADERS_NAMES", true;
    ResponseProtocol = "RESPONSE_PROTOCOL", false;
    ResponseStatus = "RESPONSE_STATUS", false;
    Rule = "RULE", true;
    ScriptBasename = "SCRIPT_BASENAME", false;
    ScriptFilename = "SCRIPT_FILENAME", false;
    ServerAddr = "SERVER_ADDR", false;
    ServerName = "SERVER_NAME", false;
    ServerPort = "SERVER_PORT", false;
    Session = "SESSION", true;
    SessionId = "SESSIONID", false;
    StatusLine = "STATUS_LINE", false;
    UrlencodedError = "URLENCODED_ERROR", false;
    InboundDataError = "INBOUND_DATA_ERROR", false;
    OutboundDataError = "OUTBOUND_DATA_ERROR", false;
    User = "USER", true;
    UserId = "USERID", false;
    Duration = "DURATION", false;
    Time = "TIME", false;
    TimeDay = "TIME_DAY", false;
    TimeEpoch = "TIME_EPOCH", false;
    TimeHour = "TIME_HOUR", false;
    TimeMin = "TIME_MIN", false;
    TimeMon = "TIME_MON", false;
    TimeSec = "TIME_SEC", false;
    TimeWday = "TIME_WDAY", false;
    TimeYear = "TIME_YEAR", false;
    Tx = "TX", true;
    WebAppId = "WEBAPPID", false;
    WebserverErrorLog = "WEBSERVER_ERROR_LOG", false;
    Xml = "XML", true;
}

/// Variables whose items come from the request or response data and stay
/// the same for a whole phase (rules cannot change them), so a phase-wide
/// prefilter over them is sound.
pub fn phase_stable(v: Var) -> bool {
    matches!(
        v,
        Var::Args
            | Var::ArgsGet
            | Var::ArgsPost
            | Var::ArgsNames
            | Var::ArgsGetNames
            | Var::ArgsPostNames
            | Var::RequestHeaders
            | Var::RequestHeadersNames
            | Var::RequestCookies
            | Var::RequestCookiesNames
            | Var::RequestFilename
            | Var::RequestBasename
            | Var::RequestUri
            | Var::RequestUriRaw
            | Var::RequestLine
            | Var::RequestMethod
            | Var::RequestProtocol
            | Var::QueryString
            | Var::RequestBody
            | Var::Xml
            | Var::Files
            | Var::FilesNames
            | Var::ResponseBody
            | Var::ResponseHeaders
            | Var::ResponseHeadersNames
    )
}

/// How a target picks members of a collection.
#[derive(Debug, Clone)]
pub enum Selector {
    All,
    /// Exact key, compared case-insensitively (lower-cased and hashed at
    /// load time for collection lookups).
    Key(crate::collections::Name),
    /// `/regex/`, matched against the key (case-insensitive, as v2 compiles it).
    Regex(KeyRegex),
    /// An XPath expression for `XML:`.
    XPath(String),
}

/// A regex key selector. CRS mostly writes literal prefixes and
/// substrings (`TX:/^header_name_920450_/`, `TX:/paramcounter_.*/`,
/// `TX:/MULTIPART_HEADERS_CONTENT_TYPES_*/`), tested without the regex
/// engine.
#[derive(Debug, Clone)]
pub struct KeyRegex {
    re: regex::bytes::Regex,
    literal: KeyLiteral,
    /// The members of a shared base layer (TX's, per rule set) this
    /// selector takes, found on first use. The base is held so that its
    /// address stays its own; another base is looked at key by key.
    base_picks: std::sync::OnceLock<(std::sync::Arc<crate::collections::Collection>, Box<[u32]>)>,
}

/// What a selector regex reduces to, compared case-insensitively.
#[derive(Debug, Clone)]
enum KeyLiteral {
    /// `^lit`: the key starts with it.
    Prefix(Vec<u8>),
    /// `lit`, `lit.*`, `litx*`: the key contains it (what follows can
    /// match empty, so it does not change whether an unanchored search
    /// finds a match).
    Contains(Vec<u8>),
    /// `^lit` then more than a literal (`^_ga(?:_\w+)?$`): a key that does
    /// not start with `lit` is not a match; one that does goes to the
    /// regex engine.
    Guarded(Vec<u8>),
    /// Anything else: the regex engine.
    None,
}

impl KeyLiteral {
    fn of(re: &str) -> KeyLiteral {
        let word_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let word = |l: &str| !l.is_empty() && l.bytes().all(word_byte);
        let (anchored, body) = match re.strip_prefix('^') {
            Some(b) => (true, b),
            None => (false, re),
        };
        // A trailing `.*`, or one word character made optional with `*`.
        let body = match body.strip_suffix(".*") {
            Some(b) => b,
            None => match body.strip_suffix('*') {
                // The starred character is ASCII, so cutting it keeps a char boundary.
                Some(b) if b.len() > 1 && b.bytes().last().is_some_and(word_byte) => {
                    &b[..b.len() - 1]
                }
                _ => body,
            },
        };
        if !word(body) {
            return match anchored {
                true => KeyLiteral::guard(body),
                false => KeyLiteral::None,
            };
        }
        let lit = body.to_ascii_lowercase().into_bytes();
        if anchored {
            KeyLiteral::Prefix(lit)
        } else {
            KeyLiteral::Contains(lit)
        }
    }
}

/// Whether `hay` holds `lit` (lower case), ASCII case-insensitively: only
/// where `lit`'s first letter is (CRS's `TX:/MULTIPART_HEADERS_CONTENT_TYPES_*/`
/// looks at every TX key, most of them without an `m` in the right place).
fn contains_ci(hay: &[u8], lit: &[u8]) -> bool {
    let (Some(&f), Some(last)) = (lit.first(), hay.len().checked_sub(lit.len())) else {
        return lit.is_empty();
    };
    memchr::memchr2_iter(f, f.to_ascii_uppercase(), &hay[..=last])
        .any(|i| hay[i..i + lit.len()].eq_ignore_ascii_case(lit))
}

impl KeyLiteral {
    /// The literal start every match of `^body` has: the leading letters,
    /// digits, `_` and `-`, less one made optional by a quantifier after
    /// it. None when an alternation could end the anchored branch.
    fn guard(body: &str) -> KeyLiteral {
        if body.contains('|') {
            return KeyLiteral::None;
        }
        let b = body.as_bytes();
        let mut n = b
            .iter()
            .take_while(|&&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
            .count();
        if n > 0 && matches!(b.get(n), Some(b'?' | b'*' | b'{')) {
            n -= 1;
        }
        match n {
            0 => KeyLiteral::None,
            _ => KeyLiteral::Guarded(body[..n].to_ascii_lowercase().into_bytes()),
        }
    }
}

impl KeyRegex {
    pub fn as_str(&self) -> &str {
        self.re.as_str()
    }

    /// The indexes of the base entries this selector takes, when `base`
    /// is the base it first met (the rule set's TX base, in practice).
    pub fn base_picks(
        &self,
        base: &std::sync::Arc<crate::collections::Collection>,
    ) -> Option<&[u32]> {
        let (b, picks) = self.base_picks.get_or_init(|| {
            (
                base.clone(),
                base.indexes_where(|k| self.is_match(k.as_bytes())),
            )
        });
        std::sync::Arc::ptr_eq(b, base).then_some(&**picks)
    }

    pub fn is_match(&self, key: &[u8]) -> bool {
        match &self.literal {
            // Most keys differ in the first byte (CRS's TX selectors run
            // over every TX variable): that one is checked first.
            KeyLiteral::Prefix(p) => match (key.get(..p.len()), p.first()) {
                (Some(k), Some(&f)) => k[0].to_ascii_lowercase() == f && k.eq_ignore_ascii_case(p),
                (k, _) => k.is_some(),
            },
            KeyLiteral::Contains(l) => contains_ci(key, l),
            KeyLiteral::Guarded(p) => {
                key.get(..p.len())
                    .is_some_and(|k| k.eq_ignore_ascii_case(p))
                    && self.re.is_match(key)
            }
            KeyLiteral::None => self.re.is_match(key),
        }
    }
}

/// One compiled rule target.
#[derive(Debug, Clone)]
pub struct Target {
    pub var: Var,
    pub sel: Selector,
    pub negated: bool,
    pub count: bool,
}

/// Error text for a target that cannot be compiled.
pub fn parse_target(name: &str, param: Option<&str>) -> Result<Target, String> {
    let (negated, rest) = match name.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, name),
    };
    let (count, rest) = match rest.strip_prefix('&') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let var = Var::from_name(rest).ok_or_else(|| format!("unknown variable {rest:?}"))?;
    let sel = match param {
        None | Some("") => Selector::All,
        Some(p) if var == Var::Xml => Selector::XPath(p.to_string()),
        Some(p) if p.len() > 2 && p.starts_with('/') && p.ends_with('/') => {
            let re = p.get(1..p.len() - 1).unwrap_or("");
            let literal = KeyLiteral::of(re);
            let re = regex::bytes::RegexBuilder::new(re)
                .case_insensitive(true)
                .dot_matches_new_line(true)
                .build()
                .map_err(|e| format!("bad regex selector {p:?}: {e}"))?;
            Selector::Regex(KeyRegex {
                re,
                literal,
                base_picks: Default::default(),
            })
        }
        Some(p) => Selector::Key(crate::collections::Name::new(p)),
    };
    if negated && count {
        return Err("a target cannot be both negated and counted".into());
    }
    Ok(Target {
        var,
        sel,
        negated,
        count,
    })
}

/// One value a target produced.
#[derive(Debug, Clone)]
pub struct Item<'a> {
    pub var: Var,
    /// Member key for collections (empty for scalars).
    pub key: Cow<'a, [u8]>,
    pub value: Cow<'a, [u8]>,
    /// True when `value` lives in the request data for the whole phase
    /// (its address may key the transformation cache).
    pub stable: bool,
}

/// Printable ASCII as is, anything else as `\xHH` (v2's `log_escape_nq`).
pub fn escape_name(b: &[u8], out: &mut String) {
    // Nearly every name is printable ASCII: copied whole.
    if b.iter().all(|c| (0x20..0x7f).contains(c)) {
        if let Ok(s) = std::str::from_utf8(b) {
            out.push_str(s);
            return;
        }
    }
    for &c in b {
        if (0x20..0x7f).contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("\\x{c:02x}"));
        }
    }
}

impl Selector {
    /// Whether a member key is selected.
    #[inline]
    pub fn selects(&self, key: &[u8]) -> bool {
        match self {
            Selector::All => true,
            // Lengths first: most keys differ in length (the library's
            // comparison works in chunks before it looks at them).
            Selector::Key(k) => k.len() == key.len() && k.as_bytes().eq_ignore_ascii_case(key),
            Selector::Regex(re) => re.is_match(key),
            Selector::XPath(_) => true,
        }
    }
}

/// The decimal text of `n`; counts (`&ARGS`, `&REQUEST_HEADERS:Host`) are
/// almost always below 1000, and those are not allocated.
pub fn decimal(n: usize) -> Cow<'static, [u8]> {
    match SMALL_DECIMALS.get(n) {
        Some(d) => Cow::Borrowed(&d.0[..usize::from(d.1)]),
        None => Cow::Owned(n.to_string().into_bytes()),
    }
}

/// Digits and their count of 0..1000.
static SMALL_DECIMALS: [([u8; 3], u8); 1000] = {
    let mut t = [([0u8; 3], 0u8); 1000];
    let mut n = 0;
    while n < 1000 {
        t[n] = if n < 10 {
            ([b'0' + n as u8, 0, 0], 1)
        } else if n < 100 {
            ([b'0' + (n / 10) as u8, b'0' + (n % 10) as u8, 0], 2)
        } else {
            (
                [
                    b'0' + (n / 100) as u8,
                    b'0' + (n / 10 % 10) as u8,
                    b'0' + (n % 10) as u8,
                ],
                3,
            )
        };
        n += 1;
    }
    t
};

/// Generate the items of one (non-negated) target into `out`; returns how many.
pub fn generate<'a>(t: &Target, st: &'a TxState, out: &mut Vec<Item<'a>>) -> usize {
    let before = out.len();
    match t.var {
        Var::Args
        | Var::ArgsGet
        | Var::ArgsPost
        | Var::ArgsNames
        | Var::ArgsGetNames
        | Var::ArgsPostNames
        | Var::ArgsCombinedSize => args::generate(t, st, out),
        Var::RequestHeaders
        | Var::RequestHeadersNames
        | Var::RequestCookies
        | Var::RequestCookiesNames => headers::generate(t, st, out),
        Var::Tx
        | Var::Ip
        | Var::Global
        | Var::Session
        | Var::User
        | Var::Resource
        | Var::Env
        | Var::Geo
        | Var::Rule => collections::generate(t, st, out),
        Var::MatchedVar | Var::MatchedVarName | Var::MatchedVars | Var::MatchedVarsNames => {
            matched::generate(t, st, out)
        }
        Var::ResponseStatus
        | Var::ResponseProtocol
        | Var::ResponseHeaders
        | Var::ResponseHeadersNames
        | Var::ResponseBody
        | Var::ResponseContentType
        | Var::ResponseContentLength
        | Var::StatusLine
        | Var::StreamOutputBody
        | Var::OutboundDataError => response::generate(t, st, out),
        Var::Files
        | Var::FilesNames
        | Var::FilesSizes
        | Var::FilesCombinedSize
        | Var::FilesTmpnames
        | Var::FilesTmpContent
        | Var::MultipartPartHeaders
        | Var::MultipartFilename
        | Var::MultipartName
        | Var::MultipartBoundaryQuoted
        | Var::MultipartBoundaryWhitespace
        | Var::MultipartDataAfter
        | Var::MultipartDataBefore
        | Var::MultipartHeaderFolding
        | Var::MultipartCrlfLine
        | Var::MultipartCrlfLfLines
        | Var::MultipartLfLine
        | Var::MultipartMissingSemicolon
        | Var::MultipartSemicolonMissing
        | Var::MultipartInvalidPart
        | Var::MultipartInvalidQuoting
        | Var::MultipartInvalidHeaderFolding
        | Var::MultipartFileLimitExceeded
        | Var::MultipartStrictError
        | Var::MultipartUnmatchedBoundary
        | Var::Xml
        | Var::RequestBody
        | Var::RequestBodyLength
        | Var::ReqbodyProcessor
        | Var::ReqbodyProcessorError
        | Var::ReqbodyProcessorErrorMsg
        | Var::ReqbodyError
        | Var::ReqbodyErrorMsg
        | Var::UrlencodedError
        | Var::InboundDataError
        | Var::StreamInputBody
        | Var::FullRequest
        | Var::FullRequestLength => body::generate(t, st, out),
        Var::RequestBasename
        | Var::RequestFilename
        | Var::RequestLine
        | Var::RequestMethod
        | Var::RequestProtocol
        | Var::RequestUri
        | Var::RequestUriRaw
        | Var::QueryString
        | Var::PathInfo
        | Var::AuthType
        | Var::RemoteUser
        | Var::ScriptBasename
        | Var::ScriptFilename => request::generate(t, st, out),
        _ => server::generate(t, st, out),
    }
    out.len() - before
}

/// The named collection (TX, IP, ...) of the state, to change.
pub fn collection_of_mut(
    st: &mut TxState,
    var: Var,
) -> Option<&mut crate::collections::Collection> {
    Some(match var {
        Var::Tx => &mut st.tx,
        Var::Ip => &mut st.ip,
        Var::Global => &mut st.global,
        Var::Session => &mut st.session,
        Var::User => &mut st.user,
        Var::Resource => &mut st.resource,
        Var::Env => &mut st.env,
        _ => return None,
    })
}

/// A scalar item borrowed from the state.
pub(crate) fn scalar<'a>(var: Var, value: &'a [u8], out: &mut Vec<Item<'a>>) {
    push_scalar(var, Cow::Borrowed(value), true, out);
}

/// A scalar item borrowed from a state buffer that rules change within a
/// phase (MATCHED_VAR is rewritten in place by every match): not `stable`,
/// so no cache keyed by the buffer's address answers for an older value.
pub(crate) fn scalar_changing<'a>(var: Var, value: &'a [u8], out: &mut Vec<Item<'a>>) {
    push_scalar(var, Cow::Borrowed(value), false, out);
}

/// A scalar item computed on the fly.
pub(crate) fn scalar_owned(var: Var, value: Vec<u8>, out: &mut Vec<Item<'_>>) {
    push_scalar(var, Cow::Owned(value), false, out);
}

fn push_scalar<'a>(var: Var, value: Cow<'a, [u8]>, stable: bool, out: &mut Vec<Item<'a>>) {
    out.push(Item {
        var,
        key: Cow::Borrowed(&[]),
        value,
        stable,
    });
}

/// Members of a `(key, value)` list that the selector picks.
pub(crate) fn pairs<'a, K: AsRef<[u8]> + 'a, V: AsRef<[u8]> + 'a>(
    var: Var,
    sel: &Selector,
    list: impl IntoIterator<Item = &'a (K, V)>,
    names: bool,
    out: &mut Vec<Item<'a>>,
) {
    let all = matches!(sel, Selector::All);
    let item = |k: &'a [u8], v: &'a [u8]| Item {
        var,
        key: Cow::Borrowed(k),
        value: Cow::Borrowed(if names { k } else { v }),
        stable: true,
    };
    if let Selector::Key(name) = sel {
        // One key (`REQUEST_HEADERS:Host`): a length test rules out most.
        let want = name.as_bytes();
        for (k, v) in list {
            let k = k.as_ref();
            if k.len() == want.len() && k.eq_ignore_ascii_case(want) {
                out.push(item(k, v.as_ref()));
            }
        }
        return;
    }
    for (k, v) in list {
        let k = k.as_ref();
        if all || sel.selects(k) {
            out.push(item(k, v.as_ref()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_escape_what_is_not_printable_ascii() {
        let cases: [(&[u8], &str); 4] = [
            (b"user-agent", "user-agent"),
            (b"a\x01b", "a\\x01b"),
            ("caf\u{e9}".as_bytes(), "caf\\xc3\\xa9"),
            (b"tab\there\x7f", "tab\\x09here\\x7f"),
        ];
        for (name, want) in cases {
            let mut out = String::from("ARGS:");
            escape_name(name, &mut out);
            assert_eq!(out, format!("ARGS:{want}"), "{name:?}");
        }
    }

    #[test]
    fn decimals_read_as_display_writes_them() {
        for n in [0, 7, 9, 10, 42, 99, 100, 101, 999, 1000, 12345, usize::MAX] {
            assert_eq!(&*decimal(n), n.to_string().as_bytes(), "{n}");
        }
        assert!(matches!(decimal(999), Cow::Borrowed(_)));
    }

    #[test]
    fn literal_key_selectors_agree_with_the_regex() {
        let keys = [
            "header_name_920450_host",
            "HEADER_NAME_920450_",
            "x_header_name_920450_",
            "multipart_headers_content_types_0",
            "MULTIPART_HEADERS_CONTENT_TYPES",
            "a_multipart_headers_content_type",
            "mmultipart_headers_content_types",
            "m_Multipart_Headers_Content_Types",
            "mxMULTIPART_HEADERS_CONTENT_TYPESx",
            "multipart_headers_content_typ",
            "mmm",
            "x_PARAMCOUNTER_y",
            "pparamcounter_",
            "paramcounter_args:a",
            "param",
            "",
            "_ga",
            "_GA_x1",
            "_gat",
            "x_ga",
            "pbjs-a",
            "PBJS-",
            "pbjs",
            "ac",
            "abcc",
            "abc",
            "b",
        ];
        let pats = [
            ("^header_name_920450_", true),
            ("^HEADER_Name_920450_", true),
            ("MULTIPART_HEADERS_CONTENT_TYPES_*", true),
            ("paramcounter_.*", true),
            ("^param.*", true),
            ("content_types$", false),
            ("a\\_*", false),
            ("^(?:x|h)eader", false),
            // A starred non-ASCII character: no literal, and no panic.
            ("paramé*", false),
            ("é*", false),
            // An anchored literal start, then the regex engine.
            ("^_ga(?:_\\w+)?$", true),
            ("^pbjs-\\w+$", true),
            ("^ab?c", true),
            ("^abc{2}", true),
            ("^a+c", true),
            ("^a|b", false),
            ("^(?i)ab", false),
        ];
        for (pat, literal) in pats {
            let t = parse_target("TX", Some(&format!("/{pat}/"))).expect("target");
            let Selector::Regex(kr) = &t.sel else {
                panic!("{pat}: not a regex selector");
            };
            assert_eq!(!matches!(kr.literal, KeyLiteral::None), literal, "{pat}");
            for k in keys {
                assert_eq!(
                    kr.is_match(k.as_bytes()),
                    kr.re.is_match(k.as_bytes()),
                    "{pat} on {k:?}"
                );
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for n in [
            "ARGS",
            "request_headers",
            "MULTIPART_STRICT_ERROR",
            "tx",
            "XML",
            "REQUEST_URI_RAW",
        ] {
            let v = Var::from_name(n).unwrap();
            assert!(v.name().eq_ignore_ascii_case(n));
        }
        assert!(Var::from_name("NOPE").is_none());
    }

    #[test]
    fn target_parsing() {
        let t = parse_target("!REQUEST_COOKIES", Some("/__utm/")).unwrap();
        assert!(t.negated && matches!(t.sel, Selector::Regex(_)));
        assert!(t.sel.selects(b"x__UTMz"));
        let t = parse_target("&TX", Some("foo")).unwrap();
        assert!(t.count && matches!(t.sel, Selector::Key(ref k) if &**k == "foo"));
        let t = parse_target("XML", Some("/*")).unwrap();
        assert!(matches!(t.sel, Selector::XPath(_)));
        assert!(parse_target("BOGUS", None).is_err());
        assert!(parse_target("ARGS", Some("/(/")).is_err());
    }

    #[test]
    fn matched_names() {
        let name = |n: &crate::state::MatchedName| {
            // Appended: what the buffer held before stays.
            let mut s = String::from(">");
            n.write(&mut s);
            s
        };
        let mut n = crate::state::MatchedName::default();
        assert_eq!(name(&n), ">");
        n.set_keyed(Var::Args, b"a\x01\"b");
        assert_eq!(name(&n), ">ARGS:a\\x01\"b");
        n.set_bare(Var::RequestUri);
        assert_eq!(name(&n), ">REQUEST_URI");
        let mut m = crate::state::MatchedName::default();
        m.set_keyed(Var::RequestHeaders, b"Host");
        n.copy_from(&m);
        assert_eq!(n.text(), "REQUEST_HEADERS:Host");
        // A bare name after a keyed one leaves the key unwritten.
        m.set_bare(Var::RequestUri);
        n.copy_from(&m);
        assert_eq!(n.text(), "REQUEST_URI");
        assert_eq!(n.emptied().text(), "");
    }
}
