//! The shapes every Palisade stage shares: one request view, one verdict type,
//! one per-request context, and the `Stage` trait each capability implements.
//!
//! A request flows through the stages in order (see `proxy::pipeline`):
//! `accept (L7 limits) -> route -> ACL -> rate limit -> session flow / ATO ->
//! bot challenge -> API schema -> WAF -> upstream -> response inspection -> log`.
//! Stages never touch sockets: the data plane hands them a [`RequestCtx`] and
//! acts on the [`Verdict`] they return.

use std::any::Any;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// An address as `Display` writes it; IPv4 (the common case) without the
/// formatting machinery (the WAF's REMOTE_ADDR and the proxy's
/// `X-Forwarded-For` take it per request).
pub fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mut out = String::with_capacity(15);
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if o >= 100 {
                    out.push(char::from(b'0' + o / 100));
                }
                if o >= 10 {
                    out.push(char::from(b'0' + o / 10 % 10));
                }
                out.push(char::from(b'0' + o % 10));
            }
            out
        }
        IpAddr::V6(_) => ip.to_string(),
    }
}

/// HTTP version as it arrived on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    Http10,
    Http11,
    Http2,
}

impl HttpVersion {
    pub fn as_str(&self) -> &'static str {
        match self {
            HttpVersion::Http10 => "HTTP/1.0",
            HttpVersion::Http11 => "HTTP/1.1",
            HttpVersion::Http2 => "HTTP/2.0",
        }
    }
}

/// The request as the client sent it, before any stage changes anything.
///
/// Header names keep their original case and order, duplicates included,
/// because the WAF inspects what was on the wire, not a normalised map.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: String,
    /// The request-target exactly as sent (`/a/b?x=1`, or absolute-form).
    pub uri_raw: String,
    /// Path part of the request-target (no query), still percent-encoded.
    pub path: String,
    /// Query string without the `?`, still percent-encoded; empty if none.
    pub query: String,
    pub version: HttpVersion,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Address of the TCP peer (a load balancer when one is in front).
    pub peer: SocketAddr,
    /// The client address after trusted-proxy resolution of `X-Forwarded-For`/`Forwarded`.
    pub client_ip: IpAddr,
    pub tls: bool,
    /// Local address the request arrived on.
    pub local: SocketAddr,
}

impl RequestHead {
    /// First header value with this name (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// First header value as UTF-8 text, if it is valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// `Host` for HTTP/1, `:authority` for HTTP/2 (the data plane stores it as `Host`), without port.
    pub fn host(&self) -> &str {
        let h = self.header_str("host").unwrap_or("");
        // Strip a port, leaving IPv6 literals intact.
        if h.starts_with('[') {
            return h.split(']').next().map(|s| &h[..s.len() + 1]).unwrap_or(h);
        }
        h.rsplit_once(':').map(|(a, _)| a).unwrap_or(h)
    }

    /// The request line as CRS's `REQUEST_LINE` sees it.
    pub fn request_line(&self) -> String {
        // Pieces joined by hand: `format!` cost several times as much, on
        // every request the WAF sees.
        let (m, u, v) = (&self.method, &self.uri_raw, self.version.as_str());
        let mut line = String::with_capacity(m.len() + u.len() + v.len() + 2);
        line.push_str(m);
        line.push(' ');
        line.push_str(u);
        line.push(' ');
        line.push_str(v);
        line
    }
}

/// Whether a stage's decisions are carried out or only recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    /// Detection only: the verdict is logged and counted, the request goes on.
    Monitor,
}

/// What a stage decided about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on to the next stage.
    Allow,
    /// Stop here and answer with this status.
    Deny { status: u16, reason: String },
    /// Answer with a challenge page (bot management); `body` is served as-is.
    Challenge {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Let the request go on but record why it was interesting.
    Tag { reason: String },
    /// Close the client's connection without an answer (SecLang `drop`;
    /// on HTTP/2, the stream is reset).
    Drop { reason: String },
}

impl Verdict {
    pub fn deny(status: u16, reason: impl Into<String>) -> Self {
        Verdict::Deny {
            status,
            reason: reason.into(),
        }
    }

    /// True for verdicts that end the request when enforced.
    pub fn is_blocking(&self) -> bool {
        matches!(
            self,
            Verdict::Deny { .. } | Verdict::Challenge { .. } | Verdict::Drop { .. }
        )
    }
}

