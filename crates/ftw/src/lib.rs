//! A go-ftw (v2.3) compatible runner for the OWASP CRS regression tests.
//!
//! * [`albedo`]: the backend the CRS test stack puts behind the WAF.
//! * [`run`]: reads `tests_dir/**/*.y*ml`, sends every stage as raw bytes to
//!   `target` (between two `X-CRS-Test` log-marker requests), slices the
//!   alert log between the markers and checks the expected output.

pub mod albedo;
pub mod request;
pub mod schema;
pub mod template;
pub mod waflog;

use schema::{IgnoreSpec, Output, OverridesFile, Stage, TestFile};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Header carrying the log-marker id.
pub const MARKER_HEADER: &str = "X-CRS-Test";

/// What to run and where.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Folder holding `<RULEFILE>/<ruleid>.yaml`.
    pub tests_dir: PathBuf,
    /// Where every request goes (the test's `dest_addr`/`port` are ignored).
    pub target: SocketAddr,
    /// The WAF alert log (one line per matched rule, with `[id "N"]`).
    pub alert_log: PathBuf,
    /// Only tests whose name (`<rule>-<test>`) matches; wins over `exclude`.
    pub include: Option<regex::Regex>,
    /// Leave out tests whose name matches.
    pub exclude: Option<regex::Regex>,
    /// go-ftw platform overrides file.
    pub overrides: Option<PathBuf>,
    /// Keep the failure reasons in the printed report.
    pub show_failures: bool,
    /// A progress line on stderr every 100 tests.
    pub progress: bool,
}

/// Per-folder (rule file) counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderStats {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// Outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Folder name → counts.
    pub per_folder: BTreeMap<String, FolderStats>,
    /// `(test name, reason)`.
    pub skipped_tests: Vec<(String, String)>,
    /// `(test name or file, reason)`.
    pub failures: Vec<(String, String)>,
    /// Print failures in [`Report::print`].
    pub show_failures: bool,
}

impl Report {
    fn record(&mut self, folder: &str, name: String, result: Result<(), String>) {
        let f = self.per_folder.entry(folder.to_string()).or_default();
        match result {
            Ok(()) => {
                self.passed += 1;
                f.passed += 1;
            }
            Err(reason) => {
                self.failed += 1;
                f.failed += 1;
                self.failures.push((name, reason));
            }
        }
    }

    fn skip(&mut self, folder: &str, name: String, reason: String) {
        self.skipped += 1;
        self.per_folder
            .entry(folder.to_string())
            .or_default()
            .skipped += 1;
        self.skipped_tests.push((name, reason));
    }

    /// Human-readable summary: totals, per-folder table, skipped tests with
    /// reasons and (with `show_failures`) failures with reasons.
    pub fn print(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        writeln!(
            w,
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )?;
        if !self.per_folder.is_empty() {
            let width = self
                .per_folder
                .keys()
                .map(String::len)
                .max()
                .unwrap_or(0)
                .max(6);
            writeln!(w)?;
            writeln!(
                w,
                "{:<width$}  {:>7}  {:>7}  {:>7}",
                "folder", "passed", "failed", "skipped"
            )?;
            for (name, s) in &self.per_folder {
                writeln!(
                    w,
                    "{:<width$}  {:>7}  {:>7}  {:>7}",
                    name, s.passed, s.failed, s.skipped
                )?;
            }
        }
        if !self.skipped_tests.is_empty() {
            writeln!(w)?;
            writeln!(w, "skipped tests:")?;
            for (name, reason) in &self.skipped_tests {
                writeln!(w, "  {name}: {reason}")?;
            }
        }
        if self.show_failures && !self.failures.is_empty() {
            writeln!(w)?;
            writeln!(w, "failures:")?;
            for (name, reason) in &self.failures {
                writeln!(w, "  {name}: {reason}")?;
            }
        }
        Ok(())
    }
}

/// All `*.yaml` / `*.yml` files under `dir`, sorted by path.
pub fn test_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.starts_with('y') && e.ends_with("ml"))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// What the overrides file says about one test.
enum Override<'a> {
    None,
    Skip(String),
    Replace(Vec<&'a schema::TestOverride>),
}

struct Overrides {
    file: OverridesFile,
    ignore_re: Vec<(regex::Regex, String)>,
}

