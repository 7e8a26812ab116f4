//! `serve`: run the gateway.

use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Signed bundle to run (a file, or a symlink to one: repoint it to swap or roll back).
    #[arg(long, conflicts_with_all = ["policy", "demo"])]
    bundle: Option<PathBuf>,
    /// Public key(s) the bundle must be signed with.
    #[arg(long)]
    trust: Vec<PathBuf>,
    /// Development: build this policy directory in memory with a throwaway key and run it.
    #[arg(long, conflicts_with = "demo")]
    policy: Option<PathBuf>,
    /// Run the built-in example policy in front of a built-in demo app.
    #[arg(long)]
    demo: bool,
    /// Plain HTTP listener (HTTP/1.1 and h2c).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// TLS listener (HTTP/1.1 and HTTP/2 by ALPN); needs `server.tls` in the policy.
    #[arg(long)]
    tls_listen: Option<SocketAddr>,
    /// Admin listener (read-only: /status, /healthz).
    #[arg(long, default_value = "127.0.0.1:9901")]
    admin: SocketAddr,
    /// Append ModSecurity-style alert lines (one per matched rule) here.
    #[arg(long)]
    alert_log: Option<PathBuf>,
    /// Append one JSON event per request here.
    #[arg(long)]
    events: Option<PathBuf>,
    /// Poll the bundle path for a new bundle this often (0: only on SIGHUP).
    #[arg(long, default_value_t = 1000)]
    watch_ms: u64,
    /// Send every route to this upstream instead of the policy's (benchmarks, smoke tests).
    #[arg(long)]
    upstream: Option<String>,
}

/// Build a policy directory in memory, signed with a throwaway key.
pub fn build_dev(dir: &Path) -> Result<proxy::Runtime> {
    let key = policy::generate_signing_key()?;
    let (bundle, _) =
        policy::build(dir, &key).with_context(|| format!("building {}", dir.display()))?;
    Ok(proxy::Runtime::from_bundle(&bundle)?)
}

pub async fn run(a: Args) -> Result<ExitCode> {
    let watch = (a.watch_ms > 0).then(|| Duration::from_millis(a.watch_ms));
    let mut demo_note = None;
    let (mut rt, source) = if let Some(path) = &a.bundle {
        if a.trust.is_empty() {
            bail!("--bundle needs at least one --trust PUBKEY: Palisade only runs signed bundles");
        }
        let trust = super::bundle::load_keys(&a.trust)?;
        let rt = proxy::Runtime::load(path, &trust)
            .with_context(|| format!("refusing bundle {}", path.display()))?;
        (
            rt,
            Some(proxy::BundleSource {
                path: path.clone(),
                trust,
            }),
        )
    } else if let Some(dir) = &a.policy {
        tracing::warn!(
            "--policy builds with a throwaway key: use `build` + `serve --bundle` in production"
        );
        (build_dev(dir)?, None)
    } else if a.demo {
        let (rt, upstream) = super::demo::prepare().await?;
        demo_note = Some(upstream);
        (rt, None)
    } else {
        bail!("say what to run: --bundle FILE --trust KEY, --policy DIR, or --demo");
    };
    if let Some(u) = &a.upstream {
        rt = rt.with_upstream(u);
    }
    let digest = rt.digest.clone();
    let running = proxy::start(
        rt,
        proxy::ServeOptions {
            listen: Some(a.listen),
            tls_listen: a.tls_listen,
            admin: Some(a.admin),
            alert_log: a.alert_log.clone(),
            event_log: a.events.clone(),
            source,
            watch,
        },
    )
    .await?;
    let http = running.http.map(|a| a.to_string()).unwrap_or_default();
    eprintln!(
        "palisade {} serving bundle {digest}",
        env!("CARGO_PKG_VERSION")
    );
    eprintln!("  proxy:  http://{http}/");
    if let Some(t) = running.https {
        eprintln!("  tls:    https://{t}/");
    }
    if let Some(ad) = running.admin {
        eprintln!("  admin:  http://{ad}/status");
    }
    if let Some(up) = demo_note {
        eprintln!("  demo app (upstream): http://{up}/");
        eprintln!("try:");
        eprintln!(
            "  curl -i http://{http}/                                # proxied to the demo app"
        );
        eprintln!("  curl -i 'http://{http}/search?q=shoes'                # benign: 200");
        eprintln!(
            "  curl -i \"http://{http}/?id=1'%20OR%20'1'='1\"           # SQL injection: 403"
        );
        eprintln!("  curl -i 'http://{http}/?q=<script>alert(1)</script>'  # XSS: 403");
        eprintln!(
            "  curl -s http://{}/status",
            running.admin.map(|a| a.to_string()).unwrap_or_default()
        );
    }
    running.wait().await;
    Ok(ExitCode::SUCCESS)
}
