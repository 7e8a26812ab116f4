//! Fixed-seed mutation of valid bodies: no processor may panic.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const PIECES: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b"--",
    b"--B",
    b"--B--",
    b"\"",
    b"'",
    b"\\",
    b";",
    b"=",
    b":",
    b" ",
    b"\t",
    b"\0",
    b"\xff",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b"\\u",
    b"\\ud800",
    b"<",
    b">",
    b"/",
    b"&",
    b"&#x",
    b"<![CDATA[",
    b"]]>",
    b"<!DOCTYPE",
    b"name=",
    b"filename=",
    b"filename*=",
];

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(4) {
            0 => {
                let p = PIECES[rng.below(PIECES.len())];
                v.splice(at..at, p.iter().copied());
            }
            1 if at < v.len() => {
                let end = (at + rng.below(8)).min(v.len());
                v.drain(at..end);
            }
            2 if at < v.len() => v[at] = rng.next() as u8,
            _ => v.truncate(at),
        }
    }
    v
}

#[test]
fn mutated_bodies_never_panic() {
    let mp = b"--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\nContent-Type: text/plain\r\n\r\ndata\r\n--B--\r\n";
    let json = br#"{"a":[1,{"b":"\u00e9\ud83d\ude00"},null,true],"c":{"d":-1.5e3}}"#;
    let xml =
        br#"<?xml version="1.0"?><!DOCTYPE r><r a="1&amp;"><b>t&lt;</b><![CDATA[c]]><!--x--></r>"#;
    let cts: &[&[u8]] = &[
        b"multipart/form-data; boundary=B",
        b"multipart/form-data; boundary=\"B\"",
        b"multipart/form-data;boundary = B",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let body = mutate(&mut rng, mp);
        let ct = cts[rng.below(cts.len())];
        let _ = bodyparse::parse_multipart(ct, &body);
        let ct = mutate(&mut rng, ct);
        let _ = bodyparse::parse_multipart(&ct, mp);
        let _ = bodyparse::parse_json(&mutate(&mut rng, json));
        let _ = bodyparse::parse_xml(&mutate(&mut rng, xml));
    }
}
