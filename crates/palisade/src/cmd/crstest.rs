//! `crs-test`: the OWASP CRS regression suite through the real proxy.
//!
//! Sets up what go-ftw expects of a server under test: CRS with the test
//! configuration (detection only, paranoia 4, the X-CRS-Test log marker),
//! an albedo-style backend, and an alert log with one `[id "N"]` line per
//! matched rule; then runs every YAML test over real sockets.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// CRS checkout: rules/, crs-setup.conf.example, tests/regression/tests.
    #[arg(long, default_value = "../shared/crs")]
    crs: PathBuf,
    /// Only tests whose name (`<rule>-<n>`) matches this regex.
    #[arg(long)]
    include: Option<String>,
    /// Skip tests whose name matches this regex.
    #[arg(long)]
    exclude: Option<String>,
    /// go-ftw overrides file (default: palisade-overrides.yaml beside the runner, if present).
    #[arg(long)]
    overrides: Option<PathBuf>,
    /// Print every failing test with the reason.
    #[arg(long)]
    show_failures: bool,
    /// Exit non-zero when the pass rate (passed / (passed + failed)) is below this.
    #[arg(long, default_value_t = 0.0)]
    min_pass_rate: f64,
    /// Keep the alert log here (default: a temp file).
    #[arg(long)]
    alert_log: Option<PathBuf>,
}

/// The CRS test configuration (from the CRS test stack) plus the log marker.
const TEST_CONF: &str = r#"
SecAction "id:900005,phase:1,nolog,pass,ctl:ruleEngine=DetectionOnly,ctl:ruleRemoveById=910000,setvar:tx.blocking_paranoia_level=4,setvar:tx.crs_validate_utf8_encoding=1,setvar:tx.arg_name_length=100,setvar:tx.arg_length=400,setvar:tx.total_arg_length=64000,setvar:tx.max_num_args=255,setvar:tx.max_file_size=64100,setvar:tx.combined_file_sizes=65535"
SecRule REQUEST_HEADERS:X-CRS-Test "@rx ^.*$" "id:999999,phase:1,pass,t:none,log,msg:'X-CRS-Test %{MATCHED_VAR}',ctl:ruleRemoveById=1-999998"
"#;

pub async fn run(a: Args) -> Result<ExitCode> {
    let crs = a
        .crs
        .canonicalize()
        .with_context(|| format!("CRS directory {} not found (use --crs)", a.crs.display()))?;
    let tests_dir = crs.join("tests/regression/tests");
    if !tests_dir.is_dir() {
        bail!("{} has no tests/regression/tests", crs.display());
    }
    let work = std::env::temp_dir().join(format!("palisade-crs-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    std::os::unix::fs::symlink(&crs, work.join("crs"))?;
    std::fs::write(work.join("ftw.conf"), TEST_CONF)?;
    std::fs::write(
        work.join("palisade.yaml"),
        r#"version: 1
name: crs-regression
server:
  trusted_proxies: []
upstreams:
  albedo:
    targets: ["127.0.0.1:1"]
routes:
  - name: all
    upstream: albedo
waf:
  enabled: true
  mode: enforce
  paranoia_level: 4
  rules:
    - crs/crs-setup.conf.example
    - ftw.conf
    - crs/rules/*.conf
"#,
    )?;
    eprintln!("loading CRS from {} ...", crs.display());
    let albedo = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let albedo_addr = albedo.local_addr()?;
    let albedo_task = tokio::spawn(ftw::albedo::serve(albedo));
    let rt = super::serve::build_dev(&work)?.with_upstream(&albedo_addr.to_string());
    let alert_log = a
        .alert_log
        .clone()
        .unwrap_or_else(|| work.join("alerts.log"));
    let running = proxy::start(
        rt,
        proxy::ServeOptions {
            listen: Some("127.0.0.1:0".parse()?),
            alert_log: Some(alert_log.clone()),
            ..Default::default()
        },
    )
    .await?;
    let overrides = a.overrides.clone().or_else(|| {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../conformance/palisade-overrides.yaml");
        p.exists().then_some(p)
    });
    let opts = ftw::RunOptions {
        tests_dir,
        target: running.http.context("no listener")?,
        alert_log,
        include: a.include.as_deref().map(regex::Regex::new).transpose()?,
        exclude: a.exclude.as_deref().map(regex::Regex::new).transpose()?,
        overrides,
        show_failures: a.show_failures,
        progress: true,
    };
    let report = ftw::run(&opts).await;
    running.stop();
    albedo_task.abort();
    let report = report?;
    report.print(&mut std::io::stdout())?;
    let _ = std::fs::remove_dir_all(&work);
    let total = report.passed + report.failed;
    let rate = if total == 0 {
        0.0
    } else {
        report.passed as f64 / total as f64
    };
    if total == 0 || rate < a.min_pass_rate {
        eprintln!(
            "pass rate {:.2}% is below the required {:.2}%",
            rate * 100.0,
            a.min_pass_rate * 100.0
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
