//! L7 limits that apply to every protocol. HTTP/1 framing, header-read and
//! body-read timeouts are enforced while reading the wire (`h1`); this stage
//! checks what an HTTP/2 request could still carry past them.

use crate::runtime::Limits;
use pipeline::{RequestCtx, Stage, Verdict};

pub struct L7Stage {
    limits: Limits,
}

impl L7Stage {
    pub fn new(limits: Limits) -> Self {
        L7Stage { limits }
    }
}

impl Stage for L7Stage {
    fn name(&self) -> &'static str {
        "l7"
    }

    fn on_request_headers(&self, ctx: &mut RequestCtx) -> Verdict {
        let req = &ctx.req;
        if req.uri_raw.len() > self.limits.max_url_bytes {
            return Verdict::deny(414, "request target too long");
        }
        if req.headers.len() > self.limits.max_header_count {
            return Verdict::deny(431, "too many header fields");
        }
        let head_bytes: usize = req.headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
        if head_bytes > self.limits.max_header_bytes {
            return Verdict::deny(431, "request head too large");
        }
        if let Some(cl) = req.header_str("content-length") {
            if cl
                .trim()
                .parse::<u64>()
                .map_or(true, |n| n > self.limits.max_body_bytes)
            {
                return Verdict::deny(413, "request body too large");
            }
        }
        Verdict::Allow
    }
}
