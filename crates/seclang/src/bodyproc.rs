//! Bridge to the `bodyparse` crate (multipart, JSON, XML), shaped for the
//! variables this engine fills.

use crate::state::{FileEntry, MultipartFlags, Pairs};

pub struct Multipart {
    pub args: Pairs,
    pub files: Vec<FileEntry>,
    pub part_headers: Pairs,
    pub flags: MultipartFlags,
    pub last_filename: Option<Vec<u8>>,
    pub last_name: Option<Vec<u8>>,
}

pub fn multipart(_content_type: &[u8], _body: &[u8]) -> Result<Multipart, String> {
    Err("multipart processor not available".into())
}

/// Flattened `ARGS` (`json.a.b`, arrays as `json.a.0` ...).
pub fn json(_body: &[u8]) -> Result<Pairs, String> {
    Err("JSON processor not available".into())
}

/// (all text content, attribute values).
pub fn xml(_body: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u8>>), String> {
    Err("XML processor not available".into())
}
