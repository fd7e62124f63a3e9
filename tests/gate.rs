//! Rebuild attestations from real builds, and the k-of-n gate over them.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Makes key pair `name` in `dir` with `hermetic keygen`: (private, public).
fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let mut cmd = hermetic(dir);
    cmd.args(["keygen", "--output-key-prefix", name]);
    expect(&mut cmd, 0);
    (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    )
}

fn rebuild(project: &Path, key: &Path, runner: &str, att: &Path) {
    let mut cmd = hermetic(project);
    cmd.args([
        "--json",
        "rebuild",
        "--image",
        builder_image(),
        "--runner-id",
        runner,
    ])
    .arg("--key")
    .arg(key)
    .arg("--emit-attestation")
    .arg(att);
    expect(&mut cmd, 0);
}

/// The statement inside a rebuild attestation.
fn statement(att: &Path) -> Value {
    let bundle: Value = serde_json::from_slice(&std::fs::read(att).expect("att")).expect("json");
    let payload = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        bundle["dsseEnvelope"]["payload"].as_str().expect("payload"),
    )
    .expect("b64");
    serde_json::from_slice(&payload).expect("statement")
}

fn gate(dir: &Path, atts: &[&Path], trusted: &[&Path], quorum: usize, code: i32) -> Value {
    // About the release the first attestation is about, unless a test says otherwise.
    let inputs = statement(atts[0])["predicate"]["inputsDigest"]
        .as_str()
        .expect("inputs")
        .to_string();
    gate_about(
        dir,
        atts,
        trusted,
        quorum,
        code,
        &["--inputs-digest", &inputs],
    )
}

fn gate_about(
    dir: &Path,
    atts: &[&Path],
    trusted: &[&Path],
    quorum: usize,
    code: i32,
    release: &[&str],
) -> Value {
    let mut cmd = hermetic(dir);
    cmd.args(["--json", "gate"]).args(release);
    for a in atts {
        cmd.arg(a);
    }
    for k in trusted {
        cmd.arg("--trusted-key").arg(k);
    }
    cmd.args(["--quorum", &quorum.to_string()]);
    expect(&mut cmd, code).json()
}

