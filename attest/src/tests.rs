//! Signing and verification round trips, and mutations that must all be rejected.

use crate::bundle::{sign_blob, sign_dsse};
use crate::digest::FileDigest;
use crate::keys::{SigningKey, generate};
use crate::record::*;
use crate::statement::PAYLOAD_TYPE;
use crate::verify::{Failure, verify_bundle};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hermetic_deps::manifest::{Dependency, Package};
use hermetic_deps::{DepManifest, Source};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::OnceLock;

/// One key for all tests: scrypt at cosign's cost is slow in debug builds.
fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let (private, _) = generate(b"pw").expect("generate");
        SigningKey::from_pem(Path::new("k"), private.as_bytes(), b"pw").expect("load")
    })
}

fn package(name: &str, version: &str, member: bool, deps: &[(&str, &str)]) -> Package {
    Package {
        id: format!("{name}@{version}"),
        name: name.into(),
        version: version.into(),
        source: if member {
            Source::Path { path: ".".into() }
        } else {
            Source::Registry {
                name: "crates-io".into(),
                url: "https://github.com/rust-lang/crates.io-index".into(),
            }
        },
        checksum: (!member).then(|| hermetic_deps::hash::sha256_hex(name.as_bytes())),
        license: Some("MIT/Apache-2.0".into()),
        license_file: None,
        build_script: name == "anyhow",
        proc_macro: false,
        workspace_member: member,
        bin_targets: if member { vec![name.into()] } else { vec![] },
        bin_required_features: Default::default(),
        features: Default::default(),
        vendor_dir: None,
        enabled_features: vec![],
        dependencies: deps
            .iter()
            .map(|(id, kind)| Dependency {
                id: (*id).into(),
                kinds: vec![(*kind).into()],
            })
            .collect(),
    }
}

pub(crate) fn record() -> BuildRecord {
    let deps = DepManifest {
        format: hermetic_deps::manifest::FORMAT,
        lockfile_sha256: "ab".repeat(32),
        vendor_key: "cd".repeat(32),
        workspace_members: vec!["app@0.1.0".into()],
        packages: vec![
            package("anyhow", "1.0.0", false, &[]),
            package(
                "app",
                "0.1.0",
                true,
                &[("itoa@1.0.0", "normal"), ("anyhow@1.0.0", "build")],
            ),
            package("itoa", "1.0.0", false, &[]),
        ],
        vendored: vec![],
    };
    BuildRecord {
        format: FORMAT,
        hermetic_version: "0.1.0".into(),
        package: PackageRef { name: "app".into(), version: "0.1.0".into() },
        target: "x86_64-unknown-linux-gnu".into(),
        archive: "app-0.1.0-x86_64-unknown-linux-gnu.tar.gz".into(),
        artifacts: vec![FileDigest {
            name: "app".into(),
            sha256: hermetic_deps::hash::sha256_hex(b"binary"),
            size: 6,
        }],
        source: SourceRef {
            uri: Some("git+https://example.com/app.git".into()),
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            dirty: false,
            tree_sha256: "ef".repeat(32),
            files: 3,
            manifest_path: "Cargo.toml".into(),
        },
        profile: "release".into(),
        features: vec![],
        source_date_epoch: 1_700_000_000,
        source_date_epoch_origin: "test".into(),
        lockfile_sha256: "ab".repeat(32),
        vendor_tree_sha256: "12".repeat(32),
        image: ImageRef {
            reference: "hermetic/builder:latest".into(),
            digest: format!("sha256:{}", "34".repeat(32)),
            toolchain: Some("rustc 1.95.0 (59807616e 2026-04-14)\nrelease: 1.95.0\nhost: x86_64-unknown-linux-gnu".into()),
            definition: None,
        },
        environment: Environment {
            variables: vec!["SOURCE_DATE_EPOCH=1700000000".into()],
            command: vec!["cargo".into(), "build".into()],
            container: json!({ "build_path": "/hermetic" }),
            variations: vec![],
        },
        runner: Runner { id: "local".into(), engine: "unix:///var/run/docker.sock".into() },
        run: RunTimes { invocation_id: "r1".into(), started_unix: 1_700_000_100, finished_unix: 1_700_000_200, stages: Default::default() },
        log: None,
        deps,
        verified_by: vec![],
    }
}

