//! `hermetic verify` against the real engine: verdicts, explanations, culprits, the memo.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn verify(project: &Path, extra: &[&str], code: i32) -> Value {
    let mut cmd = hermetic(project);
    cmd.args(["--json", "verify", "--image", builder_image()])
        .args(extra);
    expect(&mut cmd, code).json()
}

/// Like `verify`, also returning the pid of the hermetic process (it labels its containers).
fn verify_with_pid(project: &Path, extra: &[&str], code: i32) -> (Value, u32) {
    let mut cmd = hermetic(project);
    cmd.args(["--json", "verify", "--image", builder_image()])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let watch = BuildWatch::start(&cmd);
    let child = cmd.spawn().expect("spawn hermetic");
    let pid = child.id();
    let out = child.wait_with_output().expect("hermetic");
    if let Some(watch) = watch {
        watch.record(&cmd, pid);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    (serde_json::from_slice(&out.stdout).expect("json"), pid)
}

/// Containers the engine created since `since` (unix seconds) for the hermetic process
/// `pid`: other engine users (another test run, say) do not count.
fn containers_created_by(pid: u32, since: u64) -> usize {
    let until = since.max(now()) + 1;
    let out = Command::new("docker")
        .args([
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            "type=container",
            "--filter",
            "event=create",
            "--filter",
            &format!("label=hermetic.pid={pid}"),
        ])
        .output()
        .expect("docker events");
    assert!(
        out.status.success(),
        "docker events: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().count()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[test]
fn reproducible_fixture_is_verified_attested_and_memoised() {
    let _serial = engine_lock();
    let (key, public) = test_key();
    let project = fixture("hello");
    let key = key.to_str().expect("utf-8");
    let first_started = now();
    // --no-cache: the shared cache may hold a verdict for these inputs from an earlier run.
    let (v, first_pid) = verify_with_pid(
        project.path(),
        &[
            "--runners",
            "3",
            "--vary",
            "all",
            "--key",
            key,
            "--no-cache",
        ],
        0,
    );
    assert_eq!(v["verdict"], "reproducible", "{v}");
    assert_eq!(v["memo"], false);
    let runners = v["runners"].as_array().expect("runners");
    assert_eq!(runners.len(), 3);
    assert_eq!(runners[0]["variations"], serde_json::json!([]));
    assert!(runners[1]["variations"].as_array().expect("vars").len() >= 10);
    assert_ne!(
        runners[1]["environment"]["build_path"],
        runners[2]["environment"]["build_path"]
    );
    // Three builds on one engine share its CPUs: the reference gets CPUs / builds at once.
    let cpus: u64 = String::from_utf8_lossy(
        &std::process::Command::new("docker")
            .args(["info", "--format", "{{.NCPU}}"])
            .output()
            .expect("docker info")
            .stdout,
    )
    .trim()
    .parse()
    .expect("NCPU");
    let at_once = cpus.min(3);
    let expected = if at_once > 1 {
        serde_json::json!((cpus / at_once).max(1))
    } else {
        serde_json::Value::Null
    };
    assert_eq!(runners[0]["environment"]["jobs"], expected, "{v}");
    let dist = project.path().join("dist");
    for f in [
        "hello",
        "SHA256SUMS",
        "verify-report.json",
        "verify-report.md",
        "provenance.sigstore.json",
    ] {
        assert!(dist.join(f).is_file(), "{f} missing");
    }
    // The provenance records the runners and their variations, and verifies.
    let prov: Value =
        serde_json::from_slice(&std::fs::read(dist.join("provenance.intoto.json")).expect("prov"))
            .expect("json");
    let recorded = prov["predicate"]["buildDefinition"]["internalParameters"]["runners"]
        .as_array()
        .expect("runners in internalParameters");
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded[2]["variations"], runners[2]["variations"]);
    let mut check = hermetic(&dist);
    check
        .args([
            "verify-attestation",
            "provenance.sigstore.json",
            "--artifact",
            "hello",
            "--key",
        ])
        .arg(public);
    expect(&mut check, 0);
    let md = std::fs::read_to_string(dist.join("verify-report.md")).expect("md");
    assert!(
        md.contains("reproducible") && md.contains("runner-3"),
        "{md}"
    );

    // Unchanged inputs: answered from the memo, without starting any container. (The probe
    // does see the containers of a real verification.)
    assert!(containers_created_by(first_pid, first_started) >= 3);
    let since = now();
    let (again, pid) = verify_with_pid(
        project.path(),
        &["--runners", "3", "--vary", "all", "--key", key],
        0,
    );
    assert_eq!(again["memo"], true, "{again}");
    assert_eq!(again["verdict"], "reproducible");
    assert_eq!(
        containers_created_by(pid, since),
        0,
        "the memo hit started containers"
    );

    // A changed source is a new verdict; a damaged memo entry is ignored.
    let main_rs = project.path().join("src/main.rs");
    let text = std::fs::read_to_string(&main_rs).expect("main.rs");
    // A value no earlier run has seen, so that no memo entry can exist for it.
    let fresh = format!(
        "{}u32",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .subsec_nanos()
    );
    std::fs::write(&main_rs, text.replace("42u32", &fresh)).expect("write");
    let changed = verify(
        project.path(),
        &[
            "--runners",
            "2",
            "--vary",
            "tz",
            "--no-sign",
            "--no-explain",
        ],
        0,
    );
    assert_eq!(changed["memo"], false);
    let memo_dir = shared_cache().join("verify");
    for e in std::fs::read_dir(&memo_dir).expect("memo dir").flatten() {
        std::fs::write(e.path(), b"{\"checksum\":\"0\",\"report\":\"{}\"}").expect("damage");
    }
    let mut cmd = hermetic(project.path());
    cmd.args([
        "verify",
        "--image",
        builder_image(),
        "--runners",
        "2",
        "--vary",
        "tz",
        "--no-sign",
        "--no-explain",
    ]);
    let out = expect(&mut cmd, 0);
    assert!(out.stderr.contains("did not seal"), "{}", out.stderr);
}

/// Whoever can write the cache cannot file a verdict: a memo entry turned "reproducible"
/// for a mismatching project is not believed. And a remembered verdict vouches only for the
/// `dist/` it left: with a published binary swapped, the run verifies again and `dist/` is
/// the verified one once more.
#[test]
fn a_memo_cannot_be_forged_and_vouches_only_for_the_dist_it_left() {
    let _serial = engine_lock();
    let run = |project: &Path, code: i32| {
        let mut cmd = hermetic(project);
        cmd.args([
            "--json",
            "verify",
            "--image",
            builder_image(),
            "--runners",
            "2",
            "--no-sign",
        ]);
        let r = expect(&mut cmd, code);
        (r.json(), r.stderr)
    };
    let nd = fixture("nd-time");
    let (first, _) = run(nd.path(), 1);
    let inputs = first["inputs_digest"].as_str().expect("inputs").to_string();
    // The cache writer's forgery: the entry of this verdict, made "reproducible", its
    // seal kept.
    let memo_dir = shared_cache().join("verify");
    let mut forged = 0;
    for e in std::fs::read_dir(&memo_dir).expect("memo dir").flatten() {
        let text = std::fs::read_to_string(e.path()).expect("read");
        let mut envelope: Value = serde_json::from_str(&text).expect("envelope");
        let Some(data) = envelope["data"].as_str() else {
            continue;
        };
        let mut entry: Value = serde_json::from_str(data).expect("entry");
        if entry["report"]["inputs_digest"] != inputs.as_str() {
            continue;
        }
        entry["report"]["verdict"] = "reproducible".into();
        entry["report"]["differences"] = serde_json::json!([]);
        envelope["data"] = entry.to_string().into();
        std::fs::write(e.path(), envelope.to_string()).expect("forge");
        forged += 1;
    }
    assert_eq!(forged, 1, "the mismatch was remembered once");
    let (again, stderr) = run(nd.path(), 1);
    assert_eq!(again["verdict"], "mismatch", "{again}");
    assert_eq!(again["memo"], false);
    assert!(stderr.contains("[memo-not-sealed]"), "{stderr}");

    let hello = fixture("hello");
    run(hello.path(), 0);
    let (hit, _) = run(hello.path(), 0);
    assert_eq!(hit["memo"], true, "{hit}");
    let binary = hello.path().join("dist/hello");
    let good = std::fs::read(&binary).expect("binary");
    std::fs::write(&binary, b"not what was verified").expect("swap");
    let (again, stderr) = run(hello.path(), 0);
    assert_eq!(
        again["memo"], false,
        "the memo vouched for a swapped binary"
    );
    assert!(
        stderr.contains("[memo-output-changed]")
            && stderr
                .contains("is not what the remembered verification left there (hello changed)"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&binary).expect("binary"), good);
    let (hit, _) = run(hello.path(), 0);
    assert_eq!(hit["memo"], true, "{hit}");
}

/// Verifies an unreproducible fixture and returns the report.
fn mismatch(name: &str) -> Value {
    mismatch_with(name, &[]).0
}

/// Like `mismatch`, with more options; also returns the project (and its dist/).
fn mismatch_with(name: &str, extra: &[&str]) -> (Value, tempfile::TempDir) {
    let project = fixture(name);
    let mut args = vec!["--runners", "2", "--no-sign"];
    args.extend_from_slice(extra);
    let v = verify(project.path(), &args, 1);
    assert_eq!(v["verdict"], "mismatch", "{v}");
    assert!(project.path().join("dist/verify-report.md").is_file());
    assert!(
        !project.path().join("dist").join(name).exists(),
        "a mismatch must not look like a release"
    );
    let d = &v["differences"][0];
    assert_eq!(d["name"], name, "{v}");
    assert_eq!(d["elf"], true);
    assert!(
        d["runs"]
            .as_array()
            .expect("runs")
            .iter()
            .any(|r| r["section"] == ".rodata"),
        "{d}"
    );
    (v, project)
}

fn classes(v: &Value) -> Vec<String> {
    v["differences"][0]["classes"]
        .as_array()
        .expect("classes")
        .iter()
        .filter_map(|c| c.as_str().map(String::from))
        .collect()
}

#[test]
fn embedded_build_path_is_explained_and_attributed() {
    let _serial = engine_lock();
    let v = mismatch("nd-path");
    assert_eq!(classes(&v), ["build-path"], "{v}");
    assert_eq!(
        v["attribution"]["culprits"],
        serde_json::json!(["build-path"]),
        "{v}"
    );
    assert_eq!(v["attribution"]["inherent"], false);
}

#[test]
fn hostname_is_explained_and_attributed() {
    let _serial = engine_lock();
    // diffoscope (installed by .ci/run) explains the same file in its own words.
    let (v, project) = mismatch_with("nd-host", &["--diffoscope"]);
    assert_eq!(classes(&v), ["hostname"], "{v}");
    let attached: Vec<String> = std::fs::read_dir(project.path().join("dist"))
        .expect("dist")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("diffoscope-"))
        .collect();
    assert!(!attached.is_empty(), "no diffoscope report attached");
    let text =
        std::fs::read_to_string(project.path().join("dist").join(&attached[0])).expect("report");
    assert!(
        text.contains("runner2"),
        "diffoscope's report does not show the hostname"
    );
    assert_eq!(
        v["attribution"]["culprits"],
        serde_json::json!(["hostname"]),
        "{v}"
    );
}

#[test]
fn build_time_is_a_timestamp_and_inherent() {
    let _serial = engine_lock();
    let v = mismatch("nd-time");
    assert_eq!(classes(&v), ["timestamp"], "{v}");
    // The cause leads, with the differing string itself and where it sits.
    let cause = v["cause"].as_str().expect("cause");
    assert!(
        cause.starts_with(
            "crate `nd-time` 0.1.0 (workspace member)'s build script writes `out/stamp.rs` \
             differently; `nd-time` embeds the build time (`built at "
        ) && cause.contains("in `.rodata`")
            && cause.contains("no variation at all"),
        "{cause}"
    );
    let strings = &v["differences"][0]["strings"];
    assert_eq!(strings[0]["class"], "timestamp", "{v}");
    // Traced to the crate whose build script wrote the stamp.
    assert_eq!(v["crates"][0]["name"], "nd-time", "{v}");
    assert_eq!(v["crates"][0]["build_script"], true, "{v}");
    assert!(
        strings[0]["other"]
            .as_str()
            .is_some_and(|s| s.contains("built at")),
        "{v}"
    );
    assert_eq!(v["attribution"]["inherent"], true, "{v}");
    assert_eq!(v["attribution"]["culprits"], serde_json::json!([]));
}

/// A workspace member's build script stamps the time and the binary built on it embeds
/// it: the report traces it to the member and shows its build script's line, first.
#[test]
fn a_member_s_build_script_stamp_is_traced_to_the_member() {
    let _serial = engine_lock();
    let v = mismatch("nd-member");
    let c = &v["crates"][0];
    assert_eq!(c["name"], "stamper", "{v}");
    assert_eq!(c["workspace_member"], true, "{v}");
    assert_eq!(c["build_script"], true, "{v}");
    assert_eq!(
        v["crates"].as_array().map(Vec::len),
        Some(1),
        "only the first: {v}"
    );
    assert!(
        c["lines"]
            .to_string()
            .contains("cargo:rustc-env=STAMP=stamped "),
        "{v}"
    );
    let cause = v["cause"].as_str().expect("cause");
    assert!(
        cause.starts_with(
            "crate `stamper` 0.1.0 (workspace member)'s build script emits \
             `cargo:rustc-env=STAMP=stamped "
        ) && cause.contains("embeds the build time"),
        "{cause}"
    );
}

/// A build script that stamps only the day: runners that build at once agree on it, so
/// only the clock variation shows it, and is named as its cause.
#[test]
fn a_date_stamp_is_caught_by_the_clock_alone() {
    let _serial = engine_lock();
    let v = mismatch("nd-date");
    assert_eq!(classes(&v), ["timestamp"], "{v}");
    assert_eq!(v["attribution"]["inherent"], false, "{v}");
    assert_eq!(
        v["attribution"]["culprits"],
        serde_json::json!(["clock"]),
        "{v}"
    );
    let varied = &v["runners"][1];
    assert!(
        varied["environment"]["clock_offset_days"]
            .as_i64()
            .is_some_and(|d| d >= 365),
        "the report records the shift: {v}"
    );
    let c = &v["crates"][0];
    assert_eq!(c["name"], "nd-date", "{v}");
    assert_eq!(c["build_script"], true, "{v}");
    // The two dates themselves, a year and more apart.
    let s = &v["differences"][0]["strings"][0];
    let (r, o) = (
        s["reference"].as_str().expect("reference"),
        s["other"].as_str().expect("other"),
    );
    assert!(
        r.starts_with("built on 20") && o.starts_with("built on 20") && r != o,
        "{v}"
    );
    let cause = v["cause"].as_str().expect("cause");
    assert!(
        cause.starts_with(
            "crate `nd-date` 0.1.0 (workspace member)'s build script writes `out/stamp.rs` \
             differently; `nd-date` embeds the build date (`built on "
        ) && cause.contains("the clock variation alone causes it")
            && cause.ends_with(
                "`nd-date`'s build script reads the clock: take the time from \
                 SOURCE_DATE_EPOCH in it (or drop the stamp)"
            ),
        "{cause}"
    );
}

/// A crates.io crate's feature makes random constants at compile time: the crate and the
/// feature are named, not the binary built on it.
#[test]
fn compile_time_randomness_is_traced_to_the_crate_and_its_feature() {
    let _serial = engine_lock();
    let v = mismatch("nd-rng");
    assert_eq!(classes(&v), ["random-or-hash-order"], "{v}");
    assert_eq!(v["attribution"]["inherent"], true, "{v}");
    let c = &v["crates"][0];
    assert_eq!(c["name"], "ahash", "{v}");
    assert_eq!(c["workspace_member"], false, "{v}");
    assert_eq!(c["suspect"]["feature"], "compile-time-rng", "{v}");
    assert_eq!(v["crates"].as_array().map(Vec::len), Some(1), "{v}");
    let cause = v["cause"].as_str().expect("cause");
    assert!(
        cause.starts_with("crate `ahash` 0.8.12 (dependency) compiles differently; ")
            && cause.contains("`ahash`'s `compile-time-rng` feature")
            && cause.contains("turn it off"),
        "{cause}"
    );
}

/// A proc macro that emits code in HashMap order: the crate that expands it is the first to
/// differ, and the macro is named with the fix; the differing code is shown.
#[test]
fn a_proc_macro_s_hash_order_is_traced_to_the_macro() {
    let _serial = engine_lock();
    let v = mismatch("nd-macro");
    assert_eq!(classes(&v), ["random-or-hash-order"], "{v}");
    assert_eq!(v["attribution"]["inherent"], true, "{v}");
    let c = &v["crates"][0];
    assert_eq!(c["name"], "nd-macro", "{v}");
    assert_eq!(c["build_script"], false, "{v}");
    assert_eq!(c["suspect"]["names"], serde_json::json!(["tabler"]), "{v}");
    let s = &v["differences"][0]["strings"][0];
    assert!(
        s["other"]
            .as_str()
            .is_some_and(|o| o.starts_with("table order column")),
        "{v}"
    );
    let cause = v["cause"].as_str().expect("cause");
    assert!(
        cause.contains("(`table order column")
            && cause.contains("expands the proc macro `tabler`")
            && cause.contains("BTreeMap"),
        "{cause}"
    );
}

/// A dependency compiles its own build path in (`env!("CARGO_MANIFEST_DIR")`): the
/// dependency is named, with the build-path variation and the path itself.
#[test]
fn a_build_path_leaked_by_a_dependency_is_traced_to_it() {
    let _serial = engine_lock();
    let v = mismatch("nd-dep-path");
    assert_eq!(classes(&v), ["build-path"], "{v}");
    assert_eq!(
        v["attribution"]["culprits"],
        serde_json::json!(["build-path"]),
        "{v}"
    );
    let c = &v["crates"][0];
    assert_eq!(c["name"], "locator", "{v}");
    assert_eq!(c["build_script"], false, "{v}");
    assert_eq!(v["crates"].as_array().map(Vec::len), Some(1), "{v}");
    let cause = v["cause"].as_str().expect("cause");
    assert!(
        cause.starts_with("crate `locator` 0.1.0 (workspace member) compiles differently; ")
            && cause.contains("(`/srv/build2/hermetic/src/locator/data")
            && cause.contains("`locator` compiles a path of the build into itself"),
        "{cause}"
    );
}

#[test]
fn hash_order_is_inherent() {
    let _serial = engine_lock();
    let v = mismatch("nd-hash");
    assert_eq!(classes(&v), ["random-or-hash-order"], "{v}");
    assert_eq!(v["attribution"]["inherent"], true, "{v}");
}

#[test]
fn bad_verify_arguments_are_input_errors() {
    let project = fixture("hello");
    let v = verify(project.path(), &["--vary", "colour"], 2);
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("colour"),
        "{v}"
    );
    let v = verify(project.path(), &["--runners", "1"], 2);
    assert!(
        v["error"]["fix"]
            .as_str()
            .expect("fix")
            .contains("--runners 2"),
        "{v}"
    );
}

