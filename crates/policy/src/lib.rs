//! Palisade policy: the model teams write (`palisade.yaml` plus rule files,
//! test cases and TLS material in a git directory), its validation, and the
//! immutable signed bundle a node runs.
//!
//! `build` turns a directory into a content-addressed, Ed25519-signed bundle;
//! `Bundle::read` refuses anything unsigned, tampered or unreadable.

mod bundle;
mod collect;
mod error;
mod keys;
mod load;
mod model;
mod testcases;

pub use bundle::{build, digest_files, normalize, Bundle, Meta, FORMAT};
pub use collect::{compile_waf, SETTINGS_FILE, TUNING_FILE};
pub use error::{BuildError, BundleError, KeyError};
pub use keys::{
    generate_signing_key, key_id, keygen, load_signing_key, load_verifying_key, write_verifying_key,
};
pub use load::parse_policy;
pub use model::{
    Limits, Policy, Route, RouteWaf, Server, TargetExclusion, Tls, Upstream, Waf, WafSettings,
    POLICY_FILE,
};
pub use testcases::{load_test_cases, Expect, TestCase, TestRequest, VerdictKind};
