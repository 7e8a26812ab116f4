//! `build`, `verify`, `keygen`.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn build(policy_dir: &Path, out: &Path, key: &Path) -> Result<ExitCode> {
    let key = policy::load_signing_key(key)?;
    eprintln!("building {} ...", policy_dir.display());
    let (bundle, bytes) = policy::build(policy_dir, &key)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join(format!("{}.pal", bundle.digest));
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    println!("{}", path.display());
    eprintln!(
        "digest {} ({} files, policy `{}`)",
        bundle.digest,
        bundle.files.len(),
        bundle.policy.name
    );
    Ok(ExitCode::SUCCESS)
}

pub fn load_keys(paths: &[PathBuf]) -> Result<Vec<ed25519_dalek::VerifyingKey>> {
    paths
        .iter()
        .map(|p| policy::load_verifying_key(p).map_err(anyhow::Error::from))
        .collect()
}

pub fn verify(bundle: &Path, pubkeys: &[PathBuf]) -> Result<ExitCode> {
    let keys = load_keys(pubkeys)?;
    let b = policy::Bundle::read(bundle, &keys)?;
    println!("ok {} {}", b.digest, serde_json::to_string(&b.meta)?);
    Ok(ExitCode::SUCCESS)
}

pub fn keygen(prefix: &Path) -> Result<ExitCode> {
    policy::keygen(prefix)?;
    println!(
        "{}.key (secret, keep it out of git)\n{}.pub",
        prefix.display(),
        prefix.display()
    );
    Ok(ExitCode::SUCCESS)
}
