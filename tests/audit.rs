//! `hermetic audit` on a real release from `hermetic verify`, and on tampered copies.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

fn audit(dist: &Path, public: &Path, extra: &[&str], code: i32) -> Value {
    let mut cmd = hermetic(dist.parent().expect("parent"));
    cmd.arg("--json")
        .arg("audit")
        .arg(dist)
        .arg("--key")
        .arg(public)
        .args(extra);
    expect(&mut cmd, code).json()
}

/// `audit --rebuild` of `dist` from the checkout `source`.
fn rebuild(dist: &Path, public: &Path, source: &Path, code: i32) -> Value {
    audit(
        dist,
        public,
        &["--rebuild", "--source", source.to_str().expect("utf-8")],
        code,
    )
}

/// Names of the failed checks.
fn failed(v: &Value) -> Vec<String> {
    v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap_or("").to_string())
        .collect()
}

/// A copy of the release with one change.
fn tampered(dist: &Path, change: impl FnOnce(&Path)) -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("tmp");
    copy_dir(dist, &copy.path().join("dist"));
    change(&copy.path().join("dist"));
    copy
}

fn edit_json(path: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json");
    f(&mut v);
    std::fs::write(path, serde_json::to_vec_pretty(&v).expect("ser")).expect("write");
}

#[test]
fn audit_passes_a_real_release_and_names_each_tampering() {
    let _serial = engine_lock();
    let (key, public) = test_key();
    let project = fixture("hello");
    let source = fixture("hello"); // a clean checkout for --rebuild
    let mut verify = hermetic(project.path());
    verify
        .args([
            "--json",
            "verify",
            "--image",
            builder_image(),
            "--runners",
            "2",
            "--vary",
            "tz,hostname",
            "--no-cache",
            "--key",
        ])
        .arg(key);
    expect(&mut verify, 0);
    let dist = project.path().join("dist");
    let lock = project.path().join("Cargo.lock");
    let lock = lock.to_str().expect("utf-8");
    let policy = repo_root().join("vendor-policy.toml");

    let ok = audit(
        &dist,
        public,
        &[
            "--lockfile",
            lock,
            "--policy",
            policy.to_str().expect("utf-8"),
        ],
        0,
    );
    let names: Vec<&str> = ok["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for want in [
        "hello.sig",
        "signature of provenance.sigstore.json",
        "provenance crates = SPDX packages",
        "crate checksums = Cargo.lock",
        "vendor policy",
    ] {
        assert!(names.contains(&want), "{want} not checked: {names:?}");
    }
    let rebuilt = rebuild(&dist, public, source.path(), 0);
    assert!(failed(&rebuilt).is_empty(), "{rebuilt}");

    // Each tampering fails, and the check that caught it says so.
    type Tamper = Box<dyn FnOnce(&Path)>;
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "artifact byte",
            Box::new(|d: &Path| {
                let mut b = std::fs::read(d.join("hello")).expect("read");
                let last = b.len() - 1;
                b[last] ^= 1;
                std::fs::write(d.join("hello"), b).expect("write");
            }),
            "hello matches SHA256SUMS",
        ),
        (
            "SBOM entry",
            Box::new(|d: &Path| {
                edit_json(&d.join("sbom.spdx.json"), |v| {
                    v["packages"][0]["versionInfo"] = Value::String("9.9.9".into())
                })
            }),
            "sbom.spdx.json is the signed document",
        ),
        (
            "provenance dependency",
            Box::new(|d: &Path| {
                edit_json(&d.join("provenance.intoto.json"), |v| {
                    v["predicate"]["buildDefinition"]["resolvedDependencies"][1]["digest"]["sha256"] =
                        Value::String("0".repeat(64))
                })
            }),
            "provenance.intoto.json is the signed document",
        ),
        (
            "signature",
            Box::new(|d: &Path| std::fs::write(d.join("hello.sig"), "MEUCIQDx").expect("write")),
            "hello.sig",
        ),
        (
            // The unsigned record changes what a crate's build script is, as one that
            // hides a build script from a policy that forbids it would.
            "dependency manifest",
            Box::new(|d: &Path| {
                edit_json(&d.join("hermetic-build.json"), |v| {
                    for p in v["deps"]["packages"].as_array_mut().expect("packages") {
                        let had = p["build_script"].as_bool().expect("build_script");
                        p["build_script"] = Value::Bool(!had);
                    }
                })
            }),
            "dependency manifest is the signed one",
        ),
        (
            "swapped bundle",
            Box::new(|d: &Path| {
                std::fs::copy(
                    d.join("sbom.spdx.sigstore.json"),
                    d.join("provenance.sigstore.json"),
                )
                .expect("copy");
            }),
            "signature of provenance.sigstore.json",
        ),
    ];
    for (what, change, check) in cases {
        let copy = tampered(&dist, change);
        let v = audit(&copy.path().join("dist"), public, &[], 1);
        assert!(
            failed(&v).iter().any(|f| f == check),
            "{what}: expected {check:?} to fail, got {:?}",
            failed(&v)
        );
    }

    // --rebuild catches a swapped artifact (here with SHA256SUMS rewritten to match it).
    let copy = tampered(&dist, |d| {
        std::fs::write(d.join("hello"), b"#!/bin/sh\necho hello 42\n").expect("write");
        let sums = std::fs::read_to_string(d.join("SHA256SUMS")).expect("sums");
        let fake = hermetic_deps::hash::sha256_hex(b"#!/bin/sh\necho hello 42\n");
        let sums: String = sums
            .lines()
            .map(|l| {
                if l.ends_with("*hello") {
                    format!("{fake} *hello\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        std::fs::write(d.join("SHA256SUMS"), sums).expect("write");
    });
    let v = rebuild(&copy.path().join("dist"), public, source.path(), 1);
    assert!(
        failed(&v)
            .iter()
            .any(|f| f == "rebuild: outputs match the release"),
        "{v}"
    );
}

/// A signed provenance still cannot choose what `audit --rebuild` builds: a manifest path
/// that leaves the checkout, or passes through a link in it to another project of the
/// auditor's machine, is a failed check, and nothing is built or written there.
#[test]
fn a_recorded_manifest_path_cannot_leave_the_checkout() {
    let _serial = engine_lock();
    let (key, public) = test_key();
    let project = fixture("hello");
    let mut build = hermetic(project.path());
    build
        .args(["--json", "build", "--image", builder_image(), "--key"])
        .arg(key);
    expect(&mut build, 0);
    let dist = project.path().join("dist");
    let elsewhere = fixture("hello");
    for recorded in [
        "../elsewhere/Cargo.toml",
        "/etc/Cargo.toml",
        "sub/Cargo.toml",
    ] {
        let source = fixture("hello");
        std::os::unix::fs::symlink(elsewhere.path(), source.path().join("sub")).expect("ln");
        // The release's own record says so, and the holder of the trusted key signs it
        // (`hermetic attest` would not: the record is not the one the build signed).
        let copy = tampered(&dist, |d| {
            edit_json(&d.join("hermetic-build.json"), |v| {
                v["source"]["manifest_path"] = serde_json::json!(recorded);
            });
        });
        let copy_dist = copy.path().join("dist");
        let signing =
            hermetic_attest::keys::SigningKey::load(key, PASSWORD.as_bytes()).expect("key");
        let rec =
            hermetic_attest::record::BuildRecord::read(&copy_dist.join("hermetic-build.json"))
                .expect("record");
        hermetic_attest::documents::write_unsigned(&copy_dist, &rec).expect("documents");
        hermetic_attest::documents::sign(&copy_dist, &rec, &signing).expect("sign");
        let v = rebuild(&copy_dist, public, source.path(), 1);
        assert!(
            failed(&v)
                .iter()
                .any(|f| f == "rebuild: the recorded manifest path"),
            "{recorded}: {v}"
        );
        assert!(
            !elsewhere.path().join("target").exists(),
            "{recorded}: the other project was built"
        );
    }
}
