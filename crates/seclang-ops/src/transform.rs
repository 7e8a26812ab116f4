//! Transformation functions with ModSecurity v2 semantics
//! (`apache2/re_tfns.c` and `msc_util.c`).
//!
//! Each function takes the input and returns the transformed bytes;
//! [`Transform::apply`] reports `None` when the output equals the input.

use base64::Engine as _;
use md5::Digest as _;

/// C `isspace` (C locale): space, \t, \n, \v, \f, \r.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

const NBSP: u8 = 0xa0;

fn is_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}

fn is_odigit(c: u8) -> bool {
    (b'0'..=b'7').contains(&c)
}

/// ModSecurity's `x2c`: two characters to a byte, no validation (wrapping
/// arithmetic on non-hex characters, as the C code does).
fn x2c(a: u8, b: u8) -> u8 {
    let d = |c: u8| -> u8 {
        if c >= b'A' {
            (c & 0xdf).wrapping_sub(b'A').wrapping_add(10)
        } else {
            c.wrapping_sub(b'0')
        }
    };
    d(a).wrapping_mul(16).wrapping_add(d(b))
}

/// `xsingle2c`: one hex character to a byte.
fn xsingle2c(c: u8) -> u8 {
    if c >= b'A' {
        (c & 0xdf).wrapping_sub(b'A').wrapping_add(10)
    } else {
        c.wrapping_sub(b'0')
    }
}

/// Low byte of `%uHHHH` / `\uHHHH` with full-width ASCII (U+FF01..U+FF5E)
/// mapped back to ASCII. `h` holds the four hex digits.
fn uni_low_byte(h: &[u8]) -> u8 {
    let mut d = x2c(h[2], h[3]);
    if d > 0 && d < 0x5f && (h[0] == b'f' || h[0] == b'F') && (h[1] == b'f' || h[1] == b'F') {
        d += 0x20;
    }
    d
}

pub fn url_decode(v: &[u8]) -> Vec<u8> {
    let mut o = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'%' if i + 2 < v.len() && is_hex(v[i + 1]) && is_hex(v[i + 2]) => {
                o.push(x2c(v[i + 1], v[i + 2]));
                i += 3;
            }
            b'+' => {
                o.push(b' ');
                i += 1;
            }
            c => {
                o.push(c);
                i += 1;
            }
        }
    }
    o
}

pub fn url_decode_uni(v: &[u8]) -> Vec<u8> {
    let mut o = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        let c = v[i];
        if c == b'%' {
            if i + 1 < v.len() && (v[i + 1] == b'u' || v[i + 1] == b'U') {
                if i + 5 < v.len() && v[i + 2..i + 6].iter().all(|&c| is_hex(c)) {
                    o.push(uni_low_byte(&v[i + 2..i + 6]));
                    i += 6;
                } else {
                    // Invalid: keep "%u" and go on.
                    o.extend_from_slice(&v[i..i + 2]);
                    i += 2;
                }
            } else if i + 2 < v.len() && is_hex(v[i + 1]) && is_hex(v[i + 2]) {
                o.push(x2c(v[i + 1], v[i + 2]));
                i += 3;
            } else {
                o.push(b'%');
                i += 1;
            }
        } else {
            o.push(if c == b'+' { b' ' } else { c });
            i += 1;
        }
    }
    o
}

/// strtol-like: saturating parse, then cast to `unsigned char`
/// (LONG_MAX on overflow gives 0xff).
fn strtol_byte(digits: &[u8], radix: u32) -> u8 {
    let mut n: u64 = 0;
    for &c in digits {
        let d = (c as char).to_digit(radix).unwrap_or(0) as u64;
        n = match n.checked_mul(radix as u64).and_then(|n| n.checked_add(d)) {
            Some(n) if n <= i64::MAX as u64 => n,
            _ => return 0xff,
        };
    }
    (n & 0xff) as u8
}

/// Named entities v2 decodes (names compared case-insensitively): the
/// classic five plus the ASCII punctuation set added for GHSA-cxqf-vgrr-xxrv.
fn named_entity(name: &[u8]) -> Option<u8> {
    Some(match name {
        b"quot" => b'"',
        b"amp" => b'&',
        b"lt" => b'<',
        b"gt" => b'>',
        b"nbsp" => NBSP,
        b"colon" => b':',
        b"apos" => b'\'',
        b"num" => b'#',
        b"dollar" => b'$',
        b"percnt" => b'%',
        b"lpar" => b'(',
        b"rpar" => b')',
        b"ast" => b'*',
        b"plus" => b'+',
        b"comma" => b',',
        b"hyphen" => b'-',
        b"period" => b'.',
        b"sol" => b'/',
        b"semi" => b';',
        b"equals" => b'=',
        b"quest" => b'?',
        b"commat" => b'@',
        b"lbrack" => b'[',
        b"bsol" => b'\\',
        b"rbrack" => b']',
        b"caret" => b'^',
        b"lowbar" => b'_',
        b"grave" => b'`',
        b"lbrace" => b'{',
        b"verbar" => b'|',
        b"rbrace" => b'}',
        b"tilde" => b'~',
        _ => return None,
    })
}

