//! `hermetic build` against the real Docker engine.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn build(project: &Path, extra: &[&str], code: i32) -> Run {
    let mut cmd = hermetic(project);
    cmd.args(["--json", "build", "--image", builder_image()])
        .args(extra);
    expect(&mut cmd, code)
}

/// `build` with the engine's cache (vendored trees, toolchains) on, as outside the tests.
fn build_cached(project: &Path, extra: &[&str], code: i32) -> Run {
    let mut cmd = hermetic(project);
    with_engine_cache(&mut cmd)
        .args(["--json", "build", "--image", builder_image()])
        .args(extra);
    expect(&mut cmd, code)
}

fn run_id(v: &serde_json::Value) -> String {
    v["record"]["run"]["invocation_id"]
        .as_str()
        .expect("run id")
        .to_string()
}

#[test]
fn fixture_builds_hermetically_and_reproducibly() {
    let _serial = engine_lock();
    let project = fixture("hello");
    let first = build(project.path(), &[], 0).json();
    let dist = project.path().join("dist");
    for f in [
        "hello",
        "SHA256SUMS",
        "hello-0.1.0-x86_64-unknown-linux-gnu.tar.gz",
        "hermetic-build.json",
    ] {
        assert!(dist.join(f).is_file(), "{f} missing from dist/");
    }
    assert_eq!(
        leftovers(&run_id(&first)),
        (0, 0),
        "containers or volumes left"
    );
    let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).expect("sums");
    let mut check = Command::new("sha256sum");
    check.current_dir(&dist).args(["-c", "SHA256SUMS"]);
    expect(&mut check, 0);
    let out = expect(&mut Command::new(dist.join("hello")), 0);
    assert_eq!(out.stdout, "hello 42\n");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dist.join("hermetic-build.json")).expect("record"))
            .expect("json");
    assert!(
        record["image"]["digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:"))
    );

    // The same inputs again, with one job: byte-identical outputs, the archive included.
    let second = build(project.path(), &["--jobs", "1"], 0).json();
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dist.join("hermetic-build.json")).expect("record"))
            .expect("json");
    assert!(
        record["environment"]["variables"]
            .to_string()
            .contains("CARGO_BUILD_JOBS=1"),
        "--jobs reaches the build: {}",
        record["environment"]
    );
    assert_ne!(run_id(&first), run_id(&second));
    assert_eq!(
        sums,
        std::fs::read_to_string(dist.join("SHA256SUMS")).expect("sums")
    );
    assert_eq!(first["artifacts"], second["artifacts"]);
}

/// The build script of `netprobe` reports what it could reach; every probe must fail or
/// show nothing. The test owns the only listener it probes.
#[test]
fn build_cannot_reach_any_network() {
    let _serial = engine_lock();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let project = fixture("netprobe");
    std::fs::write(project.path().join("probe.conf"), format!("port={port}\n")).expect("conf");
    let v = build(project.path(), &[], 0).json();
    let out = expect(&mut Command::new(project.path().join("dist/netprobe")), 0).stdout;
    let probes = out
        .trim()
        .split_once("probes=")
        .expect("probes")
        .1
        .to_string();
    let field = |k: &str| {
        probes
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing in {probes}"))
            .to_string()
    };
    assert_eq!(field("interfaces"), "lo", "{probes}");
    assert_eq!(field("routes"), "0", "{probes}");
    assert_eq!(field("routes6"), "0", "{probes}");
    assert!(field("udp").starts_with("error:"), "{probes}");
    assert_eq!(field("dns"), "error", "{probes}");
    assert!(field("tcp").starts_with("error:"), "{probes}");
    assert_eq!(field("docker_socket"), "absent", "{probes}");
    assert_eq!(field("uid"), "10001", "{probes}");
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the host listener was reached"
    );
    // The same report is in the build log.
    let log = v["log"].as_str().expect("log");
    assert!(
        std::fs::read_to_string(log)
            .expect("log")
            .contains("probe interfaces=lo routes=0")
    );
}

