//! Engine semantics on small rule sets (no CRS needed).

use pipeline::{HttpVersion, RequestHead};
use seclang::{FileSource, LoadOptions, RuleSet, Transaction};
use std::collections::HashMap;
use std::sync::Arc;

struct Mem(HashMap<String, String>);

impl FileSource for Mem {
    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        self.0
            .get(path)
            .map(|s| s.as_bytes().to_vec())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, path.to_string()))
    }
    fn glob(&self, pattern: &str) -> std::io::Result<Vec<String>> {
        let prefix = pattern.split('*').next().unwrap_or("");
        let suffix = pattern.rsplit('*').next().unwrap_or("");
        let mut v: Vec<String> = self
            .0
            .keys()
            .filter(|k| k.starts_with(prefix) && k.ends_with(suffix))
            .cloned()
            .collect();
        v.sort();
        Ok(v)
    }
}

fn rules(files: &[(&str, &str)]) -> Result<RuleSet, seclang::LoadError> {
    let m = Mem(files
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect());
    RuleSet::load(&m, &[files[0].0.to_string()], &LoadOptions::default())
}

fn req(uri: &str, headers: &[(&str, &str)]) -> RequestHead {
    let (path, query) = uri
        .split_once('?')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap_or((uri.to_string(), String::new()));
    RequestHead {
        method: "GET".into(),
        uri_raw: uri.into(),
        path,
        query,
        version: HttpVersion::Http11,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect(),
        peer: "10.0.0.1:4444".parse().unwrap(),
        client_ip: "10.0.0.1".parse().unwrap(),
        tls: false,
        local: "10.0.0.2:80".parse().unwrap(),
    }
}

