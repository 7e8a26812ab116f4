//! Prints the required-literal set of every CRS `@rx` pattern:
//! `cargo run -p seclang-ops --example crs_literals [RULES_DIR] [-v]`.

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let verbose = args.iter().any(|a| a == "-v");
    args.retain(|a| a != "-v");
    let dir = args.first().cloned().unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/crs/rules").to_string()
    });
    let mut files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(d) => d
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect(),
        Err(e) => {
            eprintln!("{dir}: {e}");
            std::process::exit(1);
        }
    };
    files.sort();
    let (mut total, mut with, mut unicode) = (0, 0, 0);
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for (k, _) in text.match_indices("@rx ") {
            let before = &text[..k];
            if !(before.ends_with('"') || before.ends_with("\"!")) {
                continue;
            }
            let b = text.as_bytes();
            let mut j = k + 4;
            let mut pat = Vec::new();
            while j < b.len() && b[j] != b'"' {
                if b[j] == b'\\' && b.get(j + 1) == Some(&b'"') {
                    pat.push(b'"');
                    j += 2;
                } else {
                    pat.push(b[j]);
                    j += 1;
                }
            }
            let pat = String::from_utf8_lossy(&pat).into_owned();
            total += 1;
            if seclang_ops::parse_rx(&pat, false).is_none() {
                unicode += 1;
                if verbose {
                    println!("UNICODE MODE: {pat}");
                }
            }
            let t0 = std::time::Instant::now();
            let lits = seclang_ops::regex_literals(&pat);
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            if verbose && ms > 5.0 {
                eprintln!(
                    "slow ({ms:.1} ms): {}",
                    pat.chars().take(80).collect::<String>()
                );
            }
            if lits.is_some() {
                with += 1;
            }
            if verbose {
                let shown = match &lits {
                    Some(l) => format!(
                        "{} lits, min {}: {:?}",
                        l.len(),
                        l.iter().map(Vec::len).min().unwrap_or(0),
                        l.iter()
                            .take(8)
                            .map(|x| String::from_utf8_lossy(x).into_owned())
                            .collect::<Vec<_>>()
                    ),
                    None => "NONE".to_string(),
                };
                let short: String = pat.chars().take(100).collect();
                println!("{shown}\n    {short}");
            }
        }
    }
    println!(
        "CRS @rx patterns: {total}, with a required-literal set: {with}, needing Unicode mode: {unicode}"
    );
}