impl Overrides {
    fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Overrides {
                file: OverridesFile::default(),
                ignore_re: Vec::new(),
            });
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read overrides {}: {e}", path.display()))?;
        let file: OverridesFile = if text.trim().is_empty() {
            OverridesFile::default()
        } else {
            serde_yaml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("bad overrides file {}: {e}", path.display()))?
        };
        let mut ignore_re = Vec::new();
        match &file.ignore {
            Some(IgnoreSpec::Map(m)) => {
                for (re, reason) in m {
                    ignore_re.push((regex::Regex::new(re)?, reason.clone()));
                }
            }
            Some(IgnoreSpec::List(l)) => {
                for e in l {
                    if let Some(re) = &e.test {
                        ignore_re
                            .push((regex::Regex::new(re)?, e.reason.clone().unwrap_or_default()));
                    }
                }
            }
            None => {}
        }
        Ok(Overrides { file, ignore_re })
    }

    fn lookup(&self, rule_id: u64, test_id: u64) -> Override<'_> {
        let name = format!("{rule_id}-{test_id}");
        for (re, reason) in &self.ignore_re {
            if re.is_match(&name) {
                return Override::Skip(nonempty_reason(reason));
            }
        }
        if let Some(IgnoreSpec::List(l)) = &self.file.ignore {
            for e in l {
                if e.rule_id == Some(rule_id)
                    && (e.test_ids.is_empty() || e.test_ids.contains(&test_id))
                {
                    return Override::Skip(nonempty_reason(e.reason.as_deref().unwrap_or("")));
                }
            }
        }
        let hits: Vec<&schema::TestOverride> = self
            .file
            .test_overrides
            .iter()
            .filter(|o| {
                o.rule_id == rule_id && (o.test_ids.is_empty() || o.test_ids.contains(&test_id))
            })
            .collect();
        if let Some(o) = hits
            .iter()
            .find(|o| o.output.is_none() && o.retry_once.is_none())
        {
            return Override::Skip(nonempty_reason(o.reason.as_deref().unwrap_or("")));
        }
        if hits.is_empty() {
            Override::None
        } else {
            Override::Replace(hits)
        }
    }
}

fn nonempty_reason(r: &str) -> String {
    if r.trim().is_empty() {
        "ignored by overrides (no reason given)".to_string()
    } else {
        r.trim().to_string()
    }
}

fn apply_overrides(stages: &mut [Stage], ovs: &[&schema::TestOverride]) {
    for o in ovs {
        for (i, st) in stages.iter_mut().enumerate() {
            if !o.stage_ids.is_empty() && !o.stage_ids.contains(&i) {
                continue;
            }
            if let Some(out) = &o.output {
                let mut out = out.clone();
                out.normalize();
                st.output = out;
            }
            if o.retry_once.is_some() {
                st.output.retry_once = o.retry_once;
            }
        }
    }
}

fn selected(opts: &RunOptions, name: &str) -> bool {
    if let Some(inc) = &opts.include {
        if inc.is_match(name) {
            return true;
        }
    }
    if let Some(exc) = &opts.exclude {
        if exc.is_match(name) {
            return false;
        }
    }
    match &opts.include {
        Some(inc) => inc.is_match(name),
        None => true,
    }
}

static MARKER_SEQ: AtomicU64 = AtomicU64::new(0);

fn run_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// The runner for one target / log.
struct Runner<'a> {
    opts: &'a RunOptions,
    nonce: u64,
    timeouts: request::Timeouts,
}

/// What one stage produced, before checking.
struct StageRun {
    response: Result<request::RawResponse, String>,
    /// Marked log lines, or why they could not be read.
    lines: Result<Vec<Vec<u8>>, String>,
}

