//! Build → verify → tamper, over files on disk.

use std::path::PathBuf;

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("palisade-policy-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const POLICY: &str = "version: 1\nname: t\nupstreams:\n  app:\n    targets: [\"127.0.0.1:9\"]\nroutes:\n  - name: a\n    upstream: app\nwaf:\n  enabled: true\n  rules: [rules/*.conf]\n";

fn policy_dir(tag: &str) -> PathBuf {
    let d = tempdir(tag);
    std::fs::create_dir_all(d.join("rules")).unwrap();
    std::fs::write(d.join("palisade.yaml"), POLICY).unwrap();
    std::fs::write(
        d.join("rules/a.conf"),
        "SecRule ARGS \"@pmFromFile words.data\" \"id:1,phase:2,deny,status:403\"\n",
    )
    .unwrap();
    std::fs::write(d.join("rules/words.data"), "evil\n").unwrap();
    std::fs::write(d.join("unrelated.txt"), "not in the bundle").unwrap();
    d
}

#[test]
fn build_verify_and_content_addressing() {
    let d = policy_dir("ok");
    let k = policy::generate_signing_key().unwrap();
    let (b, bytes) = policy::build(&d, &k).unwrap();
    assert_eq!(b.digest.len(), 64);
    // Exactly what the policy uses: the data file read by @pmFromFile, not unrelated files.
    let names: Vec<_> = b.files.keys().cloned().collect();
    assert_eq!(names, ["palisade.yaml", "rules/a.conf", "rules/words.data"]);
    let v = policy::Bundle::from_bytes(&bytes, &[k.verifying_key()]).unwrap();
    assert_eq!(v.digest, b.digest);
    assert_eq!(v.waf_rule_files(), ["rules/a.conf"]);
    // Same content, another key and time: same digest.
    let k2 = policy::generate_signing_key().unwrap();
    let (b2, _) = policy::build(&d, &k2).unwrap();
    assert_eq!(b2.digest, b.digest);
    // Another key is not trusted.
    let e = policy::Bundle::from_bytes(&bytes, &[k2.verifying_key()]).unwrap_err();
    assert!(matches!(e, policy::BundleError::Signature { .. }), "{e}");
    // Content change: new digest.
    std::fs::write(d.join("rules/words.data"), "evil\nworse\n").unwrap();
    let (b3, _) = policy::build(&d, &k).unwrap();
    assert_ne!(b3.digest, b.digest);
}

#[test]
fn tampered_unsigned_and_garbage_are_refused() {
    let d = policy_dir("tamper");
    let k = policy::generate_signing_key().unwrap();
    let trust = [k.verifying_key()];
    let (_, bytes) = policy::build(&d, &k).unwrap();
    let mut j: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    // Swap a file's content but keep the digest.
    let mut t = j.clone();
    t["files"]["rules/words.data"] = serde_json::Value::String("Z29vZAo=".into());
    let e = policy::Bundle::from_bytes(&serde_json::to_vec(&t).unwrap(), &trust).unwrap_err();
    assert!(matches!(e, policy::BundleError::Digest { .. }), "{e}");
    // Change the metadata: the signature no longer verifies.
    let mut t = j.clone();
    t["meta"]["git_commit"] = serde_json::Value::String("deadbeef".into());
    let e = policy::Bundle::from_bytes(&serde_json::to_vec(&t).unwrap(), &trust).unwrap_err();
    assert!(matches!(e, policy::BundleError::Signature { .. }), "{e}");
    // No signature.
    j["signature"] = serde_json::Value::Null;
    let e = policy::Bundle::from_bytes(&serde_json::to_vec(&j).unwrap(), &trust).unwrap_err();
    assert!(matches!(e, policy::BundleError::Unsigned), "{e}");
    for junk in [&b""[..], b"{}", b"\xff\xfe", b"[1,2]"] {
        assert!(policy::Bundle::from_bytes(junk, &trust).is_err());
    }
    assert!(policy::Bundle::read(&d.join("missing.pal"), &trust).is_err());
}

#[test]
fn rule_errors_name_file_and_line() {
    let d = policy_dir("badrule");
    std::fs::write(
        d.join("rules/a.conf"),
        "\n\nSecRule ARGS \"@rx (\" \"id:1,phase:2,deny\"\n",
    )
    .unwrap();
    let k = policy::generate_signing_key().unwrap();
    let e = policy::build(&d, &k).unwrap_err().to_string();
    assert!(e.contains("rules/a.conf:3"), "{e}");
    let d = policy_dir("badglob");
    std::fs::write(
        d.join("palisade.yaml"),
        POLICY.replace("rules/*.conf", "nope/*.conf"),
    )
    .unwrap();
    let e = policy::build(&d, &k).unwrap_err().to_string();
    assert!(
        e.contains("waf.rules[0]") && e.contains("palisade.yaml:11"),
        "{e}"
    );
}

#[test]
fn keys_round_trip_and_never_overwrite() {
    let d = tempdir("keys");
    let (sk, pk) = policy::keygen(&d.join("ci")).unwrap();
    let s = policy::load_signing_key(&sk).unwrap();
    let p = policy::load_verifying_key(&pk).unwrap();
    assert_eq!(s.verifying_key(), p);
    assert!(policy::keygen(&d.join("ci")).is_err());
    assert!(
        policy::load_verifying_key(&sk).is_err(),
        "a secret key is not a public key"
    );
    std::fs::write(d.join("bad.pub"), "palisade-ed25519-public !!!").unwrap();
    assert!(policy::load_verifying_key(&d.join("bad.pub")).is_err());
}
