//! Listeners, connection accounting, the running bundle and how it is swapped.
//!
//! The running [`Runtime`] sits in an `ArcSwap`: each request takes its own
//! `Arc` at the start, so a swap never changes the policy under an in-flight
//! request, and new requests see the new one at once. A bundle that fails to
//! read, verify or compile is refused and the old one keeps serving.

use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub type Client = crate::upstream::Pool;

#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub tls: bool,
}

/// Where swaps come from: the bundle path (a file or a symlink to one) and the keys it must be signed with.
pub struct BundleSource {
    pub path: PathBuf,
    pub trust: Vec<ed25519_dalek::VerifyingKey>,
}

#[derive(Default, Clone, serde::Serialize)]
pub struct ReloadStatus {
    pub reloads: u64,
    pub refused: u64,
    pub last_error: Option<String>,
}

pub struct Shared {
    current: ArcSwap<Runtime>,
    pub client: Client,
    pub observer: observe::Observer,
    conns: ConnLimiter,
    pub started: Instant,
    ids: AtomicU64,
    id_prefix: String,
    draining: AtomicBool,
    source: Option<BundleSource>,
    pub reload_status: Mutex<ReloadStatus>,
    swap_lock: tokio::sync::Mutex<()>,
}

impl Shared {
    /// The runtime to use for one request (or one connection's next request).
    pub fn runtime(&self) -> Arc<Runtime> {
        self.current.load_full()
    }

    pub fn next_id(&self) -> String {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        // Same text as `format!("{prefix}{n:08x}")`, without the formatter.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digits = (64 - n.leading_zeros()).div_ceil(4).max(8) as usize;
        let mut id = String::with_capacity(self.id_prefix.len() + digits);
        id.push_str(&self.id_prefix);
        for i in (0..digits).rev() {
            id.push(HEX[((n >> (i * 4)) & 0xf) as usize] as char);
        }
        id
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn metrics_l7(&self, _what: &'static str) {
        self.observer
            .counters
            .l7_refused
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Swap in a runtime that is already built (tests, `--demo`).
    pub fn swap(&self, rt: Runtime) {
        tracing::info!(digest = %rt.digest, "policy swapped");
        self.current.store(Arc::new(rt));
    }

    /// Re-read the bundle source; on any error keep the old runtime.
    pub async fn reload(self: &Arc<Self>) -> Result<String, String> {
        let Some(src) = &self.source else {
            return Err("no bundle path to reload from".into());
        };
        let _guard = self.swap_lock.lock().await;
        let path = src.path.clone();
        let trust = src.trust.clone();
        let res = tokio::task::spawn_blocking(move || Runtime::load(&path, &trust))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        let mut st = self.reload_status.lock().unwrap_or_else(|e| e.into_inner());
        match res {
            Ok(rt) => {
                let digest = rt.digest.clone();
                if digest != self.runtime().digest {
                    self.swap(rt);
                    st.reloads += 1;
                }
                st.last_error = None;
                Ok(digest)
            }
            Err(e) => {
                tracing::error!(error = %e, "new bundle refused; the running policy keeps serving");
                st.refused += 1;
                st.last_error = Some(e.clone());
                Err(e)
            }
        }
    }
}

/// Global and per-client-IP concurrent connection caps.
#[derive(Default)]
struct ConnLimiter {
    total: AtomicU64,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

struct ConnGuard {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let c = &self.shared.conns;
        c.total.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut m) = c.per_ip.lock() {
            if let Some(n) = m.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.ip);
                }
            }
        }
    }
}