#[test]
fn encrypted_key_round_trips_and_pem_uses_lf() {
    let (private, public) = generate(b"secret").expect("generate");
    assert!(private.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
    assert!(!private.contains('\r') && !public.contains('\r'));
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    let body: String = private
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let envelope: Value = serde_json::from_slice(&B64.decode(body).expect("b64")).expect("json");
    assert_eq!(
        envelope["kdf"]["params"],
        json!({ "N": 32768, "r": 8, "p": 1 })
    );
    assert_eq!(envelope["cipher"]["name"], "nacl/secretbox");
    let wrong = SigningKey::from_pem(Path::new("k"), private.as_bytes(), b"nope");
    assert!(matches!(wrong, Err(crate::Error::Key { .. })), "{wrong:?}");
    SigningKey::from_pem(Path::new("k"), private.as_bytes(), b"secret").expect("right password");
}

#[test]
fn blob_signature_verifies_and_rejects_other_artifacts() {
    let k = key();
    let signed = sign_blob(b"artifact", k).expect("sign");
    let bytes = signed.bundle.to_bytes();
    let public = k.public_key().expect("pub");
    verify_bundle(&bytes, &public, Some(b"artifact")).expect("verifies");
    assert_eq!(
        verify_bundle(&bytes, &public, Some(b"artifacT"))
            .map(|_| ())
            .map_err(|f| f.code()),
        Err("artifact-digest-mismatch")
    );
    assert_eq!(
        verify_bundle(&bytes, &public, None)
            .map(|_| ())
            .map_err(|f| f.code()),
        Err("artifact-needed")
    );
}

/// Calls `f` on a copy of `v` for every leaf, each changed in one place.
fn each_mutation(v: &Value, f: &mut dyn FnMut(String, Value)) {
    fn walk(path: String, cur: &Value, root: &Value, f: &mut dyn FnMut(String, Value)) {
        let mutate = |new: Value, f: &mut dyn FnMut(String, Value)| {
            let mut copy = root.clone();
            if let Some(slot) = copy.pointer_mut(&path) {
                *slot = new;
            }
            f(path.clone(), copy);
        };
        match cur {
            Value::Object(m) => {
                for (k, child) in m {
                    walk(
                        format!("{path}/{}", k.replace('~', "~0").replace('/', "~1")),
                        child,
                        root,
                        f,
                    );
                }
                // An added field changes the signed bytes too.
                let mut m2 = m.clone();
                m2.insert("injected".into(), json!(1));
                mutate(Value::Object(m2), f);
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    walk(format!("{path}/{i}"), child, root, f);
                }
                if !a.is_empty() {
                    mutate(Value::Array(a[1..].to_vec()), f);
                }
            }
            Value::String(s) => {
                let flipped: String = match s.chars().next() {
                    Some(c) => {
                        let n = if c == 'A' { 'B' } else { 'A' };
                        std::iter::once(n).chain(s.chars().skip(1)).collect()
                    }
                    None => "x".into(),
                };
                mutate(Value::String(flipped), f);
            }
            Value::Number(n) => mutate(json!(n.as_f64().unwrap_or(0.0) + 1.0), f),
            Value::Bool(b) => mutate(Value::Bool(!b), f),
            Value::Null => mutate(json!("x"), f),
        }
    }
    walk(String::new(), v, v, f);
}

#[test]
fn every_mutation_of_a_signed_statement_is_rejected() {
    let k = key();
    let public = k.public_key().expect("pub");
    let statement = crate::provenance::statement(&record());
    let payload = statement.to_bytes();
    let bundle = sign_dsse(PAYLOAD_TYPE, &payload, k).expect("sign");
    let good: Value = serde_json::to_value(&bundle).expect("json");
    let ok = verify_bundle(
        &serde_json::to_vec(&good).expect("ser"),
        &public,
        Some(b"binary"),
    )
    .expect("the untouched bundle verifies");
    assert_eq!(ok.subjects.len(), 1);

    // Every field of the statement, re-encoded into the payload with the old signature.
    let stmt: Value = serde_json::from_slice(&payload).expect("statement json");
    let mut count = 0;
    each_mutation(&stmt, &mut |path, mutated| {
        let mut b = good.clone();
        b["dsseEnvelope"]["payload"] =
            json!(B64.encode(serde_json::to_vec_pretty(&mutated).expect("ser")));
        let r = verify_bundle(
            &serde_json::to_vec(&b).expect("ser"),
            &public,
            Some(b"binary"),
        );
        assert!(r.is_err(), "statement mutation at {path} was accepted");
        count += 1;
    });
    assert!(count > 50, "only {count} mutations");

    // Every field of the bundle itself.
    each_mutation(&good, &mut |path, mutated| {
        let r = verify_bundle(
            &serde_json::to_vec(&mutated).expect("ser"),
            &public,
            Some(b"binary"),
        );
        assert!(r.is_err(), "bundle mutation at {path} was accepted");
    });

    // The artifact.
    let r = verify_bundle(
        &serde_json::to_vec(&good).expect("ser"),
        &public,
        Some(b"binarY"),
    );
    assert!(matches!(r, Err(Failure::NotASubject { .. })), "{r:?}");

    // Another key.
    let (other, _) = generate(b"").expect("generate");
    let other = SigningKey::from_pem(Path::new("o"), other.as_bytes(), b"").expect("load");
    let r = verify_bundle(
        &serde_json::to_vec(&good).expect("ser"),
        &other.public_key().expect("pub"),
        None,
    );
    assert!(matches!(r, Err(Failure::HintMismatch { .. })), "{r:?}");
}

