//! Alert-log handling: marker search, slicing between markers, rule ids.

use regex::bytes::Regex;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::OnceLock;

fn std_id_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r#"\[(?:id |\\?"id\\?":)\\?"(\d+)\\?"\]"#).expect("static regex"))
}

fn json_id_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r#"(?:\{|,)\s*"(?:id|ruleId)":\s*"?(\d+)"?"#).expect("static regex")
    })
}

/// Rule ids in one log line (go-ftw: the ModSecurity form, else the JSON form).
pub fn ids_in_line(line: &[u8]) -> Vec<u64> {
    let mut ids: Vec<u64> = std_id_re()
        .captures_iter(line)
        .filter_map(|c| std::str::from_utf8(c.get(1)?.as_bytes()).ok()?.parse().ok())
        .collect();
    if ids.is_empty() {
        ids = json_id_re()
            .captures_iter(line)
            .filter_map(|c| std::str::from_utf8(c.get(1)?.as_bytes()).ok()?.parse().ok())
            .collect();
    }
    ids
}

/// Sorted, deduplicated rule ids of the given lines.
pub fn triggered_ids<L: AsRef<[u8]>>(lines: &[L]) -> Vec<u64> {
    let mut ids: Vec<u64> = lines.iter().flat_map(|l| ids_in_line(l.as_ref())).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn contains_ci(line: &[u8], needle_lower: &[u8]) -> bool {
    if needle_lower.is_empty() {
        return true;
    }
    line.windows(needle_lower.len()).any(|w| {
        w.iter()
            .zip(needle_lower)
            .all(|(a, b)| a.to_ascii_lowercase() == *b)
    })
}

/// Byte span `(start, end)` of the first line in `buf` that contains
/// `marker` (case-insensitive); `end` is just past its newline (or the end of
/// `buf` for an unterminated last line).
pub fn find_marker_line(buf: &[u8], marker: &str) -> Option<(usize, usize)> {
    let m = marker.to_ascii_lowercase();
    let mut start = 0;
    while start < buf.len() {
        let end = buf[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|p| start + p + 1)
            .unwrap_or(buf.len());
        if contains_ci(&buf[start..end], m.as_bytes()) {
            return Some((start, end));
        }
        start = end;
    }
    None
}

/// Lines strictly between the first line containing `start` and the next
/// line containing `end`; `None` when either marker is missing.
/// Repeated marker lines (re-sent markers) are dropped.
pub fn slice_between_markers(log: &[u8], start: &str, end: &str) -> Option<Vec<Vec<u8>>> {
    let (_, s_end) = find_marker_line(log, start)?;
    let rest = &log[s_end..];
    let (e_start, _) = find_marker_line(rest, end)?;
    Some(split_lines(&rest[..e_start], &[start, end]))
}

/// Split into lines (no `\r\n`), dropping empty lines and lines that contain
/// any of `markers`.
pub fn split_lines(buf: &[u8], markers: &[&str]) -> Vec<Vec<u8>> {
    let ms: Vec<String> = markers.iter().map(|m| m.to_ascii_lowercase()).collect();
    buf.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .filter(|l| !ms.iter().any(|m| contains_ci(l, m.as_bytes())))
        .map(<[u8]>::to_vec)
        .collect()
}

/// Current length of the log file (0 when it does not exist yet).
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The log's bytes from `offset` to its end. A file shorter than `offset`
/// (truncated or rotated) is read from its start.
pub fn read_from(path: &Path, offset: u64) -> std::io::Result<(u64, Vec<u8>)> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, Vec::new())),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let offset = if len < offset { 0 } else { offset };
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity((len - offset) as usize);
    f.read_to_end(&mut buf)?;
    Ok((offset, buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_forms() {
        assert_eq!(
            ids_in_line(br#"[msg "x"] [id "942100"] [rev ""] [id "1"]"#),
            vec![942100, 1]
        );
        assert_eq!(ids_in_line(br#"{"x":1,"id":"920350","m":2}"#), vec![920350]);
        assert_eq!(ids_in_line(br#"[\"id\":\"941100\"]"#), vec![941100]);
        assert_eq!(ids_in_line(br#"{"ruleId": 933100}"#), vec![933100]);
        assert!(ids_in_line(b"nothing here id 5").is_empty());
        assert_eq!(
            triggered_ids(&[&b"[id \"2\"] [id \"1\"]"[..], b"[id \"2\"]"]),
            vec![1, 2]
        );
    }

    #[test]
    fn slicing() {
        let log = b"old [id \"1\"]\n\
            marker X-CRS-Test AAA-s [id \"999999\"]\n\
            [id \"942100\"] hit\r\n\
            \n\
            other [id \"920350\"]\n\
            marker X-CRS-Test aaa-E [id \"999999\"]\n\
            marker X-CRS-Test aaa-e again\n\
            after [id \"3\"]\n";
        let lines = slice_between_markers(log, "aaa-s", "aaa-e").unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(triggered_ids(&lines), vec![920350, 942100]);
        assert!(slice_between_markers(log, "bbb-s", "aaa-e").is_none());
        assert!(slice_between_markers(log, "aaa-s", "bbb-e").is_none());
        assert_eq!(find_marker_line(b"a\nb-x\nc", "B-X"), Some((2, 6)));
        assert_eq!(find_marker_line(b"a\nb-x", "b-x"), Some((2, 5)));
    }

    #[test]
    fn read_offsets() {
        let p = std::env::temp_dir().join(format!("ftw-waflog-{}.log", std::process::id()));
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(file_len(&p), 10);
        assert_eq!(read_from(&p, 4).unwrap(), (4, b"456789".to_vec()));
        assert_eq!(read_from(&p, 40).unwrap(), (0, b"0123456789".to_vec()));
        let _ = std::fs::remove_file(&p);
        assert_eq!(read_from(&p, 4).unwrap(), (0, Vec::new()));
    }
}