fn admit(shared: &Arc<Shared>, ip: IpAddr) -> Option<ConnGuard> {
    let rt = shared.runtime();
    let c = &shared.conns;
    if c.total.fetch_add(1, Ordering::Relaxed) >= rt.limits.max_conns as u64 {
        c.total.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    let mut m = c.per_ip.lock().unwrap_or_else(|e| e.into_inner());
    let n = m.entry(ip).or_insert(0);
    if *n >= rt.limits.max_conns_per_ip {
        if *n == 0 {
            m.remove(&ip);
        }
        c.total.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    *n += 1;
    Some(ConnGuard {
        shared: shared.clone(),
        ip,
    })
}

#[derive(Default)]
pub struct ServeOptions {
    pub listen: Option<SocketAddr>,
    pub tls_listen: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub alert_log: Option<PathBuf>,
    pub event_log: Option<PathBuf>,
    pub source: Option<BundleSource>,
    /// Poll the bundle path for changes this often (None: SIGHUP only).
    pub watch: Option<Duration>,
}

/// A started server: bound addresses and the tasks serving them.
pub struct Running {
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stop accepting and drop every task.
    pub fn stop(self) {
        self.shared.draining.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.abort();
        }
    }

    /// Serve until the process is told to stop (SIGINT/SIGTERM).
    pub async fn wait(self) {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
        tracing::info!("shutting down");
        self.stop();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS listener requested but the policy has no `server.tls` certificate")]
    NoCert,
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
    #[error("log file: {0}")]
    Log(#[from] std::io::Error),
}

pub fn client() -> Client {
    crate::upstream::Pool::new()
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

pub async fn start(rt: Runtime, opts: ServeOptions) -> Result<Running, ServeError> {
    let id_prefix = {
        let mut b = [0u8; 4];
        let _ = getrandom::getrandom(&mut b);
        format!("{:08x}", u32::from_le_bytes(b))
    };
    let has_cert = rt.tls.is_some();
    let shared = Arc::new(Shared {
        current: ArcSwap::from_pointee(rt),
        client: client(),
        observer: observe::Observer::new(opts.alert_log.as_deref(), opts.event_log.as_deref())?,
        conns: ConnLimiter::default(),
        started: Instant::now(),
        ids: AtomicU64::new(0),
        id_prefix,
        draining: AtomicBool::new(false),
        source: opts.source,
        reload_status: Mutex::new(ReloadStatus::default()),
        swap_lock: tokio::sync::Mutex::new(()),
    });
    let mut tasks = Vec::new();
    let mut running = Running {
        http: None,
        https: None,
        admin: None,
        shared: shared.clone(),
        tasks: Vec::new(),
    };
    if let Some(addr) = opts.listen {
        let l = bind(addr).await?;
        running.http = l.local_addr().ok();
        tasks.push(tokio::spawn(accept_loop(l, shared.clone(), None)));
    }
    if let Some(addr) = opts.tls_listen {
        if !has_cert {
            return Err(ServeError::NoCert);
        }
        let acceptor = crate::tls::acceptor(&shared)?;
        let l = bind(addr).await?;
        running.https = l.local_addr().ok();
        tasks.push(tokio::spawn(accept_loop(l, shared.clone(), Some(acceptor))));
    }
    if let Some(addr) = opts.admin {
        let l = bind(addr).await?;
        running.admin = l.local_addr().ok();
        tasks.push(tokio::spawn(crate::admin::serve(l, shared.clone())));
    }
    if shared.source.is_some() {
        tasks.push(tokio::spawn(sighup_loop(shared.clone())));
        if let Some(every) = opts.watch {
            tasks.push(tokio::spawn(watch_loop(shared.clone(), every)));
        }
    }
    {
        // Idle upstream connections are closed after the idle timeout even without traffic.
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(15));
            loop {
                every.tick().await;
                shared.client.sweep();
            }
        }));
    }
    running.tasks = tasks;
    Ok(running)
}

async fn accept_loop(l: TcpListener, shared: Arc<Shared>, tls: Option<tokio_rustls::TlsAcceptor>) {
    loop {
        let (stream, peer) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(guard) = admit(&shared, peer.ip()) else {
            shared.metrics_l7("conn_limit");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(peer);
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _guard = guard;
            serve_conn(stream, peer, local, shared, tls).await;
        });
    }
}

async fn serve_conn(
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    match tls {
        None => {
            let conn = ConnInfo {
                peer,
                local,
                tls: false,
            };
            if let Some((pre, io)) = crate::h1::serve(stream, conn.clone(), shared.clone()).await {
                crate::h2::serve(crate::io::Rewind::new(pre, io), conn, shared).await;
            }
        }
        Some(acceptor) => {
            let timeout = Duration::from_millis(shared.runtime().limits.header_read_timeout_ms);
            let Ok(Ok(tls_stream)) = tokio::time::timeout(timeout, acceptor.accept(stream)).await
            else {
                return;
            };
            let conn = ConnInfo {
                peer,
                local,
                tls: true,
            };
            let h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2");
            if h2 {
                crate::h2::serve(tls_stream, conn, shared).await;
            } else if let Some((pre, io)) =
                crate::h1::serve(tls_stream, conn.clone(), shared.clone()).await
            {
                crate::h2::serve(crate::io::Rewind::new(pre, io), conn, shared).await;
            }
        }
    }
}

async fn sighup_loop(shared: Arc<Shared>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading bundle");
        let _ = shared.reload().await;
    }
}

/// What identifies the bundle the path points at: the resolved file, its size and mtime.
fn fingerprint(path: &std::path::Path) -> Option<(PathBuf, u64, SystemTime)> {
    let real = std::fs::canonicalize(path).ok()?;
    let md = std::fs::metadata(&real).ok()?;
    Some((real, md.len(), md.modified().ok()?))
}

async fn watch_loop(shared: Arc<Shared>, every: Duration) {
    let Some(src) = &shared.source else { return };
    let path = src.path.clone();
    let mut last = fingerprint(&path);
    loop {
        tokio::time::sleep(every).await;
        let now = fingerprint(&path);
        if now.is_some() && now != last {
            last = now;
            tracing::info!(path = %path.display(), "bundle path changed: reloading");
            let _ = shared.reload().await;
        }
    }
}
