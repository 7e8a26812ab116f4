//! The WAF stage: runs the route's compiled SecLang rule set (the OWASP CRS)
//! through phases 1-5 and turns interventions into verdicts.

use pipeline::{Finding, RequestCtx, Stage, Verdict};
use seclang::{Intervention, RuleSet, Transaction};
use std::collections::HashMap;
use std::sync::Arc;

const SLOT: &str = "waf";

pub struct WafStage {
    /// Rule set per route name; routes without WAF are absent.
    by_route: HashMap<String, Arc<RuleSet>>,
}

impl WafStage {
    pub fn new(by_route: HashMap<String, Arc<RuleSet>>) -> Self {
        WafStage { by_route }
    }
}

/// Whether the WAF will read this request's response headers (it runs for the route).
pub fn reads_response_headers(ctx: &RequestCtx) -> bool {
    ctx.get::<Transaction>(SLOT).is_some()
}

fn verdict(iv: Option<Intervention>) -> Verdict {
    match iv {
        None => Verdict::Allow,
        Some(iv) if iv.drop => Verdict::Drop {
            reason: format!("waf rule {}", iv.rule_id),
        },
        Some(iv) => match iv.redirect {
            Some(url) => Verdict::Challenge {
                status: if (300..400).contains(&iv.status) {
                    iv.status
                } else {
                    302
                },
                headers: vec![("Location".into(), url)],
                body: String::new(),
            },
            None => Verdict::deny(
                if iv.status >= 400 { iv.status } else { 403 },
                format!("waf rule {}", iv.rule_id),
            ),
        },
    }
}

impl Stage for WafStage {
    fn name(&self) -> &'static str {
        SLOT
    }

    fn on_request_headers(&self, ctx: &mut RequestCtx) -> Verdict {
        let Some(rules) = ctx.route.as_ref().and_then(|r| self.by_route.get(r)) else {
            return Verdict::Allow;
        };
        let mut tx = Box::new(Transaction::new(rules.clone(), &ctx.req, ctx.id.clone()));
        let iv = tx.process_request_headers();
        ctx.put_boxed(SLOT, tx);
        verdict(iv)
    }

    fn wants_request_body(&self, ctx: &RequestCtx) -> bool {
        ctx.get::<Transaction>(SLOT)
            .is_some_and(|tx| tx.wants_request_body())
    }

    fn on_request_body(&self, ctx: &mut RequestCtx, body: &[u8], truncated: bool) -> Verdict {
        match ctx.get_mut::<Transaction>(SLOT) {
            Some(tx) => verdict(tx.process_request_body(body, truncated)),
            None => Verdict::Allow,
        }
    }

    fn on_response_headers(&self, ctx: &mut RequestCtx) -> Verdict {
        let status = ctx.status.unwrap_or(0);
        let headers = std::mem::take(&mut ctx.response_headers);
        let v = match ctx.get_mut::<Transaction>(SLOT) {
            Some(tx) => verdict(tx.process_response_headers(status, "HTTP/1.1", &headers)),
            None => Verdict::Allow,
        };
        ctx.response_headers = headers;
        v
    }

    fn wants_response_body(&self, ctx: &RequestCtx) -> bool {
        ctx.get::<Transaction>(SLOT)
            .is_some_and(|tx| tx.wants_response_body())
    }

    fn on_response_body(&self, ctx: &mut RequestCtx, body: &[u8], truncated: bool) -> Verdict {
        match ctx.get_mut::<Transaction>(SLOT) {
            Some(tx) => verdict(tx.process_response_body(body, truncated)),
            None => Verdict::Allow,
        }
    }

    fn on_log(&self, ctx: &mut RequestCtx) {
        let Some(mut tx) = ctx.take_boxed::<Transaction>(SLOT) else {
            return;
        };
        tx.process_logging();
        let stopped = tx.intervention().cloned();
        for m in tx.matched().iter().filter(|m| m.log) {
            ctx.findings.push(Finding {
                stage: SLOT,
                rule_id: m.id,
                msg: m.msg.clone(),
                data: m.data.clone(),
                severity: m.severity.to_string(),
                tags: m.tags.clone(),
                file: m.file.clone(),
                line: m.line,
                ver: m.ver.clone(),
                // Worded as ModSecurity words what `verdict` answers.
                denied: stopped.as_ref().filter(|iv| iv.rule_id == m.id).map(|iv| {
                    match (&iv.redirect, verdict(Some(iv.clone()))) {
                        (Some(url), Verdict::Challenge { status, .. }) => format!(
                            "with redirection to {url} using status {status} (phase {})",
                            m.phase
                        ),
                        (_, Verdict::Deny { status, .. }) => {
                            format!("with code {status} (phase {})", m.phase)
                        }
                        (_, Verdict::Drop { .. }) => {
                            format!("with connection close (phase {})", m.phase)
                        }
                        _ => format!("(phase {})", m.phase),
                    }
                }),
            });
        }
    }
}
