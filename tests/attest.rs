//! Attestations of real builds, checked by the field's own tools (pyspdxtools,
//! cyclonedx-python-lib, securesystemslib, openssl) and by `verify-attestation`.

mod common;

use base64::Engine as _;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn helper(name: &str) -> PathBuf {
    repo_root().join("tests/helpers").join(name)
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .expect("json")
}

/// `openssl dgst -sha256 -verify PUB -signature DER FILE` on a cosign `.sig`.
fn openssl_verifies(public: &Path, sig_b64: &Path, file: &Path) -> bool {
    let der = base64::engine::general_purpose::STANDARD
        .decode(std::fs::read_to_string(sig_b64).expect("sig").trim())
        .expect("base64 signature");
    let der_path = sig_b64.with_extension("der-test");
    std::fs::write(&der_path, der).expect("write der");
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(public)
        .arg("-signature")
        .arg(&der_path)
        .arg(file)
        .output()
        .expect("openssl");
    let _ = std::fs::remove_file(&der_path);
    out.status.success()
}

fn verify_attestation(bundle: &Path, public: &Path, artifact: Option<&Path>, code: i32) -> Run {
    let mut cmd = hermetic(bundle.parent().expect("dir"));
    cmd.arg("--json")
        .arg("verify-attestation")
        .arg(bundle)
        .arg("--key")
        .arg(public);
    if let Some(a) = artifact {
        cmd.arg("--artifact").arg(a);
    }
    expect(&mut cmd, code)
}

const BUNDLES: [&str; 3] = [
    "provenance.sigstore.json",
    "sbom.spdx.sigstore.json",
    "sbom.cdx.sigstore.json",
];