#[test]
fn sboms_and_build_definition_are_reproducible_and_well_formed() {
    let rec = record();
    let (spdx1, cdx1) = crate::documents::sboms(&rec);
    let mut later = rec.clone();
    later.run = RunTimes {
        invocation_id: "r2".into(),
        started_unix: 1_800_000_000,
        finished_unix: 1_800_000_100,
        stages: crate::record::StageTimes {
            prepare_ms: 1,
            build_ms: 2,
            collect_ms: 3,
        },
    };
    let (spdx2, cdx2) = crate::documents::sboms(&later);
    assert_eq!(spdx1, spdx2);
    assert_eq!(cdx1, cdx2);
    let p1 = crate::provenance::predicate(&rec);
    let p2 = crate::provenance::predicate(&later);
    assert_eq!(p1["buildDefinition"], p2["buildDefinition"]);
    assert_ne!(p1["runDetails"]["metadata"], p2["runDetails"]["metadata"]);

    let spdx: Value = serde_json::from_slice(&spdx1).expect("spdx json");
    assert_eq!(spdx["creationInfo"]["created"], "2023-11-14T22:13:20Z");
    assert_eq!(
        spdx["packages"][0]["downloadLocation"],
        "https://static.crates.io/crates/anyhow/anyhow-1.0.0.crate"
    );
    assert_eq!(spdx["packages"][1]["downloadLocation"], "NOASSERTION");
    assert_eq!(spdx["packages"][0]["licenseDeclared"], "MIT OR Apache-2.0");
    let rels: Vec<String> = spdx["relationships"]
        .as_array()
        .expect("relationships")
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r["spdxElementId"].as_str().unwrap_or(""),
                r["relationshipType"].as_str().unwrap_or(""),
                r["relatedSpdxElement"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        rels.contains(&"SPDXRef-DOCUMENT DESCRIBES SPDXRef-Package-app-0.1.0".to_string()),
        "{rels:?}"
    );
    assert!(
        rels.contains(
            &"SPDXRef-Package-app-0.1.0 DEPENDS_ON SPDXRef-Package-itoa-1.0.0".to_string()
        ),
        "{rels:?}"
    );
    assert!(
        rels.contains(
            &"SPDXRef-Package-anyhow-1.0.0 BUILD_DEPENDENCY_OF SPDXRef-Package-app-0.1.0"
                .to_string()
        ),
        "{rels:?}"
    );

    let cdx: Value = serde_json::from_slice(&cdx1).expect("cdx json");
    assert_eq!(cdx["metadata"]["component"]["name"], "app");
    assert_eq!(cdx["components"][0]["hashes"][0]["alg"], "SHA-256");
    assert!(
        cdx["serialNumber"]
            .as_str()
            .is_some_and(|s| s.starts_with("urn:uuid:"))
    );

    // A different dependency set gives a different namespace and serial number.
    let mut other = rec.clone();
    other.deps.packages[2].version = "1.0.1".into();
    let (spdx3, cdx3) = crate::documents::sboms(&other);
    let spdx3: Value = serde_json::from_slice(&spdx3).expect("json");
    let cdx3: Value = serde_json::from_slice(&cdx3).expect("json");
    assert_ne!(spdx3["documentNamespace"], spdx["documentNamespace"]);
    assert_ne!(cdx3["serialNumber"], cdx["serialNumber"]);
}
