//! `test`: run a policy's test cases through the real proxy, over a real
//! socket, with the demo app standing in for every upstream.

use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Send one raw request and return the status code of the answer.
pub async fn send_raw(addr: SocketAddr, req: &[u8]) -> Result<(u16, Vec<u8>)> {
    let mut s = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .context("connect timed out")??;
    s.write_all(req).await?;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let status = String::from_utf8_lossy(line)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status in the answer")?;
    Ok((status, buf))
}

pub async fn run(dir: &Path) -> Result<ExitCode> {
    let cases = policy::load_test_cases(dir)?;
    if cases.is_empty() {
        println!("no test cases (add `tests:` globs to palisade.yaml)");
        return Ok(ExitCode::SUCCESS);
    }
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let up_addr = upstream.local_addr()?;
    let up = tokio::spawn(proxy::demo::serve(upstream));
    let rt = super::serve::build_dev(dir)?.with_upstream(&up_addr.to_string());
    let running = proxy::start(
        rt,
        proxy::ServeOptions {
            listen: Some("127.0.0.1:0".parse()?),
            ..Default::default()
        },
    )
    .await?;
    let addr = running.http.context("no listener")?;
    let (mut passed, mut failed) = (0, 0);
    for c in &cases {
        let raw = c.request.to_raw();
        let got = send_raw(addr, &raw).await;
        let verdict = match &got {
            Ok((status, _)) => c.expect.check(*status),
            Err(e) => Err(format!("no answer: {e:#}")),
        };
        match verdict {
            Ok(()) => {
                passed += 1;
                println!("ok    {}", c.name);
            }
            Err(why) => {
                failed += 1;
                println!("FAIL  {} ({}): {why}", c.name, c.location);
            }
        }
    }
    running.stop();
    up.abort();
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
