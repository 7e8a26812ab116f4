use std::path::PathBuf;

/// A policy that cannot be built, pointing at file, line and field.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{file}:{line}:{col}: {field}: {msg}")]
    Invalid {
        file: String,
        line: usize,
        col: usize,
        /// Dotted path of the offending field (`routes[1].upstream`).
        field: String,
        msg: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("WAF rules ({context}): {source}")]
    Rules {
        context: String,
        #[source]
        source: seclang::LoadError,
    },
}

/// A bundle that must not run.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot read bundle {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not a Palisade bundle: {0}")]
    Format(String),
    #[error("bundle content does not match its digest (tampered or corrupt): expected {expected}, content hashes to {actual}")]
    Digest { expected: String, actual: String },
    #[error("bundle is not signed")]
    Unsigned,
    #[error("bundle signature does not verify with any trusted key (signed by key {key_id})")]
    Signature { key_id: String },
    #[error("bundle policy: {0}")]
    Policy(String),
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a Palisade {kind} key ({why})")]
    Format {
        path: PathBuf,
        kind: &'static str,
        why: String,
    },
    #[error("{path} already exists: refusing to overwrite a key")]
    Exists { path: PathBuf },
    #[error("no randomness: {0}")]
    Random(String),
}
