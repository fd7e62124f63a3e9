//! Engine faults: a proxy in front of the engine closes connections, answers 503, holds
//! requests past the call timeout, or says images are missing, at chosen calls of a build.
//! Transient faults anywhere in a build are survived with byte-identical outputs and
//! nothing left behind; permanent ones are named at once. The disk the outputs go to being
//! full or read-only is an infrastructure failure that names the path.

mod common;

use common::fault_proxy::{FaultProxy, Mode, Plan};
use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

const ENGINE: &str = "/var/run/docker.sock";

/// `hermetic build` of `project` into `out`, through `proxy` when given.
fn build(project: &Path, out: &Path, proxy: Option<&FaultProxy>, code: i32) -> Run {
    let mut cmd = hermetic(project);
    if let Some(p) = proxy {
        cmd.env("DOCKER_HOST", p.docker_host());
    } else {
        cmd.env_remove("DOCKER_HOST");
    }
    cmd.args(["--json", "build", "--no-sign", "--image", builder_image()])
        .arg("--out")
        .arg(out);
    expect(&mut cmd, code)
}

fn run_id(v: &serde_json::Value) -> String {
    v["record"]["run"]["invocation_id"]
        .as_str()
        .expect("run id")
        .to_string()
}

/// The outputs' bytes: every file of `out` but the build record and the provenance, which
/// record the run (its id and times).
fn outputs(out: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(out)
        .expect("out")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n != "hermetic-build.json" && n != "provenance.intoto.json")
        })
        .map(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            (name.unwrap_or_default(), std::fs::read(&p).expect("read"))
        })
        .collect();
    files.sort();
    files
}

/// The calls a build makes, each of which must survive a fault.
const CALLS: &[&str] = &[
    "ping",
    "inspect image",
    "list containers",
    "list volumes",
    "create volume",
    "create container",
    "upload",
    "remove container",
    "start",
    "logs",
    "wait",
    "download",
    "remove volume",
];

/// Builds through `proxy` and checks the build against the fault-free one: the same
/// outputs, byte for byte, and no container or volume left. The faulted calls come back.
fn build_agrees(
    project: &Path,
    proxy: &FaultProxy,
    reference: &[(String, Vec<u8>)],
    what: &str,
) -> Vec<String> {
    let out = tempfile::tempdir().expect("tmp");
    let v = build(project, out.path(), Some(proxy), 0).json();
    let got = outputs(out.path());
    let differ: Vec<_> = got
        .iter()
        .filter(|f| !reference.contains(f))
        .map(|(n, _)| n)
        .collect();
    assert!(
        differ.is_empty() && got.len() == reference.len(),
        "{what}: outputs differ from the fault-free build's: {differ:?}"
    );
    assert_eq!(leftovers(&run_id(&v)), (0, 0), "{what}: left behind");
    proxy
        .seen()
        .iter()
        .filter(|s| s.faulted)
        .map(|s| s.call())
        .collect()
}