#[test]
fn build_attestations_pass_external_validators_and_are_reproducible() {
    let (key, public) = test_key();
    let project = fixture("mixed");
    let mut cmd = hermetic(project.path());
    cmd.args(["--json", "build", "--image", builder_image(), "--key"])
        .arg(key);
    expect(&mut cmd, 0);
    let dist = project.path().join("dist");
    let record = read_json(&dist.join("hermetic-build.json"));
    let artifacts: Vec<String> = record["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .map(|a| a["name"].as_str().expect("name").to_string())
        .collect();
    assert_eq!(artifacts.len(), 2, "{artifacts:?}");

    // SPDX 2.3: the reference tool.
    let mut spdx = Command::new("pyspdxtools");
    spdx.arg("-i").arg(dist.join("sbom.spdx.json"));
    expect(&mut spdx, 0);
    // CycloneDX 1.6: the strict schema validator.
    let mut cdx = Command::new("python3");
    cdx.arg(helper("validate.py"))
        .arg("cyclonedx")
        .arg(dist.join("sbom.cdx.json"));
    expect(&mut cdx, 0);
    // DSSE: securesystemslib on every envelope.
    let mut dsse = Command::new("python3");
    dsse.arg(helper("validate.py")).arg("dsse");
    for b in BUNDLES {
        dsse.arg(dist.join(b));
    }
    dsse.arg("--key").arg(public);
    let out = expect(&mut dsse, 0);
    assert_eq!(out.stdout.lines().count(), 3, "{}", out.stdout);
    // openssl on every .sig; verify-attestation on every bundle.
    let mut signed = artifacts.clone();
    signed.push("SHA256SUMS".into());
    for name in &signed {
        let file = dist.join(name);
        assert!(
            openssl_verifies(public, &dist.join(format!("{name}.sig")), &file),
            "openssl rejects {name}.sig"
        );
        verify_attestation(
            &dist.join(format!("{name}.sigstore.json")),
            public,
            Some(&file),
            0,
        );
    }
    for b in BUNDLES {
        for a in &artifacts {
            verify_attestation(&dist.join(b), public, Some(&dist.join(a)), 0);
        }
    }
    let mut sums = Command::new("sha256sum");
    sums.current_dir(&dist).args(["-c", "SHA256SUMS"]);
    expect(&mut sums, 0);

    // The SBOMs carry every crate with its Cargo.lock checksum and the dependency graph.
    let spdx_doc = read_json(&dist.join("sbom.spdx.json"));
    let lock = std::fs::read_to_string(project.path().join("Cargo.lock")).expect("lock");
    let itoa = spdx_doc["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| {
            p["name"] == "itoa"
                && p["versionInfo"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("0.4"))
        })
        .expect("itoa 0.4 in the SBOM");
    let sum = itoa["checksums"][0]["checksumValue"]
        .as_str()
        .expect("checksum");
    assert!(
        lock.contains(sum),
        "itoa checksum {sum} not from Cargo.lock"
    );
    let provenance = read_json(&dist.join("provenance.intoto.json"));
    let deps = provenance["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .expect("resolved");
    assert!(
        deps.iter()
            .any(|d| d["uri"] == "pkg:cargo/unicode-ident@1.0.12" || d["name"] == "unicode-ident")
    );
    assert!(deps.iter().any(|d| {
        d["name"] == "builder-image"
            && record["image"]["digest"]
                .as_str()
                .is_some_and(|i| i.ends_with(d["digest"]["sha256"].as_str().unwrap_or("-")))
    }));

    // Same inputs again: identical SBOMs and buildDefinition; only run metadata differs.
    let first_spdx = std::fs::read(dist.join("sbom.spdx.json")).expect("spdx");
    let first_cdx = std::fs::read(dist.join("sbom.cdx.json")).expect("cdx");
    let mut again = hermetic(project.path());
    again
        .args(["--json", "build", "--image", builder_image(), "--key"])
        .arg(key);
    expect(&mut again, 0);
    assert_eq!(
        first_spdx,
        std::fs::read(dist.join("sbom.spdx.json")).expect("spdx")
    );
    assert_eq!(
        first_cdx,
        std::fs::read(dist.join("sbom.cdx.json")).expect("cdx")
    );
    let second = read_json(&dist.join("provenance.intoto.json"));
    assert_eq!(
        serde_json::to_string(&provenance["predicate"]["buildDefinition"]).expect("ser"),
        serde_json::to_string(&second["predicate"]["buildDefinition"]).expect("ser")
    );
    assert_eq!(provenance["subject"], second["subject"]);
    assert_eq!(
        provenance["predicate"]["runDetails"]["builder"],
        second["predicate"]["runDetails"]["builder"]
    );
    assert_ne!(
        provenance["predicate"]["runDetails"]["metadata"],
        second["predicate"]["runDetails"]["metadata"]
    );

    // Mutations through the CLI: each is rejected with its own reason.
    let bundle_path = dist.join("provenance.sigstore.json");
    let good = read_json(&bundle_path);
    let payload = base64::engine::general_purpose::STANDARD
        .decode(good["dsseEnvelope"]["payload"].as_str().expect("payload"))
        .expect("b64");
    let mut statement: Value = serde_json::from_slice(&payload).expect("statement");
    statement["subject"][0]["digest"]["sha256"] = Value::String("0".repeat(64));
    let forged = base64::engine::general_purpose::STANDARD
        .encode(serde_json::to_vec(&statement).expect("ser"));
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "statement",
            Box::new(move |b: &mut Value| {
                b["dsseEnvelope"]["payload"] = Value::String(forged.clone())
            }),
            "signature-invalid",
        ),
        (
            "signature",
            Box::new(|b: &mut Value| {
                let sig = b["dsseEnvelope"]["signatures"][0]["sig"]
                    .as_str()
                    .expect("sig")
                    .to_string();
                let mut raw = base64::engine::general_purpose::STANDARD
                    .decode(sig)
                    .expect("b64");
                let last = raw.len() - 2;
                raw[last] ^= 1;
                b["dsseEnvelope"]["signatures"][0]["sig"] =
                    Value::String(base64::engine::general_purpose::STANDARD.encode(raw));
            }),
            "signature-invalid",
        ),
        (
            "hint",
            Box::new(|b: &mut Value| {
                b["verificationMaterial"]["publicKey"]["hint"] = Value::String("AAAA".into())
            }),
            "key-hint-mismatch",
        ),
        (
            "keyid",
            Box::new(|b: &mut Value| {
                b["dsseEnvelope"]["signatures"][0]["keyid"] = Value::String("AAAA".into())
            }),
            "keyid-mismatch",
        ),
        (
            "payloadType",
            Box::new(|b: &mut Value| {
                b["dsseEnvelope"]["payloadType"] = Value::String("application/json".into())
            }),
            "signature-invalid",
        ),
        (
            "mediaType",
            Box::new(|b: &mut Value| {
                b["mediaType"] =
                    Value::String("application/vnd.dev.sigstore.bundle+json;version=0.1".into())
            }),
            "bundle-media-type",
        ),
    ];
    for (what, mutate, code) in cases {
        let mut b = good.clone();
        mutate(&mut b);
        let path = dist.join(format!("mutated-{what}.json"));
        std::fs::write(&path, serde_json::to_vec(&b).expect("ser")).expect("write");
        let out = verify_attestation(&path, public, None, 1).json();
        let msg = out["error"]["message"].as_str().expect("message");
        assert!(msg.contains(code), "{what}: {msg}");
        std::fs::remove_file(&path).expect("rm");
    }
    // The artifact.
    let fake = dist.join("not-the-artifact");
    std::fs::write(&fake, b"something else").expect("write");
    let out = verify_attestation(&bundle_path, public, Some(&fake), 1).json();
    assert!(
        out["error"]["message"]
            .as_str()
            .expect("message")
            .contains("artifact-not-a-subject")
    );
    let blob_bundle = dist.join(format!("{}.sigstore.json", artifacts[0]));
    let out = verify_attestation(&blob_bundle, public, Some(&fake), 1).json();
    assert!(
        out["error"]["message"]
            .as_str()
            .expect("message")
            .contains("artifact-digest-mismatch")
    );
    std::fs::remove_file(&fake).expect("rm");

    // Re-signing with a key that never touched the build: `hermetic attest`.
    let other = tempfile::tempdir().expect("tmp");
    let mut keygen = hermetic(other.path());
    keygen.args(["keygen", "--output-key-prefix", "release"]);
    expect(&mut keygen, 0);
    let release_pub = other.path().join("release.pub");
    let attest_with = |trusted: Option<&Path>, code: i32| {
        let mut attest = hermetic(project.path());
        attest
            .args(["--json", "attest", "dist", "--key"])
            .arg(other.path().join("release.key"));
        if let Some(t) = trusted {
            attest.arg("--trusted-key").arg(t);
        }
        expect(&mut attest, code).json()
    };
    let error = |v: &Value| {
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    // The release key has never seen this build: without the build's key, nothing vouches
    // for the record.
    let v = attest_with(None, 1);
    assert!(error(&v).contains("[record-not-signed]"), "{v}");
    // A record changed after the build signed it is not signed again.
    let record = dist.join("hermetic-build.json");
    let original = std::fs::read(&record).expect("record");
    let mut changed: Value = serde_json::from_slice(&original).expect("json");
    changed["deps"]["packages"][0]["build_script"] = Value::Bool(
        !changed["deps"]["packages"][0]["build_script"]
            .as_bool()
            .expect("bool"),
    );
    std::fs::write(&record, serde_json::to_vec(&changed).expect("ser")).expect("write");
    let v = attest_with(Some(public), 1);
    assert!(error(&v).contains("[record-changed-since-signed]"), "{v}");
    // Nor one whose artifact name would be a path out of the directory.
    changed = serde_json::from_slice(&original).expect("json");
    changed["artifacts"][0]["name"] = Value::String("../outside".into());
    std::fs::write(&record, serde_json::to_vec(&changed).expect("ser")).expect("write");
    let v = attest_with(Some(public), 1);
    assert!(error(&v).contains("[artifact-name]"), "{v}");
    std::fs::write(&record, &original).expect("restore");
    // Nor one about other inputs than a gate's quorum agreed on.
    let mut attest = hermetic(project.path());
    attest
        .args(["--json", "attest", "dist", "--key"])
        .arg(other.path().join("release.key"))
        .arg("--trusted-key")
        .arg(public)
        .args(["--inputs-digest", &"0".repeat(64)]);
    let v = expect(&mut attest, 1).json();
    assert!(error(&v).contains("[record-not-the-gated-inputs]"), "{v}");
    // A file the record does not name is not published with the signed release.
    std::fs::write(dist.join("install.sh"), "#!/bin/sh\n").expect("extra");
    attest_with(Some(public), 0);
    assert!(
        !dist.join("install.sh").exists(),
        "an unsigned extra was published"
    );
    assert_eq!(
        second,
        read_json(&dist.join("provenance.intoto.json")),
        "attest changed the provenance"
    );
    for b in BUNDLES {
        verify_attestation(&dist.join(b), &release_pub, None, 0);
        verify_attestation(&dist.join(b), public, None, 1);
    }
    assert!(openssl_verifies(
        &release_pub,
        &dist.join(format!("{}.sig", artifacts[0])),
        &dist.join(&artifacts[0])
    ));

    // Signed again by the release key, the release key's own signature vouches.
    attest_with(None, 0);
    // A replaced artifact is never signed.
    std::fs::write(dist.join(&artifacts[0]), b"tampered").expect("write");
    let out = attest_with(Some(public), 1);
    assert!(
        error(&out).contains(&artifacts[0])
            && error(&out).contains("[artifact-changed-since-build]"),
        "{out}"
    );
    // Nothing was left half-written beside the directory.
    let beside: Vec<_> = std::fs::read_dir(project.path())
        .expect("project")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".dist"))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");
}