/// One rule or check that matched, kept for the audit event and alert log.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The stage that produced it (`waf`, `l7`, `ratelimit`, ...).
    pub stage: &'static str,
    /// Rule id when the stage has numbered rules (CRS), else 0.
    pub rule_id: u64,
    pub msg: String,
    pub data: String,
    pub severity: String,
    pub tags: Vec<String>,
    /// Where the rule is defined and its version (`[file]`, `[line]`,
    /// `[ver]` of the alert log; empty and 0 when unknown).
    #[serde(skip)]
    pub file: String,
    #[serde(skip)]
    pub line: usize,
    #[serde(skip)]
    pub ver: String,
    /// How this finding's rule stopped the request, when it is the one that
    /// did, as ModSecurity words it after "Access denied ": `with code 403
    /// (phase 2)`, `with redirection to URL using status 302 (phase 1)`
    /// (used when the stage enforced it).
    #[serde(skip)]
    pub denied: Option<String>,
}

/// A decision a stage took, with the mode it ran in, so monitor-mode blocks are still visible.
#[derive(Debug, Clone)]
pub struct Decision {
    pub stage: &'static str,
    pub verdict: Verdict,
    pub mode: Mode,
}

/// Per-request state shared by every stage. Created by the data plane once
/// the request head is parsed; dropped after the log phase.
pub struct RequestCtx {
    /// Unique id of this request (logs, events, the WAF's UNIQUE_ID).
    pub id: String,
    pub req: RequestHead,
    /// Name of the route the request matched, once routing ran.
    pub route: Option<String>,
    pub started: Instant,
    /// Response status once known (upstream or a stage's own answer).
    pub status: Option<u16>,
    /// Response headers once known (name, value), for response-phase stages.
    pub response_headers: Vec<(String, Vec<u8>)>,
    pub findings: Vec<Finding>,
    pub decisions: Vec<Decision>,
    /// Stage-private state that must live across phases (e.g. a WAF transaction),
    /// keyed by stage name: a few entries at most, so a list searched in
    /// order (cheaper per request than hashing the name on every ask).
    slots: Vec<(&'static str, Box<dyn Any + Send>)>,
}

impl RequestCtx {
    pub fn new(req: RequestHead) -> Self {
        RequestCtx {
            id: String::new(),
            req,
            route: None,
            started: Instant::now(),
            status: None,
            response_headers: Vec::new(),
            findings: Vec::new(),
            decisions: Vec::new(),
            slots: Vec::new(),
        }
    }

    /// Store `value` as `stage`'s state (replacing what it stored before).
    pub fn put<T: Any + Send>(&mut self, stage: &'static str, value: T) {
        self.put_boxed(stage, Box::new(value));
    }

    /// [`put`](Self::put) for a value already on the heap: a large state
    /// (the WAF's transaction, 3 KiB) is stored without being copied.
    pub fn put_boxed<T: Any + Send>(&mut self, stage: &'static str, value: Box<T>) {
        let value: Box<dyn Any + Send> = value;
        match self.slot(stage) {
            Some(i) => self.slots[i].1 = value,
            None => self.slots.push((stage, value)),
        }
    }

    pub fn get<T: Any + Send>(&self, stage: &'static str) -> Option<&T> {
        let i = self.slot(stage)?;
        self.slots[i].1.downcast_ref()
    }

    pub fn get_mut<T: Any + Send>(&mut self, stage: &'static str) -> Option<&mut T> {
        let i = self.slot(stage)?;
        self.slots[i].1.downcast_mut()
    }

    pub fn take<T: Any + Send>(&mut self, stage: &'static str) -> Option<T> {
        self.take_boxed(stage).map(|b| *b)
    }

    /// [`take`](Self::take), leaving the value on the heap.
    pub fn take_boxed<T: Any + Send>(&mut self, stage: &'static str) -> Option<Box<T>> {
        let i = self.slot(stage)?;
        let (_, b) = self.slots.swap_remove(i);
        b.downcast().ok()
    }

