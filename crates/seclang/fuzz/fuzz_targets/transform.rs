//! Fuzz every transformation: arbitrary bytes through each one, and through
//! a CRS-style chain, must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

const NAMES: &[&str] = &[
    "lowercase", "urlDecode", "urlDecodeUni", "htmlEntityDecode", "jsDecode", "cssDecode",
    "escapeSeqDecode", "utf8toUnicode", "removeNulls", "replaceNulls", "removeWhitespace",
    "compressWhitespace", "replaceComments", "removeComments", "removeCommentsChar", "cmdLine",
    "normalizePath", "normalizePathWin", "base64Decode", "base64DecodeExt", "hexDecode",
    "sqlHexDecode", "hexEncode", "length", "sha1", "md5", "trim", "urlEncode",
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, value)) = data.split_first() else { return };
    if let Some(t) = seclang_ops::Transform::from_name(NAMES[sel as usize % NAMES.len()]) {
        let _ = t.apply(value);
    }
    let mut cur = value.to_vec();
    for n in ["utf8toUnicode", "urlDecodeUni", "htmlEntityDecode", "jsDecode", "cssDecode", "removeNulls"] {
        if let Some(t) = seclang_ops::Transform::from_name(n) {
            if let Some(v) = t.apply(&cur) {
                cur = v;
            }
        }
    }
});