pub fn html_entity_decode(v: &[u8]) -> Vec<u8> {
    let n = v.len();
    let mut o = Vec::with_capacity(n);
    let mut i = 0;
    'outer: while i < n {
        let mut copy = 1usize;
        'ent: {
            if v[i] == b'&' && i + 1 < n {
                let mut j = i + 1;
                if v[j] == b'#' {
                    copy += 1;
                    if j + 1 >= n {
                        break 'ent;
                    }
                    j += 1;
                    let radix = if v[j] == b'x' || v[j] == b'X' {
                        copy += 1;
                        if j + 1 >= n {
                            break 'ent;
                        }
                        j += 1;
                        16
                    } else {
                        10
                    };
                    let k = j;
                    while j < n
                        && (if radix == 16 {
                            v[j].is_ascii_hexdigit()
                        } else {
                            v[j].is_ascii_digit()
                        })
                    {
                        j += 1;
                    }
                    if j == k {
                        break 'ent;
                    }
                    o.push(strtol_byte(&v[k..j], radix));
                    i = if j < n && v[j] == b';' { j + 1 } else { j };
                    continue 'outer;
                } else {
                    let k = j;
                    while j < n && v[j].is_ascii_alphanumeric() {
                        j += 1;
                    }
                    if j > k {
                        let name = v[k..j].to_ascii_lowercase();
                        let c = match named_entity(&name) {
                            Some(c) => c,
                            None => {
                                copy = j - k + 1;
                                break 'ent;
                            }
                        };
                        o.push(c);
                        i = if j < n && v[j] == b';' { j + 1 } else { j };
                        continue 'outer;
                    }
                }
            }
        }
        let end = (i + copy).min(n);
        o.extend_from_slice(&v[i..end]);
        i = end;
    }
    o
}

/// Up to three octal digits starting at `s` (the first one is known to be octal).
fn octal_run(v: &[u8], s: usize) -> usize {
    let mut j = 0;
    while s + j < v.len() && j < 3 {
        j += 1;
        if !(s + j < v.len() && is_odigit(v[s + j])) {
            break;
        }
    }
    j
}

pub fn js_decode(v: &[u8]) -> Vec<u8> {
    let n = v.len();
    let mut o = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        if v[i] != b'\\' {
            o.push(v[i]);
            i += 1;
            continue;
        }
        if i + 5 < n && v[i + 1] == b'u' && v[i + 2..i + 6].iter().all(|&c| is_hex(c)) {
            o.push(uni_low_byte(&v[i + 2..i + 6]));
            i += 6;
        } else if i + 3 < n && v[i + 1] == b'x' && is_hex(v[i + 2]) && is_hex(v[i + 3]) {
            o.push(x2c(v[i + 2], v[i + 3]));
            i += 4;
        } else if i + 1 < n && is_odigit(v[i + 1]) {
            let mut j = octal_run(v, i + 1);
            // Do not use three digits if the value would not fit a byte.
            if j == 3 && v[i + 1] > b'3' {
                j = 2;
            }
            o.push(strtol_byte(&v[i + 1..i + 1 + j], 8));
            i += 1 + j;
        } else if i + 1 < n {
            o.push(match v[i + 1] {
                b'a' => 0x07,
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'v' => 0x0b,
                c => c,
            });
            i += 2;
        } else {
            o.extend_from_slice(&v[i..]);
            i = n;
        }
    }
    o
}

pub fn css_decode(v: &[u8]) -> Vec<u8> {
    let n = v.len();
    let mut o = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        if v[i] != b'\\' {
            o.push(v[i]);
            i += 1;
            continue;
        }
        if i + 1 >= n {
            // Trailing backslash: continuation to nothing.
            i += 1;
            continue;
        }
        i += 1;
        let mut j = 0;
        while j < 6 && i + j < n && is_hex(v[i + j]) {
            j += 1;
        }
        if j > 0 {
            let mut fullcheck = false;
            let d = match j {
                1 => xsingle2c(v[i]),
                _ => x2c(v[i + j - 2], v[i + j - 1]),
            };
            match j {
                4 => fullcheck = true,
                5 => fullcheck = v[i] == b'0',
                6 => fullcheck = v[i] == b'0' && v[i + 1] == b'0',
                _ => {}
            }
            let mut d = d;
            if fullcheck
                && d > 0
                && d < 0x5f
                && (v[i + j - 3] == b'f' || v[i + j - 3] == b'F')
                && (v[i + j - 4] == b'f' || v[i + j - 4] == b'F')
            {
                d += 0x20;
            }
            o.push(d);
            // A single whitespace after a hex escape is part of it.
            if i + j < n && is_space(v[i + j]) {
                j += 1;
            }
            i += j;
        } else if v[i] == b'\n' {
            i += 1;
        } else {
            o.push(v[i]);
            i += 1;
        }
    }
    o
}