/// An image without libfaketime cannot shift the clock: `--vary all` leaves the clock out
/// and says so in the report, `--vary clock` is refused with the fix, and a build asked to
/// shift the clock on it fails before any container runs.
#[test]
fn an_image_without_faketime_leaves_the_clock_out_and_says_so() {
    let _serial = engine_lock();
    let image = builder_image();
    let tag = format!("hermetic/test-no-faketime-{}:latest", std::process::id());
    let mut build = Command::new("docker");
    build
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", &tag, "-"])
        .stdin(std::process::Stdio::piped());
    let mut child = build.spawn().expect("docker build");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        write!(
            stdin,
            "FROM {image}\nUSER root\nRUN rm -f /usr/lib/*/faketime/libfaketime*.so.1\nUSER 10001:10001\n"
        )
        .expect("Dockerfile");
    }
    assert!(child.wait().expect("docker build").success());
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
        }
    }
    let _remove = Remove(tag.clone());
    let project = fixture("hello");
    let on_image = |extra: &[&str], code: i32| {
        let mut cmd = hermetic(project.path());
        cmd.args(["--json", "verify", "--image", &tag]).args(extra);
        expect(&mut cmd, code).json()
    };
    let v = on_image(&["--vary", "clock,tz"], 2);
    let message = v["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("clock") && message.contains("libfaketime"),
        "{v}"
    );
    assert!(
        v["error"]["fix"]
            .as_str()
            .is_some_and(|f| f.contains("--update-lock")),
        "{v}"
    );
    let v = on_image(&["--runners", "2", "--vary", "all", "--no-sign"], 0);
    assert_eq!(v["verdict"], "reproducible", "{v}");
    assert_eq!(v["unsupported_variations"][0]["name"], "clock", "{v}");
    let varied = v["runners"][1]["variations"].to_string();
    assert!(!varied.contains("clock") && varied.contains("tz"), "{v}");
}

