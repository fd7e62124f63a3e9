//! Helpers shared by the integration tests: fixtures, the `hermetic` binary, network-less runs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ has a parent")
        .to_path_buf()
}

/// A copy of `tests/fixtures/NAME` in a fresh temporary directory.
pub fn fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&repo_root().join("tests/fixtures").join(name), dir.path());
    dir
}

pub fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.expect("walk fixture");
        let rel = entry.path().strip_prefix(from).expect("prefix");
        if rel.starts_with("target") {
            continue;
        }
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).expect("mkdir");
        } else {
            std::fs::copy(entry.path(), &dest).expect("copy");
        }
    }
}

/// The cache shared by tests that do not tamper with it (warm after the first download).
pub fn shared_cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hermetic-cache")
}

/// Password of every key the tests make.
pub const PASSWORD: &str = "test-password";

/// hermetic with the shared cache and a test-owned default signing key (never the user's).
pub fn hermetic(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hermetic"));
    cmd.current_dir(dir)
        .env("HERMETIC_CACHE", shared_cache())
        .env(
            "HERMETIC_KEY",
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("default-key/cosign.key"),
        )
        .env("COSIGN_PASSWORD", PASSWORD)
        // Builds leave no copy of their vendored tree or toolchain in the engine; the tests
        // of that cache turn it back on with `with_engine_cache`.
        .env("HERMETIC_NO_ENGINE_CACHE", "1");
    cmd
}

/// The engine keeps vendored trees and toolchains between builds, as it does outside the
/// tests.
pub fn with_engine_cache(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("HERMETIC_NO_ENGINE_CACHE")
}

/// A key pair made once per test binary with `hermetic keygen`: (private, public).
pub fn test_key() -> &'static (PathBuf, PathBuf) {
    static KEY: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let dir =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("key dir");
        let mut cmd = hermetic(&dir);
        cmd.args(["keygen", "--force", "--output-key-prefix", "test"]);
        expect(&mut cmd, 0);
        (dir.join("test.key"), dir.join("test.pub"))
    })
}

/// Wraps a command so that it runs in a fresh network namespace: only a loopback that is
/// down, so nothing can leave, whatever the command tries. Needs root (CI runs as root);
/// a test that needs this fails rather than skips without it.
pub fn without_network(cmd: &Command) -> Command {
    wrapped_in(&["unshare", "--net"], cmd)
}

/// `cmd` run by `prefix` (e.g. `nsenter --net=…`), with its directory and environment.
pub fn wrapped_in(prefix: &[&str], cmd: &Command) -> Command {
    let mut wrapped = Command::new(prefix[0]);
    wrapped.args(&prefix[1..]).arg("--").arg(cmd.get_program());
    wrapped.args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    wrapped
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("spawn");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Runs and asserts the exit code, showing everything on failure.
pub fn expect(cmd: &mut Command, code: i32) -> Run {
    let r = run(cmd);
    assert_eq!(
        r.code, code,
        "unexpected exit code for {cmd:?}\nstdout:\n{}\nstderr:\n{}",
        r.stdout, r.stderr
    );
    r
}

/// Makes sure the builder image exists (bootstrapping it offline once, ~1 minute) and
/// returns its reference. Serialised: parallel tests wait for the first bootstrap.
pub fn builder_image() -> &'static str {
    static READY: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    READY.get_or_init(|| {
        let present = Command::new("docker")
            .args(["image", "inspect", "hermetic/builder:latest"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !present {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_hermetic"));
            cmd.args(["image", "bootstrap"]);
            expect(&mut cmd, 0);
        }
    });
    "hermetic/builder:latest"
}

/// Containers and volumes that still carry a run's label.
pub fn leftovers(run_id: &str) -> (usize, usize) {
    let count = |args: &[&str]| {
        let out = Command::new("docker").args(args).output().expect("docker");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    };
    let filter = format!("label=hermetic.run={run_id}");
    (
        count(&["ps", "-aq", "--filter", &filter]),
        count(&["volume", "ls", "-q", "--filter", &filter]),
    )
}

/// Engine tests of one test binary run one at a time: builds sweep stale runs at start, and
/// tests that leave stale runs on purpose (or run many builds at once) would race with that.
pub fn engine_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
