//! Snapshot tests of every diagnostic: codes, messages, policy lines and fixes are the
//! interface users and scripts rely on.

use super::Policy;
use crate::lockfile::{GitReference, Source};
use crate::manifest::{DepManifest, FORMAT, Package};
use std::path::Path;

fn pkg(name: &str, version: &str, license: Option<&str>) -> Package {
    Package {
        id: format!("{name}@{version}"),
        name: name.into(),
        version: version.into(),
        source: Source::parse("registry+https://github.com/rust-lang/crates.io-index")
            .unwrap_or(Source::Path { path: ".".into() }),
        checksum: Some("0".repeat(64)),
        license: license.map(str::to_string),
        license_file: None,
        build_script: false,
        proc_macro: false,
        workspace_member: false,
        bin_targets: vec![],
        bin_required_features: Default::default(),
        features: Default::default(),
        vendor_dir: Some(format!("{name}-{version}")),
        enabled_features: vec![],
        dependencies: vec![],
    }
}

fn manifest(mut packages: Vec<Package>) -> DepManifest {
    packages.sort_by(|a, b| a.id.cmp(&b.id));
    DepManifest {
        format: FORMAT,
        lockfile_sha256: String::new(),
        vendor_key: String::new(),
        workspace_members: vec![],
        packages,
        vendored: vec![],
    }
}

fn render(policy: &str, m: &DepManifest) -> String {
    let policy = Policy::parse(Path::new("vendor-policy.toml"), policy).expect("valid policy");
    policy
        .check(m)
        .iter()
        .map(|d| d.render(Path::new("vendor-policy.toml")))
        .collect()
}

fn parse_error(policy: &str) -> String {
    match Policy::parse(Path::new("vendor-policy.toml"), policy) {
        Ok(_) => "parsed".into(),
        Err(e) => e.to_string(),
    }
}

const BASE: &str = r#"[sources]
registries = ["crates-io"]

[licenses]
allow = ["MIT", "Apache-2.0"]
"#;

#[test]
fn clean_graph_has_no_findings() {
    let m = manifest(vec![pkg("itoa", "1.0.0", Some("MIT OR Apache-2.0"))]);
    insta::assert_snapshot!(render(BASE, &m), @"");
}

#[test]
fn licenses() {
    let mut nolicense = pkg("mystery", "0.1.0", None);
    nolicense.license_file = Some("LICENSE.txt".into());
    let m = manifest(vec![
        pkg("itoa", "1.0.0", Some("MIT/Apache-2.0")),
        pkg(
            "unicode-ident",
            "1.0.12",
            Some("(MIT OR Apache-2.0) AND Unicode-3.0"),
        ),
        pkg("ring", "0.17.0", Some("ISC AND OpenSSL")),
        pkg("weird", "1.0.0", Some("MIT OR (")),
        nolicense,
    ]);
    let policy =
        format!("{BASE}exceptions = [{{ crate = \"ring\", allow = [\"ISC\", \"OpenSSL\"] }}]\n");
    insta::assert_snapshot!(render(&policy, &m));
}

#[test]
fn bans_with_and_without_versions() {
    let m = manifest(vec![
        pkg("openssl-sys", "0.9.100", Some("MIT")),
        pkg("old", "0.1.0", Some("MIT")),
        pkg("old", "1.0.0", Some("MIT")),
    ]);
    let policy = format!(
        "{BASE}\n[[bans]]\ncrate = \"openssl-sys\"\nreason = \"use rustls\"\n\n[[bans]]\ncrate = \"old\"\nversions = \"<1\"\n"
    );
    insta::assert_snapshot!(render(&policy, &m));
}

#[test]
fn build_time_code() {
    let mut anyhow = pkg("anyhow", "1.0.0", Some("MIT"));
    anyhow.build_script = true;
    let mut serde = pkg("serde", "1.0.0", Some("MIT"));
    serde.build_script = true;
    let mut derive = pkg("serde_derive", "1.0.0", Some("MIT"));
    derive.proc_macro = true;
    let m = manifest(vec![anyhow, serde, derive]);
    let policy = format!(
        "{BASE}\n[build-scripts]\nallow = [\"serde\", \"libc\"]\n\n[proc-macros]\nallow = []\n"
    );
    insta::assert_snapshot!(render(&policy, &m));
}

#[test]
fn sources_and_git_pinning() {
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let git = |name: &str, reference: Option<GitReference>| {
        let mut p = pkg(name, "0.1.0", Some("MIT"));
        p.source = Source::Git {
            url: "https://example.com/org/repo".into(),
            reference,
            commit: commit.into(),
        };
        p.checksum = None;
        p
    };
    let mut other = pkg("private", "1.0.0", Some("MIT"));
    other.source = Source::Registry {
        name: "sparse+https://registry.example.com/index/".into(),
        url: "sparse+https://registry.example.com/index/".into(),
    };
    let m = manifest(vec![
        git("pinned", Some(GitReference::Rev(commit.into()))),
        git("branchy", Some(GitReference::Branch("main".into()))),
        git("floating", None),
        other,
    ]);
    let policy = BASE.replace(
        "registries = [\"crates-io\"]",
        "registries = [\"crates-io\"]\ngit = [\"https://example.com/org/repo.git\"]",
    );
    insta::assert_snapshot!(render(&policy, &m));
}

#[test]
fn duplicates() {
    let m = manifest(vec![
        pkg("itoa", "0.4.8", Some("MIT")),
        pkg("itoa", "1.0.0", Some("MIT")),
        pkg("itoa", "1.0.1", Some("MIT")),
    ]);
    insta::assert_snapshot!(render(
        &format!("{BASE}\n[duplicates]\nmax-versions = 2\n"),
        &m
    ));
}

#[test]
fn malformed_policies_name_the_line() {
    insta::assert_snapshot!(parse_error("[licenses]\nallow = [\"MIT\"]\nalow = []\n"), @"vendor-policy.toml: line 3: unknown field `alow`, expected `allow` or `exceptions`");
    insta::assert_snapshot!(parse_error("[licenses]\nallow = [\"MIT\", \"Apache2\"]\n"), @"vendor-policy.toml: line 2: `Apache2` is not an SPDX license id (did you mean `Apache-2.0`?)");
    insta::assert_snapshot!(parse_error("[[bans]]\ncrate = \"x\"\nversions = \"not a req\"\n"), @"vendor-policy.toml: line 3: `not a req` is not a version requirement: unexpected character 'n' while parsing major version number");
    insta::assert_snapshot!(parse_error("[sources\n"), @"vendor-policy.toml: line 1: unclosed table, expected `]`");
    insta::assert_snapshot!(parse_error("[build-scripts]\nallow = \"serde\"\n"), @r#"vendor-policy.toml: line 2: invalid type: string "serde", expected a sequence"#);
}

#[test]
fn a_policy_in_the_project_is_the_projects() {
    let dir = tempfile::tempdir().expect("tmp");
    let ws = dir.path().join("ws");
    let member = ws.join("crates/app");
    std::fs::create_dir_all(&member).expect("mkdir");
    std::fs::write(ws.join("Cargo.toml"), "[workspace]\n").expect("w");
    let users = dir.path().join("users.toml");
    let own = ws.join("vendor-policy.toml");
    for p in [&users, &own] {
        std::fs::write(p, "").expect("w");
    }
    // Up to the workspace root, through a directory without a manifest.
    assert!(super::belongs_to_project(&own, &member));
    assert!(!super::belongs_to_project(&users, &member));
    // A path that does not resolve is nobody's to vouch for.
    assert!(super::belongs_to_project(
        &dir.path().join("missing"),
        &member
    ));
}
