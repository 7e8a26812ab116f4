//! Routing: pick the route (and so the upstream and per-route settings) by
//! host and path prefix; first match wins.

use crate::runtime::RouteRt;
use pipeline::{RequestCtx, Stage, Verdict};
use std::sync::Arc;

pub struct RouteStage {
    routes: Arc<[RouteRt]>,
}

impl RouteStage {
    pub fn new(routes: Arc<[RouteRt]>) -> Self {
        RouteStage { routes }
    }
}

/// Host patterns: `*` (any), `*.example.com` (any subdomain), or an exact name; case-insensitive.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" || pattern.is_empty() {
        return true;
    }
    if let Some(suffix) = pattern.strip_prefix("*.") {
        let host = host.to_ascii_lowercase();
        return host.len() > suffix.len() + 1
            && host.ends_with(&suffix.to_ascii_lowercase())
            && host.as_bytes()[host.len() - suffix.len() - 1] == b'.';
    }
    pattern.eq_ignore_ascii_case(host)
}

pub fn find<'a>(routes: &'a [RouteRt], host: &str, path: &str) -> Option<&'a RouteRt> {
    routes
        .iter()
        .find(|r| host_matches(&r.host, host) && path.starts_with(r.path_prefix.as_str()))
}

impl Stage for RouteStage {
    fn name(&self) -> &'static str {
        "route"
    }

    fn on_request_headers(&self, ctx: &mut RequestCtx) -> Verdict {
        match find(&self.routes, ctx.req.host(), &ctx.req.path) {
            Some(r) => {
                ctx.route = Some(r.name.clone());
                Verdict::Allow
            }
            None => Verdict::deny(404, "no route for this host and path"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert!(host_matches("*", "a.b"));
        assert!(host_matches("*.example.com", "api.Example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "badexample.com"));
        assert!(host_matches("Shop.example.com", "shop.example.com"));
    }
}
