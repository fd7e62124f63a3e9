//! `hermetic vendor` against real crates from crates.io.

mod common;

use common::*;
use std::path::Path;

fn vendor_json(dir: &Path, extra: &[&str], code: i32) -> serde_json::Value {
    let mut cmd = hermetic(dir);
    cmd.args(["--json", "vendor"]).args(extra);
    expect(&mut cmd, code).json()
}

fn codes(v: &serde_json::Value) -> Vec<String> {
    v["diagnostics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["severity"] == "error")
        .map(|d| {
            format!(
                "{} {}",
                d["code"].as_str().unwrap_or(""),
                d["package"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn vendors_and_builds_offline_from_an_empty_cargo_home() {
    let project = fixture("hello");
    let v = vendor_json(project.path(), &["--out", "deps"], 0);
    assert_eq!(v["vendored"], 1);
    let deps: serde_json::Value = serde_json::from_slice(
        &std::fs::read(project.path().join("deps/deps.json")).expect("deps.json"),
    )
    .expect("json");
    let itoa = &deps["packages"][1];
    assert_eq!(itoa["name"], "itoa");
    assert_eq!(itoa["source"]["name"], "crates-io");
    assert_eq!(itoa["checksum"].as_str().map(str::len), Some(64));
    assert_eq!(deps["packages"][0]["name"], "hello");
    assert_eq!(deps["packages"][0]["dependencies"][0]["id"], itoa["id"]);

    // No network, and a cargo home that holds nothing: only the vendored tree can serve.
    let home = tempfile::tempdir().expect("tempdir");
    let mut build = std::process::Command::new("cargo");
    build
        .current_dir(project.path())
        .env("CARGO_HOME", home.path())
        .args([
            "build",
            "--offline",
            "--frozen",
            "--config",
            "deps/config.toml",
        ]);
    expect(&mut without_network(&build), 0);

    // The warm path needs no network either, and says it used the cache.
    let mut again = hermetic(project.path());
    again
        .env("CARGO_HOME", home.path())
        .args(["--json", "vendor", "--out", "deps"]);
    let v = expect(&mut without_network(&again), 0).json();
    assert_eq!(v["cache_hit"], true);

    let mut check = hermetic(project.path());
    check.args(["vendor", "--check", "deps"]);
    expect(&mut check, 0);
}

/// Vendors `mixed` and returns the project (its `deps/` holds the vendored tree).
fn vendored_mixed() -> tempfile::TempDir {
    let project = fixture("mixed");
    vendor_json(project.path(), &["--out", "deps"], 0);
    project
}

fn check_findings(project: &Path) -> Vec<String> {
    let mut cmd = hermetic(project);
    cmd.args(["--json", "vendor", "--check", "deps"]);
    let v = expect(&mut cmd, 1).json();
    v["report"]["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            format!(
                "{} {} {}",
                f["code"].as_str().unwrap_or(""),
                f["package"].as_str().unwrap_or(""),
                f["path"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn tampered_file_is_reported_by_crate_and_path() {
    let project = vendored_mixed();
    let lib = project.path().join("deps/vendor/itoa-1.0.19/src/lib.rs");
    std::fs::write(&lib, "pub fn evil() {}\n").expect("tamper");
    assert_eq!(
        check_findings(project.path()),
        [
            "checksum-file-mismatch itoa-1.0.19 src/lib.rs",
            "file-modified itoa-1.0.19 src/lib.rs"
        ]
    );
}

#[test]
fn tampering_with_the_checksum_file_too_is_still_caught() {
    let project = vendored_mixed();
    let dir = project.path().join("deps/vendor/itoa-1.0.19");
    let evil = "pub fn evil() {}\n";
    std::fs::write(dir.join("src/lib.rs"), evil).expect("tamper");
    // Rewrite the checksum entry so that cargo itself would accept the edit.
    let cj_path = dir.join(".cargo-checksum.json");
    let mut cj: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cj_path).expect("read")).expect("json");
    use sha2::Digest;
    cj["files"]["src/lib.rs"] = hex::encode(sha2::Sha256::digest(evil)).into();
    std::fs::write(&cj_path, cj.to_string()).expect("write");
    assert_eq!(
        check_findings(project.path()),
        ["file-modified itoa-1.0.19 src/lib.rs"]
    );
}

#[test]
fn tampered_package_checksum_and_added_and_removed_files() {
    let project = vendored_mixed();
    let vendor = project.path().join("deps/vendor");
    let cj_path = vendor.join("anyhow-1.0.105/.cargo-checksum.json");
    let mut cj: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cj_path).expect("read")).expect("json");
    cj["package"] = "0".repeat(64).into();
    std::fs::write(&cj_path, cj.to_string()).expect("write");
    std::fs::write(
        vendor.join("unicode-ident-1.0.27/src/extra.rs"),
        "// added\n",
    )
    .expect("add");
    std::fs::remove_file(vendor.join("itoa-0.4.8/README.md")).expect("remove");
    assert_eq!(
        check_findings(project.path()),
        [
            "package-checksum-mismatch anyhow-1.0.105 .cargo-checksum.json",
            "checksum-file-mismatch itoa-0.4.8 README.md",
            "file-removed itoa-0.4.8 README.md",
            "file-added unicode-ident-1.0.27 src/extra.rs",
        ]
    );
}

/// `vendor --check` believes the project's Cargo.lock, not the checked directory: a
/// deps.json whose checksum was cleared does not hide an edited crate, and a registry crate
/// the lockfile gives no checksum is a finding of its own.
#[test]
fn the_check_believes_cargo_lock_not_the_directory() {
    let project = vendored_mixed();
    let deps = project.path().join("deps/deps.json");
    let mut d: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&deps).expect("read")).expect("json");
    for v in d["vendored"].as_array_mut().expect("vendored") {
        if v["dir"] == "itoa-1.0.19" {
            v["checksum"] = serde_json::Value::Null;
        }
    }
    std::fs::write(&deps, d.to_string()).expect("write");
    let dir = project.path().join("deps/vendor/itoa-1.0.19");
    std::fs::write(dir.join("src/lib.rs"), "pub fn evil() {}\n").expect("tamper");
    let findings = check_findings(project.path());
    assert!(
        findings.contains(&"file-modified itoa-1.0.19 src/lib.rs".to_string()),
        "{findings:?}"
    );

    let project = vendored_mixed();
    let lock = project.path().join("Cargo.lock");
    let text = std::fs::read_to_string(&lock).expect("lock");
    let line = text
        .lines()
        .skip_while(|l| *l != "name = \"anyhow\"")
        .find(|l| l.starts_with("checksum = "))
        .expect("anyhow's checksum")
        .to_string();
    std::fs::write(&lock, text.replacen(&format!("{line}\n"), "", 1)).expect("lock");
    assert_eq!(
        check_findings(project.path()),
        [
            "no-checksum anyhow-1.0.105 ",
            // And what was vendored carries a checksum the lockfile no longer has.
            "package-checksum-mismatch anyhow-1.0.105 .cargo-checksum.json",
        ]
    );
}

/// A policy that accepts `mixed` as it is; each test breaks one rule.
const MIXED_POLICY: &str = r#"[sources]
registries = ["crates-io"]

[licenses]
allow = ["MIT", "Apache-2.0", "Unicode-3.0"]

[build-scripts]
allow = ["anyhow", "rustversion"]

[proc-macros]
allow = ["rustversion"]

[duplicates]
max-versions = 2
"#;

fn policy_codes(policy: &str, code: i32) -> Vec<String> {
    let project = fixture("mixed");
    std::fs::write(project.path().join("vendor-policy.toml"), policy).expect("policy");
    let v = vendor_json(project.path(), &["--out", "deps"], code);
    if code != 0 {
        assert!(v["out"].is_null(), "nothing is written on violations");
        assert!(!project.path().join("deps").exists());
    }
    codes(&v)
}

#[test]
fn policy_accepts_the_reviewed_graph() {
    assert!(policy_codes(MIXED_POLICY, 0).is_empty());
}

#[test]
fn policy_banned_crate() {
    let policy = format!(
        "{MIXED_POLICY}\n[[bans]]\ncrate = \"itoa\"\nversions = \"<1\"\nreason = \"use itoa 1\"\n"
    );
    assert_eq!(policy_codes(&policy, 1), ["banned itoa"]);
}

#[test]
fn policy_disallowed_license() {
    let policy = MIXED_POLICY.replace(", \"Unicode-3.0\"", "");
    assert_eq!(policy_codes(&policy, 1), ["license-rejected unicode-ident"]);
}

#[test]
fn policy_unlisted_build_script_and_proc_macro() {
    let policy = MIXED_POLICY
        .replace(
            "allow = [\"anyhow\", \"rustversion\"]",
            "allow = [\"rustversion\"]",
        )
        .replace(
            "[proc-macros]\nallow = [\"rustversion\"]",
            "[proc-macros]\nallow = []",
        );
    assert_eq!(
        policy_codes(&policy, 1),
        [
            "build-script-not-allowed anyhow",
            "proc-macro-not-allowed rustversion"
        ]
    );
}

#[test]
fn policy_duplicates() {
    let policy = MIXED_POLICY.replace("max-versions = 2", "max-versions = 1");
    assert_eq!(policy_codes(&policy, 1), ["duplicate-versions itoa"]);
}

#[test]
fn policy_file_errors_name_the_line() {
    let project = fixture("hello");
    std::fs::write(
        project.path().join("vendor-policy.toml"),
        "[licenses]\nallow = [\"MIT\"]\n\n[build-script]\nallow = []\n",
    )
    .expect("policy");
    let mut cmd = hermetic(project.path());
    cmd.arg("vendor");
    let r = expect(&mut cmd, 2);
    assert!(
        r.stderr
            .contains("vendor-policy.toml: line 4: unknown field `build-script`"),
        "{}",
        r.stderr
    );
}

/// A git repository on this machine (file://), so that git sources need no network.
fn local_git_crate(root: &Path) -> (String, String) {
    let repo = root.join("gitdep");
    std::fs::create_dir_all(repo.join("src")).expect("mkdir");
    std::fs::write(
        repo.join("Cargo.toml"),
        "[package]\nname = \"gitdep\"\nversion = \"0.1.0\"\nedition = \"2021\"\nlicense = \"MIT\"\n",
    )
    .expect("write");
    std::fs::write(repo.join("src/lib.rs"), "pub fn answer() -> u32 { 42 }\n").expect("write");
    let git = |args: &[&str]| git_stdout(&repo, args, "");
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "init"]);
    (
        format!("file://{}", repo.display()),
        git(&["rev-parse", "HEAD"]),
    )
}

fn git_project(dep: &str) -> (tempfile::TempDir, String) {
    let project = tempfile::tempdir().expect("tempdir");
    let (url, commit) = local_git_crate(project.path());
    let app = project.path().join("app");
    std::fs::create_dir_all(app.join("src")).expect("mkdir");
    std::fs::write(
        app.join("Cargo.toml"),
        format!(
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ngitdep = {{ git = \"{url}\", {} }}\n\n[workspace]\n",
            dep.replace("COMMIT", &commit)
        ),
    )
    .expect("write");
    std::fs::write(
        app.join("src/main.rs"),
        "fn main() { println!(\"{}\", gitdep::answer()); }\n",
    )
    .expect("write");
    std::fs::write(
        app.join("vendor-policy.toml"),
        format!("[sources]\nregistries = [\"crates-io\"]\ngit = [\"{url}\"]\n"),
    )
    .expect("write");
    let mut lock = std::process::Command::new("cargo");
    lock.current_dir(&app).arg("generate-lockfile");
    expect(&mut lock, 0);
    (project, commit)
}

/// The project's policy copied outside it, as the user's own: named with `--policy`, a
/// policy inside the project is still the project's.
fn users_policy(app: &Path) -> std::path::PathBuf {
    let path = app
        .parent()
        .expect("project")
        .join("users-vendor-policy.toml");
    std::fs::copy(app.join("vendor-policy.toml"), &path).expect("copy policy");
    path
}

#[test]
fn git_dependency_without_pinned_commit_is_a_violation() {
    let (project, _) = git_project("branch = \"main\"");
    // A file:// repository is on this machine: only a policy of the user's (outside the
    // project) may allow it.
    let users = users_policy(&project.path().join("app"));
    let v = vendor_json(
        &project.path().join("app"),
        &["--out", "deps", "--policy", users.to_str().expect("utf-8")],
        1,
    );
    assert_eq!(codes(&v), ["git-not-pinned gitdep"]);
}

#[test]
fn pinned_git_dependency_is_vendored_and_builds_offline() {
    let (project, _) = git_project("rev = \"COMMIT\"");
    let app = project.path().join("app");
    let users = users_policy(&app);
    vendor_json(
        &app,
        &["--out", "deps", "--policy", users.to_str().expect("utf-8")],
        0,
    );
    let home = tempfile::tempdir().expect("tempdir");
    let mut build = std::process::Command::new("cargo");
    build
        .current_dir(&app)
        .env("CARGO_HOME", home.path())
        .args([
            "build",
            "--offline",
            "--frozen",
            "--config",
            "deps/config.toml",
        ]);
    expect(&mut without_network(&build), 0);
}

#[test]
fn corrupted_cache_entry_is_evicted_and_rebuilt() {
    let project = fixture("hello");
    let cache = tempfile::tempdir().expect("tempdir");
    let vendor = |out: &str| {
        let mut cmd = hermetic(project.path());
        cmd.env("HERMETIC_CACHE", cache.path())
            .args(["--json", "vendor", "--out", out]);
        expect(&mut cmd, 0).json()
    };
    vendor("deps");
    let trees = cache.path().join("trees");
    let tree = std::fs::read_dir(&trees)
        .expect("trees")
        .next()
        .expect("one tree")
        .expect("entry")
        .path();
    std::fs::write(tree.join("vendor/itoa-1.0.19/src/lib.rs"), "corrupt").expect("corrupt");
    // A fresh output directory has to come from the (corrupted) cache.
    let v = vendor("deps2");
    assert_eq!(v["cache_hit"], false);
    let warning = v["warnings"][0].as_str().unwrap_or("");
    assert!(
        warning.contains("corrupted") && warning.contains("evicted"),
        "{warning}"
    );
    let mut check = hermetic(project.path());
    check
        .env("HERMETIC_CACHE", cache.path())
        .args(["vendor", "--check", "deps2"]);
    expect(&mut check, 0);
    assert_eq!(vendor("deps3")["cache_hit"], true);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let empty = tempfile::tempdir().expect("tempdir");
    let r = expect(hermetic(empty.path()).arg("vendor"), 2);
    assert!(r.stderr.contains("no Cargo.toml here"), "{}", r.stderr);

    let project = fixture("hello");
    std::fs::remove_file(project.path().join("Cargo.lock")).expect("rm");
    let r = expect(hermetic(project.path()).arg("vendor"), 2);
    assert!(
        r.stderr.contains("has no Cargo.lock") && r.stderr.contains("cargo generate-lockfile"),
        "{}",
        r.stderr
    );

    let project = fixture("hello");
    let manifest = project.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("read");
    std::fs::write(
        &manifest,
        text.replace("itoa = \"1\"", "itoa = \"1\"\nryu = \"1\""),
    )
    .expect("write");
    let r = expect(hermetic(project.path()).arg("vendor"), 2);
    assert!(r.stderr.contains("out of date"), "{}", r.stderr);

    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(outside.path().join("lib/src")).expect("mkdir");
    std::fs::write(
        outside.path().join("lib/Cargo.toml"),
        "[package]\nname = \"lib\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .expect("w");
    std::fs::write(outside.path().join("lib/src/lib.rs"), "").expect("w");
    let project = fixture("hello");
    let manifest = project.path().join("Cargo.toml");
    std::fs::write(
        &manifest,
        text.replace(
            "itoa = \"1\"",
            &format!(
                "itoa = \"1\"\nlib = {{ path = \"{}\" }}",
                outside.path().join("lib").display()
            ),
        ),
    )
    .expect("write");
    let mut lock = std::process::Command::new("cargo");
    lock.current_dir(project.path())
        .args(["generate-lockfile", "--offline"]);
    expect(&mut lock, 0);
    let r = expect(hermetic(project.path()).arg("vendor"), 2);
    assert!(r.stderr.contains("outside the workspace"), "{}", r.stderr);

    let project = fixture("hello");
    std::fs::create_dir_all(project.path().join("precious")).expect("mkdir");
    std::fs::write(project.path().join("precious/notes.txt"), "keep me").expect("write");
    let r = expect(
        hermetic(project.path()).args(["vendor", "--out", "precious"]),
        2,
    );
    assert!(r.stderr.contains("refusing to replace"), "{}", r.stderr);
    assert!(project.path().join("precious/notes.txt").is_file());
}

#[test]
fn unreachable_registry_is_an_infrastructure_error() {
    let project = fixture("hello");
    let cache = tempfile::tempdir().expect("tempdir");
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = hermetic(project.path());
    cmd.env("HERMETIC_CACHE", cache.path())
        .env("CARGO_HOME", home.path())
        .env("CARGO_NET_RETRY", "0")
        .args(["vendor", "--out", "deps"]);
    let r = expect(&mut without_network(&cmd), 4);
    assert!(
        r.stderr.contains("registry could not be reached"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("warm cache") || r.stderr.contains("HERMETIC_CACHE"),
        "{}",
        r.stderr
    );
    assert!(
        !project.path().join("deps").exists(),
        "nothing half-written"
    );
}

/// A machine without cargo is the machine's problem (exit 4, what to install), not the
/// project's.
#[test]
fn missing_cargo_is_an_infrastructure_error() {
    let project = fixture("hello");
    let mut cmd = hermetic(project.path());
    cmd.env("CARGO", "/nonexistent/cargo")
        .args(["--json", "vendor", "--out", "deps"]);
    let v = expect(&mut cmd, 4).json();
    let e = &v["error"];
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("could not run cargo")),
        "{v}"
    );
    assert!(
        e["fix"]
            .as_str()
            .is_some_and(|f| f.contains("install cargo")),
        "{v}"
    );
    assert!(!project.path().join("deps").exists());
}

/// hermetic's own graph passes its own policy, and the vendored tree serves all of it with no
/// network and an empty cargo home. (That the tree compiles is shown where it matters, in
/// the container: `hermetic_verifies_itself_and_the_result_runs` builds this same vendoring
/// of hermetic, policy enforced, offline, twice; that a vendored tree also builds with the
/// host's cargo is shown on a small project by `vendors_and_builds_offline_from_an_empty_cargo_home`.)
#[test]
fn hermetic_vendors_itself_under_its_own_policy_offline() {
    let root = repo_root();
    let scratch = tempfile::tempdir().expect("tempdir");
    let out = scratch.path().join("self");
    let mut cmd = hermetic(&root);
    cmd.args([
        "--json",
        "vendor",
        "--policy",
        "vendor-policy.toml",
        "--out",
    ])
    .arg(&out);
    let v = expect(&mut cmd, 0).json();
    assert_eq!(v["status"], "ok");
    assert!(
        v["policy"]
            .as_str()
            .is_some_and(|p| p.ends_with("vendor-policy.toml"))
    );
    let mut check = hermetic(&root);
    check.args(["vendor", "--check"]).arg(&out);
    expect(&mut check, 0);

    // Every package of the locked graph resolves from the vendored tree alone.
    let home = scratch.path().join("cargo-home");
    std::fs::create_dir_all(&home).expect("mkdir");
    let mut metadata = std::process::Command::new("cargo");
    metadata
        .current_dir(&root)
        .env("CARGO_HOME", &home)
        .args([
            "metadata",
            "--offline",
            "--frozen",
            "--format-version",
            "1",
            "--config",
        ])
        .arg(out.join("config.toml"));
    let r = expect(&mut without_network(&metadata), 0);
    let meta: serde_json::Value = serde_json::from_str(&r.stdout).expect("metadata json");
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).expect("Cargo.lock");
    let locked = lock.matches("[[package]]").count();
    assert_eq!(
        meta["packages"].as_array().map(Vec::len),
        Some(locked),
        "cargo metadata resolved a different package set than Cargo.lock pins"
    );
}
