//! A hostile project cannot reach the host. Each test is one attack, made the way a project
//! would make it; each checks the exact error and exit code, and that nothing happened
//! outside: the canary paths stay absent, the canary program never ran, the secret's bytes
//! are nowhere.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch directory outside the project, where an attack would leave its traces.
struct Outside {
    dir: tempfile::TempDir,
}

impl Outside {
    fn new() -> Outside {
        Outside {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A host file the project must never read, with bytes found nowhere else.
    fn secret(&self) -> (PathBuf, String) {
        let bytes = format!("host-secret-{}-{}", std::process::id(), unix_now());
        let path = self.path("secret.txt");
        std::fs::write(&path, &bytes).expect("secret");
        (path, bytes)
    }

    /// A program that records that it ran (and the environment it got), then does what
    /// it was asked: the project names it as a tool of the host's.
    fn canary(&self) -> (PathBuf, PathBuf) {
        let ran = self.path("canary-ran");
        let script = self.path("canary.sh");
        write_executable(
            &script,
            &format!(
                "#!/bin/sh\nenv > '{}'\n[ \"$#\" -gt 0 ] && exec \"$@\"\nexit 0\n",
                ran.display()
            ),
        );
        (script, ran)
    }
}

fn hermetic_json(project: &Path, args: &[&str], code: i32) -> Value {
    let mut cmd = hermetic(project);
    cmd.arg("--json").args(args);
    expect(&mut cmd, code).json()
}

fn message(v: &Value) -> String {
    v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn fix(v: &Value) -> String {
    v["error"]["fix"].as_str().unwrap_or_default().to_string()
}

/// No file anywhere under `dir` (outputs, diagnostics, logs) holds `needle`.
fn nowhere_under(dir: &Path, needle: &str) {
    for entry in walkdir::WalkDir::new(dir).into_iter().flatten() {
        if entry.file_type().is_file() {
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(needle),
                "the secret is in {}",
                entry.path().display()
            );
        }
    }
}

#[test]
fn lockfile_fields_cannot_become_paths() {
    let _serial = engine_lock();
    let outside = Outside::new();
    let escape = outside.path("written-by-the-lockfile");
    let cases = [
        (
            "version",
            "\"1.0.19\"".to_string(),
            format!("\"1.0.19/../../../../../../..{}\"", escape.display()),
        ),
        (
            "checksum",
            "\"3bd1574e617a9a6c1f8f8181bd7e841e1f20e4277607ef28945765188d6284d4\"".to_string(),
            format!("\"{}\"", escape.display()),
        ),
        ("name", "\"itoa\"".to_string(), "\"../../itoa\"".to_string()),
        (
            "source",
            "\"registry+https://github.com/rust-lang/crates.io-index\"".to_string(),
            format!("\"git+--upload-pack=touch {}#0123\"", escape.display()),
        ),
    ];
    for (field, good, evil) in cases {
        let project = fixture("hello");
        let lock = project.path().join("Cargo.lock");
        let text = std::fs::read_to_string(&lock).expect("lock");
        let tampered = text.replacen(
            &format!("{field} = {good}"),
            &format!("{field} = {evil}"),
            1,
        );
        assert_ne!(text, tampered, "{field} not replaced");
        std::fs::write(&lock, tampered).expect("write");
        for args in [vec!["vendor"], vec!["build", "--image", builder_image()]] {
            let v = hermetic_json(project.path(), &args, 2);
            let msg = message(&v);
            assert!(
                msg.contains("Cargo.lock") && msg.contains(&format!("`{field}`")),
                "{field}: {msg}"
            );
            assert!(fix(&v).contains("cargo generate-lockfile"), "{v}");
        }
        assert!(!escape.exists(), "{field}: the lockfile wrote outside");
        assert!(!project.path().join("dist").exists());
    }
}

#[test]
fn a_swapped_cached_archive_is_refused_and_evicted() {
    // A cache of this test's own, where "another party" replaces the archive.
    let cache = tempfile::tempdir().expect("cache");
    let project = fixture("hello");
    let vendor = |code: i32| {
        let mut cmd = hermetic(project.path());
        cmd.env("HERMETIC_CACHE", cache.path())
            .args(["--json", "vendor", "--out", "deps"]);
        expect(&mut cmd, code).json()
    };
    vendor(0);
    let sha = "3bd1574e617a9a6c1f8f8181bd7e841e1f20e4277607ef28945765188d6284d4";
    let archive = cache.path().join("crates").join(format!("{sha}.crate"));
    assert!(archive.is_file());
    // A valid archive with the same top folder and other content.
    let evil_dir = tempfile::tempdir().expect("evil");
    let top = evil_dir.path().join("itoa-1.0.19");
    std::fs::create_dir_all(top.join("src")).expect("mkdir");
    std::fs::write(
        top.join("Cargo.toml"),
        "[package]\nname = \"itoa\"\nversion = \"1.0.19\"\n",
    )
    .expect("w");
    std::fs::write(top.join("src/lib.rs"), "pub const EVIL: u8 = 1;\n").expect("w");
    let mut tar = Command::new("tar");
    tar.current_dir(evil_dir.path())
        .args(["czf"])
        .arg(&archive)
        .arg("itoa-1.0.19");
    expect(&mut tar, 0);
    // The tree made from it goes too (as the other party may well arrange): the next run
    // has to extract the archive again.
    std::fs::remove_dir_all(cache.path().join("trees")).expect("rm trees");
    std::fs::remove_dir_all(project.path().join("deps")).expect("rm deps");
    let v = vendor(0);
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains("[cache-archive-wrong]")
            && warnings.contains("the cached archive has sha256")
            && warnings.contains(sha)
            && warnings.contains("evicted and fetched again"),
        "{v}"
    );
    let lib = std::fs::read_to_string(project.path().join("deps/vendor/itoa-1.0.19/src/lib.rs"))
        .expect("lib.rs");
    assert!(!lib.contains("EVIL"));
    assert_eq!(
        hermetic_deps::hash::sha256_file(&archive).expect("archive"),
        sha,
        "the real archive is cached again"
    );
}

/// The attack on a cache tree that defeats checksums: a file of the cached vendored tree
/// edited together with its `.cargo-checksum.json` entry, the archive's saved listing and
/// the tree's stat index, all made to agree with the edit. Only the archive is believed:
/// the tree is re-derived, and the edit never reaches an output.
#[test]
fn a_poisoned_cache_tree_is_re_derived_not_believed() {
    use std::os::unix::fs::MetadataExt;
    let cache = tempfile::tempdir().expect("cache");
    let project = fixture("hello");
    let vendor = || {
        let mut cmd = hermetic(project.path());
        cmd.env("HERMETIC_CACHE", cache.path())
            .args(["--json", "vendor", "--out", "deps"]);
        expect(&mut cmd, 0).json()
    };
    vendor();
    let sha = "3bd1574e617a9a6c1f8f8181bd7e841e1f20e4277607ef28945765188d6284d4";
    let evil = "pub const EVIL: u8 = 1;\n";
    let evil_sha = hermetic_deps::hash::sha256_hex(evil.as_bytes());
    // Every record of a file, rewritten to agree; sealed ones keep their old seal, which is
    // all a cache writer has.
    let rewrite_json = |path: &Path, edit: &dyn Fn(&mut Value)| {
        let text = std::fs::read_to_string(path).expect("read");
        let mut v: Value = serde_json::from_str(&text).expect("json");
        if let Some(data) = v["data"].as_str() {
            let mut inner: Value = serde_json::from_str(data).expect("data");
            edit(&mut inner);
            v["data"] = inner.to_string().into();
        } else {
            edit(&mut v);
        }
        std::fs::write(path, v.to_string()).expect("write");
    };
    // Poisons the cached tree; returns its stat index.
    let poison = || -> PathBuf {
        let tree = std::fs::read_dir(cache.path().join("trees"))
            .expect("trees")
            .flatten()
            .next()
            .expect("one tree")
            .path();
        let krate = tree.join("vendor/itoa-1.0.19");
        std::fs::write(krate.join("src/lib.rs"), evil).expect("edit");
        rewrite_json(&krate.join(".cargo-checksum.json"), &|v| {
            v["files"]["src/lib.rs"] = evil_sha.clone().into();
        });
        rewrite_json(
            &cache.path().join(format!("crates/{sha}.files.json")),
            &|v| v["src/lib.rs"] = evil_sha.clone().into(),
        );
        let index = tree.join(".vendor-index.json");
        rewrite_json(&index, &|v| {
            for rel in ["itoa-1.0.19/src/lib.rs", "itoa-1.0.19/.cargo-checksum.json"] {
                let m = std::fs::symlink_metadata(tree.join("vendor").join(rel)).expect("stat");
                v["files"][rel] = serde_json::json!({
                    "size": m.size(),
                    "mtime_ns": m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
                    "ctime_ns": m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
                    "ino": m.ino(),
                    "mode": m.mode(),
                });
            }
        });
        index
    };
    for sealed in [true, false] {
        let index = poison();
        if !sealed {
            // The index as an older hermetic wrote it: plain, no seal at all.
            let text = std::fs::read_to_string(&index).expect("index");
            let v: Value = serde_json::from_str(&text).expect("json");
            std::fs::write(&index, v["data"].as_str().expect("data")).expect("index");
        }
        std::fs::remove_dir_all(project.path().join("deps")).expect("rm deps");
        let v = vendor();
        assert_eq!(
            v["cache_hit"], false,
            "sealed {sealed}: the poisoned tree was believed"
        );
        assert!(
            v["warnings"].to_string().contains("[cache-tree-corrupted]"),
            "sealed {sealed}: {v}"
        );
        let lib =
            std::fs::read_to_string(project.path().join("deps/vendor/itoa-1.0.19/src/lib.rs"))
                .expect("lib.rs");
        assert!(
            !lib.contains("EVIL"),
            "sealed {sealed}: the edit reached the output"
        );
    }
}

/// The project's `.cargo/config.toml`, `rust-toolchain.toml` and git config name a program
/// of the project's for every tool hermetic runs on the host; none of them runs.
#[test]
fn host_tools_run_nothing_the_project_configures() {
    let _serial = engine_lock();
    let outside = Outside::new();
    let (canary, ran) = outside.canary();
    let project = fixture("hello");
    let p = project.path();
    std::fs::create_dir_all(p.join(".cargo")).expect("mkdir");
    let config = format!(
        "[build]\nrustc-wrapper = '{c}'\nrustc-workspace-wrapper = '{c}'\n\
         [env]\nHERMETIC_CANARY = '{c}'\n\
         [registry]\nglobal-credential-providers = ['{c}']\n",
        c = canary.display()
    );
    std::fs::write(p.join(".cargo/config.toml"), &config).expect("config");
    std::fs::write(p.join(".cargo/config"), &config).expect("config");
    std::fs::write(
        p.join("rust-toolchain.toml"),
        format!("[toolchain]\npath = '{}'\n", outside.dir.path().display()),
    )
    .expect("toolchain");
    // git: fsmonitor, hooks and a clean filter on every file, all the canary.
    git(p, &["init", "-q", "-b", "main"]);
    std::fs::write(p.join(".gitattributes"), "* filter=evil\n").expect("attrs");
    git(p, &["add", "."]);
    git(p, &["commit", "-q", "-m", "init"]);
    for (k, v) in [
        ("core.fsmonitor", canary.display().to_string()),
        ("filter.evil.clean", canary.display().to_string()),
        ("filter.evil.required", "true".to_string()),
        ("core.hooksPath", outside.dir.path().display().to_string()),
        ("log.showSignature", "true".to_string()),
        ("gpg.program", canary.display().to_string()),
    ] {
        git(p, &["config", k, &v]);
    }
    std::fs::copy(&canary, outside.path("post-checkout")).expect("hook");
    // A stat change so that git would want to re-read (and filter) every file.
    std::fs::write(
        p.join("src/main.rs"),
        std::fs::read(p.join("src/main.rs")).expect("r"),
    )
    .expect("touch");

    hermetic_json(p, &["vendor"], 0);
    assert!(
        !ran.exists(),
        "a program of the project's ran during vendoring"
    );
    // Inside the container the project's cargo config is its own business (and names a
    // program the container does not have): it goes, so that the build can succeed and
    // the git attacks be seen on their own.
    std::fs::remove_dir_all(p.join(".cargo")).expect("rm .cargo");
    std::fs::remove_file(p.join("rust-toolchain.toml")).expect("rm toolchain file");
    let v = hermetic_json(p, &["build", "--image", builder_image()], 0);
    assert!(
        !ran.exists(),
        "a program of the project's ran during the build"
    );
    // The filter was not needed to tell that the tree differs from its commit.
    assert_eq!(
        v["record"]["source"]["dirty"], true,
        "{}",
        v["record"]["source"]
    );
    let out = expect(&mut Command::new(p.join("dist/hello")), 0);
    assert_eq!(out.stdout, "hello 42\n");
}

#[test]
fn links_out_of_the_workspace_are_refused_in_git_trees_and_outside() {
    let _serial = engine_lock();
    let outside = Outside::new();
    let (secret, bytes) = outside.secret();
    for in_git in [false, true] {
        for target in [
            secret.display().to_string(),
            // Relative, climbing out of the temporary project into the outside directory.
            format!(
                "../../{}/secret.txt",
                outside
                    .dir
                    .path()
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
            ),
        ] {
            let project = fixture("hello");
            let p = project.path();
            // Both temporary directories share a parent, so `../../X` from src/ is outside.
            assert_eq!(p.parent(), outside.dir.path().parent());
            std::os::unix::fs::symlink(&target, p.join("src/k")).expect("symlink");
            std::fs::write(
                p.join("src/main.rs"),
                "fn main() { print!(\"{}\", include_str!(\"k\")); }\n",
            )
            .expect("main");
            if in_git {
                git(p, &["init", "-q", "-b", "main"]);
                git(p, &["add", "."]);
                git(p, &["commit", "-q", "-m", "init"]);
            }
            let v = hermetic_json(p, &["build", "--image", builder_image()], 2);
            let msg = message(&v);
            assert!(
                msg.contains("src/k") && msg.contains("outside the workspace"),
                "git={in_git} {target}: {msg}"
            );
            assert!(!p.join("dist").exists());
            nowhere_under(p, &bytes);
        }
    }
    // A link that stays inside is sent as a link, and the build reads through it.
    let project = fixture("hello");
    let p = project.path();
    std::fs::create_dir_all(p.join("data")).expect("mkdir");
    std::fs::write(p.join("data/words.txt"), "inside").expect("w");
    std::os::unix::fs::symlink("../data/words.txt", p.join("src/k")).expect("symlink");
    std::fs::write(
        p.join("src/main.rs"),
        "fn main() { print!(\"{}\", include_str!(\"k\")); }\n",
    )
    .expect("main");
    hermetic_json(p, &["build", "--image", builder_image()], 0);
    let out = expect(&mut Command::new(p.join("dist/hello")), 0);
    assert_eq!(out.stdout, "inside");
    // A path that passes through a link to a host directory, as a hostile git index lists it.
    let project = fixture("hello");
    let p = project.path();
    git(p, &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(p.join("a")).expect("mkdir");
    std::fs::write(p.join("a/secret.txt"), "placeholder").expect("w");
    git(p, &["add", "."]);
    git(p, &["commit", "-q", "-m", "init"]);
    std::fs::remove_dir_all(p.join("a")).expect("rm");
    std::os::unix::fs::symlink(outside.dir.path(), p.join("a")).expect("symlink");
    let v = hermetic_json(p, &["build", "--image", builder_image()], 2);
    // git lists both the index's `a/secret.txt` and the new link `a` itself.
    let msg = message(&v);
    assert!(
        msg.contains("passes through the symbolic link") || msg.contains("outside the workspace"),
        "{v}"
    );
    nowhere_under(p, &bytes);
    // A fifo would block the snapshot, a socket or device is no file: refused.
    let project = fixture("hello");
    let p = project.path();
    let mut mkfifo = Command::new("mkfifo");
    mkfifo.arg(p.join("src/pipe"));
    expect(&mut mkfifo, 0);
    let v = hermetic_json(p, &["build", "--image", builder_image()], 2);
    assert!(message(&v).contains("socket, fifo or device"), "{v}");
}

#[test]
fn a_runner_name_cannot_become_a_directory_elsewhere() {
    let outside = Outside::new();
    let target = outside.path("runner-dir");
    for name in [
        target.display().to_string(),
        "../../x".to_string(),
        "..".into(),
    ] {
        let project = fixture("hello");
        std::fs::write(
            project.path().join("hermetic.toml"),
            format!(
                "[[runners]]\nendpoint = \"local\"\n\n[[runners]]\nname = {}\nendpoint = \"local\"\n",
                toml_string(&name)
            ),
        )
        .expect("toml");
        let v = hermetic_json(project.path(), &["verify", "--no-sign"], 2);
        let msg = message(&v);
        assert!(
            msg.contains("hermetic.toml") && msg.contains("runners[1].name"),
            "{name}: {msg}"
        );
        assert!(!target.exists());
        assert!(!project.path().join("dist").exists());
    }
}

/// A project's own hermetic.toml cannot send its build to an engine of its choosing (which
/// could answer anything, for hermetic to sign) nor point hermetic at the user's TLS
/// identity: nothing connects to the engine it names.
#[test]
fn a_projects_file_cannot_choose_its_engines() {
    let outside = Outside::new();
    let secret_dir = outside.path("tls");
    std::fs::create_dir_all(&secret_dir).expect("dir");
    // An engine of the project's, owned by the test on loopback.
    let engine = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    engine.set_nonblocking(true).expect("nonblocking");
    let addr = engine.local_addr().expect("addr");
    for runner in [
        format!("endpoint = \"tcp://{addr}\""),
        format!(
            "endpoint = \"tcp://{addr}\"\ncert-path = {}",
            toml_string(&secret_dir.display().to_string())
        ),
        format!(
            "endpoint = \"unix://{}/d.sock\"",
            outside.path("s").display()
        ),
        "endpoint = \"ssh://root@127.0.0.1:1\"".to_string(),
    ] {
        let project = fixture("hello");
        std::fs::write(
            project.path().join("hermetic.toml"),
            format!("[[runners]]\nendpoint = \"local\"\n\n[[runners]]\n{runner}\n"),
        )
        .expect("toml");
        let v = hermetic_json(project.path(), &["verify", "--no-sign"], 2);
        let msg = message(&v);
        assert!(
            msg.contains("hermetic.toml:5:12") && msg.contains("--config"),
            "{runner}: {msg}"
        );
        assert!(!project.path().join("dist").exists());
    }
    assert!(
        engine
            .accept()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "hermetic connected to the project's engine"
    );
}

/// A hostile engine names the image anything: a path (which would become a cache file's
/// name) or another image's digest. Nothing is built, and no file is made from the name.
#[test]
fn an_engine_cannot_name_the_image_anything() {
    use common::fault_proxy::{FaultProxy, Mode, Plan};
    let _serial = engine_lock();
    builder_image();
    let outside = Outside::new();
    let canary = outside.path("image");
    let traversal: &'static str =
        Box::leak(format!("sha256:../../../../../../..{}", canary.display()).into_boxed_str());
    let other: &'static str = Box::leak(format!("sha256:{}", "ab".repeat(32)).into_boxed_str());
    for id in [traversal, other, "sha256:ABC", ""] {
        let proxy = FaultProxy::start(
            Path::new("/var/run/docker.sock"),
            Plan {
                mode: Mode::ImageId(id),
                pass: 0,
                every: 1,
                phase: 0,
                only: None,
            },
        );
        let project = fixture("hello");
        let digest = image_digest();
        for image in [builder_image(), digest.as_str()] {
            let mut cmd = hermetic(project.path());
            cmd.env("DOCKER_HOST", proxy.docker_host()).args([
                "--json",
                "build",
                "--no-sign",
                "--image",
                image,
            ]);
            let r = run(&mut cmd);
            // A digest other than the one asked for passes only where no digest was asked.
            if id == other && image == builder_image() {
                continue;
            }
            assert_eq!(r.code, 4, "{id} as {image}: {}", r.stdout);
            let msg = message(&r.json());
            assert!(msg.contains("has digest"), "{id}: {msg}");
            assert!(!project.path().join("dist").exists(), "{id}: built");
        }
        assert!(
            proxy.seen().iter().any(|s| s.faulted),
            "{id}: the engine was not asked"
        );
        assert!(!canary.exists() && !outside.path("image.json").exists());
    }
}

fn image_digest() -> String {
    let out = std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", builder_image()])
        .output()
        .expect("docker");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A vendored output committed into the project (a real one, with a config that names a
/// program) is never believed: its config is not what cargo reads, and it is rewritten.
#[test]
fn a_committed_vendor_output_is_not_believed() {
    let _serial = engine_lock();
    let outside = Outside::new();
    let (canary, ran) = outside.canary();
    let project = fixture("hello");
    let p = project.path();
    hermetic_json(p, &["vendor"], 0);
    let out = p.join("target/hermetic/deps");
    std::fs::write(
        out.join("config.toml"),
        format!(
            "[build]\nrustc-wrapper = '{}'\n[source.crates-io]\nreplace-with = 'v'\n\
             [source.v]\ndirectory = 'deps/vendor'\n",
            canary.display()
        ),
    )
    .expect("config");
    // Only the config changes: the tree and its stat index still match, which is what made
    // an output look current before.
    hermetic_json(p, &["vendor"], 0);
    assert!(!ran.exists(), "the committed config's program ran");
    assert!(
        !std::fs::read_to_string(out.join("config.toml"))
            .expect("config")
            .contains("rustc-wrapper")
    );
    hermetic_json(p, &["build", "--image", builder_image()], 0);
    assert!(
        !ran.exists(),
        "the committed config's program ran in the build"
    );
}

/// `target/hermetic` or `dist` committed as links to a host directory: nothing is written
/// there.
#[test]
fn links_on_the_way_to_outputs_are_refused() {
    let _serial = engine_lock();
    let outside = Outside::new();
    for link in ["target/hermetic", "dist", "target"] {
        let project = fixture("hello");
        let p = project.path();
        if let Some(parent) = Path::new(link).parent() {
            std::fs::create_dir_all(p.join(parent)).expect("mkdir");
        }
        let target = outside.path(&link.replace('/', "-"));
        std::fs::create_dir_all(&target).expect("mkdir");
        std::os::unix::fs::symlink(&target, p.join(link)).expect("symlink");
        for args in [
            vec!["build", "--image", builder_image()],
            vec!["verify", "--runners", "2", "--vary", "tz", "--no-sign"],
        ] {
            let v = hermetic_json(p, &args, 2);
            assert!(
                message(&v).contains("a link inside the workspace")
                    || message(&v).contains("does not write through it"),
                "{link} {}: {v}",
                args[0]
            );
            let written: Vec<_> = std::fs::read_dir(&target)
                .expect("read")
                .flatten()
                .map(|e| e.file_name())
                .collect();
            assert!(
                written.is_empty(),
                "{link}: hermetic wrote {written:?} outside"
            );
        }
    }
}

/// The repository's own git state cannot vouch for sources it does not hold: replace refs
/// do not make a changed tree look like its commit, an included config is refused, and a
/// remote URL's credentials stay out of the record.
#[test]
fn git_state_cannot_lie_about_the_sources() {
    let _serial = engine_lock();
    let project = fixture("hello");
    let p = project.path();
    git(p, &["init", "-q", "-b", "main"]);
    git(p, &["add", "."]);
    git(p, &["commit", "-q", "-m", "genuine"]);
    let genuine = git_stdout(p, &["rev-parse", "HEAD"], "");
    let main_rs = p.join("src/main.rs");
    let text = std::fs::read_to_string(&main_rs).expect("main");
    std::fs::write(&main_rs, text.replace("42u32", "666u32")).expect("w");
    git(p, &["commit", "-q", "-am", "hostile"]);
    git(p, &["reset", "-q", "--soft", &genuine]);
    let hostile = git_stdout(p, &["rev-parse", "main@{1}"], "");
    git(p, &["replace", &genuine, &hostile]);
    git(
        p,
        &[
            "remote",
            "add",
            "origin",
            "https://someone:s3cr3t-token@example.invalid/r.git",
        ],
    );
    let v = hermetic_json(p, &["build", "--image", builder_image()], 0);
    let source = &v["record"]["source"];
    assert_eq!(source["commit"], genuine.as_str(), "{source}");
    assert_eq!(
        source["dirty"], true,
        "a replace ref hid the change: {source}"
    );
    assert_eq!(
        source["uri"], "git+https://example.invalid/r.git",
        "{source}"
    );
    nowhere_under(&p.join("dist"), "s3cr3t-token");

    // A forged object: the genuine commit's id now holds the hostile commit's bytes.
    let object = |id: &str| p.join(".git/objects").join(&id[..2]).join(&id[2..]);
    std::fs::remove_file(object(&genuine)).expect("rm object");
    std::fs::copy(object(&hostile), object(&genuine)).expect("forge object");
    let v = hermetic_json(p, &["build", "--image", builder_image()], 2);
    assert!(
        message(&v).contains("does not hash to its id"),
        "a forged commit was believed: {v}"
    );

    // A config that includes another file (here: a fifo, which would hang git) is refused.
    let fifo = p.join("target/include-me");
    std::fs::create_dir_all(fifo.parent().expect("parent")).expect("mkdir");
    let mut mkfifo = Command::new("mkfifo");
    mkfifo.arg(&fifo);
    expect(&mut mkfifo, 0);
    git(p, &["config", "include.path", &fifo.display().to_string()]);
    let v = hermetic_json(p, &["build", "--image", builder_image()], 2);
    assert!(message(&v).contains("includes other files"), "{v}");
}

/// Project files are read only as small regular files: a `Cargo.lock` that is a link to a
/// host file (or to /dev/zero) is an input error, and the file's bytes are not echoed.
#[test]
fn project_files_that_are_links_are_not_read() {
    let outside = Outside::new();
    let (secret, bytes) = outside.secret();
    for target in [secret.as_path(), Path::new("/dev/zero")] {
        let project = fixture("hello");
        let lock = project.path().join("Cargo.lock");
        std::fs::remove_file(&lock).expect("rm");
        std::os::unix::fs::symlink(target, &lock).expect("symlink");
        let mut cmd = hermetic(project.path());
        cmd.args(["--json", "vendor"]);
        let r = expect(&mut cmd, 2);
        assert!(r.stdout.contains("Cargo.lock"), "{}", r.stdout);
        assert!(!r.stdout.contains(&bytes) && !r.stderr.contains(&bytes));
    }
}

/// A `Cargo.toml` that is a link to another project of the host does not make that
/// project the workspace.
#[test]
fn a_manifest_link_does_not_choose_another_workspace() {
    let elsewhere = fixture("hello");
    let project = fixture("hello");
    let manifest = project.path().join("Cargo.toml");
    std::fs::remove_file(&manifest).expect("rm");
    std::os::unix::fs::symlink(elsewhere.path().join("Cargo.toml"), &manifest).expect("ln");
    let v = hermetic_json(project.path(), &["vendor"], 2);
    assert!(message(&v).contains("symbolic link"), "{v}");
    assert!(!elsewhere.path().join("target").exists());
}

/// What comes back from the container is bounded: an output larger than the limit fails
/// the build (exit 3) naming the limit and its flag, and an endless log line is cut.
#[test]
fn outputs_and_logs_are_bounded() {
    let _serial = engine_lock();
    let project = fixture("hello");
    let p = project.path();
    std::fs::write(
        p.join("src/main.rs"),
        "static BIG: [u8; 3 << 20] = [7; 3 << 20];\n\
         fn main() { let i = std::env::args().count(); println!(\"{}\", std::hint::black_box(&BIG)[i]); }\n",
    )
    .expect("main");
    // A build script that prints one 3 MiB line (cargo shows it as a warning).
    std::fs::write(
        p.join("build.rs"),
        "fn main() { println!(\"cargo:warning={}\", \"x\".repeat(3 << 20)); }\n",
    )
    .expect("build.rs");
    let v = hermetic_json(
        p,
        &[
            "build",
            "--image",
            builder_image(),
            "--max-output-mib",
            "1",
            "--max-log-mib",
            "1",
        ],
        3,
    );
    let msg = message(&v);
    assert!(
        msg.contains("output hello goes past the output limits"),
        "{v}"
    );
    assert!(fix(&v).contains("--max-output-mib"), "{v}");
    assert!(!p.join("dist").exists(), "no output that looks complete");
    let logs: Vec<_> = std::fs::read_dir(p.join("target/hermetic/logs"))
        .expect("logs")
        .flatten()
        .collect();
    assert_eq!(logs.len(), 1);
    let log = std::fs::read(logs[0].path()).expect("log");
    assert!(log.len() < (1 << 20) + 1024, "log of {} bytes", log.len());
    assert!(String::from_utf8_lossy(&log).contains("the log was cut at 1048576 bytes"));
    // Within the limits, the same project builds.
    hermetic_json(p, &["build", "--image", builder_image()], 0);
}

/// Inputs that would exhaust the host when read: a sparse file of 2 GiB among the sources,
/// and a repository of a few kilobytes whose HEAD repeats one subtree into millions of paths.
#[test]
fn inputs_that_would_exhaust_the_host_are_refused() {
    let _serial = engine_lock();
    let project = fixture("hello");
    let p = project.path();
    let big = std::fs::File::create(p.join("big.bin")).expect("create");
    big.set_len(2 << 30).expect("sparse");
    let v = hermetic_json(p, &["build", "--image", builder_image()], 2);
    assert!(message(&v).contains("larger than 1024 MiB"), "{v}");
    std::fs::remove_file(p.join("big.bin")).expect("rm");

    git(p, &["init", "-q", "-b", "main"]);
    let run = |args: &[&str], input: &str| git_stdout(p, args, input);
    let blob = run(&["hash-object", "-w", "--stdin"], "x");
    let mut tree = run(&["mktree"], &format!("100644 blob {blob}\tf\n"));
    // 26 entries per level, 5 levels: 26^5 = 11.9 million paths from 6 small objects.
    for _ in 0..5 {
        let entries: String = ('a'..='z')
            .map(|c| format!("040000 tree {tree}\t{c}\n"))
            .collect();
        tree = run(&["mktree"], &entries);
    }
    let commit = run(&["commit-tree", &tree, "-m", "bomb"], "");
    git(p, &["update-ref", "HEAD", &commit]);
    let v = hermetic_json(p, &["build", "--image", builder_image()], 2);
    assert!(message(&v).contains("more than 1000000 entries"), "{v}");
}

/// Files that verification of a vendored tree skips (under a crate's `.git`, as a cache
/// another party wrote could hold) are not sent into the build either.
#[test]
fn what_verification_skips_is_not_sent() {
    let _serial = engine_lock();
    let cache = tempfile::tempdir().expect("cache");
    let project = fixture("hello");
    let p = project.path();
    let planted = "/hermetic/deps/vendor/itoa-1.0.19/.git/planted.rs";
    std::fs::write(
        p.join("build.rs"),
        format!(
            "fn main() {{ println!(\"cargo:rustc-env=PLANTED={{}}\", \
             std::path::Path::new(\"{planted}\").exists()); }}\n"
        ),
    )
    .expect("build.rs");
    std::fs::write(
        p.join("src/main.rs"),
        "fn main() { print!(\"{}\", env!(\"PLANTED\")); }\n",
    )
    .expect("main");
    let build = |code: i32| {
        let mut cmd = hermetic(p);
        cmd.env("HERMETIC_CACHE", cache.path()).args([
            "--json",
            "build",
            "--image",
            builder_image(),
        ]);
        expect(&mut cmd, code).json()
    };
    build(0);
    let trees = cache.path().join("trees");
    let tree = std::fs::read_dir(&trees)
        .expect("trees")
        .flatten()
        .find(|e| e.path().join("vendor/itoa-1.0.19").is_dir())
        .expect("the cached tree")
        .path();
    let dot_git = tree.join("vendor/itoa-1.0.19/.git");
    std::fs::create_dir_all(&dot_git).expect("mkdir");
    std::fs::write(dot_git.join("planted.rs"), "planted").expect("plant");
    // The build's own copy goes, so that the next build copies the planted tree.
    std::fs::remove_dir_all(cache.path().join("workspaces")).expect("rm copy");
    build(0);
    let out = expect(&mut Command::new(p.join("dist/hello")), 0);
    assert_eq!(
        out.stdout, "false",
        "a file verification skipped reached the build"
    );
}

/// A project of one git dependency, `secret`, from `url` at `commit`, with the lockfile
/// cargo would write for it.
fn git_dependency_project(url: &str, commit: &str) -> tempfile::TempDir {
    let project = tempfile::tempdir().expect("tempdir");
    let p = project.path();
    std::fs::create_dir_all(p.join("src")).expect("mkdir");
    std::fs::write(
        p.join("Cargo.toml"),
        format!(
            "[package]\nname = \"borrower\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
             publish = false\n\n[dependencies]\nsecret = {{ git = \"{url}\", rev = \"{commit}\" }}\n\n\
             [workspace]\n"
        ),
    )
    .expect("manifest");
    std::fs::write(p.join("src/main.rs"), "fn main() {}\n").expect("main");
    std::fs::write(
        p.join("Cargo.lock"),
        format!(
            "version = 3\n\n[[package]]\nname = \"borrower\"\nversion = \"0.1.0\"\n\
             dependencies = [\n \"secret\",\n]\n\n[[package]]\nname = \"secret\"\n\
             version = \"0.1.0\"\nsource = \"git+{url}?rev={commit}#{commit}\"\n"
        ),
    )
    .expect("lock");
    project
}

#[test]
fn dependencies_cannot_borrow_the_hosts_files_or_keys() {
    let _serial = engine_lock();
    let outside = Outside::new();
    let (_, secret) = outside.secret();
    // A repository on the host that the project has no business reading.
    let repo = outside.path("private-repo");
    std::fs::create_dir_all(repo.join("src")).expect("mkdir");
    std::fs::write(
        repo.join("Cargo.toml"),
        "[package]\nname = \"secret\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .expect("manifest");
    std::fs::write(
        repo.join("src/lib.rs"),
        format!("pub const S: &str = \"{secret}\";\n"),
    )
    .expect("lib");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "private"]);
    let commit = git_stdout(&repo, &["rev-parse", "HEAD"], "");
    let url = format!("file://{}", repo.display());
    let project = git_dependency_project(&url, &commit);
    let p = project.path();
    let listed = format!("[sources]\ngit = [\"{url}\"]\n");

    // Refused, also when the project's own policy lists the source.
    for own_policy in [false, true] {
        if own_policy {
            std::fs::write(p.join("vendor-policy.toml"), &listed).expect("policy");
        }
        for args in [vec!["vendor"], vec!["build", "--image", builder_image()]] {
            let v = hermetic_json(p, &args, 2);
            let msg = message(&v);
            assert!(
                msg.contains("Cargo.lock")
                    && msg.contains("secret@0.1.0")
                    && msg.contains("reads this machine's disk"),
                "{v}"
            );
            assert!(
                fix(&v).contains("--policy") && fix(&v).contains(&format!("git = [\"{url}\"]")),
                "{v}"
            );
        }
        assert!(!p.join("target/hermetic").exists());
        assert!(!p.join("dist").exists());
        nowhere_under(p, &secret);
    }
    // The user can vouch for it, with a policy of their own.
    let users = outside.path("users-policy.toml");
    std::fs::write(&users, &listed).expect("policy");
    let v = hermetic_json(
        p,
        &["vendor", "--policy", users.to_str().expect("utf-8")],
        0,
    );
    assert_eq!(v["status"], "ok", "{v}");
    assert!(
        p.join("target/hermetic/deps/vendor/secret-0.1.0/src/lib.rs")
            .is_file()
    );

    // ssh:// would sign in with this machine's keys: refused before anything connects.
    let project = git_dependency_project("ssh://git@127.0.0.1:1/private.git", &commit);
    let v = hermetic_json(project.path(), &["vendor"], 2);
    assert!(message(&v).contains("ssh keys"), "{v}");
}

/// A git server on loopback that asks every client for a password and records what each
/// request carried.
fn asking_git_server() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut buf = vec![0u8; 8192];
            let n = stream.read(&mut buf).unwrap_or(0);
            log.lock()
                .expect("log")
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = stream.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"private\"\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (port, seen)
}

#[test]
fn a_fetch_lends_none_of_the_users_credentials() {
    let outside = Outside::new();
    let (canary, ran) = outside.canary();
    // The user's own git config hands out a password to any host that asks.
    let home = outside.path("home");
    std::fs::create_dir_all(&home).expect("home");
    std::fs::write(
        home.join(".gitconfig"),
        format!(
            "[credential]\n\thelper = \"!{} ; echo username=user; echo password=hunter2\"\n",
            canary.display()
        ),
    )
    .expect("gitconfig");
    std::fs::write(
        home.join(".git-credentials"),
        "http://user:hunter2@127.0.0.1\n",
    )
    .expect("credentials");
    let (port, seen) = asking_git_server();
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let project = git_dependency_project(&format!("http://127.0.0.1:{port}/private.git"), commit);
    let mut cmd = hermetic(project.path());
    // The user's home, and the toolchain found without it.
    let real_home = std::env::var("HOME").expect("HOME");
    cmd.env("HOME", &home)
        .env(
            "CARGO_HOME",
            std::env::var("CARGO_HOME").unwrap_or(format!("{real_home}/.cargo")),
        )
        .env(
            "RUSTUP_HOME",
            std::env::var("RUSTUP_HOME").unwrap_or(format!("{real_home}/.rustup")),
        )
        .args(["--json", "vendor"]);
    let v = expect(&mut cmd, 2).json();
    assert!(message(&v).contains("needs credentials"), "{v}");
    assert!(fix(&v).contains("HERMETIC_CARGO_HOME"), "{v}");
    let requests = seen.lock().expect("log").clone();
    assert!(
        !requests.is_empty(),
        "cargo never asked the server: the attack was not tried"
    );
    for r in &requests {
        assert!(
            !r.to_ascii_lowercase().contains("authorization:"),
            "a request carried the user's credentials: {r}"
        );
    }
    assert!(!ran.exists(), "the user's credential helper ran");
}

/// Serves `root`'s files over HTTP on loopback (git's "dumb" protocol needs nothing more).
fn static_http_server(root: PathBuf) -> u16 {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = std::io::BufReader::new(stream);
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let path = path.split('?').next().unwrap_or("/");
            let file = root.join(path.trim_start_matches('/'));
            let mut stream = reader.into_inner();
            let reply = match std::fs::read(&file) {
                Ok(body) if !path.contains("..") => {
                    let kind = if path.ends_with("/info/refs") {
                        "text/plain"
                    } else {
                        "application/octet-stream"
                    };
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend(body);
                    r
                }
                _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = stream.write_all(&reply);
        }
    });
    port
}

/// Commits what `work` holds, serves it as `NAME.git` over loopback HTTP from `served`, and
/// returns the port and the commit.
fn serve_repository(work: &Path, served: &Path, name: &str) -> (u16, String) {
    git(work, &["add", "."]);
    git(work, &["commit", "-q", "-m", name]);
    let commit = git_stdout(work, &["rev-parse", "HEAD"], "");
    std::fs::create_dir_all(served).expect("mkdir");
    let bare = served.join(format!("{name}.git"));
    let mut clone = Command::new("git");
    clone.args(["clone", "-q", "--bare"]).arg(work).arg(&bare);
    expect(&mut clone, 0);
    git(&bare, &["update-server-info"]);
    (static_http_server(served.to_path_buf()), commit)
}

#[test]
fn a_submodule_cannot_bring_in_a_host_repository() {
    let outside = Outside::new();
    let (_, secret) = outside.secret();
    let private = outside.path("private");
    std::fs::create_dir_all(&private).expect("mkdir");
    std::fs::write(private.join("secret.txt"), &secret).expect("secret");
    git(&private, &["init", "-q", "-b", "main"]);
    git(&private, &["add", "."]);
    git(&private, &["commit", "-q", "-m", "private"]);
    // A public-looking dependency, served over http, whose submodule is the host's repo.
    let work = outside.path("dep-work");
    std::fs::create_dir_all(work.join("src")).expect("mkdir");
    std::fs::write(
        work.join("Cargo.toml"),
        "[package]\nname = \"secret\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .expect("manifest");
    std::fs::write(work.join("src/lib.rs"), "").expect("lib");
    git(&work, &["init", "-q", "-b", "main"]);
    git(
        &work,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            &format!("file://{}", private.display()),
            "sub",
        ],
    );
    let (port, commit) = serve_repository(&work, &outside.path("served"), "dep");
    let project = git_dependency_project(&format!("http://127.0.0.1:{port}/dep.git"), &commit);
    let p = project.path();
    let mut cmd = hermetic(p);
    cmd.args(["--json", "vendor"]);
    let out = cmd.output().expect("run");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_ne!(v["status"], "ok", "the submodule was fetched: {v}");
    assert!(
        message(&v).contains("file") && message(&v).contains("not allowed"),
        "git refused the file transport: {v}"
    );
    nowhere_under(p, &secret);
    nowhere_under(&shared_cache().join("cargo-home"), &secret);
}

/// cargo reads what a dependency's manifest names: a registry at `sparse+file://` of a host
/// file (cargo's error would print the file), a path dependency at a host directory. Host
/// cargo sees none of the host's files, so neither is read, and nothing of them is
/// anywhere.
#[test]
fn a_fetch_reads_no_host_file() {
    let outside = Outside::new();
    let (secret_file, secret) = outside.secret();
    // A host directory that looks like a crate.
    let host_crate = outside.path("host-crate");
    std::fs::create_dir_all(host_crate.join("src")).expect("mkdir");
    std::fs::write(
        host_crate.join("Cargo.toml"),
        "[package]\nname = \"hostcrate\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .expect("manifest");
    std::fs::write(host_crate.join("src/lib.rs"), format!("// {secret}\n")).expect("lib");
    // A git dependency, served over http, whose own manifest has a path dependency on it.
    let work = outside.path("dep-work");
    std::fs::create_dir_all(work.join("src")).expect("mkdir");
    std::fs::write(
        work.join("Cargo.toml"),
        format!(
            "[package]\nname = \"innocent\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [dependencies]\nhostcrate = {{ path = \"{}\" }}\n",
            host_crate.display()
        ),
    )
    .expect("manifest");
    std::fs::write(work.join("src/lib.rs"), "").expect("lib");
    git(&work, &["init", "-q", "-b", "main"]);
    let (port, commit) = serve_repository(&work, &outside.path("served"), "innocent");
    let cases = [
        (
            "hello",
            format!(
                "leak = {{ version = \"0.1\", registry-index = \"sparse+file://{}?x=/\" }}",
                secret_file.display()
            ),
        ),
        (
            "git",
            format!(
                "innocent = {{ git = \"http://127.0.0.1:{port}/innocent.git\", rev = \"{commit}\" }}"
            ),
        ),
    ];
    for (kind, dep) in cases {
        let project = fixture("hello");
        let p = project.path();
        let manifest = std::fs::read_to_string(p.join("Cargo.toml")).expect("manifest");
        std::fs::write(
            p.join("Cargo.toml"),
            manifest.replace("itoa = \"1\"", &format!("itoa = \"1\"\n{dep}")),
        )
        .expect("manifest");
        if kind == "git" {
            // The lockfile cargo writes for it (the path package counts as the git
            // source's): made by the test's own cargo, which may read the test's files.
            let mut lock = Command::new("cargo");
            lock.current_dir(p)
                .env("CARGO_NET_GIT_FETCH_WITH_CLI", "true")
                .arg("generate-lockfile");
            expect(&mut lock, 0);
            let text = std::fs::read_to_string(p.join("Cargo.lock")).expect("lock");
            assert!(text.contains("name = \"hostcrate\""), "{text}");
        }
        let mut cmd = hermetic(p);
        cmd.args(["--json", "vendor"]);
        let out = cmd.output().expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{dep}: vendored: {stdout}");
        assert!(
            !stdout.contains(&secret) && !String::from_utf8_lossy(&out.stderr).contains(&secret),
            "{dep}: the host file is in hermetic's answer: {stdout}"
        );
        nowhere_under(p, &secret);
        nowhere_under(&shared_cache().join("cargo-home"), &secret);
        nowhere_under(&shared_cache().join("trees"), &secret);
    }
}