#[test]
fn cosign_keys_interoperate_with_an_independent_implementation() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    // A key made outside hermetic signs with `hermetic sign`.
    let mut make = Command::new("python3");
    make.arg(helper("cosign_key.py"))
        .args(["gen", "outside"])
        .current_dir(d)
        .env("COSIGN_PASSWORD", PASSWORD);
    expect(&mut make, 0);
    std::fs::write(d.join("blob.txt"), b"release notes\n").expect("write");
    let mut sign = hermetic(d);
    sign.args(["--json", "sign", "blob.txt", "--key", "outside.key"]);
    expect(&mut sign, 0);
    assert!(openssl_verifies(
        &d.join("outside.pub"),
        &d.join("blob.txt.sig"),
        &d.join("blob.txt")
    ));
    verify_attestation(
        &d.join("blob.txt.sigstore.json"),
        &d.join("outside.pub"),
        Some(&d.join("blob.txt")),
        0,
    );
    let bundle = read_json(&d.join("blob.txt.sigstore.json"));
    assert_eq!(
        bundle["mediaType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    assert_eq!(
        bundle["verificationMaterial"]["tlogEntries"],
        serde_json::json!([])
    );
    assert_eq!(
        bundle["messageSignature"]["messageDigest"]["algorithm"],
        "SHA2_256"
    );

    // A key from `hermetic keygen` decrypts with the independent implementation.
    let mut keygen = hermetic(d);
    keygen.args(["keygen"]);
    expect(&mut keygen, 0);
    let key_text = std::fs::read_to_string(d.join("cosign.key")).expect("key");
    assert!(key_text.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
    assert!(!key_text.contains('\r'));
    let mut decrypt = Command::new("python3");
    decrypt
        .arg(helper("cosign_key.py"))
        .args(["pub", "cosign.key"])
        .current_dir(d)
        .env("COSIGN_PASSWORD", PASSWORD);
    let out = expect(&mut decrypt, 0);
    assert_eq!(
        out.stdout,
        std::fs::read_to_string(d.join("cosign.pub")).expect("pub")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("cosign.key"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "private key readable by others: {mode:o}");
    }

    // keygen never overwrites; a wrong password and a public key are clear input errors.
    let mut again = hermetic(d);
    again.args(["--json", "keygen"]);
    let out = expect(&mut again, 2).json();
    assert!(
        out["error"]["fix"]
            .as_str()
            .expect("fix")
            .contains("--force")
    );
    let mut wrong = hermetic(d);
    wrong
        .args(["--json", "sign", "blob.txt", "--key", "cosign.key"])
        .env("COSIGN_PASSWORD", "wrong");
    let out = expect(&mut wrong, 2).json();
    assert!(
        out["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("cosign.key"),
        "{out}"
    );
    assert!(
        out["error"]["fix"]
            .as_str()
            .expect("fix")
            .contains("COSIGN_PASSWORD"),
        "{out}"
    );
    let mut public = hermetic(d);
    public.args(["--json", "sign", "blob.txt", "--key", "cosign.pub"]);
    let out = expect(&mut public, 2).json();
    assert!(
        out["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("public key"),
        "{out}"
    );
    // Online-only modes are refused with the reason.
    let mut keyless = hermetic(d);
    keyless.args(["--json", "sign", "blob.txt", "--keyless"]);
    let out = expect(&mut keyless, 2).json();
    assert!(
        out["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("Fulcio"),
        "{out}"
    );
}
