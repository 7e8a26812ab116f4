//! The request pipeline: stages in order, run phase by phase.
//!
//! Order (stages not yet built are skipped):
//! `l7 -> route -> acl -> ratelimit -> flow/ato -> bot -> api schema -> waf`,
//! then the upstream, then the same stages' response hooks, then logging.

use crate::runtime::Runtime;
use pipeline::{Decision, RequestCtx, Stage, Verdict};
use std::sync::Arc;

pub struct Pipeline {
    stages: Vec<Arc<dyn Stage>>,
}

impl Pipeline {
    pub fn new(stages: Vec<Arc<dyn Stage>>) -> Self {
        Pipeline { stages }
    }

    pub fn stage_names(&self) -> Vec<&'static str> {
        self.stages.iter().map(|s| s.name()).collect()
    }

    /// Run one phase over every stage. Returns the first verdict that blocks
    /// in enforce mode; every non-allow verdict is recorded in `ctx.decisions`.
    fn run(
        &self,
        rt: &Runtime,
        ctx: &mut RequestCtx,
        mut phase: impl FnMut(&dyn Stage, &mut RequestCtx) -> Verdict,
    ) -> Option<Verdict> {
        for stage in &self.stages {
            let verdict = phase(stage.as_ref(), ctx);
            if verdict == Verdict::Allow {
                continue;
            }
            let mode = rt.mode(stage.name(), ctx.route.as_deref());
            let blocks = verdict.is_blocking() && mode == pipeline::Mode::Enforce;
            ctx.decisions.push(Decision {
                stage: stage.name(),
                verdict: verdict.clone(),
                mode,
            });
            if blocks {
                return Some(verdict);
            }
        }
        None
    }

    pub fn request_headers(&self, rt: &Runtime, ctx: &mut RequestCtx) -> Option<Verdict> {
        self.run(rt, ctx, |s, c| s.on_request_headers(c))
    }

    pub fn wants_request_body(&self, ctx: &RequestCtx) -> bool {
        self.stages.iter().any(|s| s.wants_request_body(ctx))
    }

    pub fn request_body(
        &self,
        rt: &Runtime,
        ctx: &mut RequestCtx,
        body: &[u8],
        truncated: bool,
    ) -> Option<Verdict> {
        self.run(rt, ctx, |s, c| s.on_request_body(c, body, truncated))
    }

    pub fn response_headers(&self, rt: &Runtime, ctx: &mut RequestCtx) -> Option<Verdict> {
        self.run(rt, ctx, |s, c| s.on_response_headers(c))
    }

    /// Whether a stage will read `ctx.response_headers` for this request: the
    /// built-in l7 and route stages never do, the WAF only where it runs, and
    /// any other stage is assumed to.
    pub fn reads_response_headers(&self, ctx: &RequestCtx) -> bool {
        self.stages.iter().any(|s| match s.name() {
            "l7" | "route" => false,
            "waf" => crate::stages::waf::reads_response_headers(ctx),
            _ => true,
        })
    }

    pub fn wants_response_body(&self, ctx: &RequestCtx) -> bool {
        self.stages.iter().any(|s| s.wants_response_body(ctx))
    }

    pub fn response_body(
        &self,
        rt: &Runtime,
        ctx: &mut RequestCtx,
        body: &[u8],
        truncated: bool,
    ) -> Option<Verdict> {
        self.run(rt, ctx, |s, c| s.on_response_body(c, body, truncated))
    }

    pub fn log(&self, ctx: &mut RequestCtx) {
        for s in &self.stages {
            s.on_log(ctx);
        }
    }
}
