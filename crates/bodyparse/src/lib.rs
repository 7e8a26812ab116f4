//! Request body processors with the semantics of ModSecurity v2:
//! `multipart/form-data` ([`multipart`]), JSON ([`json`]) and XML ([`xml`]).
//!
//! The crate is independent of the rule engine: each processor returns its
//! own plain types and the engine maps them onto its variables. No processor
//! panics on hostile input; malformed bodies end in an error value (and, for
//! multipart, in the strictness flags ModSecurity exposes as `MULTIPART_*`).

pub mod json;
pub mod multipart;
pub mod xml;

pub use json::{parse as parse_json, JsonConfig, JsonError, DEFAULT_DEPTH_LIMIT};
pub use multipart::{
    parse as parse_multipart, percent_decode, Flags as MultipartFlags, Multipart, MultipartConfig,
    MultipartError, Part, PartKind,
};
pub use xml::{parse as parse_xml, XmlDoc, XmlError};
