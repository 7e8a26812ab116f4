//! Signed, content-addressed bundles.
//!
//! A bundle is one JSON file:
//! `{"format", "digest", "meta", "signature": {"key_id", "sig"}, "files": {path: base64}}`.
//! The digest is the SHA-256 of a canonical encoding of the files (sorted
//! paths, each as `len(path) path len(content) content`), so the same policy
//! content always has the same digest whoever builds it and when. The
//! Ed25519 signature covers the digest and the build metadata.

use crate::model::{Policy, POLICY_FILE};
use crate::{keys, BuildError, BundleError};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

pub const FORMAT: &str = "palisade-bundle-v1";

/// Build metadata: where the bundle came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub policy_name: String,
    pub palisade_version: String,
    /// Seconds since the Unix epoch.
    pub built_at: u64,
    /// `git rev-parse HEAD` of the policy directory, when it is in git.
    pub git_commit: Option<String>,
    /// Uncommitted changes were present at build time.
    pub git_dirty: Option<bool>,
}

#[derive(Serialize, Deserialize)]
struct SignatureJson {
    key_id: String,
    sig: String,
}

#[derive(Serialize, Deserialize)]
struct BundleJson {
    format: String,
    digest: String,
    meta: Meta,
    signature: Option<SignatureJson>,
    files: BTreeMap<String, String>,
}

/// A verified bundle: its content, parsed policy and metadata. Immutable.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub digest: String,
    pub meta: Meta,
    pub policy: Policy,
    pub files: BTreeMap<String, Vec<u8>>,
    /// Key id of the signer.
    pub key_id: String,
}

/// SHA-256 over the canonical encoding of `files`, as `sha256:<hex>`... kept
/// as bare hex so it can name a file.
pub fn digest_files(files: &BTreeMap<String, Vec<u8>>) -> String {
    let mut h = Sha256::new();
    h.update(FORMAT.as_bytes());
    for (p, c) in files {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
        h.update((c.len() as u64).to_be_bytes());
        h.update(c);
    }
    hex::encode(h.finalize())
}

fn signed_message(digest: &str, meta: &Meta) -> Vec<u8> {
    // Meta is a struct: serde_json writes its fields in declaration order.
    let meta = serde_json::to_string(meta).unwrap_or_default();
    format!("{FORMAT}\n{digest}\n{meta}").into_bytes()
}

/// Normalise a path as the bundle stores it: `/`-separated, no `.` or `..` segments.
pub fn normalize(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let j = out.join("/");
    if abs {
        format!("/{j}")
    } else {
        j
    }
}

impl Bundle {
    /// Assemble and sign a bundle from already-validated content.
    pub(crate) fn seal(
        policy: Policy,
        files: BTreeMap<String, Vec<u8>>,
        meta: Meta,
        key: &SigningKey,
    ) -> (Bundle, Vec<u8>) {
        let digest = digest_files(&files);
        let sig = key.sign(&signed_message(&digest, &meta));
        let key_id = keys::key_id(&key.verifying_key());
        let b64 = base64::engine::general_purpose::STANDARD;
        let json = BundleJson {
            format: FORMAT.into(),
            digest: digest.clone(),
            meta: meta.clone(),
            signature: Some(SignatureJson {
                key_id: key_id.clone(),
                sig: b64.encode(sig.to_bytes()),
            }),
            files: files
                .iter()
                .map(|(p, c)| (p.clone(), b64.encode(c)))
                .collect(),
        };
        let bytes = serde_json::to_vec(&json).unwrap_or_default();
        (
            Bundle {
                digest,
                meta,
                policy,
                files,
                key_id,
            },
            bytes,
        )
    }

    /// Read and verify a bundle file: format, digest, signature by one of `trust`.
    pub fn read(path: &Path, trust: &[VerifyingKey]) -> Result<Bundle, BundleError> {
        let bytes = std::fs::read(path).map_err(|source| BundleError::Read {
            path: path.into(),
            source,
        })?;
        Bundle::from_bytes(&bytes, trust)
    }