/// The showcase: hermetic's own release, built twice (the reference, and one runner with
/// every variation at once, which covers each variation), agrees byte for byte, and the
/// verified binary runs. It is the suite's one build of a large project.
#[test]
fn hermetic_verifies_itself_and_the_result_runs() {
    let _serial = engine_lock();
    let out = tempfile::tempdir().expect("tempdir");
    let dist = out.path().join("dist");
    let v = verify(
        &repo_root(),
        &[
            "--runners",
            "2",
            "--vary",
            "all",
            "--no-sign",
            "--no-cache",
            "--out",
            dist.to_str().expect("utf-8"),
        ],
        0,
    );
    assert_eq!(v["verdict"], "reproducible", "{v}");
    let runners = v["runners"].as_array().expect("runners");
    assert_eq!(runners.len(), 2);
    assert_eq!(runners[0]["variations"], serde_json::json!([]));
    // Every variation `--vary all` names, on the one varied runner.
    assert!(
        runners[1]["variations"].as_array().expect("vars").len() >= 10,
        "{v}"
    );
    let r = expect(Command::new(dist.join("hermetic")).arg("--version"), 0);
    assert_eq!(
        r.stdout.trim(),
        format!("hermetic {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn runners_on_named_engine_endpoints() {
    let _serial = engine_lock();
    let project = fixture("hello");
    // A second endpoint for the same engine: its socket under another path.
    let dir = tempfile::tempdir().expect("tmp");
    let sock = dir.path().join("docker.sock");
    std::os::unix::fs::symlink("/var/run/docker.sock", &sock).expect("symlink");
    let endpoint = format!("docker+unix://{}", sock.display());
    let v = verify(
        project.path(),
        &[
            "--runner",
            "local",
            "--runner",
            &endpoint,
            "--vary",
            "hostname,tz",
            "--no-sign",
            "--no-cache",
        ],
        0,
    );
    assert_eq!(v["verdict"], "reproducible", "{v}");
    assert_eq!(v["runners"][0]["engine"], "local");
    assert_eq!(v["runners"][1]["engine"], endpoint.as_str());
    assert_eq!(v["runners"][0]["image"], v["runners"][1]["image"]);
    let md = std::fs::read_to_string(project.path().join("dist/verify-report.md")).expect("md");
    assert!(md.contains(&endpoint), "{md}");

    // An endpoint that does not answer: an infrastructure failure naming the runner.
    let v = verify(
        project.path(),
        &[
            "--runner",
            "local",
            "--runner",
            "unix:///nonexistent/docker.sock",
            "--no-sign",
            "--no-cache",
        ],
        4,
    );
    let msg = v["error"]["message"].as_str().expect("message");
    assert!(msg.contains("quorum not reachable"), "{msg}");
    let causes = v["error"]["causes"].to_string();
    assert!(
        causes.contains("runner-2") && causes.contains("/nonexistent/docker.sock"),
        "{causes}"
    );
    // Not an endpoint at all: bad input, with the accepted forms.
    let v = verify(
        project.path(),
        &["--runner", "local", "--runner", "elsewhere"],
        2,
    );
    assert!(
        v["error"]["fix"].as_str().expect("fix").contains("tcp://"),
        "{v}"
    );
}

/// A TCP endpoint for the local engine (a forwarder the test owns, on 127.0.0.1) that cuts
/// every connection shortly after the first container start it carries, and refuses all
/// later ones: an engine lost in the middle of a build.
struct CuttingForwarder {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CuttingForwarder {
    fn start() -> CuttingForwarder {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let (cut2, open2) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if cut2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(engine) = std::os::unix::net::UnixStream::connect("/var/run/docker.sock")
                else {
                    continue;
                };
                open2
                    .lock()
                    .expect("lock")
                    .push(client.try_clone().expect("clone"));
                let (mut c_in, mut c_out) = (client.try_clone().expect("clone"), client);
                let (mut e_in, mut e_out) = (engine.try_clone().expect("clone"), engine);
                let (cut3, open3) = (cut2.clone(), open2.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = c_in.read(&mut buf) {
                        if n == 0 || e_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        let seen = String::from_utf8_lossy(&buf[..n]);
                        if seen.contains("/start HTTP") {
                            let (cut4, open4) = (cut3.clone(), open3.clone());
                            std::thread::spawn(move || {
                                std::thread::sleep(std::time::Duration::from_millis(300));
                                cut4.store(true, Ordering::SeqCst);
                                for s in open4.lock().expect("lock").iter() {
                                    let _ = s.shutdown(std::net::Shutdown::Both);
                                }
                            });
                        }
                    }
                    let _ = e_out.shutdown(std::net::Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = e_in.read(&mut buf) {
                        if n == 0 || c_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = c_out.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        CuttingForwarder { port, cut }
    }
}

/// Containers the hermetic process `pid` left in the engine.
fn containers_of(pid: u32) -> usize {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=hermetic.pid={pid}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn engine_lost_mid_run_trips_its_breaker_and_the_quorum_decides() {
    let _serial = engine_lock();
    let project = fixture("hello");
    let fwd = CuttingForwarder::start();
    let tcp = format!("tcp://127.0.0.1:{}", fwd.port);
    let args = |quorum: &'static str| -> Vec<String> {
        [
            "--runner",
            "local",
            "--runner",
            "local",
            "--runner",
            &tcp,
            "--vary",
            "tz",
            "--no-sign",
            "--no-cache",
            "--breaker-threshold",
            "1",
            "--quorum",
            quorum,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let a2: Vec<String> = args("2");
    let a2: Vec<&str> = a2.iter().map(String::as_str).collect();
    let (v, pid) = verify_with_pid(project.path(), &a2, 0);
    assert!(
        fwd.cut.load(std::sync::atomic::Ordering::SeqCst),
        "the endpoint was never cut"
    );
    assert_eq!(v["verdict"], "reproducible", "{v}");
    assert_eq!(v["runners"].as_array().expect("runners").len(), 2);
    assert_eq!(v["unavailable"][0]["runner"], "runner-3", "{v}");
    assert_eq!(v["unavailable"][0]["engine"], tcp.as_str());
    assert_eq!(v["unavailable"][0]["breaker_open"], true, "{v}");
    let md = std::fs::read_to_string(project.path().join("dist/verify-report.md")).expect("md");
    assert!(
        md.contains("did not answer") && md.contains("2 of 3 runners answered"),
        "{md}"
    );

    // Next run: the open breaker skips the endpoint; with all three required, the quorum
    // cannot be reached, and the verdict says why.
    let a3: Vec<String> = args("3");
    let a3: Vec<&str> = a3.iter().map(String::as_str).collect();
    let v = verify(project.path(), &a3, 4);
    let msg = v["error"]["message"].as_str().expect("message");
    assert!(msg.contains("quorum not reachable: 2 of 3"), "{v}");
    assert!(
        v["error"]["causes"].to_string().contains("breaker open"),
        "{v}"
    );

    // What the lost engine kept (the cut runner's containers) is collected by gc.
    let mut gc = hermetic(project.path());
    gc.arg("gc");
    expect(&mut gc, 0);
    assert_eq!(containers_of(pid), 0, "containers left after gc");
}
