//! Times whole transactions through CRS (PL1, blocking mode):
//! `cargo run --release -p seclang --example bench_engine [N] [CRS_DIR]`.

use pipeline::{HttpVersion, RequestHead};
use seclang::{DirSource, FileSource, LoadOptions, RuleSet, Transaction, RECOMMENDED_CONF};
use std::sync::Arc;
use std::time::Instant;

// As in the palisade binary, so allocation costs what it costs in production;
// counted, to report allocations per transaction.
#[global_allocator]
static GLOBAL: Counting = Counting;

static ALLOCS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `SYSTEM_ALLOC=1`: the C library's allocator instead, so valgrind's DHAT
/// can show where transactions allocate.
static SYSTEM: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

struct Counting;

unsafe extern "C" {
    // From the mimalloc the `mimalloc` crate links in.
    fn mi_is_in_heap_region(p: *const std::ffi::c_void) -> bool;
}

// SAFETY: every call is passed on to mimalloc unchanged.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        // A load and a store, not a locked add: the benchmark is one thread.
        let n = ALLOCS.load(std::sync::atomic::Ordering::Relaxed);
        ALLOCS.store(n + 1, std::sync::atomic::Ordering::Relaxed);
        if SYSTEM.load(std::sync::atomic::Ordering::Relaxed) {
            return unsafe { std::alloc::System.alloc(l) };
        }
        unsafe { mimalloc::MiMalloc.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        // Blocks from before the switch stay mimalloc's.
        if SYSTEM.load(std::sync::atomic::Ordering::Relaxed)
            && !unsafe { mi_is_in_heap_region(p.cast()) }
        {
            return unsafe { std::alloc::System.dealloc(p, l) };
        }
        unsafe { mimalloc::MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, n: usize) -> *mut u8 {
        let c = ALLOCS.load(std::sync::atomic::Ordering::Relaxed);
        ALLOCS.store(c + 1, std::sync::atomic::Ordering::Relaxed);
        if SYSTEM.load(std::sync::atomic::Ordering::Relaxed)
            && !unsafe { mi_is_in_heap_region(p.cast()) }
        {
            return unsafe { std::alloc::System.realloc(p, l, n) };
        }
        unsafe { mimalloc::MiMalloc.realloc(p, l, n) }
    }
}

fn allocs() -> u64 {
    ALLOCS.load(std::sync::atomic::Ordering::Relaxed)
}

/// The CRS directory plus the recommended base configuration as a virtual file.
struct Src(DirSource);

impl FileSource for Src {
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        if path == "recommended.conf" {
            return Ok(RECOMMENDED_CONF.as_bytes().to_vec());
        }
        self.0.read(path)
    }
    fn glob(&self, pattern: &str) -> std::io::Result<Vec<String>> {
        self.0.glob(pattern)
    }
}