/// The build containers of the hermetic process `pid`: only its own, whatever else the engine
/// is running (the showcase test builds beside this binary's tests).
fn build_containers_of(pid: u32) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=hermetic.pid={pid}"),
            "--filter",
            "name=-build",
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Starts a build whose build script sleeps, and waits until its container runs.
/// `cmd` is `hermetic` for the project, as the test wants it set up.
fn start_slow_build(project: &Path, sleep: u32, mut cmd: Command) -> (std::process::Child, String) {
    std::fs::write(project.join("probe.conf"), format!("sleep={sleep}\n")).expect("conf");
    let mut child = cmd
        .args(["build", "--image", builder_image()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    for _ in 0..600 {
        if let Some(id) = build_containers_of(child.id()).into_iter().next() {
            let state = Command::new("docker")
                .args(["inspect", "-f", "{{.State.Running}}", &id])
                .output()
                .expect("inspect");
            if String::from_utf8_lossy(&state.stdout).trim() == "true" {
                return (child, id);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("no build container appeared");
}

#[test]
fn container_is_isolated_and_sigkilled_runs_are_collected() {
    let _serial = engine_lock();
    let project = fixture("netprobe");
    let (mut child, id) = start_slow_build(project.path(), 30, hermetic(project.path()));
    let inspect = expect(Command::new("docker").args(["inspect", &id]), 0).json();
    let c = &inspect[0];
    let host = &c["HostConfig"];
    assert_eq!(host["NetworkMode"], "none");
    assert_eq!(host["ReadonlyRootfs"], true);
    assert_eq!(host["CapDrop"], serde_json::json!(["ALL"]));
    assert_eq!(
        host["SecurityOpt"],
        serde_json::json!(["no-new-privileges"])
    );
    assert!(host["PidsLimit"].as_i64().is_some_and(|p| p > 0));
    assert!(host["Memory"].as_i64().is_some_and(|m| m > 0));
    assert_eq!(c["Config"]["User"], "10001:10001");
    assert_eq!(c["Config"]["Hostname"], "hermetic");
    let mounts = c["Mounts"].as_array().expect("mounts");
    let input = mounts
        .iter()
        .find(|m| m["Destination"] == "/hermetic")
        .expect("inputs mount");
    // The workspace is the run's own copy, writable by build scripts; the vendored tree,
    // shared with other builds, is not.
    assert_eq!(input["RW"], true, "the workspace copy is the run's own");
    let deps = mounts
        .iter()
        .find(|m| m["Destination"] == "/hermetic/deps")
        .expect("vendored tree mount");
    assert_eq!(deps["RW"], false, "the vendored tree is read-only");
    let env = c["Config"]["Env"].as_array().expect("env");
    assert!(env.iter().any(|e| {
        e.as_str()
            .is_some_and(|e| e.starts_with("SOURCE_DATE_EPOCH="))
    }));
    let run = c["Config"]["Labels"]["hermetic.run"]
        .as_str()
        .expect("label")
        .to_string();

    // SIGKILL: hermetic cannot clean up; the container keeps running, orphaned.
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    assert_ne!(
        leftovers(&run),
        (0, 0),
        "the killed run left something to collect"
    );
    let v = expect(hermetic(project.path()).args(["--json", "gc"]), 0).json();
    let removed = v["removed"]["containers"].as_array().expect("removed");
    assert!(
        removed.len() == 1 && removed[0].as_str().is_some_and(|r| r.starts_with(&id)),
        "{v}"
    );
    // Inputs, the writable volume and (uncached) the vendored tree.
    assert_eq!(v["removed"]["volumes"].as_array().map(Vec::len), Some(3));
    assert_eq!(leftovers(&run), (0, 0));
}

#[test]
fn next_run_collects_a_killed_run() {
    let _serial = engine_lock();
    let project = fixture("netprobe");
    let (mut child, id) = start_slow_build(project.path(), 30, hermetic(project.path()));
    let label = expect(
        Command::new("docker").args([
            "inspect",
            "-f",
            "{{index .Config.Labels \"hermetic.run\"}}",
            &id,
        ]),
        0,
    )
    .stdout
    .trim()
    .to_string();
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    std::fs::write(project.path().join("probe.conf"), "").expect("conf");
    build(project.path(), &[], 0);
    assert_eq!(leftovers(&label), (0, 0));
}

#[test]
fn timed_out_build_is_killed_reported_and_cleaned() {
    let _serial = engine_lock();
    let project = fixture("netprobe");
    std::fs::write(project.path().join("probe.conf"), "sleep=120\n").expect("conf");
    let r = build(project.path(), &["--build-timeout", "5"], 3);
    let v = r.json();
    let msg = v["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("timed out"), "{msg}");
    assert!(
        !project.path().join("dist").exists(),
        "no output that looks complete"
    );
    let diag = project.path().join("target/hermetic/diagnostics");
    assert!(diag.is_dir());
}

#[test]
fn failed_build_is_not_retried_and_leaves_diagnostics() {
    let _serial = engine_lock();
    let project = fixture("hello");
    std::fs::write(
        project.path().join("src/main.rs"),
        "fn main() { this does not compile }\n",
    )
    .expect("w");
    let v = build(project.path(), &[], 3).json();
    let msg = v["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("exit code 101"), "{msg}");
    let diag = std::fs::read_dir(project.path().join("target/hermetic/diagnostics"))
        .expect("diagnostics")
        .next()
        .expect("one run")
        .expect("entry")
        .path();
    for f in [
        "build.log",
        "container.json",
        "summary.json",
        "reproduce.sh",
        "config.toml",
    ] {
        assert!(diag.join(f).is_file(), "{f} missing from diagnostics");
    }
    let log = std::fs::read_to_string(diag.join("build.log")).expect("log");
    assert_eq!(
        log.matches("Compiling hello").count(),
        1,
        "built once, never retried"
    );
    assert!(!project.path().join("dist").exists());
}

#[test]
fn engine_and_image_problems_are_one_clear_line() {
    let project = fixture("hello");
    let mut cmd = hermetic(project.path());
    cmd.env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .arg("gc");
    let r = expect(&mut cmd, 4);
    assert!(
        r.stderr
            .starts_with("error: no Docker engine answers at unix:///nonexistent/docker.sock"),
        "{}",
        r.stderr
    );

    let mut cmd = hermetic(project.path());
    cmd.env("DOCKER_HOST", "ftp://example.invalid").arg("gc");
    let r = expect(&mut cmd, 4);
    assert!(
        r.stderr
            .contains("DOCKER_HOST=ftp://example.invalid is not a usable engine address"),
        "{}",
        r.stderr
    );

    // Permission denied: the same socket, as an unprivileged user.
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        env!("CARGO_BIN_EXE_hermetic"),
        "gc",
    ])
    .current_dir(project.path());
    let r = expect(&mut cmd, 4);
    assert!(
        r.stderr.contains("permission denied on the Docker socket"),
        "{}",
        r.stderr
    );

    let mut cmd = hermetic(project.path());
    cmd.args(["build", "--image", "hermetic/no-such-image:0"]);
    let r = expect(&mut cmd, 2);
    assert!(
        r.stderr.contains("hermetic image bootstrap"),
        "{}",
        r.stderr
    );
}

fn docker_lines(args: &[&str]) -> Vec<String> {
    let out = expect(Command::new("docker").args(args), 0);
    out.stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Names of the engine's cache entries (their helper containers).
fn cache_entries() -> Vec<String> {
    let mut names = docker_lines(&[
        "ps",
        "-a",
        "--filter",
        "label=hermetic.cache",
        "--format",
        "{{.Names}}",
    ]);
    names.sort();
    names
}

fn cache_volumes() -> Vec<String> {
    docker_lines(&["volume", "ls", "-q", "--filter", "label=hermetic.cache"])
}

/// A cache entry made by hand, as a run of this machine that is gone would leave it.
fn fake_entry(name: &str, sha: &str) -> String {
    let mut gone = Command::new("true").spawn().expect("spawn");
    let pid = gone.id().to_string();
    gone.wait().expect("reap");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let volume = format!("{name}-vol");
    expect(
        Command::new("docker").args([
            "volume",
            "create",
            "--label",
            "hermetic.cache=deps",
            &volume,
        ]),
        0,
    );
    expect(
        Command::new("docker").args([
            "create",
            "--name",
            name,
            "--network",
            "none",
            "--label",
            "hermetic.cache=deps",
            "--label",
            &format!("hermetic.key={sha}"),
            "--label",
            &format!("hermetic.pid={pid}"),
            "--label",
            &format!("hermetic.host={}", host.trim()),
            "-v",
            &format!("{volume}:/deps"),
            builder_image(),
            "true",
        ]),
        0,
    );
    volume
}

/// The vendored tree and the image's toolchain go to the engine once: later builds mount
/// those copies (same outputs), `--no-engine-cache` leaves nothing, abandoned fills and
/// trees beyond the newest four are pruned, and `gc --cache` empties the cache.
#[test]
fn vendored_tree_and_toolchain_are_kept_on_the_engine_reused_and_pruned() {
    let _serial = engine_lock();
    let project = fixture("hello");
    expect(
        hermetic(project.path()).args(["--json", "gc", "--cache"]),
        0,
    );
    assert_eq!(cache_entries(), Vec::<String>::new());
    assert_eq!(cache_volumes(), Vec::<String>::new());

    // Four older trees, and a fill abandoned by a run that is gone.
    let olds: Vec<String> = (1..=4).map(|i| format!("{i:064x}")).collect();
    for sha in &olds {
        fake_entry(&format!("hermetic-deps-{sha}"), sha);
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let abandoned = fake_entry("hermetic-filling-test", &olds[0]);

    let first = build_cached(project.path(), &[], 0).json();
    assert_eq!(first["deps_reused"], false, "{first}");
    assert_eq!(first["toolchain_reused"], false, "{first}");
    let sha = first["record"]["vendor_tree_sha256"]
        .as_str()
        .expect("vendor tree digest")
        .to_string();
    let image = first["record"]["image"]["digest"]
        .as_str()
        .expect("image digest")
        .to_string();
    let published = format!("hermetic-deps-{sha}");
    let toolchain = format!("hermetic-toolchain-{}", image.trim_start_matches("sha256:"));
    // The run's start removed the abandoned fill; publishing a fifth tree removed the
    // oldest.
    let mut expected: Vec<String> = olds[1..]
        .iter()
        .map(|s| format!("hermetic-deps-{s}"))
        .chain([published.clone(), toolchain.clone()])
        .collect();
    expected.sort();
    assert_eq!(cache_entries(), expected);
    let volumes = cache_volumes();
    assert!(!volumes.contains(&abandoned), "{volumes:?}");
    assert!(!volumes.contains(&format!("hermetic-deps-{}-vol", olds[0])));
    assert_eq!(volumes.len(), 5, "{volumes:?}");

    // The copy holds the image's sysroot as it is in the image: names, modes, owners,
    // sizes and link targets.
    let mounted = docker_lines(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{.Name}} {{.Destination}}{{end}}",
        &toolchain,
    ]);
    let (volume, sysroot) = mounted[0].split_once(' ').expect("one mount");
    let listing = |extra: &[&str]| {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(extra);
        let script = format!("cd {sysroot} && find . -printf '%p %m %u %g %s %l\\n' | sort");
        args.extend_from_slice(&[builder_image(), "sh", "-c", &script]);
        docker_lines(&args)
    };
    let in_image = listing(&[]);
    let volume_arg = format!("{volume}:{sysroot}:ro");
    let in_volume = listing(&["-v", &volume_arg]);
    assert!(in_image.len() > 100, "{in_image:?}");
    assert!(in_image.iter().any(|l| l.starts_with("./bin/rustc ")));
    assert_eq!(in_image, in_volume);

    let second = build_cached(project.path(), &[], 0).json();
    assert_eq!(second["deps_reused"], true, "{second}");
    assert_eq!(second["toolchain_reused"], true, "{second}");
    assert_eq!(first["artifacts"], second["artifacts"]);
    assert_eq!(second["record"]["vendor_tree_sha256"], sha.as_str());
    assert_eq!(leftovers(&run_id(&second)), (0, 0));

    // Without the engine's copies: the same outputs from the image's own toolchain.
    let third = build_cached(project.path(), &["--no-engine-cache"], 0).json();
    assert_eq!(third["deps_reused"], false);
    assert_eq!(third["toolchain_reused"], false);
    assert_eq!(first["artifacts"], third["artifacts"]);
    assert_eq!(leftovers(&run_id(&third)), (0, 0));
    assert_eq!(cache_entries(), expected, "--no-engine-cache adds nothing");

    let v = expect(
        hermetic(project.path()).args(["--json", "gc", "--cache"]),
        0,
    )
    .json();
    assert_eq!(
        v["cache_volumes_removed"].as_array().map(Vec::len),
        Some(5),
        "{v}"
    );
    assert_eq!(cache_entries(), Vec::<String>::new());
    assert_eq!(cache_volumes(), Vec::<String>::new());
}

/// Two runs that fill the same tree at once: one copy is published, the other run uses it
/// and removes its own; nothing else is left.
#[test]
fn concurrent_fills_publish_one_copy() {
    let _serial = engine_lock();
    let project = fixture("hello");
    expect(
        hermetic(project.path()).args(["--json", "gc", "--cache"]),
        0,
    );
    // Vendored first: only the engine side is raced here.
    expect(hermetic(project.path()).args(["--json", "vendor"]), 0);
    let spawn = |out: &str| {
        let mut cmd = hermetic(project.path());
        with_engine_cache(&mut cmd)
            .args(["--json", "build", "--image", builder_image(), "--out", out])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let a = spawn("dist-a");
    let b = spawn("dist-b");
    let mut digests = Vec::new();
    for child in [a, b] {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(leftovers(&run_id(&v)), (0, 0));
        digests.push(v["artifacts"].clone());
    }
    assert_eq!(digests[0], digests[1]);
    // One tree and one toolchain, whoever filled them.
    let entries = cache_entries();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(entries[0].starts_with("hermetic-deps-"));
    assert!(entries[1].starts_with("hermetic-toolchain-"));
    assert_eq!(cache_volumes().len(), 2, "{:?}", cache_volumes());
    expect(
        hermetic(project.path()).args(["--json", "gc", "--cache"]),
        0,
    );
    assert_eq!(cache_entries(), Vec::<String>::new());
}

/// `gc --cache` leaves the copy a running build mounts, and takes it once the build is gone.
#[test]
fn gc_keeps_the_cache_entry_a_running_build_mounts() {
    let _serial = engine_lock();
    let project = fixture("netprobe");
    std::fs::write(project.path().join("probe.conf"), "").expect("conf");
    let first = build_cached(project.path(), &[], 0).json();
    let sha = first["record"]["vendor_tree_sha256"]
        .as_str()
        .expect("vendor tree digest")
        .to_string();
    let entry = format!("hermetic-deps-{sha}");
    assert!(cache_entries().contains(&entry));

    let mut cached = hermetic(project.path());
    with_engine_cache(&mut cached);
    let (mut child, _) = start_slow_build(project.path(), 30, cached);
    let v = expect(
        hermetic(project.path()).args(["--json", "gc", "--cache"]),
        0,
    )
    .json();
    assert!(cache_entries().contains(&entry), "in use, kept: {v}");
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    // The killed run's container goes first (stale), then nothing mounts the copy.
    expect(
        hermetic(project.path()).args(["--json", "gc", "--cache"]),
        0,
    );
    assert!(!cache_entries().contains(&entry));
    assert_eq!(cache_volumes(), Vec::<String>::new());
}

/// Collects what `download_file` hands on.
#[derive(Default)]
struct Collected {
    sizes: Vec<u64>,
    bytes: Vec<u8>,
}

impl hermetic_sandbox::container::FileSink for Collected {
    fn begin(&mut self, size: u64) -> std::io::Result<()> {
        self.sizes.push(size);
        Ok(())
    }

    fn data(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }
}

#[test]
fn outputs_stream_out_of_the_engine_and_only_regular_files_count() {
    use hermetic_sandbox::container::{self, StreamError};
    use hermetic_sandbox::engine::Engine;
    use hermetic_sandbox::run::{RunId, Scope, collect};
    let _serial = engine_lock();
    let image = builder_image();
    // Big enough to arrive in many pieces, not a multiple of 512, with a long name (the
    // engine adds an extension header) beside it.
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 5u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
        .collect();
    let long = "n".repeat(150);
    let mut tar = tar::Builder::new(Vec::new());
    for (name, bytes) in [("bin", data.as_slice()), (long.as_str(), b"x")] {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o755);
        tar.append_data(&mut h, name, bytes).expect("append");
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    tar.append_data(&mut h, "dir/", std::io::empty())
        .expect("dir");
    let tar = tar.into_inner().expect("tar");

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let run = RunId::new();
    rt.block_on(async {
        let engine = Engine::connect().await.expect("engine");
        let volume = format!("hermetic-{}-w", run.0);
        container::create_volume(&engine, &volume, run.labels())
            .await
            .expect("volume");
        let id = container::create(
            &engine,
            &format!("hermetic-{}-stream", run.0),
            bollard::models::ContainerCreateBody {
                image: Some(image.into()),
                cmd: Some(vec!["true".into()]),
                labels: Some(run.labels()),
                host_config: Some(container::hardened_host_config(
                    vec![container::volume_mount(&volume, "/w", false)],
                    &Default::default(),
                )),
                ..Default::default()
            },
        )
        .await
        .expect("container");
        // Into the volume: the root filesystem is read-only.
        container::upload(&engine, &id, "/w", tar.into())
            .await
            .expect("upload");

        let mut got = Collected::default();
        container::download_file(&engine, &id, "/w/bin", &mut got)
            .await
            .map_err(|_| "download")
            .expect("the file streams out");
        assert_eq!(got.sizes, [data.len() as u64]);
        assert!(got.bytes == data, "the bytes that went in come out");

        let mut got = Collected::default();
        container::download_file(&engine, &id, &format!("/w/{long}"), &mut got)
            .await
            .map_err(|_| "download")
            .expect("a long name streams out");
        assert_eq!(got.bytes, b"x");

        for path in ["/w/dir", "/w/missing"] {
            let mut got = Collected::default();
            let r = container::download_file(&engine, &id, path, &mut got).await;
            assert!(
                matches!(r, Err(StreamError::NotAFile(_))),
                "{path} is not an output file"
            );
            assert!(got.sizes.is_empty() && got.bytes.is_empty(), "{path}");
        }
        collect(&engine, Scope::Run(run.0.clone()))
            .await
            .expect("cleanup");
    });
    assert_eq!(leftovers(&run.0), (0, 0));
}

#[test]
fn binaries_whose_required_features_are_off_are_not_expected() {
    let _serial = engine_lock();
    let project = fixture("hello");
    let manifest = project.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    std::fs::write(
        &manifest,
        text.replace(
            "[dependencies]",
            "[features]\nextra = []\n\n[[bin]]\nname = \"hello-extra\"\npath = \"src/extra.rs\"\n\
             required-features = [\"extra\"]\n\n[dependencies]",
        ),
    )
    .expect("write");
    std::fs::write(
        project.path().join("src/extra.rs"),
        "fn main() { println!(\"extra\"); }\n",
    )
    .expect("write");
    let dist = project.path().join("dist");

    // Cargo skips hello-extra: the build must not wait for it.
    let v = build(project.path(), &["--no-sign"], 0).json();
    assert!(dist.join("hello").is_file(), "{v}");
    assert!(!dist.join("hello-extra").exists(), "{v}");
    let names: Vec<&str> = v["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert!(!names.contains(&"hello-extra"), "{names:?}");

    let v = build(project.path(), &["--no-sign", "--features", "extra"], 0).json();
    assert!(dist.join("hello-extra").is_file(), "{v}");
    let out = expect(&mut Command::new(dist.join("hello-extra")), 0);
    assert_eq!(out.stdout, "extra\n");
    let archive = dist.join("hello-0.1.0-x86_64-unknown-linux-gnu.tar.gz");
    let listing = expect(Command::new("tar").arg("-tzf").arg(&archive), 0);
    assert!(
        listing.stdout.contains("/hello-extra"),
        "{}",
        listing.stdout
    );
}

/// A real `-sys` crate whose build script runs `make` (tikv-jemalloc-sys): without `make`
/// in the image the failure names the program, the crate and the line to add; with the
/// line in hermetic.toml, `hermetic image bootstrap` makes the project's image (its own
/// tag, beside the default one) and the project verifies reproducibly on it.
#[test]
fn a_build_script_that_needs_make_is_told_then_builds_reproducibly() {
    let _serial = engine_lock();
    let base = builder_image();
    let project = fixture("jemalloc");
    let p = project.path();
    let config = std::fs::read_to_string(p.join("hermetic.toml")).expect("hermetic.toml");
    std::fs::remove_file(p.join("hermetic.toml")).expect("rm");
    let mut cmd = hermetic(p);
    cmd.args(["--json", "build", "--image", base]);
    let v = expect(&mut cmd, 3).json();
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("the build script of tikv-jemalloc-sys 0.6.1")
            && message.contains("ran `make`, which the builder image does not have"),
        "{v}"
    );
    let fix = v["error"]["fix"].as_str().unwrap_or_default();
    assert!(
        fix.contains("[image]\npackages = [\"make\"]"),
        "the fix gives the line to add: {v}"
    );

    // Before any build, vendoring proposes it from what the dependency is.
    let mut vendor = hermetic(p);
    vendor.args(["--json", "vendor"]);
    let v = expect(&mut vendor, 0).json();
    assert_eq!(
        v["image_proposals"],
        serde_json::json!([{"krate": "tikv-jemalloc-sys", "packages": ["make"]}]),
        "{v}"
    );

    // The project says what it needs; its image is made beside the default one.
    std::fs::write(p.join("hermetic.toml"), config).expect("hermetic.toml");
    let mut boot = hermetic(p);
    boot.args(["--json", "image", "bootstrap"]);
    let b = expect(&mut boot, 0).json();
    let tag = b["image"]["tags"]
        .as_array()
        .and_then(|t| t.iter().find_map(|t| t.as_str()))
        .unwrap_or_default()
        .to_string();
    assert!(tag.starts_with("hermetic/builder:packages-"), "{b}");
    let lock = std::fs::read_to_string(p.join("hermetic-image.lock")).expect("lock");
    assert!(
        lock.contains("packages = [\"gcc\", \"libc6-dev\", \"libfaketime\", \"make\"]")
            && lock.lines().any(|l| l.starts_with("make = ")),
        "the lock defines the image with make, and pins its version: {lock}"
    );
    let digest = b["image"]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut verify = hermetic(p);
    // Every variation but the CPU and job limits: jemalloc's C build on one CPU with one
    // job would double the suite's longest path, and the showcase covers both.
    verify.args([
        "--json",
        "verify",
        "--runners",
        "2",
        "--vary",
        "build-path,hostname,user,umask,tz,locale,home,env,file-order,clock",
    ]);
    let v = expect(&mut verify, 0).json();
    assert_eq!(v["verdict"], "reproducible", "{v}");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.join("dist/hermetic-build.json")).expect("record"))
            .expect("record json");
    assert_eq!(record["image"]["digest"], digest.as_str(), "{record}");
    assert_eq!(
        record["image"]["definition"]["packages"],
        serde_json::json!(["gcc", "libc6-dev", "libfaketime", "make"]),
        "the record (and so the provenance) names the packages"
    );
    let out = expect(&mut Command::new(p.join("dist/jemalloc")), 0);
    assert_eq!(out.stdout, "jemalloc ok\n");
    // Only the test's own image goes; the default one stays for the other tests.
    let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();
}

/// A build script that writes into its own package (completions into a new directory, and
/// over a committed file) builds on the first try, also as another user and at another
/// path; the writes land in the run's copy, never in the checkout.
#[test]
fn a_build_script_that_writes_into_its_package_builds_and_the_checkout_is_untouched() {
    let _serial = engine_lock();
    let image = builder_image();
    let project = fixture("writes-source");
    let p = project.path();
    let mut cmd = hermetic(p);
    cmd.args([
        "--json",
        "verify",
        "--image",
        image,
        "--runners",
        "2",
        "--vary",
        "all",
    ]);
    let v = expect(&mut cmd, 0).json();
    assert_eq!(v["verdict"], "reproducible", "{v}");
    let out = expect(&mut Command::new(p.join("dist/writes-source")), 0);
    assert_eq!(
        out.stdout, "complete -W 'run check' writes-source\n7 fresh\n",
        "the binary holds what the build script wrote"
    );
    assert!(
        !p.join("completions").exists(),
        "the build wrote into the checkout"
    );
    assert_eq!(
        std::fs::read_to_string(p.join("generated.txt")).expect("generated.txt"),
        "stale\n"
    );
}

/// An image found by the project's tag is checked for the packages the project declares:
/// one tagged so by hand (here, the default image, which has no `make`) is refused before
/// anything builds, with the command that makes the right one.
#[test]
fn a_project_image_must_hold_the_packages_it_declares() {
    let _serial = engine_lock();
    let base = builder_image();
    let project = fixture("jemalloc");
    let tag = hermetic_sandbox::image::builder_reference(&["make".to_string()]);
    expect(Command::new("docker").args(["tag", base, &tag]), 0);
    let mut cmd = hermetic(project.path());
    cmd.args(["--json", "build"]);
    let v = expect(&mut cmd, 2).json();
    let _ = Command::new("docker").args(["rmi", &tag]).output();
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("lacks make that hermetic.toml declares"),
        "{v}"
    );
    assert!(
        v["error"]["fix"]
            .as_str()
            .is_some_and(|f| f.contains("hermetic image bootstrap")),
        "{v}"
    );
}
