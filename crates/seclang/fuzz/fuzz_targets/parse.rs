//! Any text must load or fail with a LoadError, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = seclang::RuleSet::from_text("fuzz.conf", &text);
});