fn head(method: &str, uri: &str, extra: &[(&str, &str)]) -> RequestHead {
    let (path, query) = uri
        .split_once('?')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap_or((uri.to_string(), String::new()));
    let mut headers: Vec<(String, Vec<u8>)> = [
        ("Host", "shop.example.com"),
        (
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            "Accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("Accept-Language", "en-US,en;q=0.5"),
        ("Accept-Encoding", "gzip, deflate, br"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
    .collect();
    headers.extend(
        extra
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())),
    );
    RequestHead {
        method: method.into(),
        uri_raw: uri.into(),
        path,
        query,
        version: HttpVersion::Http11,
        headers,
        peer: "192.0.2.10:50000".parse().expect("addr"),
        client_ip: "192.0.2.10".parse().expect("ip"),
        tls: false,
        local: "192.0.2.1:8080".parse().expect("addr"),
    }
}

fn one(rs: &Arc<RuleSet>, req: &RequestHead, body: &[u8]) -> Transaction {
    let mut tx = Transaction::new(rs.clone(), req, "bench".into());
    let mut iv = tx.process_request_headers();
    if iv.is_none() && tx.wants_request_body() {
        iv = tx.process_request_body(body, false);
    }
    if iv.is_none() {
        iv = tx.process_response_headers(
            200,
            "HTTP/1.1",
            &[("Content-Type".into(), b"text/plain".to_vec())],
        );
    }
    if iv.is_none() && tx.wants_response_body() {
        let _ = tx.process_response_body(b"ok", false);
    }
    tx.process_logging();
    tx
}

/// Request `i` of a run where no value repeats (`VARY=1`, as
/// bench/wrk/unique.lua does): a new session cookie, User-Agent build,
/// query values and JSON string values.
fn varied(req: &RequestHead, body: &[u8], i: usize) -> (RequestHead, Vec<u8>) {
    let id = format!("{:06x}{i}", i.wrapping_mul(2_654_435_761) & 0xff_ffff);
    let mut r = req.clone();
    for (name, v) in &mut r.headers {
        if name.eq_ignore_ascii_case("cookie") {
            *v = format!("sid={id}; theme=dark; consent=analytics").into_bytes();
        } else if name.eq_ignore_ascii_case("user-agent") {
            *v = String::from_utf8_lossy(v)
                .replace("128.0", &format!("128.{i}"))
                .into_bytes();
        }
    }
    if !r.query.is_empty() {
        r.query = r
            .query
            .split('&')
            .map(|kv| format!("{kv}{id}"))
            .collect::<Vec<_>>()
            .join("&");
        r.uri_raw = format!("{}?{}", r.path, r.query);
    }
    let mut out = Vec::with_capacity(body.len() * 2);
    let mut rest = body;
    while let Some(p) = rest.windows(3).position(|w| w == b"\":\"") {
        let (head, tail) = rest.split_at(p + 3);
        out.extend_from_slice(head);
        let end = tail.iter().position(|&b| b == b'"').unwrap_or(tail.len());
        out.extend_from_slice(&tail[..end]);
        out.extend_from_slice(id.as_bytes());
        rest = &tail[end..];
    }
    out.extend_from_slice(rest);
    if !body.is_empty() {
        let len = out.len().to_string().into_bytes();
        for (name, v) in &mut r.headers {
            if name.eq_ignore_ascii_case("content-length") {
                *v = len.clone();
            }
        }
    }
    (r, out)
}

/// This thread's CPU time in ns (Linux schedstat; robust to other load on
/// the machine, unlike wall time). 0 where unavailable.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Rule time by kind, then the most expensive rules (per transaction).
#[cfg(feature = "rule-profile")]
fn print_profile(n: usize) {
    let p = seclang::profile::take();
    let per = |ns: u64| ns as f64 / 1e3 / n as f64;
    let mut kinds: std::collections::BTreeMap<&str, (u64, usize)> = Default::default();
    for (_, ns, _, k) in &p {
        let e = kinds.entry(k).or_default();
        e.0 += ns;
        e.1 += 1;
    }
    let total: u64 = p.iter().map(|x| x.1).sum();
    println!("  in rules: {:.1} us", per(total));
    for (k, (ns, c)) in kinds {
        println!("    {k}: {:.1} us over {c} rules", per(ns));
    }
    let top: usize = std::env::var("TOP")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(25);
    let only_kind = std::env::var("KIND").unwrap_or_default();
    let line: Vec<String> = p
        .iter()
        .filter(|x| only_kind.is_empty() || x.3 == only_kind)
        .take(top)
        .map(|(id, ns, _, k)| format!("{id}({}) {:.2}", &k[..1], per(*ns)))
        .collect();
    println!("    top: {}", line.join(" | "));
}

fn main() {
    // Before anything is allocated: a block must be freed by the allocator that gave it.
    if std::env::var_os("SYSTEM_ALLOC").is_some() {
        SYSTEM.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let dir = args
        .next()
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/crs").into());
    let src = Src(DirSource::new(&dir));
    let entries = ["recommended.conf", "crs-setup.conf.example", "rules/*.conf"].map(String::from);
    let t = Instant::now();
    let rs = match RuleSet::load(&src, &entries, &LoadOptions::default()) {
        Ok(rs) => Arc::new(rs),
        Err(e) => {
            eprintln!("load failed: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "loaded {} rules in {:.1} ms",
        rs.rule_count(),
        t.elapsed().as_secs_f64() * 1e3
    );

    if std::env::var("PF_GROUPS").is_ok() {
        println!(
            "prefilter groups (rules, literals): {:?}",
            rs.prefilter_groups()
        );
    }
    let get = head("GET", "/search?q=shoes&color=red&size=42&page=2&sort=price&lang=en&ref=home&utm=mail&sid=abc123&view=grid", &[]);
    let mut json = String::from("{\"items\":[");
    let mut i = 0;
    while json.len() < 2000 {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!(
            "{{\"id\":{i},\"name\":\"product {i}\",\"qty\":{},\"note\":\"blue cotton shirt\"}}",
            i % 7
        ));
        i += 1;
    }
    json.push_str("]}");
    let len = json.len().to_string();
    let post = head(
        "POST",
        "/api/cart",
        &[
            ("Content-Type", "application/json"),
            ("Content-Length", &len),
        ],
    );

    // The benchmark's browser request (../shared/bench/wrk/browser-headers.lua).
    let browser_extra: &[(&str, &str)] = &[
        (
            "Cookie",
            "sid=3f9a1c2e7b5d4a60b8e1; theme=dark; consent=analytics",
        ),
        ("Sec-Fetch-Dest", "document"),
        ("Sec-Fetch-Mode", "navigate"),
        ("Sec-Fetch-Site", "same-origin"),
        ("Upgrade-Insecure-Requests", "1"),
    ];
    let browser = head("GET", "/", browser_extra);
    // ../shared/bench/wrk/get-query.lua: browser headers and its query string.
    let wrk_query = head(
        "GET",
        "/search?q=running+shoes&category=sports&brand=acme&size=42&color=blue&sort=price_asc&page=2&per_page=24&lang=en-US&currency=EUR",
        browser_extra,
    );
    // ../shared/bench/wrk/post-json.lua: an order, mostly distinct values.
    let mut order = String::from(
        "{\"customer\":{\"id\":48213,\"name\":\"Jane Doe\",\"email\":\"jane.doe@example.com\",\
         \"address\":{\"street\":\"12 Market Street\",\"city\":\"Springfield\",\"zip\":\"12345\",\"country\":\"US\"}},\
         \"currency\":\"EUR\",\"coupon\":\"SPRING24\",\"items\":[",
    );
    for i in 1..=14 {
        if i > 1 {
            order.push(',');
        }
        order.push_str(&format!(
            "{{\"sku\":\"SKU-{i:04}\",\"name\":\"Trail runner size {}\",\"qty\":{},\"price\":{}.99,\"gift\":false}}",
            36 + i,
            1 + i % 3,
            10 + i
        ));
    }
    order.push_str("],\"comment\":\"Please leave the parcel at the front desk of the building.\"}");
    let order_len = order.len().to_string();
    let mut order_head = head(
        "POST",
        "/api/orders",
        &[
            ("Content-Type", "application/json"),
            ("Content-Length", &order_len),
        ],
    );
    order_head.headers.extend(
        browser_extra
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())),
    );
    for (name, req, body) in [
        ("GET / browser", &browser, &b""[..]),
        ("GET 10 params", &get, &b""[..]),
        ("GET wrk query", &wrk_query, &b""[..]),
        ("POST 2 KiB JSON", &post, json.as_bytes()),
        ("POST wrk order", &order_head, order.as_bytes()),
    ] {
        if std::env::var("ONLY").is_ok_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        let tx = one(&rs, req, body);
        let s = tx.stats();
        let fired: Vec<u64> = tx
            .matched()
            .iter()
            // `MATCHED=1`: every matched rule, `nolog` ones too.
            .filter(|m| m.log || std::env::var_os("MATCHED").is_some())
            .map(|m| m.id)
            .collect();
        for _ in 0..n / 10 {
            one(&rs, req, body);
        }
        #[cfg(feature = "rule-profile")]
        seclang::profile::take();
        let vary = std::env::var("VARY").is_ok();
        let reqs: Vec<(RequestHead, Vec<u8>)> = if vary {
            (0..n).map(|i| varied(req, body, i)).collect()
        } else {
            Vec::new()
        };
        let t = Instant::now();
        let c = cpu_ns();
        for i in 0..n {
            match reqs.get(i) {
                Some((r, b)) => one(&rs, r, b),
                None => one(&rs, req, body),
            };
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        let cpu_us = (cpu_ns() - c) as f64 / 1e3 / n as f64;
        // The same request again, with the thread's memory warm.
        let a = allocs();
        let warm = one(&rs, req, body).stats();
        let warm_allocs = allocs() - a;
        println!(
            "{name}: {cpu_us:.1} us CPU/transaction ({us:.1} us wall); rules evaluated {}, operator calls {} (warm: {}, {} answers remembered, {} allocations), prefilter skips {} (rules fully skipped {}); logged {:?}",
            s.rules_evaluated, s.operator_calls, warm.operator_calls, warm.operator_memo, warm_allocs, s.prefilter_skips, s.rules_prefiltered, fired
        );
        #[cfg(feature = "rule-profile")]
        print_profile(n);
    }
}