impl Runner<'_> {
    fn stage_id(&self, name: &str) -> String {
        let n = MARKER_SEQ.fetch_add(1, Ordering::Relaxed);
        format!("{name}-{:016x}{:08x}", self.nonce, n)
    }

    /// Send a marker and wait until a log line at or after `from` holds it.
    /// Returns the offset just past that line.
    async fn mark(&self, id: &str, from: u64) -> Result<u64, String> {
        let req = request::marker_request(MARKER_HEADER, id);
        for _attempt in 0..3 {
            request::send(self.opts.target, &req, false, self.timeouts)
                .await
                .map_err(|e| format!("marker request failed: {e}"))?;
            let mut wait = Duration::from_millis(2);
            let mut waited = Duration::ZERO;
            loop {
                let (base, buf) = waflog::read_from(&self.opts.alert_log, from).map_err(|e| {
                    format!("cannot read log {}: {e}", self.opts.alert_log.display())
                })?;
                if let Some((_, end)) = waflog::find_marker_line(&buf, id) {
                    return Ok(base + end as u64);
                }
                if waited >= Duration::from_millis(700) {
                    break;
                }
                tokio::time::sleep(wait).await;
                waited += wait;
                wait = (wait * 2).min(Duration::from_millis(100));
            }
        }
        Err(format!(
            "log marker {id} not found in {} (is the X-CRS-Test marker rule logging?)",
            self.opts.alert_log.display()
        ))
    }

    async fn run_stage(&self, name: &str, stage: &Stage) -> StageRun {
        let raw = match request::raw_request(&stage.input) {
            Ok(r) => r,
            Err(e) => {
                return StageRun {
                    response: Err(format!("cannot build request: {e}")),
                    lines: Err("request not sent".into()),
                }
            }
        };
        let sid = self.stage_id(name);
        let (start_id, end_id) = (format!("{sid}-s"), format!("{sid}-e"));
        let base = waflog::file_len(&self.opts.alert_log);
        let start = self.mark(&start_id, base).await;
        let no_body = stage.input.method().eq_ignore_ascii_case("HEAD");
        let response = request::send(self.opts.target, &raw, no_body, self.timeouts).await;
        let lines = match start {
            Err(e) => Err(format!("start {e}")),
            Ok(start_pos) => match self.mark(&end_id, start_pos).await {
                Err(e) => Err(format!("end {e}")),
                Ok(end_pos) => waflog::read_from(&self.opts.alert_log, start_pos)
                    .map_err(|e| format!("cannot read log: {e}"))
                    .map(|(b, buf)| {
                        let upto = (end_pos.saturating_sub(b) as usize).min(buf.len());
                        // Drop the end-marker line itself.
                        let body = &buf[..upto];
                        let cut = waflog::find_marker_line(body, &end_id)
                            .map(|(s, _)| s)
                            .unwrap_or(upto);
                        waflog::split_lines(&body[..cut], &[&start_id, &end_id])
                    }),
            },
        };
        StageRun { response, lines }
    }

    async fn run_test(&self, name: &str, stages: &[Stage]) -> Result<(), String> {
        let mut first_err: Option<String> = None;
        for (i, stage) in stages.iter().enumerate() {
            if let Err(e) = sanity(&stage.output) {
                first_err.get_or_insert(format!("stage {}: {e}", i + 1));
                continue;
            }
            let mut r = check(&stage.output, &self.run_stage(name, stage).await);
            if r.is_err() && stage.output.retry_once == Some(true) {
                r = check(&stage.output, &self.run_stage(name, stage).await);
            }
            if let Err(e) = r {
                let e = if stages.len() > 1 {
                    format!("stage {}: {e}", i + 1)
                } else {
                    e
                };
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

fn sanity(out: &Output) -> Result<(), String> {
    if out.isolated && out.log.expect_ids.len() != 1 {
        return Err("'isolated' is only valid if 'expect_ids' has exactly one entry".into());
    }
    Ok(())
}

fn ids_str(ids: &[u64]) -> String {
    let v: Vec<String> = ids.iter().map(u64::to_string).collect();
    format!("[{}]", v.join(", "))
}

fn lines_match(lines: &[Vec<u8>], re: &str) -> Result<bool, String> {
    let re = regex::bytes::Regex::new(re).map_err(|e| format!("bad regex {re:?}: {e}"))?;
    Ok(lines.iter().any(|l| re.is_match(l)))
}

/// go-ftw's `checkResult` over one stage run.
fn check(out: &Output, run: &StageRun) -> Result<(), String> {
    if out.expect_error == Some(true) {
        return match &run.response {
            Err(_) => Ok(()),
            Ok(r) => Err(format!(
                "expected an error, got a response with status {}",
                r.status
            )),
        };
    }
    let resp = run
        .response
        .as_ref()
        .map_err(|e| format!("request failed: {e}"))?;
    if !out.status.is_empty() && !out.status.contains(&resp.status) {
        let want: Vec<String> = out.status.iter().map(u16::to_string).collect();
        return Err(format!(
            "status {} (expected {})",
            resp.status,
            want.join(" or ")
        ));
    }
    if let Some(rc) = out.response_contains.as_deref().filter(|s| !s.is_empty()) {
        let re = regex::bytes::Regex::new(rc)
            .map_err(|e| format!("bad response_contains regex: {e}"))?;
        if !re.is_match(&resp.raw) {
            return Err(format!("response does not match {rc:?}"));
        }
    }
    let lg = &out.log;
    let needs_log = lg.match_regex.as_deref().is_some_and(|s| !s.is_empty())
        || lg.no_match_regex.as_deref().is_some_and(|s| !s.is_empty())
        || !lg.expect_ids.is_empty()
        || !lg.no_expect_ids.is_empty()
        || out.isolated;
    if !needs_log {
        return Ok(());
    }
    let lines = run.lines.as_ref().map_err(Clone::clone)?;
    let found = waflog::triggered_ids(lines);
    if let Some(re) = lg.match_regex.as_deref().filter(|s| !s.is_empty()) {
        if !lines_match(lines, re)? {
            return Err(format!(
                "no log line matches {re:?} (ids seen: {})",
                ids_str(&found)
            ));
        }
    }
    let missing: Vec<u64> = lg
        .expect_ids
        .iter()
        .copied()
        .filter(|i| !found.contains(i))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "expected ids {} not in log (ids seen: {})",
            ids_str(&missing),
            ids_str(&found)
        ));
    }
    if out.isolated && found.len() != 1 {
        return Err(format!(
            "isolated test: more than one rule triggered: {}",
            ids_str(&found)
        ));
    }
    if let Some(re) = lg.no_match_regex.as_deref().filter(|s| !s.is_empty()) {
        if lines_match(lines, re)? {
            return Err(format!(
                "a log line matches {re:?} (ids seen: {})",
                ids_str(&found)
            ));
        }
    }
    let unexpected: Vec<u64> = lg
        .no_expect_ids
        .iter()
        .copied()
        .filter(|i| found.contains(i))
        .collect();
    if !unexpected.is_empty() {
        return Err(format!("unexpected ids {} in log", ids_str(&unexpected)));
    }
    Ok(())
}