    fn slot(&self, stage: &str) -> Option<usize> {
        self.slots.iter().position(|(s, _)| *s == stage)
    }
}

/// One capability in the request pipeline.
///
/// Each method is one phase; the default does nothing and allows. A stage
/// returns a [`Verdict`]; the pipeline records it and, if the stage runs in
/// [`Mode::Enforce`] and the verdict blocks, answers the client and stops.
/// In [`Mode::Monitor`] a blocking verdict is recorded and the request goes on.
pub trait Stage: Send + Sync {
    /// Short stable name used in logs, metrics and slots (`l7`, `waf`, ...).
    fn name(&self) -> &'static str;

    /// Phase 1: the request head is known, no body has been read.
    fn on_request_headers(&self, _ctx: &mut RequestCtx) -> Verdict {
        Verdict::Allow
    }

    /// Whether this stage needs the request body buffered (up to the route's
    /// inspection limit) before the request goes upstream. Stages that say no
    /// let the body stream straight through.
    fn wants_request_body(&self, _ctx: &RequestCtx) -> bool {
        false
    }

    /// Phase 2: the buffered request body (possibly truncated at the
    /// inspection limit; `truncated` says so).
    fn on_request_body(&self, _ctx: &mut RequestCtx, _body: &[u8], _truncated: bool) -> Verdict {
        Verdict::Allow
    }

    /// Phase 3: upstream answered with a status and headers (`ctx.status`,
    /// `ctx.response_headers`).
    fn on_response_headers(&self, _ctx: &mut RequestCtx) -> Verdict {
        Verdict::Allow
    }

    /// Whether this stage needs the response body buffered before it is sent.
    fn wants_response_body(&self, _ctx: &RequestCtx) -> bool {
        false
    }

    /// Phase 4: the buffered response body.
    fn on_response_body(&self, _ctx: &mut RequestCtx, _body: &[u8], _truncated: bool) -> Verdict {
        Verdict::Allow
    }

    /// Phase 5: the exchange is over; record what needs recording.
    fn on_log(&self, _ctx: &mut RequestCtx) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RequestCtx {
        RequestCtx::new(RequestHead {
            method: "GET".into(),
            uri_raw: "/".into(),
            path: "/".into(),
            query: String::new(),
            version: HttpVersion::Http11,
            headers: Vec::new(),
            peer: "127.0.0.1:1".parse().unwrap(),
            client_ip: "127.0.0.1".parse().unwrap(),
            tls: false,
            local: "127.0.0.1:2".parse().unwrap(),
        })
    }

    /// Each stage's slot holds its own value, of its own type; `put` again
    /// replaces it, `take` empties it.
    #[test]
    fn stage_slots() {
        let mut c = ctx();
        c.put("waf", 1u32);
        c.put("bot", String::from("b"));
        c.put("flow", 3u64);
        assert_eq!(c.get::<u32>("waf"), Some(&1));
        assert_eq!(c.get::<String>("waf"), None, "another type");
        assert_eq!(c.get::<u32>("acl"), None, "no slot");
        *c.get_mut::<u32>("waf").unwrap() += 1;
        c.put("bot", String::from("b2"));
        assert_eq!(c.take::<u32>("waf"), Some(2));
        assert_eq!(c.take::<u32>("waf"), None, "taken");
        assert_eq!(c.get::<String>("bot").map(String::as_str), Some("b2"));
        assert_eq!(c.get::<u64>("flow"), Some(&3));
        // A boxed value is the same slot's value as one put unboxed.
        c.put_boxed("waf", Box::new(7u32));
        *c.get_mut::<u32>("waf").unwrap() += 1;
        assert_eq!(c.take_boxed::<String>("waf"), None, "another type");
        c.put_boxed("waf", Box::new(8u32));
        assert_eq!(c.take_boxed::<u32>("waf"), Some(Box::new(8)));
        assert_eq!(c.take::<u32>("waf"), None, "taken");
    }

    #[test]
    fn addresses_read_as_display_writes_them() {
        let mut ips: Vec<IpAddr> = [
            "0.0.0.0",
            "192.0.2.10",
            "255.255.255.255",
            "10.9.100.1",
            "::1",
            "2001:db8::7",
        ]
        .iter()
        .map(|ip| ip.parse().unwrap())
        .collect();
        // Every octet value, in each position.
        for o in 0..=255u8 {
            ips.push(IpAddr::from([o, 255 - o, o / 2, o.wrapping_mul(7)]));
        }
        for ip in ips {
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }
}