pub fn escape_seq_decode(v: &[u8]) -> Vec<u8> {
    let n = v.len();
    let mut o = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        if !(v[i] == b'\\' && i + 1 < n) {
            o.push(v[i]);
            i += 1;
            continue;
        }
        let simple = match v[i + 1] {
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            b'\\' => Some(b'\\'),
            b'?' => Some(b'?'),
            b'\'' => Some(b'\''),
            b'"' => Some(b'"'),
            _ => None,
        };
        if let Some(c) = simple {
            o.push(c);
            i += 2;
            continue;
        }
        let c1 = v[i + 1];
        if (c1 == b'x' || c1 == b'X') && i + 3 < n && is_hex(v[i + 2]) && is_hex(v[i + 3]) {
            o.push(x2c(v[i + 2], v[i + 3]));
            i += 4;
        } else if is_odigit(c1) {
            let j = octal_run(v, i + 1);
            let mut val: u32 = 0;
            for &c in &v[i + 1..i + 1 + j] {
                val = val * 8 + u32::from(c - b'0');
            }
            o.push((val & 0xff) as u8);
            i += 1 + j;
        } else {
            // Unknown escape: drop the backslash.
            o.push(c1);
            i += 2;
        }
    }
    o
}

fn push_unicode(o: &mut Vec<u8>, d: u32) {
    o.extend_from_slice(b"%u");
    let h = format!("{d:x}");
    for _ in h.len()..4 {
        o.push(b'0');
    }
    o.extend_from_slice(h.as_bytes());
}

/// utf8toUnicode: every multi-byte UTF-8 character becomes `%uHHHH`
/// (lower-case hex, five digits above U+FFFF). Invalid sequences are
/// dropped, as in ModSecurity v2; overlong forms and surrogates get the
/// lead byte appended after the escape. NUL bytes are kept (v2 loses them
/// through a C-string bug).
pub fn utf8_to_unicode(v: &[u8]) -> Vec<u8> {
    let n = v.len();
    let mut o = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let c = v[i];
        let left = n - i;
        let cont = |k: usize| v[i + k] & 0xc0 == 0x80;
        let mut len = 0usize;
        let mut d: u32 = 0;
        if c & 0x80 == 0 {
            o.push(c);
        } else if c & 0xe0 == 0xc0 {
            if left >= 2 && cont(1) {
                len = 2;
                d = (u32::from(c & 0x1f) << 6) | u32::from(v[i + 1] & 0x3f);
                push_unicode(&mut o, d);
            }
        } else if c & 0xf0 == 0xe0 {
            if left >= 3 && cont(1) && cont(2) {
                len = 3;
                d = (u32::from(c & 0x0f) << 12)
                    | (u32::from(v[i + 1] & 0x3f) << 6)
                    | u32::from(v[i + 2] & 0x3f);
                push_unicode(&mut o, d);
            }
        } else if c & 0xf8 == 0xf0 {
            if c >= 0xf5 {
                o.push(c);
            }
            if left >= 4 && cont(1) && cont(2) && cont(3) {
                len = 4;
                d = (u32::from(c & 0x07) << 18)
                    | (u32::from(v[i + 1] & 0x3f) << 12)
                    | (u32::from(v[i + 2] & 0x3f) << 6)
                    | u32::from(v[i + 3] & 0x3f);
                push_unicode(&mut o, d);
            }
        } else {
            o.push(c);
        }
        if (0xd800..=0xdfff).contains(&d) {
            o.push(c);
        }
        if (len == 4 && d < 0x10000) || (len == 3 && d < 0x800) || (len == 2 && d < 0x80) {
            o.push(c);
        }
        i += len.max(1);
    }
    o
}

pub fn remove_whitespace(v: &[u8]) -> Vec<u8> {
    // Sized up front: a filtered iterator's collect grows the buffer step by step.
    let mut o = Vec::with_capacity(v.len());
    o.extend(v.iter().copied().filter(|&b| !(is_space(b) || b == NBSP)));
    o
}

pub fn compress_whitespace(v: &[u8]) -> Vec<u8> {
    let mut o = Vec::with_capacity(v.len());
    let mut ws = false;
    for &b in v {
        if is_space(b) || b == NBSP {
            ws = true;
        } else {
            if ws {
                o.push(b' ');
                ws = false;
            }
            o.push(b);
        }
    }
    if ws {
        o.push(b' ');
    }
    o
}

pub fn replace_comments(v: &[u8]) -> Vec<u8> {
    let n = v.len();
    let mut o = Vec::with_capacity(n);
    let mut i = 0;
    let mut incomment = false;
    while i < n {
        if !incomment {
            if v[i] == b'/' && i + 1 < n && v[i + 1] == b'*' {
                incomment = true;
                i += 2;
            } else {
                o.push(v[i]);
                i += 1;
            }
        } else if v[i] == b'*' && i + 1 < n && v[i + 1] == b'/' {
            incomment = false;
            i += 2;
            o.push(b' ');
        } else {
            i += 1;
        }
    }
    if incomment {
        o.push(b' ');
    }
    o
}