/// Run all phases; returns the transaction and the first intervention.
fn go(
    conf: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (Transaction, Option<seclang::Intervention>) {
    let rs = Arc::new(rules(&[("main.conf", conf)]).unwrap_or_else(|e| panic!("{e}")));
    let mut tx = Transaction::new(rs, &req(uri, headers), "uid-1".into());
    let mut iv = tx.process_request_headers();
    if iv.is_none() && tx.wants_request_body() {
        iv = tx.process_request_body(body, false);
    }
    if iv.is_none() {
        iv = tx.process_response_headers(200, "HTTP/1.1", &[]);
    }
    tx.process_logging();
    (tx, iv)
}

fn ids(tx: &Transaction) -> Vec<u64> {
    tx.matched()
        .iter()
        .filter(|m| m.log)
        .map(|m| m.id)
        .collect()
}

#[test]
fn chain_only_last_link_triggers() {
    let conf = r#"
SecRule ARGS:a "@streq 1" "id:1,phase:1,deny,status:401,chain"
    SecRule ARGS:b "@streq 2" "setvar:tx.linked=1"
SecRule ARGS:a "@streq 1" "id:2,phase:1,pass,log,chain,setvar:tx.starter=1"
    SecRule ARGS:b "@streq 9"
"#;
    let (tx, iv) = go(conf, "/?a=1&b=2", &[], b"");
    assert_eq!(iv.unwrap().status, 401);
    assert_eq!(ids(&tx), vec![1]);
    assert_eq!(tx.tx_var("linked").as_deref(), Some("1"));
    let (tx, iv) = go(conf, "/?a=1&b=3", &[], b"");
    assert!(iv.is_none());
    // v2 runs the starter's setvar as soon as the starter matches, even if the chain fails.
    assert_eq!(tx.tx_var("starter").as_deref(), Some("1"));
    assert!(ids(&tx).is_empty());
}

#[test]
fn matched_var_within_chain_and_logdata_macros() {
    let conf = r#"
SecRule ARGS "@rx ^x" "id:10,phase:1,pass,log,msg:'m %{MATCHED_VAR_NAME}',logdata:'%{MATCHED_VAR}',chain"
    SecRule MATCHED_VARS_NAMES "@rx ^ARGS:(k)" "capture,setvar:tx.cap=%{TX.1}"
"#;
    let (tx, _) = go(conf, "/?k=xyz", &[], b"");
    let m = tx
        .matched()
        .iter()
        .find(|m| m.id == 10)
        .expect("10 matched");
    assert_eq!(m.msg, "m MATCHED_VARS_NAMES:ARGS:k");
    assert_eq!(m.data, "ARGS:k");
    assert_eq!(tx.tx_var("cap").as_deref(), Some("k"));
}

#[test]
fn matched_vars_hold_only_the_current_rules_matches() {
    // Rule 20 matches three arguments, rule 21 one: its chain must see
    // exactly one MATCHED_VARS entry, with rule 21's value, not a left-over
    // of rule 20's longer list.
    let conf = r#"
SecRule ARGS "@rx ." "id:20,phase:1,pass,nolog"
SecRule ARGS:b "@rx ." "id:21,phase:1,pass,log,chain"
    SecRule &MATCHED_VARS "@eq 1" "chain"
    SecRule MATCHED_VARS "@streq bbb" "setvar:tx.only=%{MATCHED_VAR}"
SecRule ARGS:c "@rx ." "id:22,phase:1,pass,log,chain"
    SecRule MATCHED_VARS "@streq aaaa" "setvar:tx.stale=1"
"#;
    let (tx, _) = go(conf, "/?a=aaaa&b=bbb&c=cc", &[], b"");
    assert_eq!(ids(&tx), vec![21]);
    assert_eq!(tx.tx_var("only").as_deref(), Some("bbb"));
    assert_eq!(tx.tx_var("stale"), None);
}

/// MATCHED_VARS read only through a macro (no link targets it) is still
/// filled: the list is skipped only for rules that cannot read it.
#[test]
fn matched_vars_read_by_a_macro_alone_are_kept() {
    let conf = r#"
SecRule ARGS "@rx ." "id:30,phase:1,pass,nolog,chain"
    SecRule ARGS:b "@rx ." "setvar:tx.first=%{MATCHED_VARS}"
SecRule ARGS:b "@rx ." "id:31,phase:1,pass,nolog,setvar:tx.none=x%{matched_vars}"
"#;
    let (tx, _) = go(conf, "/?a=aaaa&b=bbb", &[], b"");
    assert_eq!(tx.tx_var("first").as_deref(), Some("aaaa"));
    // Rule 31's own match is the list's only entry when its setvar runs.
    assert_eq!(tx.tx_var("none").as_deref(), Some("xbbb"));
}

/// Capture groups are written into the buffers of earlier matches: a
/// later match with fewer groups, an unmatched optional group, or an
/// operator that captures nothing must not show an earlier match's groups.
#[test]
fn captures_show_only_the_current_match() {
    let conf = r#"
SecRule ARGS:a "@rx ^(x)(y)(z)$" "id:1,phase:1,pass,nolog,capture,setvar:tx.first=%{tx.0}-%{tx.3}"
SecRule ARGS:b "@rx ^(q)$" "id:2,phase:1,pass,nolog,capture,setvar:tx.second=%{tx.0}-%{tx.1}-%{tx.3}"
SecRule ARGS:c "!@rx ^(n)$" "id:3,phase:1,pass,nolog,capture,setvar:tx.third=%{tx.0}"
SecRule ARGS "@rx ^(\w)(\w)?" "id:4,phase:1,pass,nolog,capture,setvar:tx.r4_%{tx.0}=%{tx.2}."
SecRule ARGS:c "@streq m" "id:5,phase:1,pass,nolog,capture,setvar:tx.fifth=%{tx.0}"
"#;
    for _ in 0..3 {
        let (tx, _) = go(conf, "/?a=xyz&b=q&c=m", &[], b"");
        let var = |k: &str| tx.tx_var(k);
        assert_eq!(var("first").as_deref(), Some("xyz-z"));
        assert_eq!(var("second").as_deref(), Some("q-q-"));
        // A negated operator captures nothing: TX:0 is rule 2's.
        assert_eq!(var("third").as_deref(), Some("q"));
        assert_eq!(var("r4_xy").as_deref(), Some("y."));
        assert_eq!(var("r4_q").as_deref(), Some("."));
        assert_eq!(var("r4_m").as_deref(), Some("."));
        // @streq captures nothing either: TX:0 is still rule 4's last match.
        assert_eq!(var("fifth").as_deref(), Some("m"));
    }
}

#[test]
fn multipart_flags_survive_a_failed_parse() {
    // The body uses bare LF line endings and lacks its final boundary: the
    // parse fails, and MULTIPART_LF_LINE still says what the parser saw.
    let conf = r#"
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "^multipart/form-data" "id:1,phase:1,pass,nolog,ctl:requestBodyProcessor=MULTIPART"
SecRule MULTIPART_LF_LINE "@eq 1" "id:2,phase:2,pass,log"
SecRule REQBODY_ERROR "@eq 1" "id:3,phase:2,pass,log"
SecRule MULTIPART_STRICT_ERROR "@eq 1" "id:4,phase:2,pass,log"
"#;
    let body = b"--b\nContent-Disposition: form-data; name=a\n\n1\n";
    let len = body.len().to_string();
    let headers = [
        ("Content-Type", "multipart/form-data; boundary=b"),
        ("Content-Length", len.as_str()),
    ];
    let (tx, _) = go(conf, "/upload", &headers, body);
    assert_eq!(ids(&tx), vec![2, 3, 4]);
}

#[test]
fn skip_after_and_markers() {
    let conf = r#"
SecAction "id:1,phase:1,pass,nolog,skipAfter:END"
SecAction "id:2,phase:1,pass,log"
SecMarker END
SecAction "id:3,phase:1,pass,log,skip:1"
SecAction "id:4,phase:1,pass,log"
SecAction "id:5,phase:1,pass,log"
"#;
    let (tx, _) = go(conf, "/", &[], b"");
    assert_eq!(ids(&tx), vec![3, 5]);
}

#[test]
fn setvar_arithmetic_and_delete() {
    let conf = r#"
SecAction "id:1,phase:1,pass,nolog,setvar:tx.a=5,setvar:tx.a=+3,setvar:tx.b=10,setvar:tx.b=-4,setvar:tx.c=+2,setvar:tx.d=x,setvar:!tx.d,setvar:'tx.e=%{tx.a}%{tx.b}'"
"#;
    let (tx, _) = go(conf, "/", &[], b"");
    assert_eq!(tx.tx_var("a").as_deref(), Some("8"));
    assert_eq!(tx.tx_var("b").as_deref(), Some("6"));
    assert_eq!(tx.tx_var("c").as_deref(), Some("2"));
    assert_eq!(tx.tx_var("d"), None);
    assert_eq!(tx.tx_var("e").as_deref(), Some("86"));
}

#[test]
fn setvar_runs_once_per_matched_target() {
    let conf = r#"SecRule ARGS "@rx bad" "id:1,phase:1,pass,log,setvar:tx.score=+5""#;
    let (tx, _) = go(conf, "/?a=bad&b=bad&c=ok", &[], b"");
    assert_eq!(tx.tx_var("score").as_deref(), Some("10"));
    assert_eq!(ids(&tx), vec![1]);
}

#[test]
fn ctl_rule_remove_by_id_mid_transaction() {
    let conf = r#"
SecRule ARGS:off "@streq 1" "id:1,phase:1,pass,nolog,ctl:ruleRemoveById=3-4"
SecAction "id:2,phase:1,pass,log"
SecAction "id:3,phase:1,pass,log"
SecAction "id:4,phase:2,pass,log"
SecAction "id:5,phase:2,pass,log"
"#;
    let (tx, _) = go(conf, "/?off=1", &[], b"");
    assert_eq!(ids(&tx), vec![2, 5]);
    let (tx, _) = go(conf, "/?off=0", &[], b"");
    assert_eq!(ids(&tx), vec![2, 3, 4, 5]);
}

#[test]
fn ctl_rule_remove_target_by_id() {
    let conf = r#"
SecAction "id:1,phase:1,pass,nolog,ctl:ruleRemoveTargetById=2;ARGS:safe"
SecRule ARGS "@rx evil" "id:2,phase:1,pass,log,setvar:tx.hits=+1"
"#;
    let (tx, _) = go(conf, "/?safe=evil&other=evil", &[], b"");
    assert_eq!(tx.tx_var("hits").as_deref(), Some("1"));
    let m = tx.matched().iter().find(|m| m.id == 2).unwrap();
    assert_eq!(m.matched_var_name, "ARGS:other");
}

/// As CRS 941010 does: a tag's rules lose one variable for the rest of the
/// transaction. A rule reading it loses only those items, a rule not reading
/// it is unchanged, and a name no variable has removes nothing.
#[test]
fn ctl_remove_target_by_tag_takes_only_that_variable() {
    let conf = r#"
SecAction "id:1,phase:1,pass,nolog,ctl:ruleRemoveTargetByTag=perf;REQUEST_FILENAME,ctl:ruleRemoveTargetByTag=perf;NO_SUCH_VAR"
SecRule REQUEST_FILENAME|ARGS "@rx evil" "id:2,phase:1,pass,log,tag:'perf',setvar:tx.a=+1"
SecRule ARGS "@rx evil" "id:3,phase:1,pass,log,tag:'perf',setvar:tx.b=+1"
SecRule REQUEST_FILENAME "@rx evil" "id:4,phase:1,pass,log,tag:'other',setvar:tx.c=+1"
SecRule ARGS_NAMES|REQUEST_FILENAME "@rx evil" "id:5,phase:1,pass,log,tag:'perf',setvar:tx.d=+1"
SecRule REQUEST_FILENAME "@rx evil" "id:6,phase:1,pass,log,tag:'perf',setvar:tx.e=+1"
"#;
    let (tx, _) = go(conf, "/evil?x=evil&evil=1", &[], b"");
    assert_eq!(tx.tx_var("a").as_deref(), Some("1"));
    let m = tx.matched().iter().find(|m| m.id == 2).unwrap();
    assert_eq!(m.matched_var_name, "ARGS:x");
    assert_eq!(tx.tx_var("b").as_deref(), Some("1"));
    assert_eq!(tx.tx_var("c").as_deref(), Some("1"));
    assert_eq!(tx.tx_var("d").as_deref(), Some("1"));
    let m = tx.matched().iter().find(|m| m.id == 5).unwrap();
    assert_eq!(m.matched_var_name, "ARGS_NAMES:evil");
    assert_eq!(tx.tx_var("e"), None);
    // Without the exclusions, the file name counts too.
    let (tx, _) = go(
        &conf.replace("SecAction", "#"),
        "/evil?x=evil&evil=1",
        &[],
        b"",
    );
    assert_eq!(tx.tx_var("a").as_deref(), Some("2"));
    assert_eq!(tx.tx_var("d").as_deref(), Some("2"));
    assert_eq!(tx.tx_var("e").as_deref(), Some("1"));
}

#[test]
fn target_exclusions_counts_and_selectors() {
    let conf = r#"
SecRule ARGS|!ARGS:skip "@rx ." "id:1,phase:1,pass,nolog,setvar:tx.n=+1"
SecRule &ARGS "@eq 3" "id:2,phase:1,pass,nolog,setvar:tx.three=1"
SecRule &ARGS:missing "@eq 0" "id:3,phase:1,pass,nolog,setvar:tx.missing=1"
SecRule ARGS:/^p_/ "@rx ." "id:4,phase:1,pass,nolog,setvar:tx.p=+1"
SecRule REQUEST_HEADERS:user-agent "@rx ^curl" "id:5,phase:1,pass,nolog,setvar:tx.ua=%{MATCHED_VAR_NAME}"
SecRule REQUEST_COOKIES|!REQUEST_COOKIES:/^__utm/ "@rx ." "id:6,phase:1,pass,nolog,setvar:tx.c=+1"
SecRule REQUEST_COOKIES_NAMES "@rx ^sess" "id:7,phase:1,pass,nolog,setvar:tx.cn=%{MATCHED_VAR}"
"#;
    let hdrs = [
        ("User-Agent", "curl/8"),
        ("Cookie", "__utma=1; __utmz=2; session=3"),
    ];
    let (tx, _) = go(conf, "/?skip=1&p_a=1&p_b=2", &hdrs, b"");
    assert_eq!(tx.tx_var("n").as_deref(), Some("2"));
    assert_eq!(tx.tx_var("three").as_deref(), Some("1"));
    assert_eq!(tx.tx_var("missing").as_deref(), Some("1"));
    assert_eq!(tx.tx_var("p").as_deref(), Some("2"));
    assert_eq!(
        tx.tx_var("ua").as_deref(),
        Some("REQUEST_HEADERS:User-Agent")
    );
    assert_eq!(tx.tx_var("c").as_deref(), Some("1"));
    assert_eq!(tx.tx_var("cn").as_deref(), Some("session"));
}

#[test]
fn request_line_variables() {
    // REQUEST_FILENAME is the path as Apache hands it to ModSecurity's phase 2:
    // percent-decoded (CRS tests 933151-1, 933160-18 rely on it); REQUEST_URI stays raw.
    let conf = r#"
SecRule REQUEST_URI "@streq /a%20b/c.php?x=%27" "id:1,phase:1,pass,nolog,setvar:tx.uri=1"
SecRule REQUEST_FILENAME "@streq /a b/c.php" "id:2,phase:1,pass,nolog,setvar:tx.fn=1"
SecRule REQUEST_BASENAME "@streq c.php" "id:3,phase:1,pass,nolog,setvar:tx.bn=1"
SecRule QUERY_STRING "@streq x=%27" "id:4,phase:1,pass,nolog,setvar:tx.qs=1"
SecRule ARGS_GET:x "@streq '" "id:5,phase:1,pass,nolog,setvar:tx.arg=1"
SecRule REQUEST_LINE "@streq GET /a%20b/c.php?x=%27 HTTP/1.1" "id:6,phase:1,pass,nolog,setvar:tx.rl=1"
SecRule REMOTE_ADDR "@streq 10.0.0.1" "id:7,phase:1,pass,nolog,setvar:tx.ra=1"
SecRule REQUEST_PROTOCOL "@streq HTTP/1.1" "id:8,phase:1,pass,nolog,setvar:tx.proto=1"
SecRule UNIQUE_ID "@streq uid-1" "id:9,phase:1,pass,nolog,setvar:tx.uid=1"
"#;
    let (tx, _) = go(conf, "/a%20b/c.php?x=%27", &[], b"");
    for v in ["uri", "fn", "bn", "qs", "arg", "rl", "ra", "proto", "uid"] {
        assert_eq!(tx.tx_var(v).as_deref(), Some("1"), "{v}");
    }
}

#[test]
fn urlencoded_body_and_request_body() {
    let conf = r#"
SecRule ARGS_POST:a "@streq 1 2" "id:1,phase:2,pass,nolog,setvar:tx.post=1"
SecRule REQUEST_BODY "@streq a=1+2" "id:2,phase:2,pass,nolog,setvar:tx.body=1"
SecRule REQBODY_PROCESSOR "@streq URLENCODED" "id:3,phase:1,pass,nolog,setvar:tx.proc=1"
SecRule ARGS_NAMES "@streq a" "id:4,phase:2,pass,nolog,setvar:tx.names=1"
"#;
    let (tx, _) = go(
        conf,
        "/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"a=1+2",
    );
    for v in ["post", "body", "proc", "names"] {
        assert_eq!(tx.tx_var(v).as_deref(), Some("1"), "{v}");
    }
}

#[test]
fn detection_only_logs_without_intervention() {
    let conf = "SecRuleEngine DetectionOnly\nSecRule ARGS \"@rx x\" \"id:1,phase:1,deny,log\"\n";
    let (tx, iv) = go(conf, "/?a=x", &[], b"");
    assert!(iv.is_none());
    assert_eq!(ids(&tx), vec![1]);
}

#[test]
fn block_uses_phase_default_action() {
    let conf = r#"
SecDefaultAction "phase:1,log,deny,status:418"
SecDefaultAction "phase:2,log,pass"
SecRule ARGS "@rx x" "id:1,phase:2,block,setvar:tx.two=1"
SecRule ARGS "@rx x" "id:2,phase:1,block"
"#;
    let (tx, iv) = go(conf, "/?a=x", &[], b"");
    assert_eq!(iv.unwrap().status, 418);
    assert_eq!(ids(&tx), vec![2]);
}

#[test]
fn allow_skips_remaining_request_rules() {
    let conf = r#"
SecRule REMOTE_ADDR "@streq 10.0.0.1" "id:1,phase:1,allow,nolog"
SecAction "id:2,phase:1,deny,log"
SecAction "id:3,phase:2,deny,log"
"#;
    let (tx, iv) = go(conf, "/", &[], b"");
    assert!(iv.is_none());
    assert!(ids(&tx).is_empty());
}

#[test]
fn nolog_rules_are_recorded_but_not_logged() {
    let (tx, _) = go(
        "SecRule REQUEST_URI \"@streq /\" \"id:7,phase:1,pass,nolog\"\n",
        "/",
        &[],
        b"",
    );
    assert_eq!(tx.matched().len(), 1);
    assert!(!tx.matched()[0].log);
}

/// Rules that read only configuration-constant TX are evaluated at load
/// time; a TX variable a request can change keeps its rules dynamic.
#[test]
fn constant_tx_rules_fold_without_changing_results() {
    let conf = r#"
SecAction "id:1,phase:1,pass,nolog,setvar:tx.pl=1,setvar:tx.score=0"
SecRule TX:pl "@lt 2" "id:2,phase:1,pass,nolog,skipAfter:END-PL2"
SecRule REQUEST_URI "@contains pl2" "id:3,phase:1,deny,log,status:403"
SecMarker END-PL2
SecRule TX:pl "@ge 1" "id:4,phase:2,pass,nolog,setvar:tx.score=+%{tx.pl}"
SecRule TX:score "@ge 1" "id:5,phase:2,deny,log,status:406"
"#;
    // All constant: folded, and the outcome is what running them gives.
    let (tx, iv) = go(conf, "/pl2", &[], b"");
    assert_eq!(iv.map(|i| i.status), Some(406));
    assert_eq!(tx.tx_var("pl").as_deref(), Some("1"));
    assert_eq!(tx.tx_var("score").as_deref(), Some("1"));
    assert_eq!(ids(&tx), vec![5]);
    // The initialisation, the gate and the sum never run per request.
    assert!(tx.stats().rules_evaluated <= 3, "{:?}", tx.stats());

    // A request header may raise tx.pl: the gate and the sum stay dynamic.
    let dynamic = format!(
        "{}\n{conf}",
        r#"SecRule REQUEST_HEADERS:X-PL "@rx ^(\d)$" "id:9,phase:1,pass,nolog,capture,setvar:tx.pl=%{tx.1}""#
    );
    let dynamic = dynamic.replacen(
        "SecAction \"id:1,phase:1,pass,nolog,setvar:tx.pl=1,setvar:tx.score=0\"\n",
        "",
        1,
    );
    let dynamic = format!(
        "SecAction \"id:1,phase:1,pass,nolog,setvar:tx.pl=1,setvar:tx.score=0\"\n{dynamic}"
    );
    let (tx, iv) = go(&dynamic, "/pl2", &[("X-PL", "3")], b"");
    assert_eq!(iv.map(|i| i.status), Some(403));
    assert_eq!(ids(&tx), vec![3]);
    let (tx, iv) = go(&dynamic, "/x", &[("X-PL", "3")], b"");
    assert_eq!(iv.map(|i| i.status), Some(406));
    assert_eq!(tx.tx_var("score").as_deref(), Some("3"));
}

/// A chain whose first link reads only constant TX and cannot match (CRS's
/// optional checks, unconfigured) never runs; set by the configuration or
/// by a request, it runs as before.
#[test]
fn chains_behind_an_unset_constant_never_run() {
    let conf = r#"
SecRule &TX:limit "@eq 1" "id:2,phase:2,deny,log,status:403,chain"
    SecRule ARGS:a "@rx ." "t:none"
SecRule ARGS:a "@rx ." "id:3,phase:2,pass,log"
"#;
    let (tx, iv) = go(conf, "/?a=x", &[], b"");
    assert!(iv.is_none());
    assert_eq!(ids(&tx), vec![3]);
    assert_eq!(tx.stats().rules_evaluated, 1, "only rule 3 is evaluated");

    let configured = format!("SecAction \"id:1,phase:1,pass,nolog,setvar:tx.limit=5\"\n{conf}");
    let (tx, iv) = go(&configured, "/?a=x", &[], b"");
    assert_eq!(iv.map(|i| i.status), Some(403));
    assert_eq!(ids(&tx), vec![2]);

    let dynamic = format!(
        "SecRule REQUEST_HEADERS:X-Limit \"@rx .\" \"id:1,phase:1,pass,nolog,setvar:tx.limit=1\"\n{conf}"
    );
    let (tx, iv) = go(&dynamic, "/?a=x", &[("X-Limit", "1")], b"");
    assert_eq!(iv.map(|i| i.status), Some(403));
    assert_eq!(ids(&tx), vec![2]);
    let (tx, iv) = go(&dynamic, "/?a=x", &[], b"");
    assert!(iv.is_none());
    assert_eq!(ids(&tx), vec![3]);
    assert_eq!(
        tx.stats().rules_evaluated,
        3,
        "rules 1, 2 and 3 are evaluated"
    );
}

/// A chain whose first link reads only constant TX has that link's matches
/// decided at load time: its captures and setvars still apply per request,
/// and the links after it still run, as when the TX comes from the request.
#[test]
fn constant_chain_starters_keep_their_actions() {
    let chain = r#"
SecRule TX:mode "@rx ^(str)" "id:2,phase:2,pass,log,capture,setvar:tx.seen=+1,chain"
    SecRule ARGS:a "@streq %{tx.1}" "setvar:tx.hit=%{MATCHED_VAR}"
"#;
    let constant = format!("SecAction \"id:1,phase:1,pass,nolog,setvar:tx.mode=strict\"\n{chain}");
    let dynamic = format!(
        "SecRule REQUEST_HEADERS:X-Mode \"@rx .\" \"id:1,phase:1,pass,nolog,setvar:tx.mode=%{{MATCHED_VAR}}\"\n{chain}"
    );
    for (conf, headers) in [
        (&constant, &[][..]),
        (&dynamic, &[("X-Mode", "strict")][..]),
    ] {
        let (tx, _) = go(conf, "/?a=str", headers, b"");
        assert_eq!(ids(&tx), vec![2], "{conf}");
        assert_eq!(tx.tx_var("seen").as_deref(), Some("1"));
        assert_eq!(tx.tx_var("hit").as_deref(), Some("str"));
        let (tx, _) = go(conf, "/?a=x", headers, b"");
        assert!(ids(&tx).is_empty());
        assert_eq!(
            tx.tx_var("seen").as_deref(),
            Some("1"),
            "the first link matched"
        );
        assert_eq!(tx.tx_var("hit"), None);
    }
    let (tx, _) = go(&constant, "/?a=x", &[], b"");
    assert_eq!(
        tx.stats().operator_calls,
        1,
        "only the second link is evaluated"
    );
}

/// A rule reading one TX member set per request: transformed, captured and
/// reported under its name like any other target.
#[test]
fn one_tx_member_rules_transform_capture_and_name() {
    let conf = r#"
SecRule REQUEST_HEADERS:X-V "@rx (.*)" "id:1,phase:1,pass,nolog,capture,setvar:tx.v=%{tx.1}"
SecRule TX:V "@rx ^(a)b" "id:2,phase:1,pass,log,capture,t:lowercase,setvar:tx.got=%{tx.1}-%{MATCHED_VAR_NAME}-%{MATCHED_VAR}"
SecRule TX:missing "@rx ^$" "id:3,phase:1,pass,log"
"#;
    let (tx, _) = go(conf, "/", &[("X-V", "ABC")], b"");
    assert_eq!(ids(&tx), vec![2]);
    assert_eq!(tx.tx_var("got").as_deref(), Some("a-TX:v-abc"));
    let (tx, _) = go(conf, "/", &[("X-V", "xbc")], b"");
    assert!(ids(&tx).is_empty());
    assert_eq!(tx.tx_var("got"), None);
}

/// The rule loop visits only the rules the phase's union pass leaves in,
/// yet `skip:N` still counts the rules it leaves out, and a `skipAfter`
/// lands where it names.
#[test]
fn skips_count_rules_the_union_pass_rules_out() {
    let conf = r#"
SecRule REQUEST_URI "@contains skip" "id:1,phase:2,pass,nolog,skip:2"
SecRule ARGS "@rx zzqqxx" "id:2,phase:2,deny,log,status:401"
SecRule ARGS "@rx yyqqxx" "id:3,phase:2,deny,log,status:402"
SecRule REQUEST_URI "@contains jump" "id:4,phase:2,pass,nolog,skipAfter:AFTER"
SecRule ARGS "@rx wwqqxx" "id:5,phase:2,deny,log,status:405"
SecMarker AFTER
SecRule ARGS "@rx vvqqxx" "id:6,phase:2,deny,log,status:406"
SecRule REQUEST_URI "@rx ." "id:7,phase:2,deny,log,status:403"
"#;
    let status = |uri: &str| go(conf, uri, &[], b"").1.map(|i| i.status);
    assert_eq!(status("/skip?a=b"), Some(403));
    assert_eq!(
        status("/skip?a=zzqqxx"),
        Some(403),
        "skip:2 passes rules 2 and 3"
    );
    assert_eq!(status("/x?a=yyqqxx"), Some(402));
    assert_eq!(
        status("/jump?a=wwqqxx"),
        Some(403),
        "skipAfter passes rule 5"
    );
    assert_eq!(status("/jump?a=vvqqxx"), Some(406));
    assert_eq!(status("/x?a=wwqqxx"), Some(405));
}

/// Score sums read TX members an attack raises: while no rule touched them
/// they are decided by their starting values, without evaluation, and as
/// soon as one is raised they run as written.
#[test]
fn untouched_scores_decide_their_rules() {
    let conf = |threshold: u32| {
        format!(
            r#"
SecAction "id:1,phase:1,pass,nolog,setvar:tx.score_pl1=0,setvar:tx.blocking=0,setvar:tx.threshold={threshold},setvar:tx.pl=1"
SecRule ARGS "@rx attack" "id:10,phase:2,pass,log,setvar:tx.score_pl1=+5"
SecRule TX:pl "@ge 1" "id:20,phase:2,pass,nolog,setvar:tx.blocking=+%{{tx.score_pl1}}"
SecRule TX:blocking "@ge %{{tx.threshold}}" "id:30,phase:2,deny,log,status:403"
"#
        )
    };
    let strict = conf(5);
    let (tx, iv) = go(&strict, "/?a=ok", &[], b"");
    assert!(iv.is_none());
    assert_eq!(tx.tx_var("blocking").as_deref(), Some("0"));
    assert_eq!(tx.stats().operator_calls, 0, "{:?}", tx.stats());
    let (tx, iv) = go(&strict, "/?a=attack", &[], b"");
    assert_eq!(iv.map(|i| i.status), Some(403));
    assert_eq!(ids(&tx), vec![10, 30]);
    assert_eq!(tx.tx_var("blocking").as_deref(), Some("5"));

    // Matching on the starting values: the decided match still denies.
    let open = conf(0);
    let (tx, iv) = go(&open, "/?a=ok", &[], b"");
    assert_eq!(iv.map(|i| i.status), Some(403));
    assert_eq!(ids(&tx), vec![30]);
    // Sums into keys the starting TX lacks (CRS 980099): the values they
    // leave, whatever those keys held; an addition to such a key still
    // adds to what it holds.
    let sums = format!(
        r#"{}
SecRule REQUEST_HEADERS:X-T "@rx (\d+)" "id:3,phase:1,pass,nolog,capture,setvar:tx.total=%{{tx.1}},setvar:tx.acc=%{{tx.1}}"
SecAction "id:40,phase:2,pass,nolog,setvar:tx.total=%{{tx.blocking}},setvar:tx.total=+%{{tx.score_pl1}}"
SecAction "id:42,phase:2,pass,nolog,setvar:tx.acc=+1"
SecRule TX:total "@ge 1" "id:41,phase:2,pass,log"
"#,
        conf(100)
    );
    for (uri, headers, total, acc) in [
        ("/?a=ok", &[][..], "0", "1"),
        ("/?a=ok", &[("X-T", "7")][..], "0", "8"),
        ("/?a=attack", &[("X-T", "7")][..], "10", "8"),
    ] {
        let (tx, _) = go(&sums, uri, headers, b"");
        assert_eq!(
            tx.tx_var("total").as_deref(),
            Some(total),
            "{uri} {headers:?}"
        );
        assert_eq!(tx.tx_var("acc").as_deref(), Some(acc), "{uri} {headers:?}");
        assert_eq!(ids(&tx).contains(&41), total != "0");
    }
    // A runtime exclusion of the rule's target is honoured.
    let excluded = format!(
        "{open}\nSecAction \"id:2,phase:1,pass,nolog,ctl:ruleRemoveTargetById=30;TX:blocking\"\n"
    );
    let (tx, iv) = go(&excluded, "/?a=ok", &[], b"");
    assert!(iv.is_none(), "{:?}", ids(&tx));
}

/// Rules decided at load time keep their place for `skip:N` (which counts
/// rules) and for a `skipAfter` that names one by id.
#[test]
fn folded_rules_still_count_for_skips() {
    let skip = r#"
SecRule REQUEST_URI "@contains skip" "id:1,phase:2,pass,nolog,skip:1"
SecRule TX:nothing "@eq 1" "id:2,phase:2,pass,nolog"
SecRule REQUEST_URI "@rx ." "id:3,phase:2,deny,log,status:403"
"#;
    let (_, iv) = go(skip, "/skip", &[], b"");
    assert_eq!(iv.map(|i| i.status), Some(403), "skip:1 skips rule 2 only");
    let after = r#"
SecRule REQUEST_URI "@contains jump" "id:1,phase:2,pass,nolog,skipAfter:2"
SecRule REQUEST_URI "@contains x" "id:5,phase:2,deny,log,status:401"
SecRule TX:nothing "@eq 1" "id:2,phase:2,pass,nolog"
SecRule REQUEST_URI "@rx ." "id:3,phase:2,deny,log,status:403"
"#;
    let (_, iv) = go(after, "/jumpx", &[], b"");
    assert_eq!(
        iv.map(|i| i.status),
        Some(403),
        "skipAfter:2 resumes after rule 2"
    );
    let (_, iv) = go(after, "/x", &[], b"");
    assert_eq!(iv.map(|i| i.status), Some(401));
}

#[test]
fn multimatch_checks_every_transformation_step() {
    let conf = r#"
SecRule ARGS "@streq a%41" "id:1,phase:1,pass,nolog,t:none,t:urlDecode,setvar:tx.plain=1"
SecRule ARGS "@streq a%41" "id:2,phase:1,pass,nolog,multiMatch,t:none,t:urlDecode,setvar:tx.multi=1"
"#;
    let (tx, _) = go(conf, "/?q=a%2541", &[], b"");
    assert_eq!(tx.tx_var("plain"), None);
    assert_eq!(tx.tx_var("multi").as_deref(), Some("1"));
}

#[test]
fn includes_resolve_relative_to_including_file() {
    let rs = rules(&[
        ("conf/main.conf", "Include rules/*.conf\n"),
        ("conf/rules/a.conf", "SecAction \"id:1,phase:1,pass\"\n"),
        ("conf/rules/b.conf", "SecAction \"id:2,phase:1,pass\"\n"),
    ])
    .unwrap();
    assert_eq!(rs.rule_count(), 2);
    assert_eq!(
        rs.files_read(),
        vec!["conf/main.conf", "conf/rules/a.conf", "conf/rules/b.conf"]
    );
}

#[test]
fn load_errors_carry_file_line_col() {
    let cases: &[(&str, usize, usize, &str)] = &[
        ("SecRuleEngine On\nSecFoo bar\n", 2, 1, "unknown directive"),
        (
            "SecRule ARGS \"@rx a\" \\\n  \"id:1,\\\n  phase:9\"\n",
            3,
            9,
            "invalid phase",
        ),
        (
            "SecRule ARGS \"@rx a\" \"id:1,msg:'oops\"\n",
            1,
            32,
            "missing closing quote",
        ),
        (
            "SecRule NOPE \"@rx a\" \"id:1\"\n",
            1,
            9,
            "unknown variable",
        ),
        (
            "SecRule ARGS \"@bogus a\" \"id:1\"\n",
            1,
            15,
            "unknown operator",
        ),
        (
            "SecRule ARGS \"@rx a\" \"id:1,t:nosuch\"\n",
            1,
            30,
            "unknown transformation",
        ),
        (
            "SecAction \"id:1\"\nSecAction \"id:1\"\n",
            2,
            12,
            "duplicate rule id",
        ),
        ("SecAction \"phase:1,pass\"\n", 1, 12, "no id"),
        (
            "SecRule ARGS \"@rx a\" \"id:1,chain\"\nSecRule ARGS \"@rx b\" \"id:2\"\n",
            2,
            23,
            "chained rules",
        ),
    ];
    for (conf, line, col, msg) in cases {
        let e = match rules(&[("f.conf", conf)]) {
            Err(e) => e,
            Ok(_) => panic!("{conf:?} loaded"),
        };
        assert_eq!(e.file, "f.conf");
        assert_eq!((e.line, e.col), (*line, *col), "{conf:?}: {e}");
        assert!(e.msg.contains(msg), "{conf:?}: {e}");
    }
}

#[test]
fn escaped_quotes_in_action_values() {
    let conf = r#"SecAction "id:1,phase:1,pass,log,msg:'it\'s a \"test\"',tag:'a\\\\b'""#;
    let (tx, _) = go(conf, "/", &[], b"");
    assert_eq!(tx.matched()[0].msg, "it's a \"test\"");
    assert_eq!(tx.matched()[0].tags, vec!["a\\b".to_string()]);
}

#[test]
fn update_target_and_remove_by_id_at_load() {
    let conf = r#"
SecRule ARGS "@rx x" "id:1,phase:1,pass,log"
SecRule ARGS "@rx x" "id:2,phase:1,pass,log"
SecRuleUpdateTargetById 1 "!ARGS:ok"
SecRuleRemoveById 2
"#;
    let (tx, _) = go(conf, "/?ok=x", &[], b"");
    assert!(ids(&tx).is_empty());
    let (tx, _) = go(conf, "/?bad=x", &[], b"");
    assert_eq!(ids(&tx), vec![1]);
}

/// Clean values are remembered per rule so repeated JSON names and values
/// run libinjection once; every attacking value is still reported.
#[test]
fn repeated_values_each_match() {
    let conf = r#"
SecRule ARGS "@detectSQLi" "id:1,phase:1,pass,log,setvar:tx.n=+1"
SecRule ARGS "@detectSQLi" "id:2,phase:1,pass,log,t:none,t:urlDecodeUni,multiMatch,setvar:tx.m=+1"
"#;
    let q = "/?a=1'%20or%20'1'='1&b=shoes&c=1'%20or%20'1'='1&d=shoes&e=x%20y&f=x%20y";
    let (tx, _) = go(conf, q, &[], b"");
    assert_eq!(tx.tx_var("n").as_deref(), Some("2"));
    assert_eq!(tx.tx_var("m").as_deref(), Some("2"));
    assert_eq!(ids(&tx), vec![1, 2]);
}

/// Runtime removals by tag and msg select rules through sets computed when
/// the rule set is built; a selected constant rule is evaluated normally.
#[test]
fn ctl_removals_by_tag_and_msg() {
    let conf = r#"
SecAction "id:1,phase:1,pass,nolog,setvar:tx.pl=1"
SecRule REQUEST_URI "@contains drop-xss" "id:2,phase:1,pass,nolog,ctl:ruleRemoveTargetByTag=xss-perf;REQUEST_FILENAME"
SecRule REQUEST_URI "@contains drop-msg" "id:3,phase:1,pass,nolog,ctl:ruleRemoveByMsg=^Bad-thing"
SecRule REQUEST_URI "@contains drop-gate" "id:4,phase:1,pass,nolog,ctl:ruleRemoveTargetByTag=gate;TX:pl"
SecRule REQUEST_FILENAME|ARGS "@contains <x>" "id:10,phase:2,deny,status:403,log,tag:'xss-perf'"
SecRule ARGS "@contains bad" "id:11,phase:2,deny,status:406,log,msg:'Bad-thing here'"
SecRule TX:pl "@lt 2" "id:12,phase:2,pass,nolog,tag:'gate',skipAfter:END"
SecRule ARGS "@contains pl2" "id:13,phase:2,deny,status:409,log"
SecMarker END
"#;
    let status = |uri: &str| go(conf, uri, &[], b"").1.map(|i| i.status);
    assert_eq!(status("/a<x>"), Some(403));
    assert_eq!(status("/drop-xss/a<x>"), None);
    assert_eq!(status("/drop-xss/?q=<x>"), Some(403));
    assert_eq!(status("/?q=bad"), Some(406));
    assert_eq!(status("/drop-msg?q=bad"), None);
    // The paranoia gate is a load-time jump; with its target removed it no
    // longer matches, so the rule after it runs.
    assert_eq!(status("/?q=pl2"), None);
    assert_eq!(status("/drop-gate?q=pl2"), Some(409));
}

/// A chain of case changes and case-blind functions reads the original
/// value's scan when only the case changes, and scans the transformed value
/// when another function changes it: both still match.
#[test]
fn case_changes_read_the_original_scan() {
    let conf = r#"
SecRuleEngine DetectionOnly
SecRule ARGS "@rx fooword" "id:1,phase:2,t:none,t:urlDecodeUni,t:removeWhitespace,t:lowercase,log,pass,msg:'%{MATCHED_VAR_NAME}'"
SecRule ARGS "@rx barword" "id:2,phase:2,t:none,t:htmlEntityDecode,t:lowercase,log,pass"
"#;
    for (q, want) in [
        ("/?a=FOOWORD", vec![1]),
        ("/?a=Foo%20Word", vec![1]),
        ("/?a=FOO%57ORD", vec![1]),
        ("/?a=FOOWARD&b=Foo+Wart", vec![]),
        // HTML entities: a value with `&` is decoded and scanned again.
        ("/?a=BarWord", vec![2]),
        ("/?a=BAR%26%2387;ORD", vec![2]),
        ("/?a=bar%26amp;word", vec![]),
    ] {
        let (tx, _) = go(conf, q, &[], b"");
        assert_eq!(ids(&tx), want, "{q}");
    }
}

/// Equal JSON names and values share one buffer and are evaluated once per
/// rule; every occurrence that matches is still reported.
#[test]
fn repeated_json_values_each_match() {
    let conf = r#"
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "@contains json" "id:1,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule ARGS "@detectSQLi" "id:2,phase:2,pass,log,t:none,t:urlDecodeUni,multiMatch,setvar:tx.s=+1"
SecRule ARGS "@rx ^evil" "id:3,phase:2,pass,log,setvar:tx.r=+1"
SecRule ARGS_NAMES "@rx ^items" "id:4,phase:2,pass,log,setvar:tx.n=+1"
SecRule ARGS "@rx evil\s+one" "id:5,phase:2,pass,log,t:none,t:urlDecodeUni,multiMatch,setvar:tx.p=+1"
SecRule ARGS|ARGS_NAMES "@rx (?:evil|fine)$" "id:6,phase:2,pass,log,t:none,t:lowercase,setvar:tx.q=+1"
"#;
    let body = br#"{"items":[{"q":"1' or '1'='1","k":"evil one","x":"plain"},{"q":"1' or '1'='1","k":"evil one","x":"plain"},{"q":"ok","k":"fine","x":"plain"}]}"#;
    let (tx, _) = go(conf, "/", &[("Content-Type", "application/json")], body);
    assert_eq!(tx.tx_var("s").as_deref(), Some("2"));
    assert_eq!(tx.tx_var("r").as_deref(), Some("2"));
    assert_eq!(tx.tx_var("n").as_deref(), Some("9"));
    // Values a rule's literals rule out ("plain" three times, the names)
    // are passed over, once or each time, without hiding a later match.
    assert_eq!(tx.tx_var("p").as_deref(), Some("2"));
    assert_eq!(tx.tx_var("q").as_deref(), Some("1"));
    assert!(tx.stats().prefilter_skips > 0, "{:?}", tx.stats());
}

/// A SecAction after the folded prefix still sees the request's URI as
/// MATCHED_VAR (v2 runs it as `SecRule REQUEST_URI "@unconditionalMatch"`).
#[test]
fn late_secaction_matches_the_request_uri() {
    let conf = r#"
SecAction "id:1,phase:1,pass,nolog,setvar:tx.pl=1"
SecRule REQUEST_URI "@contains zz" "id:2,phase:1,pass,nolog,setvar:tx.seen=1"
SecAction "id:3,phase:2,pass,nolog,setvar:tx.uri=%{MATCHED_VAR}"
"#;
    let (tx, _) = go(conf, "/zz/page?x=1", &[], b"");
    assert_eq!(tx.tx_var("uri").as_deref(), Some("/zz/page?x=1"));
}

/// The phase-wide prefilter unions are computed for all groups in one pass
/// (a value's merged scan is shared by every chain that leaves it as it is):
/// a literal that only a transformation reveals, or only another value
/// holds, must still let the rule run.
#[test]
fn shared_union_pass_keeps_rules_that_transformations_reveal() {
    let conf = r#"
SecRuleEngine DetectionOnly
SecRule ARGS|REQUEST_HEADERS "@rx evilword" "id:1,phase:1,t:none,log,pass"
SecRule ARGS "@rx secretword" "id:2,phase:1,t:none,t:urlDecodeUni,log,pass"
SecRule ARGS|REQUEST_HEADERS:User-Agent "@rx shoutword" "id:3,phase:1,t:none,t:lowercase,log,pass"
SecRule ARGS "@rx plainword" "id:4,phase:1,t:none,t:urlDecodeUni,log,pass"
SecRule ARGS "@rx otherword" "id:5,phase:1,t:none,log,pass"
"#;
    // `b` decodes to "secretword" only through urlDecodeUni; "SHOUTWORD"
    // differs from the literal only in case; "evilword" is in a header.
    let (tx, _) = go(
        conf,
        "/?a=plain&b=%2573ecretword&c=x",
        &[("User-Agent", "SHOUTWORD"), ("X-Y", "evilword")],
        b"",
    );
    assert_eq!(ids(&tx), vec![1, 2, 3]);
    let (tx, _) = go(conf, "/?a=plainword&b=otherword", &[], b"");
    assert_eq!(ids(&tx), vec![4, 5]);
    let (tx, _) = go(conf, "/?a=nothing", &[("X-Y", "nothing")], b"");
    assert!(ids(&tx).is_empty());
}

/// A group's phase-wide union covers its rules' targets in that phase only:
/// a value that only a rule of another phase can see does not keep a rule
/// of this phase from being skipped, and the answers stay the same.
#[test]
fn phase_unions_cover_only_that_phases_targets() {
    let conf = r#"
SecRuleEngine DetectionOnly
SecRule REQUEST_HEADERS:X-A "@rx alphaword" "id:1,phase:1,t:none,log,pass"
SecRule ARGS "@rx betaword" "id:2,phase:2,t:none,log,pass"
"#;
    // "betaword" is only in the header, which rule 2 does not look at:
    // neither rule is evaluated.
    let (tx, _) = go(conf, "/?a=nothing", &[("X-A", "betaword")], b"");
    assert!(ids(&tx).is_empty());
    assert_eq!(tx.stats().rules_evaluated, 0, "{:?}", tx.stats());
    let (tx, _) = go(conf, "/?a=betaword", &[("X-A", "alphaword")], b"");
    assert_eq!(ids(&tx), vec![1, 2]);
}

#[test]
fn targets_without_a_passing_value_are_skipped_and_the_rest_still_match() {
    // Rules 1 and 2 share a transformation chain (one prefilter group) and
    // read overlapping targets in a different order; each target's values
    // are judged apart, so a rule skips the targets whose values lack its
    // literal and still matches on the one that has it.
    let conf = r#"
SecRuleEngine DetectionOnly
SecRule ARGS_NAMES|ARGS|REQUEST_COOKIES "@rx fooword" "id:1,phase:2,t:none,t:lowercase,log,pass,msg:'%{MATCHED_VAR_NAME}'"
SecRule REQUEST_COOKIES|ARGS|ARGS_NAMES "@rx barword" "id:2,phase:2,t:none,t:lowercase,log,pass,msg:'%{MATCHED_VAR_NAME}'"
"#;
    let name = |tx: &Transaction, id: u64| {
        tx.matched()
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.msg.clone())
    };
    let (tx, _) = go(conf, "/?FooWord=1&x=BarWord", &[("Cookie", "c=plain")], b"");
    assert_eq!(ids(&tx), vec![1, 2]);
    assert_eq!(name(&tx, 1).as_deref(), Some("ARGS_NAMES:FooWord"));
    assert_eq!(name(&tx, 2).as_deref(), Some("ARGS:x"));
    assert!(tx.stats().prefilter_skips > 0, "{:?}", tx.stats());
    let (tx, _) = go(
        conf,
        "/?a=plain",
        &[("Cookie", "c=barword; fooword=1")],
        b"",
    );
    assert_eq!(ids(&tx), vec![2]);
    assert_eq!(name(&tx, 2).as_deref(), Some("REQUEST_COOKIES:c"));
}

