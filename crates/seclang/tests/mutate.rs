//! The parser never panics on mutated CRS rules (fixed seed, bounded).

const CRS_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/crs/rules");

const BUILTIN: &str = r#"SecRule REQUEST_HEADERS:Content-Type "@rx ^application/json" \
    "id:1,phase:1,pass,t:none,t:lowercase,nolog,ctl:requestBodyProcessor=JSON,msg:'a \'b\' c',setvar:'tx.x=+%{tx.y}'"
SecRule ARGS|!ARGS:foo|&TX:bar "!@within %{tx.allowed}" "id:2,phase:2,block,chain,capture,logdata:'%{TX.0}'"
    SecRule MATCHED_VARS "@pm a b c" "t:urlDecodeUni,setvar:tx.s=%{MATCHED_VAR}"
SecMarker "END"
"#;

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const SPICE: &[&[u8]] = &[
    b"\"", b"'", b"\\", b"\\\n", b",", b"|", b":", b"%{", b"}", b"!", b"&", b"@", b"/", b"chain",
    b"\n", b"\xff", b"id:", b"t:", b"ctl:",
];

fn mutate(rng: &mut Rng, src: &[u8]) -> Vec<u8> {
    let mut v = src.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(4) {
            0 => {
                if at < v.len() {
                    v.remove(at);
                }
            }
            1 => {
                let s = SPICE[rng.below(SPICE.len())];
                v.splice(at..at, s.iter().copied());
            }
            2 => {
                if at < v.len() {
                    v[at] = (rng.next() & 0xff) as u8;
                }
            }
            _ => {
                let end = (at + rng.below(16)).min(v.len());
                let chunk: Vec<u8> = v[at.min(end)..end].to_vec();
                v.splice(at..at, chunk);
            }
        }
    }
    v
}

#[test]
fn mutated_rules_never_panic() {
    let mut corpus: Vec<String> = vec![BUILTIN.to_string()];
    if let Ok(text) =
        std::fs::read_to_string(format!("{CRS_RULES}/REQUEST-920-PROTOCOL-ENFORCEMENT.conf"))
    {
        // One chunk per rule (rules are separated by blank lines), data files are not needed.
        corpus.extend(
            text.split("\n\n")
                .filter(|c| c.contains("SecRule") && !c.contains("FromFile"))
                .take(60)
                .map(str::to_string),
        );
    }
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut loaded = 0;
    for i in 0..1500 {
        let base = &corpus[i % corpus.len()];
        let m = mutate(&mut rng, base.as_bytes());
        let text = String::from_utf8_lossy(&m);
        if seclang::RuleSet::from_text("m.conf", &text).is_ok() {
            loaded += 1;
        }
    }
    // Some mutations stay valid, most do not; both paths ran.
    assert!(loaded > 0);
}
