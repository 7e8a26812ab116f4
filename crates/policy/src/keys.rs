//! Ed25519 signing keys as small text files.
//!
//! `NAME.key`: `palisade-ed25519-secret <base64 of 32 bytes>`;
//! `NAME.pub`: `palisade-ed25519-public <base64 of 32 bytes>`.

use crate::KeyError;
use base64::Engine;
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::Digest;
use std::path::{Path, PathBuf};

const SECRET_TAG: &str = "palisade-ed25519-secret";
const PUBLIC_TAG: &str = "palisade-ed25519-public";

pub fn generate_signing_key() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Short id of a public key (first 16 hex digits of its SHA-256).
pub fn key_id(k: &VerifyingKey) -> String {
    hex::encode(&sha2::Sha256::digest(k.as_bytes())[..8])
}

fn encode(tag: &str, bytes: &[u8]) -> String {
    format!(
        "{tag} {}\n",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

fn decode(path: &Path, tag: &str, kind: &'static str) -> Result<[u8; 32], KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.into(),
        source,
    })?;
    let bad = |why: &str| KeyError::Format {
        path: path.into(),
        kind,
        why: why.into(),
    };
    let rest = text
        .trim()
        .strip_prefix(tag)
        .ok_or_else(|| bad(&format!("expected a line starting with `{tag}`")))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|e| bad(&format!("bad base64: {e}")))?;
    raw.try_into().map_err(|_| bad("key must be 32 bytes"))
}

fn path_with(prefix: &Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

/// Write `PREFIX.key` (mode 0600) and `PREFIX.pub`; never overwrites.
pub fn keygen(prefix: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
    let (sk_path, pk_path) = (path_with(prefix, ".key"), path_with(prefix, ".pub"));
    for p in [&sk_path, &pk_path] {
        if p.exists() {
            return Err(KeyError::Exists { path: p.clone() });
        }
    }
    let k = generate_signing_key()?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyError::Io { path, source }
    };
    write_secret(&sk_path, encode(SECRET_TAG, &k.to_bytes()).as_bytes()).map_err(io(&sk_path))?;
    std::fs::write(&pk_path, encode(PUBLIC_TAG, k.verifying_key().as_bytes()))
        .map_err(io(&pk_path))?;
    Ok((sk_path, pk_path))
}

#[cfg(unix)]
fn write_secret(p: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)?;
    f.write_all(bytes)
}

#[cfg(not(unix))]
fn write_secret(p: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(p, bytes)
}

pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    Ok(SigningKey::from_bytes(&decode(path, SECRET_TAG, "secret")?))
}

pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let b = decode(path, PUBLIC_TAG, "public")?;
    VerifyingKey::from_bytes(&b).map_err(|e| KeyError::Format {
        path: path.into(),
        kind: "public",
        why: e.to_string(),
    })
}

/// Write a public key file (tests, tooling).
pub fn write_verifying_key(path: &Path, k: &VerifyingKey) -> std::io::Result<()> {
    std::fs::write(path, encode(PUBLIC_TAG, k.as_bytes()))
}