    pub fn from_bytes(bytes: &[u8], trust: &[VerifyingKey]) -> Result<Bundle, BundleError> {
        let j: BundleJson =
            serde_json::from_slice(bytes).map_err(|e| BundleError::Format(e.to_string()))?;
        if j.format != FORMAT {
            return Err(BundleError::Format(format!(
                "format `{}` (expected `{FORMAT}`)",
                j.format
            )));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut files = BTreeMap::new();
        for (p, c) in &j.files {
            let c = b64
                .decode(c)
                .map_err(|e| BundleError::Format(format!("file {p}: {e}")))?;
            files.insert(p.clone(), c);
        }
        let actual = digest_files(&files);
        if actual != j.digest {
            return Err(BundleError::Digest {
                expected: j.digest,
                actual,
            });
        }
        let s = j.signature.ok_or(BundleError::Unsigned)?;
        let raw: [u8; 64] = b64
            .decode(&s.sig)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| BundleError::Format("signature is not 64 bytes of base64".into()))?;
        let sig = Signature::from_bytes(&raw);
        let msg = signed_message(&j.digest, &j.meta);
        if !trust.iter().any(|k| k.verify(&msg, &sig).is_ok()) {
            return Err(BundleError::Signature { key_id: s.key_id });
        }
        let text = files
            .get(POLICY_FILE)
            .ok_or_else(|| BundleError::Policy(format!("no {POLICY_FILE} in bundle")))?;
        let text = std::str::from_utf8(text)
            .map_err(|_| BundleError::Policy(format!("{POLICY_FILE} is not UTF-8")))?;
        let policy = crate::load::parse_policy(POLICY_FILE, text)
            .map_err(|e| BundleError::Policy(e.to_string()))?;
        Ok(Bundle {
            digest: j.digest,
            meta: j.meta,
            policy,
            files,
            key_id: s.key_id,
        })
    }

    /// One file's content.
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.files.get(&normalize(path)).map(Vec::as_slice)
    }

    /// The WAF rule files in load order, globs expanded against the bundle.
    pub fn waf_rule_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.policy.waf.rules {
            out.extend(glob_keys(&self.files, r));
        }
        out
    }
}

/// Bundle paths matching `pattern` (a literal path matches itself), sorted.
pub(crate) fn glob_keys(files: &BTreeMap<String, Vec<u8>>, pattern: &str) -> Vec<String> {
    let pattern = normalize(pattern);
    match glob::Pattern::new(&pattern) {
        Ok(pat) if pattern.contains(['*', '?', '[']) => {
            let opts = glob::MatchOptions {
                require_literal_separator: true,
                ..Default::default()
            };
            files
                .keys()
                .filter(|k| pat.matches_with(k, opts))
                .cloned()
                .collect()
        }
        _ if files.contains_key(&pattern) => vec![pattern],
        _ => Vec::new(),
    }
}

impl seclang::FileSource for Bundle {
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        self.file(path).map(<[u8]>::to_vec).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{path} is not in the bundle"),
            )
        })
    }

    fn glob(&self, pattern: &str) -> std::io::Result<Vec<String>> {
        Ok(glob_keys(&self.files, pattern))
    }
}

/// Build a policy directory: validate, collect exactly the files it uses,
/// compile its WAF rules, and sign. Returns the bundle and its file bytes.
pub fn build(dir: &Path, key: &SigningKey) -> Result<(Bundle, Vec<u8>), BuildError> {
    let (policy, files) = crate::collect::collect(dir)?;
    let meta = Meta {
        policy_name: policy.name.clone(),
        palisade_version: env!("CARGO_PKG_VERSION").into(),
        built_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        git_commit: crate::collect::git(dir, &["rev-parse", "HEAD"]),
        git_dirty: crate::collect::git(dir, &["status", "--porcelain", "."]).map(|s| !s.is_empty()),
    };
    Ok(Bundle::seal(policy, files, meta, key))
}
