//! `status`: ask a node's admin port what it runs.

use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::process::ExitCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub async fn get(admin: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut s = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::net::TcpStream::connect(admin),
    )
    .await
    .context("timed out connecting to the admin port")?
    .with_context(|| format!("connecting to {admin}"))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {admin}\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .context("timed out reading the admin port")??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("malformed answer from {admin}");
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

pub async fn run(admin: SocketAddr) -> Result<ExitCode> {
    let (status, body) = get(admin, "/status").await?;
    if status != 200 {
        bail!("{admin} answered {status}");
    }
    print!("{body}");
    Ok(ExitCode::SUCCESS)
}