pub fn remove_comments(v: &[u8]) -> Vec<u8> {
    let n = v.len();
    let mut o = Vec::with_capacity(n);
    let mut i = 0;
    let mut incomment = false;
    let at = |i: usize, s: &[u8]| v.get(i..i + s.len()) == Some(s);
    while i < n {
        if !incomment {
            if at(i, b"/*") {
                incomment = true;
                i += 2;
            } else if at(i, b"<!--") {
                incomment = true;
                i += 4;
            } else if at(i, b"--") || v[i] == b'#' {
                // The rest of the value is a line comment.
                break;
            } else {
                o.push(v[i]);
                i += 1;
            }
        } else if at(i, b"*/") || at(i, b"-->") {
            incomment = false;
            i += if v[i] == b'*' { 2 } else { 3 };
        } else {
            i += 1;
        }
    }
    if incomment {
        o.push(b' ');
    }
    o
}

pub fn remove_comments_char(v: &[u8]) -> Vec<u8> {
    let n = v.len();
    let mut o = Vec::with_capacity(n);
    let mut i = 0;
    let at = |i: usize, s: &[u8]| v.get(i..i + s.len()) == Some(s);
    while i < n {
        if at(i, b"/*") || at(i, b"*/") {
            i += 2;
        } else if at(i, b"<!--") {
            i += 4;
        } else if at(i, b"-->") {
            i += 3;
        } else if at(i, b"--") {
            i += 2;
        } else if v[i] == b'#' {
            i += 1;
        } else {
            o.push(v[i]);
            i += 1;
        }
    }
    o
}

pub fn cmd_line(v: &[u8]) -> Vec<u8> {
    let mut o: Vec<u8> = Vec::with_capacity(v.len());
    let mut space = false;
    for &c in v {
        match c {
            b'"' | b'\'' | b'\\' | b'^' => {}
            b' ' | b',' | b';' | b'\t' | b'\r' | b'\n' => {
                if !space {
                    o.push(b' ');
                    space = true;
                }
            }
            b'/' | b'(' => {
                if space {
                    o.pop();
                }
                space = false;
                o.push(c);
            }
            _ => {
                o.push(c.to_ascii_lowercase());
                space = false;
            }
        }
    }
    o
}

/// Port of v2 `normalize_path_inplace` (pointer arithmetic kept as
/// signed indices).
pub fn normalize_path(input: &[u8], win: bool) -> Vec<u8> {
    if input.is_empty() {
        return Vec::new();
    }
    let mut b = input.to_vec();
    let is_sep = |c: u8| c == b'/' || (win && c == b'\\');
    let end = b.len() as isize - 1;
    let relative = !is_sep(b[0]);
    let trailing = is_sep(b[end as usize]);
    let mut src: isize = 0;
    let mut dst: isize = 0;
    let mut hitroot = false;
    let mut done = false;
    while !done && src <= end && dst <= end {
        if win {
            if b[src as usize] == b'\\' {
                b[src as usize] = b'/';
            }
            if src < end && b[src as usize + 1] == b'\\' {
                b[src as usize + 1] = b'/';
            }
        }
        let mut do_copy = true;
        let mut skip_norm = false;
        if src == end {
            done = true;
        } else if b[src as usize + 1] != b'/' {
            skip_norm = true;
        }
        if !skip_norm {
            let cs = b[src as usize];
            if src != end && cs == b'/' {
                // Empty segment: the copy step collapses it.
            } else if cs == b'.' {
                if dst > 0 && b[dst as usize - 1] == b'.' {
                    if relative && (hitroot || dst - 2 <= 0) {
                        hitroot = true;
                    } else {
                        dst -= 3;
                        while dst > 0 && b[dst as usize] != b'/' {
                            dst -= 1;
                        }
                        if dst <= 0 {
                            hitroot = true;
                            dst = 0;
                            if !relative && src == end {
                                dst += 1;
                            }
                        }
                        if done {
                            do_copy = false;
                        } else {
                            src += 1;
                        }
                    }
                } else if dst == 0 {
                    if done {
                        do_copy = false;
                    } else {
                        src += 1;
                    }
                } else if b[dst as usize - 1] == b'/' {
                    if done {
                        do_copy = false;
                    } else {
                        dst -= 1;
                        src += 1;
                    }
                }
            } else if dst > 0 {
                hitroot = false;
            }
        }
        if do_copy {
            if b[src as usize] == b'/' {
                while src < end && is_sep(b[src as usize + 1]) {
                    src += 1;
                }
                if relative && dst == 0 {
                    src += 1;
                    continue;
                }
            }
            b[dst as usize] = b[src as usize];
            dst += 1;
            src += 1;
        }
    }
    // (The root of an absolute path stays: "/.." is "/".)
    if !trailing && dst > 0 && b[dst as usize - 1] == b'/' && (relative || dst != 1) {
        dst -= 1;
    }
    b.truncate(dst.max(0) as usize);
    b
}

/// APR `apr_base64_decode`: decodes the longest prefix of base64 alphabet
/// characters; a trailing partial group yields what it can.
pub fn base64_decode(v: &[u8]) -> Vec<u8> {
    let n = v.iter().take_while(|&&c| b64val(c).is_some()).count();
    b64_bits(v[..n].iter().filter_map(|&c| b64val(c)))
}