/// Parse all test files (for `check`-style use and tests): `(path, result)`.
pub fn load_tests(dir: &Path) -> std::io::Result<Vec<(PathBuf, Result<TestFile, String>)>> {
    let mut out = Vec::new();
    for p in test_files(dir)? {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        let parsed = std::fs::read(&p)
            .map_err(|e| e.to_string())
            .and_then(|b| String::from_utf8(b).map_err(|e| e.to_string()))
            .and_then(|t| schema::parse_test_file(&t, &name));
        out.push((p, parsed));
    }
    Ok(out)
}

/// Run every selected test and return the report.
pub async fn run(opts: &RunOptions) -> anyhow::Result<Report> {
    let overrides = Overrides::load(opts.overrides.as_deref())?;
    let files = load_tests(&opts.tests_dir)
        .map_err(|e| anyhow::anyhow!("cannot read tests in {}: {e}", opts.tests_dir.display()))?;
    if files.is_empty() {
        anyhow::bail!("no test files (*.y*ml) under {}", opts.tests_dir.display());
    }
    let total: usize = files
        .iter()
        .filter_map(|(_, f)| f.as_ref().ok())
        .flat_map(|f| {
            f.tests
                .iter()
                .map(move |t| format!("{}-{}", f.rule_id, t.test_id))
        })
        .filter(|n| selected(opts, n))
        .count();
    let runner = Runner {
        opts,
        nonce: run_nonce(),
        timeouts: request::Timeouts::default(),
    };
    let mut report = Report {
        show_failures: opts.show_failures,
        ..Default::default()
    };
    let mut done = 0usize;
    let mut next_progress = 100usize;
    let started = std::time::Instant::now();
    for (path, parsed) in files {
        let folder = path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        let file = match parsed {
            Ok(f) => f,
            Err(e) => {
                let rel = path
                    .strip_prefix(&opts.tests_dir)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                report.record(&folder, rel, Err(format!("parse error: {e}")));
                continue;
            }
        };
        for t in &file.tests {
            let name = format!("{}-{}", file.rule_id, t.test_id);
            if !selected(opts, &name) {
                continue;
            }
            let mut stages = t.stages.clone();
            match overrides.lookup(file.rule_id, t.test_id) {
                Override::Skip(reason) => {
                    report.skip(&folder, name, reason);
                    done += 1;
                    continue;
                }
                Override::Replace(ovs) => apply_overrides(&mut stages, &ovs),
                Override::None => {}
            }
            let r = runner.run_test(&name, &stages).await;
            report.record(&folder, name, r);
            done += 1;
            if opts.progress && done >= next_progress {
                next_progress += 100;
                eprintln!(
                    "ftw: {done}/{total} tests ({} passed, {} failed, {} skipped) in {:.0?}",
                    report.passed,
                    report.failed,
                    report.skipped,
                    started.elapsed()
                );
            }
        }
    }
    if opts.progress {
        eprintln!("ftw: done, {done} tests in {:.1?}", started.elapsed());
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
