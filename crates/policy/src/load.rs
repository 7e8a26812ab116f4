//! Parsing and validating `palisade.yaml`, with errors that name the file,
//! line and field.

use crate::model::{Policy, POLICY_FILE};
use crate::BuildError;

/// Parse and validate a policy file's text. `file` is used in errors only.
pub fn parse_policy(file: &str, text: &str) -> Result<Policy, BuildError> {
    let p: Policy = serde_yaml::from_str(text).map_err(|e| {
        let (line, col) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        // serde_yaml prefixes the path of the field ("routes[0]: unknown field ...").
        let msg = e.to_string();
        let msg = msg
            .rsplit_once(" at line ")
            .map(|(m, _)| m.to_string())
            .unwrap_or(msg);
        let (field, msg) = match msg.split_once(": ") {
            Some((f, m)) if !f.contains(' ') => (f.to_string(), m.to_string()),
            _ => ("(document)".to_string(), msg),
        };
        BuildError::Invalid {
            file: file.into(),
            line,
            col,
            field,
            msg,
        }
    })?;
    validate(file, text, &p)?;
    Ok(p)
}

/// Line and column of the first occurrence of `needle` after the line of
/// `anchor` (both searched in order), so semantic errors point near the field.
fn locate(text: &str, anchor: &str, needle: &str) -> (usize, usize) {
    let start = text.find(anchor).unwrap_or(0);
    let at = text[start..]
        .find(needle)
        .map(|i| start + i)
        .unwrap_or(start);
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, col)
}

fn validate(file: &str, text: &str, p: &Policy) -> Result<(), BuildError> {
    let err = |anchor: &str, needle: &str, field: String, msg: String| {
        let (line, col) = locate(text, anchor, needle);
        Err(BuildError::Invalid {
            file: file.into(),
            line,
            col,
            field,
            msg,
        })
    };
    if p.version != 1 {
        return err(
            "version",
            "version",
            "version".into(),
            format!("unsupported version {} (this Palisade reads 1)", p.version),
        );
    }
    if p.name.trim().is_empty() {
        return err("name", "name", "name".into(), "must not be empty".into());
    }
    for (name, u) in &p.upstreams {
        if u.targets.is_empty() {
            return err(
                "upstreams",
                &format!("{name}:"),
                format!("upstreams.{name}.targets"),
                "needs at least one host:port target".into(),
            );
        }
        for t in &u.targets {
            if !valid_target(t) {
                return err(
                    "upstreams",
                    t,
                    format!("upstreams.{name}.targets"),
                    format!("`{t}` is not host:port"),
                );
            }
        }
    }
    if p.routes.is_empty() {
        return err(
            "routes",
            "routes",
            "routes".into(),
            "needs at least one route".into(),
        );
    }
    let mut names = std::collections::HashSet::new();
    for (i, r) in p.routes.iter().enumerate() {
        let anchor = format!("name: {}", r.name);
        if !names.insert(r.name.as_str()) {
            return err(
                "routes",
                &anchor,
                format!("routes[{i}].name"),
                format!("duplicate route name `{}`", r.name),
            );
        }
        if !p.upstreams.contains_key(&r.upstream) {
            return err(
                &anchor,
                &format!("upstream: {}", r.upstream),
                format!("routes[{i}].upstream"),
                format!(
                    "unknown upstream `{}` (defined: {})",
                    r.upstream,
                    p.upstreams.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        if let Some(pp) = &r.path_prefix {
            if !pp.starts_with('/') {
                return err(
                    &anchor,
                    "path_prefix",
                    format!("routes[{i}].path_prefix"),
                    "must start with `/`".into(),
                );
            }
        }
        if let Some(pl) = r.waf.as_ref().and_then(|w| w.paranoia_level) {
            if !(1..=4).contains(&pl) {
                return err(
                    &anchor,
                    "paranoia_level",
                    format!("routes[{i}].waf.paranoia_level"),
                    "must be 1-4".into(),
                );
            }
        }
    }
    let w = &p.waf;
    if !(1..=4).contains(&w.paranoia_level) {
        return err(
            "waf:",
            "paranoia_level",
            "waf.paranoia_level".into(),
            "must be 1-4".into(),
        );
    }
    if let Some(d) = w.detection_paranoia_level {
        if !(1..=4).contains(&d) {
            return err(
                "waf:",
                "detection_paranoia_level",
                "waf.detection_paranoia_level".into(),
                "must be 1-4".into(),
            );
        }
    }
    let waf_used = w.enabled
        || p.routes
            .iter()
            .any(|r| r.waf.as_ref().and_then(|w| w.enabled) == Some(true));
    if waf_used && w.rules.is_empty() {
        return err(
            "waf:",
            "enabled",
            "waf.rules".into(),
            "the WAF is enabled but no rule files are listed".into(),
        );
    }
    for net in &p.server.trusted_proxies {
        let ok = net.parse::<ipnet::IpNet>().is_ok() || net.parse::<std::net::IpAddr>().is_ok();
        if !ok {
            return err(
                "trusted_proxies",
                net,
                "server.trusted_proxies".into(),
                format!("`{net}` is not an IP address or CIDR"),
            );
        }
    }
    let _ = POLICY_FILE;
    Ok(())
}

fn valid_target(t: &str) -> bool {
    match t.rsplit_once(':') {
        Some((h, port)) => !h.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "version: 1\nname: t\nupstreams:\n  app:\n    targets: [\"127.0.0.1:9\"]\nroutes:\n  - name: a\n    upstream: app\n";

    #[test]
    fn parses_minimal_policy_with_defaults() {
        let p = parse_policy("p.yaml", OK).unwrap();
        assert_eq!(p.limits.max_header_count, 100);
        assert!(!p.waf.enabled);
    }

    #[test]
    fn unknown_field_names_line_and_field() {
        let bad = OK.replace("    upstream: app\n", "    upstream: app\n    uptream: x\n");
        let e = parse_policy("p.yaml", &bad).unwrap_err().to_string();
        assert!(e.starts_with("p.yaml:9:"), "{e}");
        assert!(e.contains("routes[0]"), "{e}");
        assert!(e.contains("uptream"), "{e}");
    }

    #[test]
    fn unknown_upstream_points_at_the_route() {
        let bad = OK.replace("upstream: app", "upstream: nope");
        let e = parse_policy("p.yaml", &bad).unwrap_err().to_string();
        assert!(e.starts_with("p.yaml:8:"), "{e}");
        assert!(e.contains("routes[0].upstream"), "{e}");
    }

    #[test]
    fn semantic_checks() {
        for (from, to, field) in [
            ("127.0.0.1:9", "nope", "upstreams.app.targets"),
            ("version: 1", "version: 2", "version"),
        ] {
            let e = parse_policy("p.yaml", &OK.replace(from, to))
                .unwrap_err()
                .to_string();
            assert!(e.contains(field), "{e}");
        }
        let waf = format!("{OK}waf:\n  enabled: true\n");
        let e = parse_policy("p.yaml", &waf).unwrap_err().to_string();
        assert!(e.contains("waf.rules"), "{e}");
        let tp = format!("{OK}server:\n  trusted_proxies: [\"10.0.0.0/33\"]\n");
        let e = parse_policy("p.yaml", &tp).unwrap_err().to_string();
        assert!(e.contains("server.trusted_proxies"), "{e}");
    }

    #[test]
    fn not_yaml_is_an_error_not_a_panic() {
        assert!(parse_policy("p.yaml", "::: [").is_err());
        assert!(parse_policy("p.yaml", "").is_err());
        assert!(parse_policy("p.yaml", "\u{0}\u{1}").is_err());
    }
}