/// base64DecodeExt: also takes the URL-safe alphabet (`-` `_`), skips
/// characters outside the alphabet (whitespace, junk) and decodes the
/// rest. Padding where a group holds a single character is an error and
/// gives an empty value, as in v2.
pub fn base64_decode_ext(v: &[u8]) -> Vec<u8> {
    let mut vals = Vec::with_capacity(v.len());
    for (k, &c) in v.iter().enumerate() {
        if c == b'=' {
            if v.get(k + 1) != Some(&b'=') && vals.len() % 4 == 1 {
                return Vec::new();
            }
            continue;
        }
        let x = match c {
            b'-' => Some(62),
            b'_' => Some(63),
            _ => b64val(c),
        };
        if let Some(x) = x {
            vals.push(x);
        }
    }
    b64_bits(vals.into_iter())
}

fn b64val(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

fn b64_bits(vals: impl Iterator<Item = u8>) -> Vec<u8> {
    let mut o = Vec::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for x in vals {
        acc = (acc << 6) | u32::from(x);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            o.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    o
}

/// hexDecode: pairs of hex digits to bytes; a pair that is not hex and an
/// odd trailing character are kept as they are.
pub fn hex_decode(v: &[u8]) -> Vec<u8> {
    let mut o = Vec::with_capacity(v.len() / 2 + 1);
    for p in v.chunks(2) {
        if p.len() == 2 && is_hex(p[0]) && is_hex(p[1]) {
            o.push(x2c(p[0], p[1]));
        } else {
            o.extend_from_slice(p);
        }
    }
    o
}

pub fn hex_encode(v: &[u8]) -> Vec<u8> {
    hex::encode(v).into_bytes()
}

/// sqlHexDecode: `0xHHHH...` runs become the bytes they encode.
pub fn sql_hex_decode(v: &[u8]) -> Vec<u8> {
    let n = v.len();
    let mut o = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        if v[i] == b'0'
            && i + 3 < n
            && (v[i + 1] == b'x' || v[i + 1] == b'X')
            && is_hex(v[i + 2])
            && is_hex(v[i + 3])
        {
            i += 2;
            while i + 1 < n && is_hex(v[i]) && is_hex(v[i + 1]) {
                o.push(x2c(v[i], v[i + 1]));
                i += 2;
            }
        } else {
            o.push(v[i]);
            i += 1;
        }
    }
    o
}

pub fn url_encode(v: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut o = Vec::with_capacity(v.len() * 3);
    for &c in v {
        if c == b' ' {
            o.push(b'+');
        } else if c == b'*' || c.is_ascii_alphanumeric() {
            o.push(c);
        } else {
            o.extend_from_slice(&[b'%', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
        }
    }
    o
}

/// Parity of all eight bits, as v2 computes it before setting bit 7.
fn odd_parity(c: u8) -> bool {
    c.count_ones() % 2 == 1
}

fn trim_left(v: &[u8]) -> &[u8] {
    let s = v.iter().position(|&c| !is_space(c)).unwrap_or(v.len());
    &v[s..]
}

fn trim_right(v: &[u8]) -> &[u8] {
    let e = v.iter().rposition(|&c| !is_space(c)).map_or(0, |p| p + 1);
    &v[..e]
}

/// A sub-slice of `v` as a transformation result (`None` when it is all of `v`).
fn trimmed(v: &[u8], t: &[u8]) -> Option<Vec<u8>> {
    (t.len() != v.len()).then(|| t.to_vec())
}

/// Whether `a` is directly followed by `b` somewhere in `v`.
fn has_pair(v: &[u8], a: u8, b: u8) -> bool {
    v.windows(2).any(|w| w[0] == a && w[1] == b)
}

/// compressWhitespace leaves `v` as it is: every whitespace run is one plain space.
fn compress_whitespace_noop(v: &[u8]) -> bool {
    let mut prev_ws = false;
    for &b in v {
        let ws = is_space(b) || b == NBSP;
        if ws && (b != b' ' || prev_ws) {
            return false;
        }
        prev_ws = ws;
    }
    true
}

/// cmdLine leaves `v` as it is: no characters it drops or lower-cases, no
/// separator other than single spaces, no space before `/` or `(`.
fn cmd_line_noop(v: &[u8]) -> bool {
    for (i, &c) in v.iter().enumerate() {
        match c {
            b'"' | b'\'' | b'\\' | b'^' | b',' | b';' | b'\t' | b'\r' | b'\n' => return false,
            b' ' => {
                if matches!(v.get(i + 1), Some(b' ' | b'/' | b'(')) {
                    return false;
                }
            }
            c if c.is_ascii_uppercase() => return false,
            _ => {}
        }
    }
    true
}

/// normalizePath leaves `v` as it is: no repeated separator, no dot ending
/// a segment (`./`, or a final `.`), and for the Windows form no backslash.
fn normalize_path_noop(v: &[u8], win: bool) -> bool {
    !(win && v.contains(&b'\\'))
        && v.last() != Some(&b'.')
        && !v
            .windows(2)
            .any(|w| w[1] == b'/' && (w[0] == b'/' || w[0] == b'.'))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum T {
    None,
    Lowercase,
    Uppercase,
    UrlDecode,
    UrlDecodeUni,
    HtmlEntityDecode,
    JsDecode,
    CssDecode,
    EscapeSeqDecode,
    Utf8ToUnicode,
    RemoveNulls,
    ReplaceNulls,
    RemoveWhitespace,
    CompressWhitespace,
    ReplaceComments,
    RemoveComments,
    RemoveCommentsChar,
    CmdLine,
    NormalizePath,
    NormalizePathWin,
    Base64Decode,
    Base64DecodeExt,
    Base64Encode,
    HexDecode,
    HexEncode,
    SqlHexDecode,
    Length,
    Sha1,
    Md5,
    Trim,
    TrimLeft,
    TrimRight,
    UrlEncode,
    ParityEven7,
    ParityOdd7,
    ParityZero7,
}

/// `v` with its ASCII letters in one case, collected straight into `C` (a
/// `Vec` or a shared buffer); `None` when no letter changes.
fn case_mapped<C: FromIterator<u8>>(v: &[u8], upper: bool) -> Option<C> {
    if upper {
        v.iter()
            .any(u8::is_ascii_lowercase)
            .then(|| v.iter().map(u8::to_ascii_uppercase).collect())
    } else {
        v.iter()
            .any(u8::is_ascii_uppercase)
            .then(|| v.iter().map(u8::to_ascii_lowercase).collect())
    }
}

/// A named transformation function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transform(T);

impl Transform {
    /// Looks a transformation up by its SecLang name (case-insensitive).
    pub fn from_name(name: &str) -> Option<Transform> {
        Some(Transform(match name.to_ascii_lowercase().as_str() {
            "none" => T::None,
            "lowercase" => T::Lowercase,
            "uppercase" => T::Uppercase,
            "urldecode" => T::UrlDecode,
            "urldecodeuni" => T::UrlDecodeUni,
            "htmlentitydecode" => T::HtmlEntityDecode,
            "jsdecode" => T::JsDecode,
            "cssdecode" => T::CssDecode,
            "escapeseqdecode" => T::EscapeSeqDecode,
            "utf8tounicode" => T::Utf8ToUnicode,
            "removenulls" => T::RemoveNulls,
            "replacenulls" => T::ReplaceNulls,
            "removewhitespace" => T::RemoveWhitespace,
            "compresswhitespace" => T::CompressWhitespace,
            "replacecomments" => T::ReplaceComments,
            "removecomments" => T::RemoveComments,
            "removecommentschar" => T::RemoveCommentsChar,
            "cmdline" => T::CmdLine,
            "normalizepath" | "normalisepath" => T::NormalizePath,
            "normalizepathwin" | "normalisepathwin" => T::NormalizePathWin,
            "base64decode" => T::Base64Decode,
            "base64decodeext" => T::Base64DecodeExt,
            "base64encode" => T::Base64Encode,
            "hexdecode" => T::HexDecode,
            "hexencode" => T::HexEncode,
            "sqlhexdecode" => T::SqlHexDecode,
            "length" => T::Length,
            "sha1" => T::Sha1,
            "md5" => T::Md5,
            "trim" => T::Trim,
            "trimleft" => T::TrimLeft,
            "trimright" => T::TrimRight,
            "urlencode" => T::UrlEncode,
            "parityeven7bit" => T::ParityEven7,
            "parityodd7bit" => T::ParityOdd7,
            "parityzero7bit" => T::ParityZero7,
            _ => return None,
        }))
    }

    /// Whether the function only changes the case of ASCII letters.
    pub fn case_only(&self) -> bool {
        matches!(self.0, T::Lowercase | T::Uppercase)
    }

    /// Whether the function leaves a value as it is exactly when it leaves
    /// the value with its ASCII letters in another case as it is: what it
    /// rewrites (escapes with hex digits of either case, whitespace, NULs,
    /// comments, path separators, bytes past ASCII) does not depend on case.
    /// Decoders that read names or letters (entities, JavaScript and CSS
    /// escapes, base64, cmdLine) are not counted, whatever they do.
    pub fn case_blind(&self) -> bool {
        matches!(
            self.0,
            T::None
                | T::UrlDecode
                | T::UrlDecodeUni
                | T::Utf8ToUnicode
                | T::RemoveNulls
                | T::ReplaceNulls
                | T::RemoveWhitespace
                | T::CompressWhitespace
                | T::ReplaceComments
                | T::RemoveComments
                | T::RemoveCommentsChar
                | T::NormalizePath
                | T::NormalizePathWin
                | T::Trim
                | T::TrimLeft
                | T::TrimRight
        )
    }

    /// For a decoder whose escapes all start with one byte (`&` for HTML
    /// entities, a backslash for JavaScript and CSS escapes): that byte. A
    /// value without it is left as it is, in any case, so the decoder is
    /// blind to case on such values.
    pub fn escape_byte(&self) -> Option<u8> {
        match self.0 {
            T::HtmlEntityDecode => Some(b'&'),
            T::JsDecode | T::CssDecode => Some(b'\\'),
            _ => None,
        }
    }

    /// A small distinct number per transformation function (below 64), so
    /// callers can keep per-value bit sets of transformations.
    pub fn code(&self) -> u8 {
        self.0 as u8
    }

    /// [`Transform::apply`] into a shared buffer. Case changes, the most
    /// common functions, write it directly: one allocation, not a `Vec`
    /// copied into an `Arc`.
    pub fn apply_shared(&self, v: &[u8]) -> Option<std::sync::Arc<[u8]>> {
        match self.0 {
            T::Lowercase => case_mapped(v, false),
            T::Uppercase => case_mapped(v, true),
            _ => self.apply(v).map(Into::into),
        }
    }

    /// Applies the transformation; `None` when the value is unchanged.
    pub fn apply(&self, v: &[u8]) -> Option<Vec<u8>> {
        let out: Vec<u8> = match self.0 {
            T::None => return None,
            T::Lowercase => return case_mapped(v, false),
            T::Uppercase => return case_mapped(v, true),
            T::UrlDecode => {
                if !v.iter().any(|&c| c == b'%' || c == b'+') {
                    return None;
                }
                url_decode(v)
            }
            T::UrlDecodeUni => {
                if !v.iter().any(|&c| c == b'%' || c == b'+') {
                    return None;
                }
                url_decode_uni(v)
            }
            T::HtmlEntityDecode => {
                if !v.contains(&b'&') {
                    return None;
                }
                html_entity_decode(v)
            }
            T::JsDecode => {
                if !v.contains(&b'\\') {
                    return None;
                }
                js_decode(v)
            }
            T::CssDecode => {
                if !v.contains(&b'\\') {
                    return None;
                }
                css_decode(v)
            }
            T::EscapeSeqDecode => {
                if !v.contains(&b'\\') {
                    return None;
                }
                escape_seq_decode(v)
            }
            T::Utf8ToUnicode => {
                if v.is_ascii() {
                    return None;
                }
                utf8_to_unicode(v)
            }
            T::RemoveNulls => {
                if !v.contains(&0) {
                    return None;
                }
                let mut o = Vec::with_capacity(v.len());
                o.extend(v.iter().copied().filter(|&b| b != 0));
                o
            }
            T::ReplaceNulls => {
                if !v.contains(&0) {
                    return None;
                }
                v.iter().map(|&b| if b == 0 { b' ' } else { b }).collect()
            }
            T::RemoveWhitespace => {
                if !v.iter().any(|&b| is_space(b) || b == NBSP) {
                    return None;
                }
                remove_whitespace(v)
            }
            T::CompressWhitespace => {
                if compress_whitespace_noop(v) {
                    return None;
                }
                compress_whitespace(v)
            }
            T::ReplaceComments => {
                if !has_pair(v, b'/', b'*') {
                    return None;
                }
                replace_comments(v)
            }
            T::RemoveComments => {
                if !v.contains(&b'#') && !has_pair(v, b'-', b'-') && !has_pair(v, b'/', b'*') {
                    return None;
                }
                remove_comments(v)
            }
            T::RemoveCommentsChar => {
                if !v.contains(&b'#')
                    && !has_pair(v, b'-', b'-')
                    && !has_pair(v, b'/', b'*')
                    && !has_pair(v, b'*', b'/')
                {
                    return None;
                }
                remove_comments_char(v)
            }
            T::CmdLine => {
                if cmd_line_noop(v) {
                    return None;
                }
                cmd_line(v)
            }
            T::NormalizePath => {
                if normalize_path_noop(v, false) {
                    return None;
                }
                normalize_path(v, false)
            }
            T::NormalizePathWin => {
                if normalize_path_noop(v, true) {
                    return None;
                }
                normalize_path(v, true)
            }
            T::Base64Decode => base64_decode(v),
            T::Base64DecodeExt => base64_decode_ext(v),
            T::Base64Encode => base64::engine::general_purpose::STANDARD
                .encode(v)
                .into_bytes(),
            T::HexDecode => hex_decode(v),
            T::HexEncode => hex_encode(v),
            T::SqlHexDecode => {
                if !v.iter().any(|&c| c == b'x' || c == b'X') {
                    return None;
                }
                sql_hex_decode(v)
            }
            T::Length => v.len().to_string().into_bytes(),
            T::Sha1 => sha1::Sha1::digest(v).to_vec(),
            T::Md5 => md5::Md5::digest(v).to_vec(),
            T::Trim => return trimmed(v, trim_right(trim_left(v))),
            T::TrimLeft => return trimmed(v, trim_left(v)),
            T::TrimRight => return trimmed(v, trim_right(v)),
            T::UrlEncode => url_encode(v),
            T::ParityEven7 => v
                .iter()
                .map(|&c| if odd_parity(c) { c | 0x80 } else { c & 0x7f })
                .collect(),
            T::ParityOdd7 => v
                .iter()
                .map(|&c| if odd_parity(c) { c & 0x7f } else { c | 0x80 })
                .collect(),
            T::ParityZero7 => {
                if v.is_ascii() {
                    return None;
                }
                v.iter().map(|&c| c & 0x7f).collect()
            }
        };
        (out != v).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator for the randomised checks.
    fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// A chain of case-blind functions and case changes, whose case-blind
    /// functions each leave the original value as it is, gives the value
    /// back with only its letters' case changed (the prefilter then reads
    /// the original's case-insensitive scan for it).
    #[test]
    fn case_blind_functions_ignore_case() {
        let blind: Vec<Transform> = [
            "none",
            "urlDecode",
            "urlDecodeUni",
            "utf8toUnicode",
            "removeNulls",
            "replaceNulls",
            "removeWhitespace",
            "compressWhitespace",
            "replaceComments",
            "removeComments",
            "removeCommentsChar",
            "normalizePath",
            "normalizePathWin",
            "trim",
            "trimLeft",
            "trimRight",
        ]
        .iter()
        .map(|n| Transform::from_name(n).unwrap())
        .collect();
        assert!(blind.iter().all(Transform::case_blind));
        let case = [
            Transform::from_name("lowercase").unwrap(),
            Transform::from_name("uppercase").unwrap(),
        ];
        // Pieces the functions react to, in both cases.
        let pieces: [&[u8]; 24] = [
            b"&AMP;",
            b"&#X41;",
            b"\\U0041",
            b"\\X41",
            b"%u00e9",
            b"%U00E9",
            b"%4a",
            b"%4A",
            b"%zz",
            b"%u",
            b"+",
            b"a",
            b"B",
            b"/*",
            b"*/",
            b"--",
            b"#",
            b" ",
            b"\0",
            b"\t",
            b"\xc3\xa9",
            b"../",
            b"\\",
            b"x",
        ];
        // Decoders blind to case on values without their escape byte.
        let escaping: Vec<Transform> = ["htmlEntityDecode", "jsDecode", "cssDecode"]
            .iter()
            .map(|n| Transform::from_name(n).unwrap())
            .collect();
        assert!(escaping
            .iter()
            .all(|t| t.escape_byte().is_some() && !t.case_blind()));
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let mut checked = 0;
        for _ in 0..300_000 {
            let v: Vec<u8> = (0..next() % 4)
                .flat_map(|_| {
                    pieces[(next() % pieces.len() as u64) as usize]
                        .iter()
                        .copied()
                })
                .collect();
            let chain: Vec<Transform> = (0..1 + next() % 4)
                .map(|_| match next() % 4 {
                    0 => case[(next() % 2) as usize],
                    1 => escaping[(next() % escaping.len() as u64) as usize],
                    _ => blind[(next() % blind.len() as u64) as usize],
                })
                .collect();
            if chain.iter().any(|t| {
                !t.case_only() && t.apply(&v).is_some()
                    || t.escape_byte().is_some_and(|b| v.contains(&b))
            }) {
                continue;
            }
            let mut out = v.clone();
            for t in &chain {
                if let Some(n) = t.apply(&out) {
                    out = n;
                }
            }
            assert!(out.eq_ignore_ascii_case(&v), "{v:?} -> {out:?}");
            checked += 1;
        }
        assert!(checked > 10_000, "{checked}");
    }

    /// `apply_shared` gives what `apply` gives, for the functions it writes
    /// itself and for one it passes on.
    #[test]
    fn shared_results_match_apply() {
        for name in ["lowercase", "uppercase", "urlDecodeUni"] {
            let t = Transform::from_name(name).unwrap();
            for v in [&b"Mixed-Case%41"[..], b"lower", b"UPPER", b"", b"\xc3\xa9A"] {
                assert_eq!(
                    t.apply_shared(v).as_deref(),
                    t.apply(v).as_deref(),
                    "{name} {v:?}"
                );
            }
        }
    }

    /// The `apply` fast paths (`None` without running the function) agree
    /// with running the function and comparing, on random short inputs.
    #[test]
    fn fast_paths_match_full_functions() {
        let alphabet: &[u8] = b"aZ /.\\\\#-*<!>x0X9f%+&;'\"^,(\t\n\r\x0b\x0c\0\xa0\xc3";
        type Full = fn(&[u8]) -> Vec<u8>;
        let fns: [(&str, Full); 11] = [
            ("removeWhitespace", remove_whitespace),
            ("compressWhitespace", compress_whitespace),
            ("replaceComments", replace_comments),
            ("removeComments", remove_comments),
            ("removeCommentsChar", remove_comments_char),
            ("cmdLine", cmd_line),
            ("normalizePath", |v| normalize_path(v, false)),
            ("normalizePathWin", |v| normalize_path(v, true)),
            ("sqlHexDecode", sql_hex_decode),
            ("trim", |v| trim_right(trim_left(v)).to_vec()),
            ("parityZero7bit", |v| v.iter().map(|&c| c & 0x7f).collect()),
        ];
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        // Paths: a small alphabet, so dots and separators meet often.
        for _ in 0..200_000 {
            let len = (next() % 11) as usize;
            let v: Vec<u8> = (0..len).map(|_| b"a/.\\"[(next() % 4) as usize]).collect();
            for win in [false, true] {
                if normalize_path_noop(&v, win) {
                    assert_eq!(normalize_path(&v, win), v, "win={win}");
                }
            }
        }
        for _ in 0..200_000 {
            let len = (next() % 9) as usize;
            let v: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            for (name, f) in &fns {
                let t = Transform::from_name(name).expect("known");
                let full = f(&v);
                let want = (full != v).then_some(full);
                assert_eq!(t.apply(&v), want, "{name}({v:?})");
            }
        }
    }
}
