//! `palisade`: the one binary. Subcommands build, sign, verify and serve
//! policy bundles, run policy tests and the CRS conformance suite.

mod cmd;

// The data plane and the rule engine allocate many small, short-lived
// buffers per request; mimalloc serves those markedly faster than glibc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "palisade",
    version,
    about = "WAAP gateway: signed, immutable policy bundles in front of your apps"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway on a signed bundle (or the built-in demo).
    Serve(cmd::serve::Args),
    /// Validate a policy directory and write a signed, content-addressed bundle.
    Build {
        /// Policy directory (contains palisade.yaml).
        policy: PathBuf,
        /// Output directory; the bundle is written as <digest>.pal.
        #[arg(short, long, default_value = ".")]
        out: PathBuf,
        /// Ed25519 signing key (from `palisade keygen`).
        #[arg(long)]
        key: PathBuf,
    },
    /// Check a bundle's digest and signature.
    Verify {
        bundle: PathBuf,
        /// Trusted public key(s).
        #[arg(long = "pub", required = true)]
        pubkey: Vec<PathBuf>,
    },
    /// Create an Ed25519 key pair: PREFIX.key (secret) and PREFIX.pub.
    Keygen { prefix: PathBuf },
    /// Run the policy's test cases through a real proxy with a stub upstream.
    Test { policy: PathBuf },
    /// Show what a running node serves (digest, build metadata, uptime).
    Status {
        /// Admin address of the node.
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: SocketAddr,
    },
    /// Run the OWASP CRS regression suite (go-ftw YAML) through the real proxy.
    CrsTest(cmd::crstest::Args),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PALISADE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // One usable CPU (a container limit or taskset): a single-threaded
    // scheduler does the same work without cross-thread wake-ups.
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let mut builder = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(async move {
        match cli.cmd {
            Cmd::Serve(a) => cmd::serve::run(a).await,
            Cmd::Build { policy, out, key } => cmd::bundle::build(&policy, &out, &key),
            Cmd::Verify { bundle, pubkey } => cmd::bundle::verify(&bundle, &pubkey),
            Cmd::Keygen { prefix } => cmd::bundle::keygen(&prefix),
            Cmd::Test { policy } => cmd::test::run(&policy).await,
            Cmd::Status { admin } => cmd::status::run(admin).await,
            Cmd::CrsTest(a) => cmd::crstest::run(a).await,
        }
    });
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
