//! The built-in demo: the example policy (embedded at build time) in front
//! of the built-in demo app, with in-process state.

use anyhow::{Context, Result};
use std::net::SocketAddr;

include!(concat!(env!("OUT_DIR"), "/demo_policy.rs"));

/// Write the embedded example policy to `dir`.
pub fn write_policy(dir: &std::path::Path) -> Result<()> {
    for (rel, bytes) in DEMO_POLICY {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// Start the demo app and build the example policy pointing at it.
pub async fn prepare() -> Result<(proxy::Runtime, SocketAddr)> {
    let l = match tokio::net::TcpListener::bind("127.0.0.1:8081").await {
        Ok(l) => l,
        Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0").await?,
    };
    let addr = l.local_addr()?;
    tokio::spawn(proxy::demo::serve(l));
    let dir = std::env::temp_dir().join(format!("palisade-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    write_policy(&dir)?;
    let rt = super::serve::build_dev(&dir)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok((rt.with_upstream(&addr.to_string()), addr))
}