/// The fault swept over a build's calls: first the connection closed at the first call of
/// each kind (the start, the preparation, the upload, the start, the wait and logs, the
/// download, the cleanup), one fault per build; then the answer lost after the engine acted,
/// at each call that changes something; then 503 at every third call, the first, second or
/// third of each three. Every run's outputs are the fault-free build's, byte for
/// byte, with nothing left, and every kind of call met a fault.
#[test]
fn a_build_survives_a_transient_fault_at_any_engine_call() {
    let _serial = engine_lock();
    builder_image();
    let project = fixture("hello");
    let counting = FaultProxy::start(Path::new(ENGINE), Plan::none());
    let reference_out = tempfile::tempdir().expect("tmp");
    build(project.path(), reference_out.path(), Some(&counting), 0);
    let reference = outputs(reference_out.path());
    assert!(reference.iter().any(|(n, _)| n == "hello"), "{reference:?}");
    let calls: Vec<String> = counting
        .seen()
        .iter()
        .filter(|s| s.path != "/events")
        .map(|s| s.call())
        .collect();
    let missing: Vec<_> = CALLS
        .iter()
        .filter(|c| !calls.contains(&c.to_string()))
        .collect();
    assert!(
        missing.is_empty(),
        "a build makes these calls too: {missing:?} ({calls:?})"
    );

    let mut faulted = BTreeSet::new();
    for call in CALLS {
        let proxy = FaultProxy::start(Path::new(ENGINE), Plan::first(Mode::Close, call));
        faulted.extend(build_agrees(
            project.path(),
            &proxy,
            &reference,
            &format!("closed at the first {call}"),
        ));
    }
    // The calls that change something, made but their answers lost: the retry must not do
    // the thing twice (a second container), nor fail because it was done (409, 404, 304).
    for call in [
        "create volume",
        "create container",
        "upload",
        "start",
        "download",
        "remove container",
        "remove volume",
    ] {
        let proxy = FaultProxy::start(Path::new(ENGINE), Plan::first(Mode::Lose, call));
        let hit = build_agrees(
            project.path(),
            &proxy,
            &reference,
            &format!("answer to the first {call} lost"),
        );
        assert_eq!(hit, vec![call.to_string()]);
    }
    for phase in 0..3 {
        let proxy = FaultProxy::start(
            Path::new(ENGINE),
            Plan {
                mode: Mode::Unavailable,
                pass: 0,
                every: 3,
                phase,
                only: None,
            },
        );
        let hit = build_agrees(
            project.path(),
            &proxy,
            &reference,
            &format!("503, phase {phase}"),
        );
        assert!(hit.len() >= 5, "503, phase {phase}: {hit:?}");
        faulted.extend(hit);
    }
    let missed: Vec<_> = CALLS.iter().filter(|c| !faulted.contains(**c)).collect();
    assert!(
        missed.is_empty(),
        "never faulted: {missed:?} (faulted: {faulted:?})"
    );
}

/// A call held past the call timeout (HERMETIC_ENGINE_TIMEOUT) is given up and made again.
#[test]
fn a_call_that_hangs_is_timed_out_and_retried() {
    let _serial = engine_lock();
    builder_image();
    let project = fixture("hello");
    let proxy = FaultProxy::start(
        Path::new(ENGINE),
        Plan {
            mode: Mode::Delay(Duration::from_secs(6)),
            pass: 2,
            every: 6,
            phase: 0,
            only: None,
        },
    );
    let out = tempfile::tempdir().expect("tmp");
    let mut cmd = hermetic(project.path());
    cmd.env("DOCKER_HOST", proxy.docker_host())
        .env("HERMETIC_ENGINE_TIMEOUT", "2")
        .args(["--json", "build", "--no-sign", "--image", builder_image()])
        .arg("--out")
        .arg(out.path());
    let v = expect(&mut cmd, 0).json();
    assert_eq!(leftovers(&run_id(&v)), (0, 0));
    assert!(out.path().join("hello").is_file());
    let held: Vec<_> = proxy
        .seen()
        .iter()
        .filter(|s| s.faulted)
        .map(|s| s.call())
        .collect();
    assert!(held.len() >= 2, "{held:?}");
}

/// An image the engine does not have is an answer, not a fault: no retries, a message that
/// names the image and the command that makes it, within seconds.
#[test]
fn a_missing_image_fails_at_once_and_names_the_fix() {
    let project = fixture("hello");
    let proxy = FaultProxy::start(
        Path::new(ENGINE),
        Plan {
            mode: Mode::NoImages,
            pass: 0,
            every: 1,
            phase: 0,
            only: None,
        },
    );
    let started = Instant::now();
    let out = tempfile::tempdir().expect("tmp");
    let r = build(project.path(), out.path(), Some(&proxy), 2);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let e = &r.json()["error"];
    let msg = e["message"].as_str().expect("message");
    assert!(msg.contains(builder_image()), "{msg}");
    assert!(
        e["fix"]
            .as_str()
            .is_some_and(|f| f.contains("hermetic image bootstrap")),
        "{e}"
    );
    let asked = proxy
        .seen()
        .iter()
        .filter(|s| s.call() == "inspect image")
        .count();
    assert_eq!(asked, 1, "a 404 is not retried");
}