#[test]
fn quorum_of_real_rebuilds_and_every_way_to_fail_it() {
    let _serial = engine_lock();
    let keys = tempfile::tempdir().expect("tmp");
    let k = keys.path();
    let (k1, p1) = keygen(k, "runner1");
    let (k2, p2) = keygen(k, "runner2");
    let (k3, p3) = keygen(k, "runner3");
    let (k4, _) = keygen(k, "stranger");
    let trusted = [p1.as_path(), p2.as_path(), p3.as_path()];

    let project = fixture("hello");
    let a1 = k.join("a1.json");
    let a2 = k.join("a2.json");
    let a3 = k.join("a3.json");
    let a4 = k.join("a4.json");
    rebuild(project.path(), &k1, "ci-linux-1", &a1);
    rebuild(project.path(), &k2, "ci-linux-2", &a2);
    rebuild(project.path(), &k3, "ci-linux-3", &a3);
    rebuild(project.path(), &k4, "stranger", &a4);

    let all = [a1.as_path(), a2.as_path(), a3.as_path()];
    let r = gate(k, &all, &trusted, 2, 0);
    assert_eq!(r["agreeing"].as_array().expect("agreeing").len(), 3, "{r}");
    let r = gate(k, &all, &trusted, 3, 0);
    assert!(r["subjects"]["hello"].as_str().is_some(), "{r}");

    // One vote per key: a copy is ignored, not counted twice.
    let r = gate(k, &[&a1, &a1, &a2], &trusted, 3, 1);
    assert_eq!(r["ignored"].as_array().expect("ignored").len(), 1, "{r}");
    // Nor is one key two voters under two file names.
    let copy = k.join("runner1-again.pub");
    std::fs::copy(&p1, &copy).expect("copy");
    let r = gate(k, &all, &[p1.as_path(), copy.as_path(), p2.as_path()], 2, 2);
    assert!(
        r["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("the same key as --trusted-key")),
        "{r}"
    );

    // An untrusted key's attestation does not count.
    let r = gate(k, &[&a1, &a2, &a4], &trusted, 3, 1);
    assert!(
        r["ignored"][0]["reason"]
            .as_str()
            .expect("reason")
            .contains("not signed by a trusted key")
    );

    // An altered attestation fails the gate, whatever the others say.
    let mut bundle: Value = serde_json::from_slice(&std::fs::read(&a3).expect("a3")).expect("json");
    let payload = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        bundle["dsseEnvelope"]["payload"].as_str().expect("payload"),
    )
    .expect("b64");
    let mut inside: Value = serde_json::from_slice(&payload).expect("statement");
    inside["subject"][0]["digest"]["sha256"] = Value::String("0".repeat(64));
    bundle["dsseEnvelope"]["payload"] = Value::String(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        serde_json::to_vec(&inside).expect("ser"),
    ));
    let altered = k.join("altered.json");
    std::fs::write(&altered, serde_json::to_vec(&bundle).expect("ser")).expect("write");
    let r = gate(k, &[&a1, &a2, &altered], &trusted, 2, 1);
    assert!(
        r["rejected"][0]["reason"]
            .as_str()
            .expect("reason")
            .contains("signature-invalid"),
        "{r}"
    );

    // The gate decides about one release: told none, it refuses to count.
    let r = gate_about(k, &all, &trusted, 2, 2, &[]);
    assert!(
        r["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("which release")),
        "{r}"
    );
    // The release's SHA256SUMS: the votes must be about exactly those outputs.
    let sums = project.path().join("dist/SHA256SUMS");
    let sums_arg = sums.to_str().expect("utf-8");
    let r = gate_about(k, &all, &trusted, 3, 0, &["--sums", sums_arg]);
    assert_eq!(r["agreeing"].as_array().expect("agreeing").len(), 3, "{r}");
    let forged = k.join("SHA256SUMS");
    let text = std::fs::read_to_string(&sums).expect("sums");
    std::fs::write(&forged, format!("{}{}", "0".repeat(64), &text[64..])).expect("forge");
    let r = gate_about(
        k,
        &all,
        &trusted,
        2,
        1,
        &["--sums", forged.to_str().expect("utf-8")],
    );
    assert!(r["reasons"].to_string().contains("SHA256SUMS"), "{r}");

    // A rebuild of changed source is about another release: not counted for this one, and
    // its runner's older vote cannot stand in for a current one.
    let main_rs = project.path().join("src/main.rs");
    let text = std::fs::read_to_string(&main_rs).expect("main.rs");
    std::fs::write(&main_rs, text.replace("42u32", "7u32")).expect("write");
    let a5 = k.join("a5.json");
    rebuild(project.path(), &k3, "ci-linux-3", &a5);
    let r = gate(k, &[&a1, &a2, &a5], &trusted, 3, 1);
    assert!(
        r["ignored"].to_string().contains("about other inputs"),
        "{r}"
    );
    let new_release = statement(&a5)["predicate"]["inputsDigest"]
        .as_str()
        .expect("inputs")
        .to_string();
    let r = gate_about(
        k,
        &[&a3, &a1, &a2, &a5],
        &trusted,
        2,
        1,
        &["--inputs-digest", &new_release],
    );
    assert_eq!(r["agreeing"].as_array().expect("agreeing").len(), 1, "{r}");
    // Unbound to inputs, votes about different inputs still fail the gate.
    let r = gate_about(k, &[&a1, &a2, &a5], &trusted, 2, 1, &["--sums", sums_arg]);
    assert!(r["reasons"].to_string().contains("different inputs"), "{r}");

    // Disagreeing digests from the same inputs: a build that embeds the time.
    let nd = fixture("nd-time");
    let d1 = k.join("d1.json");
    let d2 = k.join("d2.json");
    let d3 = k.join("d3.json");
    rebuild(nd.path(), &k1, "ci-linux-1", &d1);
    rebuild(nd.path(), &k2, "ci-linux-2", &d2);
    rebuild(nd.path(), &k3, "ci-linux-3", &d3);
    let r = gate(k, &[&d1, &d2, &d3], &trusted, 2, 1);
    assert!(
        !r["dissenting"].as_array().expect("dissenting").is_empty(),
        "{r}"
    );
}
