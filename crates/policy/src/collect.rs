//! Reading a policy directory: the policy file, then exactly the files it
//! uses (TLS material, test cases, rule files and whatever the rules read
//! through `Include` and `@pmFromFile`), found by compiling the rules.

use crate::bundle::normalize;
use crate::model::{Policy, WafSettings, POLICY_FILE};
use crate::BuildError;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

/// Name under which the generated WAF settings load, before the rule files.
pub const SETTINGS_FILE: &str = "palisade-policy-settings.conf";
/// Name under which generated target exclusions load, after the rule files.
pub const TUNING_FILE: &str = "palisade-policy-tuning.conf";

/// Compile the rule set one route runs: generated settings, the policy's
/// rule files, generated exclusions. Used at build time and when serving.
pub fn compile_waf(
    src: &dyn seclang::FileSource,
    rule_files: &[String],
    w: &WafSettings,
) -> Result<seclang::RuleSet, seclang::LoadError> {
    let overlay = Overlay {
        base: src,
        settings: w.seclang_preamble(),
        tuning: w.seclang_epilogue().unwrap_or_default(),
    };
    let mut entries = vec![SETTINGS_FILE.to_string()];
    entries.extend(rule_files.iter().cloned());
    if !overlay.tuning.is_empty() {
        entries.push(TUNING_FILE.into());
    }
    let opts = seclang::LoadOptions {
        remove_ids: w.exclude_rule_ids.clone(),
        extra: None,
    };
    seclang::RuleSet::load(&overlay, &entries, &opts)
}

struct Overlay<'a> {
    base: &'a dyn seclang::FileSource,
    settings: String,
    tuning: String,
}

impl seclang::FileSource for Overlay<'_> {
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        match path {
            SETTINGS_FILE => Ok(self.settings.as_bytes().to_vec()),
            TUNING_FILE => Ok(self.tuning.as_bytes().to_vec()),
            _ => self.base.read(path),
        }
    }
    fn glob(&self, pattern: &str) -> std::io::Result<Vec<String>> {
        self.base.glob(pattern)
    }
}

/// Disk reads, remembered so the bundle holds exactly what was read.
struct Recording {
    disk: seclang::DirSource,
    read: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl seclang::FileSource for Recording {
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        let data = self.disk.read(path)?;
        if let Ok(mut m) = self.read.lock() {
            m.insert(normalize(path), data.clone());
        }
        Ok(data)
    }
    fn glob(&self, pattern: &str) -> std::io::Result<Vec<String>> {
        self.disk.glob(pattern)
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn field_err(text: &str, needle: &str, field: String, msg: String) -> BuildError {
    let at = text.find(needle).unwrap_or(0);
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    BuildError::Invalid {
        file: POLICY_FILE.into(),
        line,
        col,
        field,
        msg,
    }
}

/// Glob `pattern` under `dir`, sorted, relative paths.
fn glob_dir(dir: &Path, pattern: &str) -> Vec<String> {
    seclang::FileSource::glob(&seclang::DirSource::new(dir), pattern).unwrap_or_default()
}

pub(crate) fn collect(dir: &Path) -> Result<(Policy, BTreeMap<String, Vec<u8>>), BuildError> {
    let pf = dir.join(POLICY_FILE);
    let text = std::fs::read_to_string(&pf).map_err(io_err(&pf))?;
    let policy = crate::load::parse_policy(POLICY_FILE, &text)?;
    let mut files = BTreeMap::new();
    files.insert(POLICY_FILE.to_string(), text.clone().into_bytes());
    let add = |files: &mut BTreeMap<String, Vec<u8>>,
               rel: &str,
               field: String|
     -> Result<(), BuildError> {
        let p = dir.join(rel);
        let data = std::fs::read(&p).map_err(|e| {
            field_err(
                &text,
                rel,
                field,
                format!("cannot read {}: {e}", p.display()),
            )
        })?;
        files.insert(normalize(rel), data);
        Ok(())
    };
    if let Some(t) = &policy.server.tls {
        add(&mut files, &t.cert, "server.tls.cert".into())?;
        add(&mut files, &t.key, "server.tls.key".into())?;
    }
    for (i, g) in policy.tests.iter().enumerate() {
        let found = glob_dir(dir, g);
        if found.is_empty() {
            return Err(field_err(
                &text,
                g,
                format!("tests[{i}]"),
                format!("`{g}` matches no file"),
            ));
        }
        for f in found {
            add(&mut files, &f, format!("tests[{i}]"))?;
        }
    }
    let mut rule_files = Vec::new();
    for (i, g) in policy.waf.rules.iter().enumerate() {
        let found = glob_dir(dir, g);
        if found.is_empty() {
            return Err(field_err(
                &text,
                g,
                format!("waf.rules[{i}]"),
                format!("`{g}` matches no file in {}", dir.display()),
            ));
        }
        rule_files.extend(found);
    }
    // Compile every distinct WAF configuration the routes use: rule errors
    // surface at build time, and the reads tell which files the bundle needs.
    let rec = Recording {
        disk: seclang::DirSource::new(dir),
        read: Mutex::new(BTreeMap::new()),
    };
    let mut seen: Vec<WafSettings> = Vec::new();
    for r in &policy.routes {
        let w = policy.effective_waf(r);
        if !w.enabled || seen.contains(&w) {
            continue;
        }
        compile_waf(&rec, &rule_files, &w).map_err(|source| BuildError::Rules {
            context: format!("route `{}`", r.name),
            source,
        })?;
        seen.push(w);
    }
    if let Ok(m) = rec.read.into_inner() {
        files.extend(m);
    }
    // Rule files listed but not read (none should be) still belong to the bundle.
    for f in &rule_files {
        if !files.contains_key(&normalize(f)) {
            add(&mut files, f, "waf.rules".into())?;
        }
    }
    Ok((policy, files))
}

/// `git -C dir ARGS` output, when `dir` is in a git work tree.
pub(crate) fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