/// An engine that answers only 503 is reported as such, with the retries made, not as a
/// bad address.
#[test]
fn an_engine_that_stays_unavailable_is_named_with_the_retries() {
    let project = fixture("hello");
    let proxy = FaultProxy::start(
        Path::new(ENGINE),
        Plan {
            mode: Mode::Unavailable,
            pass: 0,
            every: 1,
            phase: 0,
            only: None,
        },
    );
    let mut cmd = hermetic(project.path());
    cmd.env("DOCKER_HOST", proxy.docker_host())
        .env("HERMETIC_ENGINE_RETRY_SECS", "4")
        .args(["--json", "gc"]);
    let v = expect(&mut cmd, 4).json();
    let msg = v["error"]["message"].as_str().expect("message");
    assert!(
        msg.contains("the engine answered 503: engine restarting (retried "),
        "{msg}"
    );
    assert!(!msg.contains("not a usable engine address"), "{msg}");
    assert!(proxy.seen().len() >= 2, "retried");
}

/// A small filesystem of the test's own (tmpfs), unmounted when dropped.
struct Mounted(tempfile::TempDir);

impl Mounted {
    fn tmpfs(options: &str) -> Mounted {
        let dir = tempfile::tempdir().expect("tmp");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mount -t tmpfs (the tests run as root)");
        Mounted(dir)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

/// The output directory's disk is full, or read-only: exit 4 naming the path, and nothing
/// in it that looks complete.
#[test]
fn a_full_or_read_only_output_disk_is_named() {
    let _serial = engine_lock();
    builder_image();
    let project = fixture("hello");
    let full = Mounted::tmpfs("size=64k");
    let out = full.0.path().join("dist");
    let r = build(project.path(), &out, None, 4);
    let msg = r.json()["error"]["message"]
        .as_str()
        .expect("message")
        .to_string();
    // The file being written is named: the outputs are staged beside the output directory.
    assert!(
        msg.starts_with(&full.0.path().display().to_string())
            && msg.contains("No space left on device"),
        "{msg}"
    );
    let left: Vec<_> = walkdir::WalkDir::new(full.0.path())
        .min_depth(1)
        .into_iter()
        .map(|e| e.expect("entry").path().to_path_buf())
        .collect();
    assert!(left.is_empty(), "left on the full disk: {left:?}");

    let read_only = Mounted::tmpfs("ro,size=1m");
    let out = read_only.0.path().join("dist");
    let r = build(project.path(), &out, None, 4);
    let msg = r.json()["error"]["message"]
        .as_str()
        .expect("message")
        .to_string();
    assert!(
        msg.starts_with(&read_only.0.path().display().to_string())
            && msg.contains("Read-only file system"),
        "{msg}"
    );
}

/// A small generator for kill moments; the seed is printed, so a failure can be replayed
/// with `HERMETIC_CRASH_SEED`.
struct Moments(u64);

impl Moments {
    fn new() -> Moments {
        let seed = std::env::var("HERMETIC_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("crash moments: HERMETIC_CRASH_SEED={seed}");
        Moments(seed | 1)
    }

    /// A moment in `0..within`.
    fn next(&mut self, within: Duration) -> Duration {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        within.mul_f64((self.0 % 10_000) as f64 / 10_000.0)
    }
}

/// The names of the files that are not the same in both.
fn differing(a: &[(String, Vec<u8>)], b: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut names: Vec<String> = a
        .iter()
        .filter(|f| !b.contains(f))
        .chain(b.iter().filter(|f| !a.contains(f)))
        .map(|(name, _)| name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Starts `cmd`, SIGKILLs it after `after` (if it still runs) and waits for it; whether it
/// was killed.
fn kill_after(cmd: &mut std::process::Command, after: Duration) -> bool {
    use std::os::unix::process::CommandExt;
    // A group of its own, killed whole: host cargo, git and bwrap die with it, as they
    // would when a machine goes down.
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + after;
    while Instant::now() < deadline {
        if child.try_wait().expect("wait").is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.kill();
    let _ = child.wait();
    true
}

/// Killed at any moment (SIGKILL: no cleanup runs), `vendor` and `build` leave nothing that
/// a later run or a user could take for complete: an output directory is either absent or
/// whole and verifiable, every cache entry is re-checked before use, and the next run
/// succeeds with the same bytes.
#[test]
fn a_kill_at_any_moment_leaves_nothing_half_trusted() {
    let _serial = engine_lock();
    let mut moments = Moments::new();
    let project = fixture("hello");
    let p = project.path();
    // The cache of this test alone: the kills land in its entries too.
    let cache = tempfile::tempdir().expect("cache");
    // Outputs outside the project: inside, they would be sources of the next build.
    let outs = tempfile::tempdir().expect("outs");
    let o = outs.path();
    let arg = |name: &str| o.join(name).to_string_lossy().into_owned();
    let with_cache = |cmd: &mut std::process::Command| {
        cmd.env("HERMETIC_CACHE", cache.path())
            .env_remove("DOCKER_HOST");
    };
    let vendor = |code: i32| {
        let mut cmd = hermetic(p);
        with_cache(&mut cmd);
        cmd.args(["--json", "vendor", "--out", &arg("deps")]);
        expect(&mut cmd, code)
    };
    let check = || {
        let mut cmd = hermetic(p);
        with_cache(&mut cmd);
        cmd.args(["--json", "vendor", "--check", &arg("deps")]);
        expect(&mut cmd, 0)
    };
    // How long each takes here, so that the kills fall inside the work.
    let trees = cache.path().join("trees");
    vendor(0);
    // Timed once the crates are here, from an empty tree cache: what the runs below do.
    let _ = std::fs::remove_dir_all(&trees);
    let started = Instant::now();
    vendor(0);
    let vendoring = started.elapsed();
    let mut killed = 0;
    for i in 0..20 {
        // Every other time from an empty tree cache, so that the kill can land while a
        // cache entry is being made, not only while the output is published.
        if i % 2 == 0 {
            let _ = std::fs::remove_dir_all(&trees);
        }
        let mut cmd = hermetic(p);
        with_cache(&mut cmd);
        cmd.args(["vendor", "--out", &arg("deps")]);
        killed += usize::from(kill_after(&mut cmd, moments.next(vendoring.mul_f64(1.2))));
        // A vendored output that exists is complete.
        if o.join("deps").exists() {
            assert!(
                o.join("deps/deps.json").is_file(),
                "a partial vendored output"
            );
            check();
        }
    }
    vendor(0);
    check();
    // Most runs must really have been killed, or the test proves nothing.
    assert!(killed >= 10, "only {killed} of 20 vendor runs were killed");
    killed = 0;

    let build = |out: &str, code: i32| {
        let mut cmd = hermetic(p);
        with_cache(&mut cmd);
        cmd.args([
            "--json",
            "build",
            "--no-sign",
            "--image",
            builder_image(),
            "--out",
            &arg(out),
        ]);
        expect(&mut cmd, code)
    };
    // The first build probes the image and fills the caches; the moments to kill at are
    // drawn from how long a warm build, like the killed ones, takes.
    build("reference", 0);
    let started = Instant::now();
    build("warm", 0);
    let building = started.elapsed();
    let reference = outputs(&o.join("reference"));
    for _ in 0..20 {
        let mut cmd = hermetic(p);
        with_cache(&mut cmd);
        cmd.args([
            "build",
            "--no-sign",
            "--image",
            builder_image(),
            "--out",
            &arg("dist"),
        ]);
        killed += usize::from(kill_after(&mut cmd, moments.next(building.mul_f64(1.2))));
        // An output directory that exists holds the whole release, as a full run leaves it.
        if o.join("dist").exists() {
            let differing = differing(&outputs(&o.join("dist")), &reference);
            assert!(
                differing.is_empty(),
                "a killed build left an output that is not the release: {differing:?}"
            );
            // Its record too, which later signing believes only as a whole.
            let rec =
                hermetic_attest::record::BuildRecord::read(&o.join("dist/hermetic-build.json"))
                    .expect("a whole record");
            hermetic_attest::documents::check_artifacts(&o.join("dist"), &rec)
                .expect("the recorded artifacts");
        }
    }
    assert!(killed >= 10, "only {killed} of 20 builds were killed");
    build("dist", 0);
    let differing = differing(&outputs(&o.join("dist")), &reference);
    assert!(
        differing.is_empty(),
        "the next build differs: {differing:?}"
    );
    // What the killed runs left in the engine, the last build swept (their processes are
    // gone); `.ci/run` checks that nothing labelled hermetic remains.
}