/// SecArgumentsLimit and SecRequestBodyJsonDepthLimit are configurable; a
/// JSON body beyond either is a request body error (REQBODY_ERROR), as in v2.
#[test]
fn json_argument_and_depth_limits_are_configurable() {
    let conf = |limits: &str| {
        format!(
            r#"{limits}
SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:1,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQBODY_ERROR "!@eq 0" "id:2,phase:2,deny,log"
SecRule ARGS:a "@rx ." "id:3,phase:2,pass,log"
"#
        )
    };
    let json = [("Content-Type", "application/json")];
    // Defaults (1000 values, depth 10000): both bodies parse.
    let (tx, iv) = go(&conf(""), "/", &json, br#"{"a":1,"b":2,"c":3,"d":4}"#);
    assert!(iv.is_none());
    assert_eq!(ids(&tx), vec![3]);
    // Four values against a limit of three.
    let limited = conf("SecArgumentsLimit 3");
    let (tx, iv) = go(&limited, "/", &json, br#"{"a":1,"b":2,"c":3,"d":4}"#);
    assert_eq!(iv.map(|i| i.rule_id), Some(2));
    assert_eq!(ids(&tx), vec![2]);
    let (_, iv) = go(&limited, "/", &json, br#"{"a":1,"b":2,"c":3}"#);
    assert!(iv.is_none());
    // Two nested objects against a limit of one (as in v2, the top-level
    // object does not count).
    let shallow = conf("SecRequestBodyJsonDepthLimit 1");
    let (_, iv) = go(&shallow, "/", &json, br#"{"a":{"b":{"c":1}}}"#);
    assert_eq!(iv.map(|i| i.rule_id), Some(2));
    let (_, iv) = go(&shallow, "/", &json, br#"{"a":{"b":1}}"#);
    assert!(iv.is_none());
    // A limit that is not a number is a load error naming the directive.
    let e = rules(&[("main.conf", "SecArgumentsLimit many\n")])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("SecArgumentsLimit"), "{e}");
}

/// RULE and `%{rule.*}` read the metadata of the chain being run: in a
/// rule folded at load time, in a rule run per request, and in a chain link.
#[test]
fn rule_variable_names_the_running_rule() {
    let conf = r#"SecRuleEngine On
SecAction "id:11,phase:1,pass,nolog,msg:'first',setvar:tx.folded=%{rule.id}"
SecRule REQUEST_URI "@contains /" "id:12,phase:1,pass,nolog,setvar:tx.dynamic=%{rule.id}"
SecRule REQUEST_URI "@contains /" "id:13,phase:2,pass,nolog,msg:'third',chain"
    SecRule RULE:id "@eq 13" "setvar:tx.linked=%{rule.msg}"
SecRule RULE:id "@eq 14" "id:14,phase:2,pass,nolog,setvar:tx.target=%{rule.phase}"
"#;
    let (tx, _) = go(conf, "/x", &[], b"");
    assert_eq!(tx.tx_var("folded").as_deref(), Some("11"));
    assert_eq!(tx.tx_var("dynamic").as_deref(), Some("12"));
    assert_eq!(tx.tx_var("linked").as_deref(), Some("third"));
    assert_eq!(tx.tx_var("target").as_deref(), Some("2"));
}

/// Match buffers are reused from rule to rule and from transaction to
/// transaction (the cache pool): a later, shorter match must not show any
/// of an earlier one's name, value or captures.
#[test]
fn reused_match_buffers_hold_only_the_current_match() {
    let conf = r#"SecRuleEngine On
SecRule ARGS "@rx ^(a+)(b*)$" "id:1,phase:1,pass,nolog,capture,setvar:tx.first=%{MATCHED_VAR_NAME}=%{MATCHED_VAR}/%{TX.1}/%{TX.2}"
SecRule REQUEST_METHOD "@rx ^G" "id:2,phase:1,pass,nolog,setvar:tx.second=%{MATCHED_VAR_NAME}=%{MATCHED_VAR}"
SecRule ARGS_NAMES "@rx ^(l)" "id:3,phase:2,pass,nolog,capture,setvar:tx.third=%{MATCHED_VAR_NAME}=%{MATCHED_VAR}/%{TX.1}/%{TX.2}"
"#;
    let (tx, _) = go(conf, "/?longname=aaaaaaaaaabbbb", &[], b"");
    assert_eq!(
        tx.tx_var("first").as_deref(),
        Some("ARGS:longname=aaaaaaaaaabbbb/aaaaaaaaaa/bbbb")
    );
    assert_eq!(tx.tx_var("second").as_deref(), Some("REQUEST_METHOD=GET"));
    assert_eq!(
        tx.tx_var("third").as_deref(),
        Some("ARGS_NAMES:longname=longname/l/")
    );
    drop(tx);
    // Same thread: the pooled cache and its match buffers come back.
    let (tx, _) = go(conf, "/?l=a", &[], b"");
    assert_eq!(tx.tx_var("first").as_deref(), Some("ARGS:l=a/a/"));
    assert_eq!(tx.tx_var("second").as_deref(), Some("REQUEST_METHOD=GET"));
    assert_eq!(tx.tx_var("third").as_deref(), Some("ARGS_NAMES:l=l/l/"));
}

/// A value seen in earlier transactions on this thread is remembered with
/// what each transformation does to it; rules still see it transformed,
/// and a value that transformations leave alone still matches untransformed.
#[test]
fn repeated_values_match_as_fresh_ones_do() {
    let conf = r#"SecRuleEngine On
SecRule REQUEST_HEADERS:X-A "@contains union select" "id:1,phase:1,t:none,t:urlDecodeUni,t:lowercase,deny,status:403"
SecRule REQUEST_HEADERS:X-B "@contains plain" "id:2,phase:1,t:none,t:urlDecodeUni,t:lowercase,pass,nolog,setvar:tx.b=1"
"#;
    // One rule set for all rounds: values are remembered per rule set.
    let rs = Arc::new(rules(&[("main.conf", conf)]).unwrap_or_else(|e| panic!("{e}")));
    let run = |x_a: &str| {
        let head = req("/", &[("X-A", x_a), ("X-B", "plain")]);
        let mut tx = Transaction::new(rs.clone(), &head, "uid".into());
        let iv = tx.process_request_headers();
        (tx, iv)
    };
    for round in 0..4 {
        let (_, iv) = run("UNION%20SeLeCt");
        assert_eq!(iv.map(|i| i.status), Some(403), "round {round}");
        let (tx, iv) = run("union/select");
        assert!(iv.is_none(), "round {round}");
        assert_eq!(tx.tx_var("b").as_deref(), Some("1"), "round {round}");
    }
}

/// multiMatch skips functions known to leave the original value as it is,
/// but only until a function changes it: `%41` is left alone by
/// t:lowercase, its decoded form `A` is not.
#[test]
fn multi_match_knowledge_of_the_original_stops_at_the_first_change() {
    let conf = r#"SecRuleEngine On
SecRule ARGS:x "@contains zzz" "id:1,phase:1,t:none,t:lowercase,pass,nolog"
SecRule ARGS:x "@streq a" "id:2,phase:1,t:none,t:urlDecode,t:lowercase,multiMatch,deny,status:403"
"#;
    let (_, iv) = go(conf, "/?x=%2541", &[], b"");
    assert_eq!(iv.map(|i| i.status), Some(403));
    let (_, iv) = go(conf, "/?x=%2542", &[], b"");
    assert!(iv.is_none());
}

/// Phase 1 of a GET of each case's URI (`uri` picks it out of the case),
/// with `headers`, on `rs`, in `rounds` rounds: values are remembered per
/// thread from their second sighting on, so later rounds read what earlier
/// ones kept. `check` sees each transaction with its case, URI and round.
fn in_rounds<C>(
    rs: &Arc<RuleSet>,
    rounds: usize,
    headers: &[(&str, &str)],
    cases: &[C],
    uri: impl Fn(&C) -> &str,
    mut check: impl FnMut(&Transaction, &C, &str, usize),
) {
    for round in 0..rounds {
        for case in cases {
            let uri = uri(case);
            let mut tx = Transaction::new(rs.clone(), &req(uri, headers), "uid".into());
            assert!(
                tx.process_request_headers().is_none(),
                "{uri}, round {round}"
            );
            check(&tx, case, uri, round);
        }
    }
}

/// Phase 1 of GETs of each case's URI on one rule set built from `conf`, in
/// four rounds (see `in_rounds`): which of the TX variables `names` each
/// sets must be as listed.
fn tx_vars_set_in_rounds<const N: usize>(
    conf: &str,
    names: [&str; N],
    cases: &[(&str, [bool; N])],
) {
    let rs = Arc::new(rules(&[("main.conf", conf)]).unwrap_or_else(|e| panic!("{e}")));
    in_rounds(
        &rs,
        4,
        &[],
        cases,
        |c| c.0,
        |tx, (_, want), uri, round| {
            let got = names.map(|v| tx.tx_var(v).is_some());
            assert_eq!(&got, want, "{uri}, round {round}");
        },
    );
}

/// The union pass reads one target for several groups (one per chain) from
/// the ORed merged scans of its values, plus the transformed values a chain
/// changes: each rule still sees exactly the values that hold its literal,
/// whether found in the original or only after its functions.
#[test]
fn one_target_read_by_several_chains_finds_each_rules_values() {
    let conf = r#"SecRuleEngine On
SecRule ARGS "@contains plain" "id:1,phase:1,t:none,pass,nolog,setvar:tx.a=1"
SecRule ARGS "@contains union select" "id:2,phase:1,t:none,t:urlDecodeUni,t:lowercase,pass,nolog,setvar:tx.b=1"
SecRule ARGS "@contains drop" "id:3,phase:1,t:none,t:lowercase,pass,nolog,setvar:tx.c=1"
"#;
    let cases = [
        ("/?x=plain&y=1", [true, false, false]),
        ("/?x=UNION%2520SeLeCt", [false, true, false]),
        ("/?x=DROP", [false, false, true]),
        ("/?x=drop&y=1", [false, false, true]),
        (
            "/?q=1&x=plain&y=UNION%2520select&z=Drop",
            [true, true, true],
        ),
        ("/?x=other&y=2", [false, false, false]),
    ];
    tx_vars_set_in_rounds(conf, ["a", "b", "c"], &cases);
}

/// Rules whose literals include common single bytes (a letter, `:`, `-`)
/// join their chain's group as byte sets: a value holding one of the bytes,
/// in either case and found before or after the rule's functions, still
/// reaches the operator; a value holding none skips the rule.
#[test]
fn single_byte_literals_prefilter_as_byte_sets() {
    let conf = r#"SecRuleEngine On
SecRule ARGS "@contains :" "id:1,phase:1,t:none,pass,nolog,setvar:tx.a=1"
SecRule ARGS "@rx (?i)e" "id:2,phase:1,t:none,t:urlDecodeUni,pass,nolog,setvar:tx.b=1"
SecRule ARGS "@pm union -" "id:3,phase:1,t:none,t:urlDecodeUni,pass,nolog,setvar:tx.c=1"
SecRule ARGS "@contains zz" "id:4,phase:1,t:none,pass,nolog,setvar:tx.d=1"
"#;
    let cases = [
        ("/?x=a%3Ab", [true, false, false, false]),
        ("/?x=XYZ", [false, false, false, false]),
        ("/?x=E", [false, true, false, false]),
        ("/?x=%2545", [false, true, false, false]),
        ("/?x=x%252Dy", [false, false, true, false]),
        ("/?x=UNION&y=zz", [false, false, true, true]),
    ];
    tx_vars_set_in_rounds(conf, ["a", "b", "c", "d"], &cases);
}

/// A multiMatch rule's answer "no step's value holds a literal" is
/// remembered per thread for repeated values; a value whose literal appears
/// only at a later step still matches in every round.
#[test]
fn multi_match_steps_are_remembered_per_value() {
    let conf = r#"SecRuleEngine On
SecRule ARGS:x "@rx ^a$" "id:1,phase:1,t:none,t:urlDecode,t:lowercase,multiMatch,pass,nolog,setvar:tx.m=1"
"#;
    let cases = [
        ("/?x=%2541", [true]),
        ("/?x=zzz", [false]),
        ("/?x=%2542", [false]),
        ("/?x=bab", [false]),
        ("/?x=A", [true]),
    ];
    tx_vars_set_in_rounds(conf, ["m"], &cases);
}

/// With other rules' merged scan in play, a value's step facts for every
/// multiMatch rule are remembered with that scan: two multiMatch rules
/// whose literals appear in the original value, only after the first
/// step, only after the second, or at no step, keep matching as they did
/// in the first round, and a plain rule on the same values too.
#[test]
fn multi_match_step_facts_remembered_with_the_merged_scan() {
    let conf = r#"SecRuleEngine On
SecRule ARGS "@contains plain" "id:1,phase:1,t:none,pass,nolog,setvar:tx.p=1"
SecRule ARGS "@rx attack" "id:2,phase:1,t:none,t:urlDecode,t:lowercase,multiMatch,pass,nolog,setvar:tx.a=1"
SecRule ARGS_NAMES|ARGS "@rx (?:evil|bad)one" "id:3,phase:1,t:none,t:removeWhitespace,t:urlDecode,multiMatch,pass,nolog,setvar:tx.e=1"
"#;
    let cases = [
        ("/?x=attack", [false, true, false]),
        ("/?x=att%61ck", [false, true, false]),
        ("/?x=ATT%2561CK", [false, true, false]),
        ("/?x=%41TTACK", [false, true, false]),
        ("/?x=plain", [true, false, false]),
        ("/?x=evil%20one", [false, false, true]),
        ("/?ev%69lone=1", [false, false, true]),
        ("/?x=bad%2520one", [false, false, false]),
        ("/?x=b%61d+one", [false, false, true]),
        ("/?x=b%61d%20one&y=attack+plain", [true, true, true]),
        ("/?x=harmless&y=zz", [false, false, false]),
    ];
    tx_vars_set_in_rounds(conf, ["p", "a", "e"], &cases);
}

/// An `@rx` answer on a value seen before comes from the thread's memory:
/// per rule (two rules share a regex, one negated; a third lower-cases
/// first), and a remembered match of a capturing rule still sets its group.
#[test]
fn regex_answers_are_remembered_per_rule_and_captures_still_set() {
    let conf = r#"SecRuleEngine On
SecRule ARGS:x "@rx ^a(b+)$" "id:1,phase:1,t:none,pass,nolog,capture,setvar:tx.cap=%{tx.1}"
SecRule ARGS:x "@rx ^a(b+)$" "id:2,phase:1,t:none,pass,nolog,setvar:tx.plain=1"
SecRule ARGS:x "!@rx ^a(b+)$" "id:3,phase:1,t:none,pass,nolog,setvar:tx.neg=1"
SecRule ARGS:x "@rx ^a(b+)$" "id:4,phase:1,t:none,t:lowercase,pass,nolog,setvar:tx.lower=1"
"#;
    let rs = Arc::new(rules(&[("main.conf", conf)]).unwrap_or_else(|e| panic!("{e}")));
    let cases: [(&str, Option<&str>, [bool; 3]); 4] = [
        ("/?x=abb", Some("bb"), [true, false, true]),
        ("/?x=abbb", Some("bbb"), [true, false, true]),
        ("/?x=ac", None, [false, true, false]),
        ("/?x=ABB", None, [false, true, true]),
    ];
    capture_and_tx_vars_in_rounds(&rs, ["plain", "neg", "lower"], &cases);
}

/// [`tx_vars_set_in_rounds`] with `tx.cap` (a captured group) as well:
/// each case lists its value or `None`.
fn capture_and_tx_vars_in_rounds<const N: usize>(
    rs: &Arc<RuleSet>,
    names: [&str; N],
    cases: &[(&str, Option<&str>, [bool; N])],
) {
    in_rounds(
        rs,
        4,
        &[],
        cases,
        |c| c.0,
        |tx, &(_, cap, want), uri, round| {
            assert_eq!(tx.tx_var("cap").as_deref(), cap, "{uri}, round {round}");
            let got = names.map(|v| tx.tx_var(v).is_some());
            assert_eq!(got, want, "{uri}, round {round}");
        },
    );
}

/// Operator answers kept with a value's remembered merged scan: one record
/// per value holds every link's answer, so links on the same value (one
/// lower-cases, one decodes, one is negated, one captures) each keep
/// their own answer round after round, and a remembered match of the
/// capturing link still sets its group.
#[test]
fn operator_answers_kept_with_the_merged_scan_stay_per_link() {
    let conf = r#"SecRuleEngine On
SecRule ARGS "@contains plain" "id:1,phase:1,t:none,pass,nolog,setvar:tx.p=1"
SecRule ARGS "@rx ^sel(ect)$" "id:2,phase:1,t:none,pass,nolog,capture,setvar:tx.cap=%{tx.1}"
SecRule ARGS "@rx ^select$" "id:3,phase:1,t:none,t:lowercase,pass,nolog,setvar:tx.low=1"
SecRule ARGS "!@rx ^select$" "id:4,phase:1,t:none,pass,nolog,setvar:tx.neg=+1"
SecRule ARGS "@rx select" "id:5,phase:1,t:none,t:urlDecode,pass,nolog,setvar:tx.dec=1"
"#;
    let rs = Arc::new(rules(&[("main.conf", conf)]).unwrap_or_else(|e| panic!("{e}")));
    // (query, tx.cap, then whether p, low, neg, dec are set)
    let cases: [(&str, Option<&str>, [bool; 4]); 5] = [
        ("/?x=select", Some("ect"), [false, true, false, true]),
        ("/?x=SELECT", None, [false, true, true, false]),
        ("/?x=sel%2565ct", None, [false, false, true, true]),
        ("/?x=plain&y=select", Some("ect"), [true, true, true, true]),
        ("/?x=selects", None, [false, false, true, true]),
    ];
    capture_and_tx_vars_in_rounds(&rs, ["p", "low", "neg", "dec"], &cases);
}

/// The answers of other operators that read the value alone (byte range,
/// `@pm`, libinjection) are kept per link with the value's merged scan as
/// `@rx` answers are: each link keeps its own, round after round.
#[test]
fn value_only_operator_answers_stay_per_link() {
    let conf = r#"SecRuleEngine On
SecRule ARGS "@contains plain" "id:1,phase:1,t:none,pass,nolog,setvar:tx.p=1"
SecRule ARGS "@validateByteRange 32-126" "id:2,phase:1,t:none,t:urlDecode,pass,nolog,setvar:tx.range=+1"
SecRule ARGS "@pm alert confirm" "id:3,phase:1,t:none,t:lowercase,pass,nolog,setvar:tx.pm=+1"
SecRule ARGS "@detectXSS" "id:4,phase:1,t:none,pass,nolog,setvar:tx.xss=+1"
SecRule ARGS "@detectSQLi" "id:5,phase:1,t:none,pass,nolog,setvar:tx.sqli=+1"
"#;
    let rs = Arc::new(rules(&[("main.conf", conf)]).unwrap_or_else(|e| panic!("{e}")));
    // (query, then the counts of p, range, pm, xss, sqli)
    let cases: [(&str, [Option<&str>; 5]); 5] = [
        ("/?x=plain", [Some("1"), None, None, None, None]),
        ("/?x=a%2501b", [None, Some("1"), None, None, None]),
        (
            "/?x=ALERT&y=a%2501b",
            [None, Some("1"), Some("1"), None, None],
        ),
        (
            "/?x=%3Cscript%3Ealert(1)%3C/script%3E&y=plain",
            [Some("1"), None, Some("1"), Some("1"), None],
        ),
        (
            "/?x=1'%20OR%20'1'='1&y=ALERT",
            [None, None, Some("1"), None, Some("1")],
        ),
    ];
    in_rounds(
        &rs,
        4,
        &[],
        &cases,
        |c| c.0,
        |tx, &(_, want), uri, round| {
            let got = ["p", "range", "pm", "xss", "sqli"].map(|v| tx.tx_var(v));
            assert_eq!(
                got.each_ref().map(|v| v.as_deref()),
                want,
                "{uri}, round {round}"
            );
        },
    );
}

/// A rule none of whose values can pass its operator, by the answers kept
/// with the values' remembered scans (learnt by evaluating, or ruled out by
/// the literals), is not evaluated at all once the values are remembered;
/// a new or attacking value among them is still found, by every rule,
/// and an excluded target stays excluded.
#[test]
fn rules_whose_remembered_values_all_fail_are_not_evaluated() {
    let conf = r#"SecRuleEngine On
SecRule ARGS|REQUEST_HEADERS:User-Agent "@rx attackword" "id:1,phase:1,t:none,t:lowercase,pass,nolog,setvar:tx.a=+1"
SecRule ARGS "@detectSQLi" "id:2,phase:1,pass,nolog,setvar:tx.s=+1"
SecRule ARGS|!ARGS:skip "@validateByteRange 32-126" "id:3,phase:1,t:none,t:urlDecode,pass,nolog,setvar:tx.r=+1"
SecRule ARGS_NAMES "@rx ^zq" "id:4,phase:1,t:none,pass,nolog,setvar:tx.n=+1"
SecRule REQUEST_HEADERS:User-Agent|ARGS "@rx (?:ordinary|zzyzx)\d" "id:5,phase:1,t:none,pass,nolog,setvar:tx.o=+1"
SecRule ARGS "@detectSQLi" "id:6,phase:1,t:none,t:urlDecodeUni,multiMatch,pass,nolog,setvar:tx.m=+1"
"#;
    let rs = Arc::new(rules(&[("main.conf", conf)]).unwrap_or_else(|e| panic!("{e}")));
    // A value only an excluded target holds gets no answer from the rule
    // (it is not evaluated there), so a request with `skip` is evaluated.
    let clean = "/?qa=ordinary%20words&qb=more%2Dwords";
    let ua = [("User-Agent", "Quietbrowser/1.0")];
    // (query, then tx.a, tx.s, tx.r, tx.n, tx.o, tx.m). Rule 6 (multiMatch)
    // finds the injection encoded twice only after its decoding. Rule 5 finds its
    // literal in `qa` only: `qb` is ruled out by the literals alone, and
    // so is the User-Agent, whose values the rule then never looks at.
    let cases: [(&str, [Option<&str>; 6]); 6] = [
        (clean, [None, None, None, None, None, None]),
        (
            "/?qa=ordinary%20words&qb=AttackWord",
            [Some("1"), None, None, None, None, None],
        ),
        (
            "/?qa=1'%20OR%20'1'='1&qb=more%2Dwords&zqname=x%2501y",
            [None, Some("1"), Some("1"), Some("1"), None, Some("1")],
        ),
        (
            "/?qa=ordinary%20words&qb=more%2Dwords&skip=x%2501y&qc=a%2502b",
            [None, None, Some("1"), None, None, None],
        ),
        (
            "/?qa=ordinary%20words&qb=more%2Dwords&qd=zzyzx7",
            [None, None, None, None, Some("1"), None],
        ),
        (
            "/?qa=ordinary%20words&qe=1%2527%2520OR%2520%25271%2527%253D%25271",
            [None, None, None, None, None, Some("1")],
        ),
    ];
    let mut skipped_all = false;
    in_rounds(
        &rs,
        5,
        &ua,
        &cases,
        |c| c.0,
        |tx, &(_, want), uri, round| {
            let got = ["a", "s", "r", "n", "o", "m"].map(|v| tx.tx_var(v));
            assert_eq!(
                got.each_ref().map(|v| v.as_deref()),
                want,
                "{uri}, round {round}"
            );
            if uri == clean && round >= 3 {
                assert_eq!(
                    tx.stats().rules_evaluated,
                    0,
                    "round {round}: {:?}",
                    tx.stats()
                );
                skipped_all = true;
            }
        },
    );
    assert!(skipped_all);
}

/// An operator's `%{tx.name}` argument is looked up once per rule
/// evaluation and again for the next rule: a value set between two rules
/// is seen by the second, for every argument.
#[test]
fn operator_arguments_follow_tx_between_rules() {
    let conf = r#"SecRuleEngine On
SecAction "id:1,phase:1,pass,nolog,setvar:tx.limit=5"
SecRule ARGS "@gt %{tx.limit}" "id:2,phase:1,pass,nolog,setvar:tx.over_five=+1"
SecAction "id:3,phase:1,pass,nolog,setvar:tx.limit=1"
SecRule ARGS "@gt %{tx.limit}" "id:4,phase:1,pass,nolog,setvar:tx.over_one=+1"
"#;
    let rs = Arc::new(rules(&[("main.conf", conf)]).unwrap_or_else(|e| panic!("{e}")));
    let mut tx = Transaction::new(rs, &req("/?a=2&b=7&c=3&d=9", &[]), "uid".into());
    assert!(tx.process_request_headers().is_none());
    assert_eq!(tx.tx_var("over_five").as_deref(), Some("2"));
    assert_eq!(tx.tx_var("over_one").as_deref(), Some("4"));
}

/// A constant `SecAction` after a request-dependent rule that writes the
/// same TX variable is not folded into the start-of-transaction state: the
/// later write still wins.
#[test]
fn later_constant_writes_still_come_after_request_writes() {
    let conf = r#"SecRuleEngine On
SecRule ARGS:x "@streq a" "id:1,phase:1,pass,nolog,setvar:tx.limit=1"
SecAction "id:2,phase:1,pass,nolog,setvar:tx.limit=9"
"#;
    let rs = Arc::new(rules(&[("main.conf", conf)]).unwrap_or_else(|e| panic!("{e}")));
    for uri in ["/?x=a", "/?x=b"] {
        let mut tx = Transaction::new(rs.clone(), &req(uri, &[]), "uid".into());
        assert!(tx.process_request_headers().is_none());
        assert_eq!(tx.tx_var("limit").as_deref(), Some("9"), "{uri}");
    }
}

/// A thread's next transaction reuses the last one's buffers (headers,
/// cookies, TX entries, matched variables): nothing of the last request
/// shows through, whether the next one has more or fewer of each.
#[test]
fn reused_buffers_do_not_carry_one_request_into_the_next() {
    let conf = r#"SecRuleEngine On
SecRule REQUEST_HEADERS_NAMES "@rx ^x-.*$" "id:1,phase:1,pass,nolog,capture,t:lowercase,setvar:'tx.seen_%{tx.0}=%{tx.0}'"
SecRule &REQUEST_HEADERS "@eq 1" "id:10,phase:1,pass,log"
SecRule &REQUEST_COOKIES "@eq 0" "id:11,phase:1,pass,log"
SecRule &TX:/^seen_/ "@eq 0" "id:12,phase:1,pass,log"
SecRule REQUEST_HEADERS|REQUEST_COOKIES "@rx secret" "id:13,phase:1,pass,log"
SecRule &MATCHED_VARS "@gt 0" "id:14,phase:1,pass,log"
"#;
    let rs = Arc::new(rules(&[("main.conf", conf)]).unwrap_or_else(|e| panic!("{e}")));
    // The middle round's TX layer grows past what a thread keeps.
    for (round, headers) in [40, 1100, 40].into_iter().enumerate() {
        let big: Vec<(String, String)> = (0..headers)
            .map(|i| (format!("X-H{i}"), format!("secret-{i}")))
            .chain([("Cookie".to_string(), "a=secret; b=2; c=3".to_string())])
            .collect();
        let big: Vec<(&str, &str)> = big.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let mut tx = Transaction::new(rs.clone(), &req("/", &big), "uid".into());
        assert!(tx.process_request_headers().is_none());
        assert_eq!(tx.tx_var("seen_x-h39").as_deref(), Some("x-h39"));
        let fired = ids(&tx);
        assert!(
            fired.contains(&13) && !fired.contains(&10),
            "{round}: {fired:?}"
        );
        drop(tx);
        let mut tx = Transaction::new(
            rs.clone(),
            &req("/", &[("Host", "a.example")]),
            "uid".into(),
        );
        assert!(tx.process_request_headers().is_none());
        assert_eq!(tx.tx_var("seen_x-h39"), None);
        assert_eq!(ids(&tx), [10, 11, 12], "round {round}");
    }
}

/// A link's answers are remembered per value both before and after its
/// transformations. A value that fails (`%20` decodes to one character)
/// must not answer for an equal value that another argument's decoding
/// produced (`%2520` decodes to `%20`, three), however often both come.
#[test]
fn answers_by_original_and_transformed_value_stay_apart() {
    let conf = r#"
SecRule ARGS "@rx ^.{3}$" "id:1,phase:1,pass,log,t:none,t:urlDecode,setvar:tx.hits=+1,setvar:tx.last=%{MATCHED_VAR_NAME}"
"#;
    let rs = Arc::new(rules(&[("main.conf", conf)]).unwrap_or_else(|e| panic!("{e}")));
    for (round, uri) in ["/?a=%252520&b=%2520", "/?b=%2520&a=%252520"]
        .iter()
        .cycle()
        .take(8)
        .enumerate()
    {
        let mut tx = Transaction::new(rs.clone(), &req(uri, &[]), "uid-1".into());
        tx.process_request_headers();
        assert_eq!(tx.tx_var("hits").as_deref(), Some("1"), "round {round}");
        assert_eq!(
            tx.tx_var("last").as_deref(),
            Some("ARGS:a"),
            "round {round}"
        );
    }
}

/// Plain links (no prefilter, no remembered answers of their own: TX,
/// counts, byte checks on headers) take the engine's short path. Over
/// rounds, where the headers' kept operator answers come into play, each
/// case must set exactly the TX values listed: a match per matching value,
/// counts, a TX rule reading what an earlier one set, and a runtime target
/// exclusion, which the short path leaves to the general one.
#[test]
fn plain_rules_match_per_value_counts_and_exclusions() {
    let conf = r#"
SecRuleEngine On
SecRule ARGS|REQUEST_HEADERS "@rx attack" "id:9,phase:1,pass,nolog,setvar:tx.attack=1"
SecRule REQUEST_HEADERS:X-Mode "@validateByteRange 97-122" "id:1,phase:1,pass,nolog,setvar:tx.odd=+1"
SecRule &REQUEST_HEADERS:X-Mode "@eq 1" "id:2,phase:1,pass,nolog,setvar:tx.count=+1"
SecRule TX:ODD "@ge 1" "id:3,phase:1,pass,nolog,setvar:tx.tx_rule=%{MATCHED_VAR}"
SecRule REQUEST_HEADERS:X-Skip "@eq 1" "id:5,phase:1,pass,nolog,ctl:ruleRemoveTargetById=6;REQUEST_HEADERS:X-Num"
SecRule REQUEST_HEADERS:X-Num|REQUEST_HEADERS:X-Other "@gt 5" "id:6,phase:1,pass,nolog,setvar:tx.six=+1"
"#;
    let rs = Arc::new(rules(&[("main.conf", conf)]).unwrap_or_else(|e| panic!("{e}")));
    type Case<'a> = (&'a [(&'a str, &'a str)], [Option<&'a str>; 4]);
    let cases: [Case; 5] = [
        (
            &[("X-Mode", "Alpha"), ("X-Num", "9")],
            [Some("1"), Some("1"), Some("1"), Some("1")],
        ),
        (
            &[("X-Mode", "gamma"), ("X-Num", "3")],
            [None, Some("1"), None, None],
        ),
        (
            &[("X-Num", "7"), ("X-Skip", "1"), ("X-Other", "8")],
            [None, None, None, Some("1")],
        ),
        (
            &[("X-Mode", "BETA"), ("X-Mode", "Alpha"), ("X-Other", "6")],
            [Some("2"), None, Some("2"), Some("1")],
        ),
        (
            &[("X-Mode", "alpha-beta"), ("X-Num", "7"), ("X-Other", "7")],
            [Some("1"), Some("1"), Some("1"), Some("2")],
        ),
    ];
    for round in 0..4 {
        for (headers, want) in &cases {
            let mut tx = Transaction::new(rs.clone(), &req("/", headers), "uid".into());
            assert!(tx.process_request_headers().is_none());
            let got = ["odd", "count", "tx_rule", "six"].map(|v| tx.tx_var(v));
            let want = want.map(|w| w.map(String::from));
            assert_eq!(got, want, "{headers:?}, round {round}");
        }
    }
}

/// A value a rule's negated target excludes (CRS: `REQUEST_HEADERS|
/// !REQUEST_HEADERS:Cookie`) gets the rule's answer without being
/// evaluated for a hit, so a request whose values are all remembered to
/// fail is not evaluated at all, Cookie or not. The excluded value never
/// matches, even when it would.
#[test]
fn excluded_values_get_answers_without_hits() {
    let conf = r#"
SecRuleEngine On
SecRule REQUEST_HEADERS|!REQUEST_HEADERS:Cookie "@rx attack\d" "id:1,phase:1,pass,nolog,setvar:tx.hit=+1"
"#;
    let rs = Arc::new(rules(&[("main.conf", conf)]).unwrap_or_else(|e| panic!("{e}")));
    // (headers, the hits, evaluated once the values are remembered)
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, bool);
    let cases: [Case; 3] = [
        (
            &[
                ("Cookie", "attack-free=1"),
                ("User-Agent", "attack-less ua"),
            ],
            None,
            false,
        ),
        (&[("Cookie", "attack1"), ("User-Agent", "ua")], None, true),
        (
            &[("Cookie", "c=1"), ("User-Agent", "attack2")],
            Some("1"),
            true,
        ),
    ];
    for round in 0..5 {
        for (headers, hits, evaluated) in &cases {
            let mut tx = Transaction::new(rs.clone(), &req("/", headers), "uid".into());
            assert!(tx.process_request_headers().is_none());
            let at = format!("{headers:?}, round {round}");
            assert_eq!(tx.tx_var("hit").as_deref(), *hits, "{at}");
            if round >= 3 {
                assert_eq!(tx.stats().rules_evaluated > 0, *evaluated, "{at}");
            }
        }
    }
}

/// A capture clears the capture slots it has no group for, also those the
/// configuration set before any request (folded into the starting TX).
#[test]
fn captures_clear_slots_the_configuration_set() {
    let conf = r#"
SecRuleEngine On
SecAction "id:1,phase:1,pass,nolog,setvar:tx.2=stale"
SecRule REQUEST_URI "@rx (a)" "id:2,phase:1,pass,nolog,capture,chain"
    SecRule TX:2 "@streq stale" "setvar:tx.kept=1"
SecRule REQUEST_URI "@rx (b)" "id:3,phase:1,pass,nolog,capture,setvar:tx.first=%{tx.1}"
"#;
    let rs = Arc::new(rules(&[("main.conf", conf)]).unwrap_or_else(|e| panic!("{e}")));
    for round in 0..2 {
        let mut tx = Transaction::new(rs.clone(), &req("/ab", &[]), "uid".into());
        assert!(tx.process_request_headers().is_none());
        assert_eq!(tx.tx_var("kept"), None, "round {round}");
        assert_eq!(tx.tx_var("2"), None, "round {round}");
        assert_eq!(tx.tx_var("first").as_deref(), Some("b"), "round {round}");
    }
}

/// A remembered value's contribution to the union pass of a target many
/// groups read is remembered whole (the group bits of its merged scan and
/// of each chain that changes it). Over rounds, once it is, a value whose
/// literal shows only after a group's functions must still let that
/// group's rule run and match, and only that rule.
#[test]
fn remembered_contributions_keep_each_groups_bits() {
    let conf = r#"
SecRuleEngine On
SecRule ARGS "@rx attack" "id:1,phase:1,pass,nolog,t:none,setvar:tx.plain=+1"
SecRule ARGS "@rx attack" "id:2,phase:1,pass,nolog,t:none,t:urlDecode,setvar:tx.decoded=+1"
SecRule ARGS "@rx attack" "id:3,phase:1,pass,nolog,t:none,t:lowercase,setvar:tx.lower=+1"
SecRule ARGS "@rx attack" "id:4,phase:1,pass,nolog,t:none,t:urlDecode,t:lowercase,setvar:tx.both=+1"
SecRule ARGS "@rx attack" "id:5,phase:1,pass,nolog,t:none,t:htmlEntityDecode,setvar:tx.html=+1"
"#;
    let names = ["plain", "decoded", "lower", "both", "html"];
    let cases: [(&str, [bool; 5]); 5] = [
        ("/?a=%2561ttack", [false, true, false, true, false]),
        ("/?a=ATTACK", [false, false, true, true, false]),
        ("/?a=%26%2397%3Bttack", [false, false, false, false, true]),
        ("/?a=benign&b=attack", [true, true, true, true, true]),
        ("/?a=benign", [false; 5]),
    ];
    let rs = Arc::new(rules(&[("main.conf", conf)]).unwrap_or_else(|e| panic!("{e}")));
    in_rounds(
        &rs,
        6,
        &[],
        &cases,
        |c| c.0,
        |tx, (_, want), uri, round| {
            let got = names.map(|v| tx.tx_var(v).is_some());
            assert_eq!(&got, want, "{uri}, round {round}");
        },
    );
}

/// MATCHED_VAR holds each match's value in turn in one buffer: a
/// transformation of an earlier value of the same length is not reused.
#[test]
fn matched_var_transforms_follow_each_match() {
    let conf = r#"
SecRule ARGS:a "@rx ." "id:1,phase:1,pass,nolog"
SecRule MATCHED_VAR "@rx ^ABC$" "id:2,phase:1,pass,log,t:uppercase"
SecRule ARGS:b "@rx ." "id:3,phase:1,pass,nolog"
SecRule MATCHED_VAR "@rx ^ABC$" "id:4,phase:1,pass,log,t:uppercase"
SecRule MATCHED_VAR_NAME "@rx ^ARGS:A$" "id:5,phase:1,pass,log,t:uppercase"
"#;
    let (tx, _) = go(conf, "/?a=abc&b=xyz", &[], b"");
    assert_eq!(ids(&tx), vec![2]);
    let (tx, _) = go(conf, "/?b=abc&a=xyz", &[], b"");
    assert_eq!(ids(&tx), vec![4]);
}

/// A chain link whose operator's answers are kept per value (CRS 920250's
/// `@validateUtf8Encoding` over ARGS) passes over a target the union pass
/// found every value of known to fail, once the values repeat; a value it
/// matches still makes the chain match, on every round.
#[test]
fn chain_links_pass_over_targets_known_to_fail() {
    let conf = r#"
SecAction "id:1,phase:1,pass,nolog,setvar:tx.check=1"
SecRule ARGS "@rx attack" "id:5,phase:1,pass,log"
SecRule TX:check "@eq 1" "id:10,phase:1,pass,log,chain"
    SecRule ARGS "@validateUtf8Encoding" "t:none,t:urlDecode"
"#;
    let rs = Arc::new(rules(&[("main.conf", conf)]).unwrap_or_else(|e| panic!("{e}")));
    let run = |uri: &str| {
        let mut tx = Transaction::new(rs.clone(), &req(uri, &[]), "uid-1".into());
        tx.process_request_headers();
        tx
    };
    for round in 0..6 {
        let tx = run("/?a=one&b=two&c=three");
        assert!(ids(&tx).is_empty(), "round {round}");
        if round >= 3 {
            // Rule 5 and the link look at no value: the one call is the
            // chain's TX check.
            let s = tx.stats();
            assert_eq!(
                (s.operator_calls, s.operator_memo),
                (1, 0),
                "round {round}: {s:?}"
            );
        }
        let tx = run("/?a=one&b=%C0%AF&c=three");
        assert_eq!(ids(&tx), vec![10], "round {round}");
    }
}

/// Phase 4 wants a body only of the configured MIME types, matched
/// case-insensitively without parameters (`null` is a missing type), and
/// STATUS_LINE is the protocol and the status.
#[test]
fn response_body_mime_types_and_status_line() {
    let conf = "SecRuleEngine On\nSecResponseBodyAccess On\n\
        SecResponseBodyMimeType text/html null\n\
        SecRule STATUS_LINE \"@streq HTTP/1.1 404\" \"id:1,phase:3,pass,log\"\n";
    let rs = Arc::new(rules(&[("main.conf", conf)]).unwrap_or_else(|e| panic!("{e}")));
    for (ct, wants) in [
        (Some(" Text/HTML ; charset=utf-8"), true),
        (Some("text/htmlx"), false),
        (Some("application/json"), false),
        (None, true),
        (Some(""), true),
    ] {
        let mut tx = Transaction::new(rs.clone(), &req("/", &[]), "uid-1".into());
        assert!(tx.process_request_headers().is_none());
        let headers: Vec<(String, Vec<u8>)> = ct
            .map(|c| ("Content-Type".to_string(), c.as_bytes().to_vec()))
            .into_iter()
            .collect();
        assert!(tx
            .process_response_headers(404, "HTTP/1.1", &headers)
            .is_none());
        assert_eq!(tx.wants_response_body(), wants, "{ct:?}");
        assert_eq!(ids(&tx), vec![1], "{ct:?}");
    }
}

/// A thread's transactions reuse the response header buffers of the one
/// before: each sees only its own response's headers, and none when it
/// ends before a response (phase 5 runs after a block too, as in v2).
#[test]
fn response_headers_are_each_transactions_own() {
    let conf = "SecRuleEngine On\n\
        SecRule REQUEST_HEADERS:X-Block \"@rx .\" \"id:1,phase:1,deny,log\"\n\
        SecRule RESPONSE_HEADERS:X-Old \"@rx .\" \"id:2,phase:3,pass,log\"\n\
        SecRule &RESPONSE_HEADERS \"@gt 0\" \"id:3,phase:5,pass,log\"\n\
        SecRule &RESPONSE_HEADERS \"@eq 0\" \"id:4,phase:5,pass,log\"\n";
    let rs = Arc::new(rules(&[("main.conf", conf)]).unwrap_or_else(|e| panic!("{e}")));
    let h = |pairs: &[(&str, &str)]| -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    };
    let run = |req_headers: &[(&str, &str)], resp: Vec<(String, Vec<u8>)>| {
        let mut tx = Transaction::new(rs.clone(), &req("/", req_headers), "uid".into());
        let mut iv = tx.process_request_headers();
        if iv.is_none() {
            iv = tx.process_response_headers(200, "HTTP/1.1", &resp);
        }
        tx.process_logging();
        (ids(&tx), iv.map(|i| i.status))
    };
    let first = h(&[("X-Old", "1"), ("Content-Type", "text/html")]);
    assert_eq!(run(&[], first.clone()), (vec![2, 3], None));
    assert_eq!(run(&[("X-Block", "1")], first), (vec![1, 4], Some(403)));
    assert_eq!(run(&[], h(&[("Content-Type", "x")])), (vec![3], None));
    assert_eq!(run(&[], Vec::new()), (vec![4], None));
}

/// The request-line and connection variables are each transaction's own,
/// though their buffers are the thread's last transaction's: a short
/// request after a long one shows nothing of the long one.
#[test]
fn request_variables_are_each_transactions_own() {
    let conf = "SecRuleEngine On\n\
        SecAction \"id:1,phase:1,pass,log,msg:'%{REQUEST_LINE}|%{REQUEST_URI}|%{REQUEST_FILENAME}|%{REQUEST_BASENAME}|%{QUERY_STRING}|%{REMOTE_ADDR}|%{REMOTE_PORT}|%{SERVER_ADDR}|%{SERVER_PORT}|%{SERVER_NAME}|%{UNIQUE_ID}|%{REQUEST_METHOD}|%{REQUEST_PROTOCOL}'\"\n";
    let rs = Arc::new(rules(&[("main.conf", conf)]).unwrap_or_else(|e| panic!("{e}")));
    let run = |r: RequestHead, uid: &str| {
        let mut tx = Transaction::new(rs.clone(), &r, uid.into());
        tx.process_request_headers();
        tx.matched()
            .iter()
            .find(|m| m.id == 1)
            .map(|m| m.msg.clone())
            .unwrap()
    };
    let mut long = req(
        "/a%20long/path/to/some/file.php?with=a&long=query%20string",
        &[("Host", "long-host-name.example.com")],
    );
    long.method = "OPTIONS".into();
    long.version = HttpVersion::Http10;
    long.peer = "[2001:db8::1234:5678]:65535".parse().unwrap();
    long.client_ip = "2001:db8::1234:5678".parse().unwrap();
    long.local = "[2001:db8::1]:8443".parse().unwrap();
    assert_eq!(
        run(long, "a-long-unique-id"),
        "OPTIONS /a%20long/path/to/some/file.php?with=a&long=query%20string HTTP/1.0\
         |/a%20long/path/to/some/file.php?with=a&long=query%20string\
         |/a long/path/to/some/file.php|file.php|with=a&long=query%20string\
         |2001:db8::1234:5678|65535|2001:db8::1|8443|long-host-name.example.com\
         |a-long-unique-id|OPTIONS|HTTP/1.0"
    );
    assert_eq!(
        run(req("/b", &[("Host", "h")]), "u2"),
        "GET /b HTTP/1.1|/b|/b|b||10.0.0.1|4444|10.0.0.2|80|h|u2|GET|HTTP/1.1"
    );
}
