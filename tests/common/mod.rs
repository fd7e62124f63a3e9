//! Helpers shared by the integration tests: fixtures, the `hermetic` binary, network-less runs.
#![allow(dead_code)]

pub mod fault_proxy;

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
        // The secret that seals cache entries: the tests', never the user's.
        .env(
            "HERMETIC_STATE",
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hermetic-state"),
        )
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

/// git in `dir` (with a committer identity), which must succeed.
pub fn git(dir: &Path, args: &[&str]) {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args);
    expect(&mut cmd, 0);
}

/// git's trimmed standard output for `args` in `dir`, with `input` on its standard input.
pub fn git_stdout(dir: &Path, args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("git");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("git");
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

/// Writes `text` to `path` as an executable script (mode 0755).
pub fn write_executable(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write script");
    let mut perm = std::fs::metadata(path).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(path, perm).expect("chmod");
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
    let watch = BuildWatch::start(cmd);
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("wait");
    if let Some(watch) = watch {
        watch.record(cmd, pid);
    }
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Where each test's container builds are logged: one line per hermetic command that may
/// build (nextest run, test, command, project, build containers it created on the engine it
/// talked to).
/// `.ci/test-times` joins it with nextest's timings, so the cost of every test is visible.
pub fn builds_log() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-builds.tsv")
}

/// Watches the engine's container creations while a hermetic command that may build runs.
/// A live stream, not a look back with `docker events --since`: the engine keeps only its
/// last few hundred events, and a long test sees more than that from its neighbours.
pub struct BuildWatch {
    events: std::process::Child,
    sub: String,
}

impl BuildWatch {
    /// Starts watching if `cmd` is a hermetic command that may build.
    pub fn start(cmd: &Command) -> Option<BuildWatch> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let hermetic = env!("CARGO_BIN_EXE_hermetic");
        if program != hermetic && !args.iter().any(|a| a == hermetic) {
            return None;
        }
        let sub = args
            .iter()
            .find(|a| ["build", "verify", "rebuild", "audit"].contains(&a.as_str()))?
            .clone();
        let mut events = Command::new("docker");
        if let Some((_, Some(host))) = cmd.get_envs().find(|(k, _)| *k == "DOCKER_HOST") {
            events.env("DOCKER_HOST", host);
        }
        // `--since` replays the last second too, so that no creation is missed while the
        // stream connects.
        let since = unix_now().saturating_sub(1).to_string();
        let events = events
            .args([
                "events",
                "--since",
                &since,
                "--filter",
                "type=container",
                "--filter",
                "event=create",
                "--filter",
                "label=hermetic",
                "--format",
                "{{index .Actor.Attributes \"hermetic.pid\"}} {{.Actor.Attributes.name}}",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker events");
        Some(BuildWatch { events, sub })
    }

    /// Logs the build containers that the hermetic process `pid`, run by `cmd`, created.
    pub fn record(mut self, cmd: &Command, pid: u32) {
        use std::io::{Read, Write};
        // Creations were delivered long before the command's own cleanup finished.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let _ = self.events.kill();
        let mut seen = String::new();
        if let Some(mut out) = self.events.stdout.take() {
            let _ = out.read_to_string(&mut seen);
        }
        let _ = self.events.wait();
        let pid = pid.to_string();
        let builds = seen
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(p, name)| *p == pid && name.ends_with("-build"))
            .count();
        let dir = cmd
            .get_current_dir()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let project = if dir == repo_root() {
            "hermetic".to_string()
        } else {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .ok()
                .and_then(|t| {
                    t.lines().find_map(|l| {
                        l.trim()
                            .strip_prefix("name = ")
                            .map(|n| n.trim_matches('"').to_string())
                    })
                })
                .unwrap_or_else(|| "-".into())
        };
        let test = std::thread::current().name().unwrap_or("?").to_string();
        // nextest's run id: the summary counts only the run it reports on.
        let run = std::env::var("NEXTEST_RUN_ID").unwrap_or_default();
        let line = format!("{run}\t{test}\t{}\t{project}\t{builds}\n", self.sub);
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(builds_log())
        {
            let _ = f.write_all(line.as_bytes());
        }
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

/// Makes sure the builder image and the tests' lock of it exist (bootstrapping it offline
/// once, ~1 minute) and returns its reference. Tests run in processes of their own (nextest) and at once: the
/// first to find the image missing bootstraps it while holding a lock directory, the others
/// wait for it and then see the image.
pub fn builder_image() -> &'static str {
    const IMAGE: &str = "hermetic/builder:latest";
    static READY: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    READY.get_or_init(|| {
        let present = || {
            Command::new("docker")
                .args(["image", "inspect", IMAGE])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        // The tests' own image lock, never the repository's: tests read it, so an image
        // that an earlier run left on the engine is not enough without it.
        let image_lock = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hermetic-image.lock");
        // A lock from before every image carried libfaketime defines an image that cannot
        // vary the clock: made anew.
        let present = || {
            present()
                && std::fs::read_to_string(&image_lock).is_ok_and(|l| l.contains("\"libfaketime\""))
        };
        let lock = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("builder-image.lock");
        // Long enough for the slowest bootstrap seen; a lock older than this is abandoned.
        let patience = std::time::Duration::from_secs(900);
        loop {
            if present() {
                return;
            }
            match std::fs::create_dir(&lock) {
                Ok(()) => {
                    struct Unlock(PathBuf);
                    impl Drop for Unlock {
                        fn drop(&mut self) {
                            let _ = std::fs::remove_dir(&self.0);
                        }
                    }
                    let _unlock = Unlock(lock.clone());
                    if !present() {
                        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hermetic"));
                        cmd.args(["image", "bootstrap", "--lock"]).arg(&image_lock);
                        expect(&mut cmd, 0);
                    }
                    return;
                }
                Err(_) => {
                    let age = std::fs::metadata(&lock)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok());
                    if age.is_some_and(|a| a > patience) {
                        let _ = std::fs::remove_dir(&lock);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(500));
                }
            }
        }
    });
    IMAGE
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
