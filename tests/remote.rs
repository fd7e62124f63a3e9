//! Runners on other engines: a second Docker engine reached over TCP with TLS that lacks
//! the builder image, an engine reached over ssh, and runners named in hermetic.toml.
//!
//! The second engine runs in a network namespace of its own (its TCP listener is on that
//! namespace's 127.0.0.1, and hermetic is started inside it to reach it); the ssh server
//! listens on this machine's 127.0.0.1 only. Nothing leaves the machine.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn sh(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as the docker CLI
/// expects them in DOCKER_CERT_PATH (`ca.pem`, `cert.pem`, `key.pem`); the server's are
/// `server-cert.pem` and `server-key.pem`.
fn make_certs(dir: &Path) {
    let openssl = |args: &[&str]| sh(Command::new("openssl").args(args).current_dir(dir));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=hermetic test CA",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
    for (name, subject, ext) in [
        ("server", "/CN=127.0.0.1", "server.ext"),
        ("client", "/CN=hermetic test client", "client.ext"),
    ] {
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.csr"),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            ext,
            "-out",
            &format!("{name}-cert.pem"),
        ]);
    }
    std::fs::rename(dir.join("client-cert.pem"), dir.join("cert.pem")).expect("rename");
    std::fs::rename(dir.join("client-key.pem"), dir.join("key.pem")).expect("rename");
}

/// A second Docker engine with its own data, in its own network namespace (a daemon
/// without a bridge would otherwise remove the host's `docker0`). Stopped and removed on
/// drop.
struct SecondEngine {
    child: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
    /// How dockerd is started (in a network namespace of its own).
    command: String,
}

fn spawn_dockerd(dir: &Path, command: &str) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("dockerd.log"))
        .expect("log");
    Command::new("unshare")
        .args(["--net", "--", "sh", "-c", command])
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start dockerd")
}

impl SecondEngine {
    /// `tls`: a directory made by `make_certs`; the engine then also listens on
    /// tcp://127.0.0.1:2376 of its namespace, verifying clients.
    fn start(tls: Option<&Path>) -> SecondEngine {
        let dir = tempfile::Builder::new()
            .prefix("hermetic-d2-")
            .tempdir_in("/tmp")
            .expect("tmp");
        let d = dir.path();
        std::fs::write(d.join("daemon.json"), "{}").expect("daemon.json");
        let driver = Command::new("docker")
            .args(["info", "--format", "{{.Driver}}"])
            .output()
            .expect("docker info");
        let driver = String::from_utf8_lossy(&driver.stdout).trim().to_string();
        let socket = d.join("docker.sock");
        let mut dockerd = format!(
            "ip link set lo up && exec dockerd --config-file {d}/daemon.json --data-root {d}/root \
             --exec-root {d}/exec --pidfile {d}/docker.pid -H unix://{sock} --bridge none \
             --iptables=false --ip6tables=false --storage-driver {driver} --shutdown-timeout 2",
            d = d.display(),
            sock = socket.display(),
        );
        if let Some(certs) = tls {
            dockerd.push_str(&format!(
                " -H tcp://127.0.0.1:2376 --tlsverify --tlscacert {c}/ca.pem \
                 --tlscert {c}/server-cert.pem --tlskey {c}/server-key.pem",
                c = certs.display()
            ));
        }
        let child = spawn_dockerd(d, &dockerd);
        let engine = SecondEngine {
            child,
            dir,
            socket,
            command: dockerd,
        };
        engine.wait_up();
        engine
    }

    /// Stops the engine's process (SIGTERM, as `systemctl restart docker` does: it stops
    /// every container and removes its socket) and starts it again on the same data.
    fn restart(&mut self) {
        self.stop();
        self.child = spawn_dockerd(self.dir.path(), &self.command);
        self.wait_up();
    }

    fn stop(&mut self) {
        // SIGTERM: dockerd stops its containers and containerd, and unmounts its layers.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait_up(&self) {
        let engine = self;
        let started = Instant::now();
        loop {
            let up = Command::new("docker")
                .arg("-H")
                .arg(engine.endpoint())
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success());
            if up {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "second engine did not start:\n{}",
                std::fs::read_to_string(engine.dir.path().join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .arg("-H")
            .arg(self.endpoint())
            .args(args)
            .output()
            .expect("docker")
    }

    /// Runs `cmd` inside the engine's network namespace (where its TCP listener is).
    fn in_netns(&self, cmd: &Command) -> Command {
        wrapped_in(
            &[
                "nsenter",
                &format!("--net=/proc/{}/ns/net", self.child.id()),
            ],
            cmd,
        )
    }
}

impl Drop for SecondEngine {
    fn drop(&mut self) {
        self.stop();
    }
}

fn image_id() -> String {
    builder_image();
    let out = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            "hermetic/builder:latest",
        ])
        .output()
        .expect("docker");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn tls_engine_without_the_image_gets_a_copy_and_agrees() {
    let _serial = engine_lock();
    let image = image_id();
    let certs = tempfile::tempdir().expect("tmp");
    make_certs(certs.path());
    let engine = SecondEngine::start(Some(certs.path()));
    assert!(
        !engine
            .docker(&["image", "inspect", &image])
            .status
            .success(),
        "a new engine has no images"
    );
    let project = fixture("hello");
    // Vendored here, where the registry is reachable; the namespace has no way out.
    expect(hermetic(project.path()).args(["vendor"]), 0);

    // Without TLS settings the engine is not usable: one line, infrastructure (exit 4).
    let mut show = hermetic(project.path());
    show.args(["image", "show", "--json"])
        .env("DOCKER_HOST", "tcp://127.0.0.1:2376")
        .env_remove("DOCKER_TLS_VERIFY");
    let r = expect(&mut engine.in_netns(&show), 4);
    let e = &r.json()["error"];
    assert!(
        e["message"]
            .as_str()
            .expect("message")
            .contains("accepts only TLS"),
        "{e}"
    );
    assert!(
        e["fix"]
            .as_str()
            .expect("fix")
            .contains("DOCKER_TLS_VERIFY"),
        "{e}"
    );
    // TLS asked for, certificates missing: the missing file and where to put it.
    let empty = tempfile::tempdir().expect("tmp");
    show.env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", empty.path());
    let r = expect(&mut engine.in_netns(&show), 4);
    let e = &r.json()["error"];
    assert!(
        e["message"].as_str().expect("message").contains("ca.pem"),
        "{e}"
    );
    assert!(
        e["fix"].as_str().expect("fix").contains("DOCKER_CERT_PATH"),
        "{e}"
    );

    let verify = |expected_transfer: bool| {
        let mut cmd = hermetic(project.path());
        cmd.args([
            "verify",
            ".",
            "--runner",
            "local",
            "--runner",
            "tcp://127.0.0.1:2376",
            "--vary",
            "build-path,hostname,user",
            "--no-sign",
            "--no-cache",
            "--json",
        ])
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", certs.path())
        .env_remove("DOCKER_HOST");
        with_engine_cache(&mut cmd);
        let v = expect(&mut engine.in_netns(&cmd), 0).json();
        assert_eq!(v["verdict"], "reproducible", "{v}");
        assert_eq!(v["runners"][1]["engine"], "tcp://127.0.0.1:2376", "{v}");
        assert_eq!(v["runners"][0]["image"], image.as_str(), "{v}");
        assert_eq!(v["runners"][1]["image"], image.as_str(), "{v}");
        assert_eq!(
            v["runners"][1]["image_transferred"], expected_transfer,
            "{v}"
        );
        assert_eq!(v["runners"][0]["image_transferred"], false, "{v}");
        // Each engine runs one build, alone on its own CPUs: no budget shares them out.
        assert!(v["runners"][0]["environment"]["jobs"].is_null(), "{v}");
        assert!(v["runners"][1]["environment"]["jobs"].is_null(), "{v}");
        // The first run sends the vendored tree to the new engine; the next reuses it.
        assert_eq!(v["runners"][1]["deps_reused"], !expected_transfer, "{v}");
        assert_eq!(
            v["runners"][1]["toolchain_reused"], !expected_transfer,
            "{v}"
        );
    };
    verify(true);
    // The copy is the same image, by content digest, and tagged so it is not pruned.
    let out = engine.docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}} {{.RepoTags}}",
        &image,
    ]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with(&image), "{said}");
    assert!(said.contains("hermetic/builder:sha256-"), "{said}");
    let md = std::fs::read_to_string(project.path().join("dist/verify-report.md")).expect("md");
    assert!(md.contains("builder image copied there"), "{md}");
    // Next time it is there already.
    verify(false);
    // Nothing of hermetic's runs is left on the second engine, only its copies of the
    // vendored tree and of the image's toolchain.
    let left = engine.docker(&["ps", "-aq", "--filter", "label=hermetic"]);
    assert!(String::from_utf8_lossy(&left.stdout).trim().is_empty());
    let left = engine.docker(&["volume", "ls", "-q", "--filter", "label=hermetic"]);
    assert!(String::from_utf8_lossy(&left.stdout).trim().is_empty());
    let kept = engine.docker(&[
        "ps",
        "-a",
        "--filter",
        "label=hermetic.cache",
        "--format",
        "{{.Names}}",
    ]);
    let kept = String::from_utf8_lossy(&kept.stdout);
    let mut kept: Vec<&str> = kept.lines().collect();
    kept.sort();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept[0].starts_with("hermetic-deps-"), "{kept:?}");
    assert_eq!(
        kept[1],
        format!("hermetic-toolchain-{}", image.trim_start_matches("sha256:")),
        "{kept:?}"
    );
    // ... which `gc --cache --engine` removes from here.
    let mut gc = hermetic(project.path());
    gc.args([
        "--json",
        "gc",
        "--cache",
        "--engine",
        "tcp://127.0.0.1:2376",
    ])
    .env("DOCKER_TLS_VERIFY", "1")
    .env("DOCKER_CERT_PATH", certs.path())
    .env_remove("DOCKER_HOST");
    let v = expect(&mut engine.in_netns(&gc), 0).json();
    assert_eq!(
        v["cache_volumes_removed"].as_array().map(Vec::len),
        Some(2),
        "{v}"
    );
    let kept = engine.docker(&["ps", "-aq", "--filter", "label=hermetic.cache"]);
    assert!(String::from_utf8_lossy(&kept.stdout).trim().is_empty());
    let kept = engine.docker(&["volume", "ls", "-q", "--filter", "label=hermetic.cache"]);
    assert!(String::from_utf8_lossy(&kept.stdout).trim().is_empty());
    // The local runner's copy too.
    expect(
        hermetic(project.path()).args(["--json", "gc", "--cache"]),
        0,
    );
}

/// An sshd on 127.0.0.1 that lets root in with one key, and an ssh client configuration
/// that trusts exactly that server: nothing of the user's ~/.ssh is read or changed.
struct SshServer {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl SshServer {
    fn start() -> SshServer {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        for (name, file) in [("host", "host_key"), ("client", "client_key")] {
            sh(Command::new("ssh-keygen").args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                name,
                "-f",
                &d.join(file).to_string_lossy(),
            ]));
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).expect("copy");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host_key\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nAllowStreamLocalForwarding yes\nPidFile {d}/sshd.pid\n",
                d = d.display()
            ),
        )
        .expect("sshd_config");
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).expect("pub");
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {host_pub}"),
        )
        .expect("known_hosts");
        std::fs::write(
            d.join("ssh_config"),
            format!(
                "Host 127.0.0.1\n  IdentityFile {d}/client_key\n  IdentitiesOnly yes\n  \
                 UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking yes\n  \
                 GlobalKnownHostsFile /dev/null\n",
                d = d.display()
            ),
        )
        .expect("ssh_config");
        // sshd's privilege separation directory, as its package's service makes it.
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stderr(Stdio::from(
                std::fs::File::create(d.join("sshd.log")).expect("log"),
            ))
            .spawn()
            .expect("start sshd (apt-get install openssh-server)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "sshd did not start:\n{}",
                std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        SshServer { child, dir, port }
    }

    fn ssh_command(&self) -> String {
        format!("ssh -F {}", self.dir.path().join("ssh_config").display())
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ssh processes of this test's tunnels still running.
fn tunnels(server: &SshServer) -> usize {
    let out = Command::new("pgrep")
        .args([
            "-f",
            &server.dir.path().join("ssh_config").to_string_lossy(),
        ])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn ssh_runner_named_in_hermetic_toml() {
    let _serial = engine_lock();
    builder_image();
    let server = SshServer::start();
    let project = fixture("hello");
    let endpoint = format!("ssh://root@127.0.0.1:{}", server.port);
    std::fs::write(
        project.path().join("hermetic.toml"),
        format!(
            "[[runners]]\nendpoint = \"local\"\n\n[[runners]]\nname = \"over-ssh\"\n\
             endpoint = \"{endpoint}\"\nvary = [\"hostname\", \"home\"]\n"
        ),
    )
    .expect("hermetic.toml");
    // ssh runs through a wrapper that records the environment it was given: hermetic's
    // secrets must not be in it.
    let wrap_dir = tempfile::tempdir().expect("tempdir");
    let seen_env = wrap_dir.path().join("ssh-env");
    let wrapper = wrap_dir.path().join("ssh");
    write_executable(
        &wrapper,
        &format!(
            "#!/bin/sh\nenv > '{}'\nexec ssh \"$@\"\n",
            seen_env.display()
        ),
    );
    let wrapped = server
        .ssh_command()
        .replacen("ssh", &wrapper.display().to_string(), 1);
    let mut cmd = hermetic(project.path());
    // The file is the user's word here (--config): a project's own file may not name engines.
    cmd.args(["verify", ".", "--no-sign", "--no-cache", "--json"])
        .args(["--config", "hermetic.toml"])
        .env("HERMETIC_SSH_COMMAND", &wrapped)
        .env_remove("DOCKER_HOST");
    let v = expect(&mut cmd, 0).json();
    let env = std::fs::read_to_string(&seen_env).expect("the wrapper ran");
    assert!(
        !env.contains("COSIGN_PASSWORD") && !env.contains(PASSWORD),
        "a secret reached ssh"
    );
    assert_eq!(v["verdict"], "reproducible", "{v}");
    assert_eq!(v["runners"][0]["runner"], "runner-1", "{v}");
    assert_eq!(v["runners"][1]["runner"], "over-ssh", "{v}");
    assert_eq!(v["runners"][1]["engine"], endpoint.as_str(), "{v}");
    assert_eq!(
        v["runners"][1]["variations"],
        serde_json::json!(["hostname", "home"]),
        "{v}"
    );
    // The tunnel ends with hermetic.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tunnels(&server) > 0 {
        assert!(Instant::now() < deadline, "an ssh tunnel outlived hermetic");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A server whose host key is not trusted: ssh's own reason, as an infrastructure error.
    std::fs::write(server.dir.path().join("known_hosts"), "").expect("known_hosts");
    let mut show = hermetic(project.path());
    show.args(["image", "show", "--json"])
        .env("DOCKER_HOST", &endpoint)
        .env("HERMETIC_SSH_COMMAND", server.ssh_command());
    let r = expect(&mut show, 4);
    let msg = r.json()["error"]["message"].to_string();
    assert!(msg.contains("Host key verification failed"), "{msg}");

    // A mistake in hermetic.toml: the file, line and column, and a fix; exit 2.
    std::fs::write(
        project.path().join("hermetic.toml"),
        "[[runners]]\nendpoint = \"local\"\n\n[[runners]]\nendpoint = \"builder-2:2376\"\n",
    )
    .expect("hermetic.toml");
    let mut cmd = hermetic(project.path());
    cmd.args([
        "verify",
        ".",
        "--no-sign",
        "--json",
        "--config",
        "hermetic.toml",
    ]);
    let r = expect(&mut cmd, 2);
    let e = &r.json()["error"];
    let msg = e["message"].as_str().expect("message");
    assert!(msg.contains("hermetic.toml:5:12"), "{msg}");
    assert!(e["fix"].as_str().is_some(), "{e}");
}

/// The engine restarts in the middle of a build (stopping its container): the run fails
/// with exit 4 naming what happened (the build is not retried), what it left is removed,
/// and the next run builds. An engine of the test's own, so that nothing else is disturbed.
#[test]
fn an_engine_restart_during_a_build_is_named_and_the_next_run_works() {
    let _serial = engine_lock();
    builder_image();
    let mut engine = SecondEngine::start(None);
    sh(Command::new("sh").args([
        "-c",
        &format!(
            "docker save hermetic/builder:latest | docker -H {} load",
            engine.endpoint()
        ),
    ]));
    let project = fixture("netprobe");
    std::fs::write(project.path().join("probe.conf"), "sleep=30\n").expect("conf");
    let host = engine.endpoint();
    let build = |project: &Path| {
        let mut cmd = hermetic(project);
        cmd.env("DOCKER_HOST", &host).args([
            "--json",
            "build",
            "--no-sign",
            "--image",
            "hermetic/builder:latest",
        ]);
        cmd
    };
    let mut child = build(project.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let running = |engine: &SecondEngine| {
        let out = engine.docker(&[
            "ps",
            "-q",
            "--filter",
            "name=-build",
            "--filter",
            "status=running",
        ]);
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !running(&engine) {
        assert!(Instant::now() < deadline, "the build never started");
        assert!(
            child.try_wait().ok().flatten().is_none(),
            "hermetic ended early"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    engine.restart();
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let msg = v["error"]["message"].as_str().expect("message");
    assert!(
        msg.contains("the engine went away while the build ran"),
        "{msg}"
    );
    // Nothing of the run is left once the engine is back.
    let labelled = |what: &[&str]| {
        let out = engine.docker(what);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    };
    assert_eq!(
        labelled(&["ps", "-aq", "--filter", "label=hermetic.run"]),
        0
    );
    assert_eq!(
        labelled(&["volume", "ls", "-q", "--filter", "label=hermetic.run"]),
        0
    );

    std::fs::write(project.path().join("probe.conf"), "").expect("conf");
    let v = expect(&mut build(project.path()), 0).json();
    assert!(
        v["artifacts"].as_array().is_some_and(|a| !a.is_empty()),
        "{v}"
    );
    assert_eq!(
        labelled(&["ps", "-aq", "--filter", "label=hermetic.run"]),
        0
    );
    assert_eq!(
        labelled(&["volume", "ls", "-q", "--filter", "label=hermetic.run"]),
        0
    );
}

/// `hermetic image bootstrap` for one engine, as a machine with nothing would run it: its
/// own empty HOME and cache (the machine's Rust toolchain stays where rustup put it).
fn bootstrap_from_nothing(
    docker_host: Option<&str>,
    home: &Path,
    lock: &Path,
    tag: &str,
    code: i32,
) -> Run {
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".rustup")
        });
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hermetic"));
    cmd.current_dir(home)
        .env("HOME", home)
        .env("RUSTUP_HOME", rustup_home)
        .env("HERMETIC_CACHE", home.join("cache"))
        .args([
            "--json",
            "image",
            "bootstrap",
            "--force",
            "--tag",
            tag,
            "--lock",
        ])
        .arg(lock);
    match docker_host {
        Some(h) => cmd.env("DOCKER_HOST", h),
        None => cmd.env_remove("DOCKER_HOST"),
    };
    expect(&mut cmd, code)
}

/// One job of the workflow, as the harness runs it: its own engine, home, temp dir and
/// workspace; artifacts pass between jobs only as files under `artifacts`.
struct Job<'a> {
    docker_host: Option<String>,
    root: &'a Path,
    name: String,
    checkout: &'a Path,
    artifacts: &'a Path,
    shims: &'a Path,
}

/// What a job did: the name of the step that failed, if one did, and what it printed.
struct JobRun {
    failed: Option<String>,
    log: String,
}

impl Job<'_> {
    /// Runs the steps of `job` (from tests/helpers/workflow.py) in order, as a runner
    /// does: `run:` scripts with `bash -eo pipefail`, the environment that earlier steps
    /// appended to `$GITHUB_ENV`, and the three actions the workflow uses done here
    /// (checkout copies the checkout; upload and download copy artifacts as files).
    fn run(&self, job: &serde_json::Value) -> JobRun {
        let dir = self.root.join(&self.name);
        let (ws, home, tmp) = (dir.join("ws"), dir.join("home"), dir.join("tmp"));
        for d in [&ws, &home, &tmp] {
            std::fs::create_dir_all(d).expect("job dirs");
        }
        // The machine's one toolchain (a hosted runner has it under its home too).
        let rustup_home = std::env::var_os("RUSTUP_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".rustup")
            });
        std::os::unix::fs::symlink(&rustup_home, home.join(".rustup")).expect("rustup link");
        let github_env = tmp.join("github-env");
        let summary = tmp.join("step-summary.md");
        std::fs::write(&github_env, "").expect("env file");
        let hermetic_dir = Path::new(env!("CARGO_BIN_EXE_hermetic"))
            .parent()
            .expect("bin dir")
            .to_path_buf();
        let cargo_bin = cargo_bin_dir();
        let path = format!(
            "{}:{}:{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            self.shims.display(),
            hermetic_dir.display(),
            cargo_bin.display()
        );
        let mut log = String::new();
        for step in job["steps"].as_array().expect("steps") {
            let name = step["name"].as_str().unwrap_or_default().to_string();
            log.push_str(&format!("== {}: {name}\n", self.name));
            if let Some(uses) = step["uses"].as_str() {
                let with = &step["with"];
                match uses {
                    // As actions/checkout does: a clone of the repository at its commit.
                    "actions/checkout" => {
                        let mut clone = Command::new("git");
                        clone.args(["clone", "-q"]).arg(self.checkout).arg(&ws);
                        expect(&mut clone, 0);
                    }
                    "actions/upload-artifact" => {
                        let to = self.artifacts.join(with["name"].as_str().expect("name"));
                        let paths: Vec<PathBuf> = with["path"]
                            .as_str()
                            .expect("path")
                            .lines()
                            .map(|l| l.trim().trim_end_matches('/'))
                            .filter(|l| !l.is_empty())
                            .map(|l| ws.join(l.replace("${RUNNER_TEMP}", &tmp.to_string_lossy())))
                            .collect();
                        if let Some(missing) = paths.iter().find(|p| !p.exists()) {
                            return JobRun {
                                failed: Some(format!("{name}: no {} to upload", missing.display())),
                                log,
                            };
                        }
                        // As upload-artifact does: the paths' common ancestor is the
                        // artifact's root (one directory alone: its contents).
                        let root = match paths.as_slice() {
                            [one] if one.is_dir() => one.clone(),
                            _ => {
                                let mut root = paths[0].parent().expect("parent").to_path_buf();
                                while !paths.iter().all(|p| p.starts_with(&root)) {
                                    root = root.parent().expect("common ancestor").to_path_buf();
                                }
                                root
                            }
                        };
                        for from in &paths {
                            let rel = from.strip_prefix(&root).expect("under the root");
                            if from.is_dir() {
                                copy_dir(from, &to.join(rel));
                            } else {
                                let dest = to.join(rel);
                                std::fs::create_dir_all(dest.parent().expect("parent"))
                                    .expect("artifact dir");
                                std::fs::copy(from, dest).expect("artifact");
                            }
                        }
                    }
                    "actions/download-artifact" => {
                        let into = ws.join(
                            with["path"]
                                .as_str()
                                .expect("path")
                                .replace("${RUNNER_TEMP}", &tmp.to_string_lossy()),
                        );
                        for a in std::fs::read_dir(self.artifacts)
                            .expect("artifacts")
                            .flatten()
                        {
                            copy_dir(&a.path(), &into.join(a.file_name()));
                        }
                    }
                    other => panic!("the harness does not run {other}"),
                }
                continue;
            }
            let script = tmp.join("step.sh");
            std::fs::write(&script, step["run"].as_str().expect("run")).expect("script");
            // The commit the workflow runs for, as GitHub names it.
            let sha = String::from_utf8_lossy(
                &Command::new("git")
                    .arg("-C")
                    .arg(self.checkout)
                    .args(["rev-parse", "HEAD"])
                    .output()
                    .expect("git")
                    .stdout,
            )
            .trim()
            .to_string();
            let mut cmd = Command::new("bash");
            cmd.args(["--noprofile", "--norc", "-eo", "pipefail"])
                .arg(&script)
                .current_dir(&ws)
                .env_clear()
                .env("PATH", &path)
                .env("HOME", &home)
                .env("USER", "root")
                .env("LANG", "C.UTF-8")
                .env("RUNNER_TEMP", &tmp)
                .env("GITHUB_ENV", &github_env)
                .env("GITHUB_STEP_SUMMARY", &summary)
                .env("GITHUB_WORKSPACE", &ws)
                .env("GITHUB_SHA", &sha)
                // hermetic's own host cargo is the toolchain's, not the stand-in for
                // `cargo install` (which the sandbox that host cargo runs in would not find).
                .env("CARGO", cargo_bin.join("cargo"));
            if let Some(h) = &self.docker_host {
                cmd.env("DOCKER_HOST", h);
            }
            for line in std::fs::read_to_string(&github_env)
                .expect("env file")
                .lines()
            {
                if let Some((k, v)) = line.split_once('=') {
                    cmd.env(k, v);
                }
            }
            if let Some(env) = step["env"].as_object() {
                for (k, v) in env {
                    cmd.env(k, v.as_str().unwrap_or_default());
                }
            }
            let out = cmd.output().expect("bash");
            log.push_str(&String::from_utf8_lossy(&out.stdout));
            log.push_str(&String::from_utf8_lossy(&out.stderr));
            if !out.status.success() {
                // What a step redirected (`--json > image.json`) is part of its story.
                let redirected = std::fs::read_dir(&ws)
                    .into_iter()
                    .chain(std::fs::read_dir(&tmp));
                for f in redirected.flatten().flatten() {
                    if f.path().extension().is_some_and(|e| e == "json") {
                        log.push_str(&format!("-- {}:\n", f.path().display()));
                        log.push_str(&std::fs::read_to_string(f.path()).unwrap_or_default());
                    }
                }
                return JobRun {
                    failed: Some(name),
                    log,
                };
            }
        }
        JobRun { failed: None, log }
    }
}

/// Where this machine's `cargo` (a rustup proxy) is.
fn cargo_bin_dir() -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", "command -v cargo"])
        .output()
        .expect("sh");
    let cargo = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(cargo.is_absolute(), "cargo is not on PATH");
    cargo.parent().expect("cargo's directory").to_path_buf()
}

/// Stand-ins for the steps that install tools on a hosted runner; everything else in the
/// workflow runs as written. `sudo`: the tests run as root (the command gets the real
/// tools). `apt-get`: .ci/run installed
/// the packages; each one named must be there. `rustup toolchain install`/`default V`:
/// this machine's one toolchain must be version V (none can be fetched here). `cargo
/// install --path cli`: the hermetic under test is already on PATH.
fn workflow_shims(dir: &Path) {
    std::fs::create_dir_all(dir).expect("shims");
    let real_cargo = cargo_bin_dir().join("cargo");
    let real_cargo = real_cargo.display();
    // The real tools under sudo: a `PATH=` the command is given loses the stand-ins
    // (mmdebstrap must find the real apt-get).
    write_executable(
        &dir.join("sudo"),
        &format!(
            "#!/bin/sh\nshims='{}'\nn=$#\nfor a in \"$@\"; do\n  case \"$a\" in\n    \
             PATH=*) a=\"PATH=$(printf '%s' \"${{a#PATH=}}\" | tr ':' '\\n' | grep -vxF \"$shims\" | paste -sd: -)\" ;;\n  \
             esac\n  set -- \"$@\" \"$a\"\ndone\nshift \"$n\"\nexec \"$@\"\n",
            dir.display()
        ),
    );
    write_executable(
        &dir.join("apt-get"),
        "#!/bin/sh\nfor p; do case \"$p\" in -*|update|install) ;; \
         *) dpkg -s \"$p\" >/dev/null 2>&1 || { echo \"apt-get: $p is not installed here\" >&2; exit 1; };; \
         esac; done\n",
    );
    write_executable(
        &dir.join("rustup"),
        "#!/bin/sh\ncase \"$1 $2\" in\n\
         'toolchain install') v=$3 ;;\n\
         default*) v=$2 ;;\n\
         *) echo \"rustup $*: not available here\" >&2; exit 1 ;;\n\
         esac\n\
         rustc -V | grep -q \"^rustc $v \" || { echo \"rustup: this machine has $(rustc -V), not $v\" >&2; exit 1; }\n",
    );
    write_executable(
        &dir.join("cargo"),
        &format!(
            "#!/bin/sh\nif [ \"$1\" = install ]; then hermetic --version; exit $?; fi\n\
             exec '{real_cargo}' \"$@\"\n"
        ),
    );
}

/// The release workflow, run: every `run:` step of every job, as written, job by job on
/// this machine. Each rebuild job has its own engine (runner 1 the local one, runners 2
/// and 3 engines of their own started empty), home, caches and key; the gate job has an
/// engine of its own too, and sees the rebuilds only as artifact files. The secrets are
/// test keys. The builder image is derived from the lock on every engine and its digest
/// is the same; the gate passes 2 of 3 and the audit rebuilds; with the artifact that the
/// release is cut from tampered, the gate job fails and publishes nothing. A lock that
/// names another toolchain component is told which one differs.
#[test]
fn the_release_workflow_runs_job_by_job_and_its_gate_holds() {
    let _serial = engine_lock();
    builder_image();
    let root = tempfile::Builder::new()
        .prefix("hermetic-workflow-")
        .tempdir_in("/tmp")
        .expect("tmp");
    let r = root.path();
    // The repository the workflow runs in: a small project with the machine's image lock,
    // its policy and the committed public keys.
    let checkout = r.join("repository");
    copy_dir(&repo_root().join("tests/fixtures/hello"), &checkout);
    std::fs::copy(
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hermetic-image.lock"),
        checkout.join("hermetic-image.lock"),
    )
    .expect("lock");
    std::fs::copy(
        repo_root().join("vendor-policy.toml"),
        checkout.join("vendor-policy.toml"),
    )
    .expect("policy");
    std::fs::create_dir_all(checkout.join("keys")).expect("keys");
    let secrets_dir = r.join("secrets");
    std::fs::create_dir_all(&secrets_dir).expect("secrets");
    let mut secrets = serde_json::Map::new();
    for (name, secret) in [
        ("runner-1", "RUNNER_KEY_1"),
        ("runner-2", "RUNNER_KEY_2"),
        ("runner-3", "RUNNER_KEY_3"),
        ("release", "RELEASE_KEY"),
    ] {
        let mut cmd = hermetic(&secrets_dir);
        cmd.args(["keygen", "--output-key-prefix", name]);
        expect(&mut cmd, 0);
        std::fs::copy(
            secrets_dir.join(format!("{name}.pub")),
            checkout.join(format!("keys/{name}.pub")),
        )
        .expect("pub");
        let key = std::fs::read_to_string(secrets_dir.join(format!("{name}.key"))).expect("key");
        secrets.insert(secret.into(), key.into());
        let password = secret.replace("_KEY", "_KEY_PASSWORD");
        secrets.insert(password, PASSWORD.into());
    }
    // The tagged commit the workflow releases.
    git(&checkout, &["init", "-q", "-b", "main"]);
    git(&checkout, &["add", "."]);
    git(&checkout, &["commit", "-q", "-m", "release 0.1.0"]);
    let secrets_file = r.join("secrets.json");
    std::fs::write(
        &secrets_file,
        serde_json::Value::Object(secrets).to_string(),
    )
    .expect("secrets");
    let out = Command::new("python3")
        .arg(repo_root().join("tests/helpers/workflow.py"))
        .arg(repo_root().join(".github/workflows/release.yml"))
        .arg(&secrets_file)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jobs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("jobs");
    let names: Vec<String> = jobs
        .iter()
        .map(|j| {
            format!(
                "{}{}",
                j["job"].as_str().unwrap_or(""),
                j["matrix"]["runner"]
            )
        })
        .collect();
    assert_eq!(names, ["rebuild1", "rebuild2", "rebuild3", "gatenull"]);
    let shims = r.join("shims");
    workflow_shims(&shims);
    let artifacts = r.join("artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts");
    let (e2, e3, e4) = (
        SecondEngine::start(None),
        SecondEngine::start(None),
        SecondEngine::start(None),
    );
    let hosts = [
        None,
        Some(e2.endpoint()),
        Some(e3.endpoint()),
        Some(e4.endpoint()),
    ];
    fn job<'a>(
        host: &Option<String>,
        root: &'a Path,
        name: &str,
        checkout: &'a Path,
        artifacts: &'a Path,
        shims: &'a Path,
    ) -> Job<'a> {
        Job {
            docker_host: host.clone(),
            root,
            name: name.to_string(),
            checkout,
            artifacts,
            shims,
        }
    }
    let mut digests = vec![];
    for (i, j) in jobs.iter().take(3).enumerate() {
        let name = format!("rebuild-{}", i + 1);
        let run = job(&hosts[i], r, &name, &checkout, &artifacts, &shims).run(j);
        assert_eq!(run.failed, None, "{}", run.log);
        let image: serde_json::Value = serde_json::from_slice(
            &std::fs::read(r.join(&name).join("tmp/image.json")).expect("image.json"),
        )
        .expect("image json");
        digests.push(image["image"]["digest"].as_str().unwrap_or("").to_string());
    }
    assert!(digests[0].starts_with("sha256:"), "{digests:?}");
    assert!(
        digests.iter().all(|d| *d == digests[0]),
        "every job derives the same builder image: {digests:?}"
    );
    let gate = job(&hosts[3], r, "gate", &checkout, &artifacts, &shims).run(&jobs[3]);
    assert_eq!(gate.failed, None, "{}", gate.log);
    let gate_tmp = r.join("gate/tmp");
    let report =
        std::fs::read_to_string(gate_tmp.join("gate/gate-report.md")).expect("gate report");
    assert!(
        report.contains("3 trusted runner(s) agree, 2 required"),
        "{report}"
    );
    let summary = std::fs::read_to_string(gate_tmp.join("step-summary.md")).expect("summary");
    assert_eq!(summary, report);
    assert!(artifacts.join("release/SHA256SUMS.sig").is_file());
    // The image the gate's engine derived is the one every runner had.
    let image: serde_json::Value =
        serde_json::from_slice(&std::fs::read(gate_tmp.join("image.json")).expect("image.json"))
            .expect("json");
    assert_eq!(image["image"]["digest"], digests[0].as_str());

    // The release is cut from runner 1's artifact: tampered there, the gate job fails and
    // nothing is published.
    let tampered = r.join("artifacts-tampered");
    for a in ["rebuild-1", "rebuild-2", "rebuild-3"] {
        copy_dir(&artifacts.join(a), &tampered.join(a));
    }
    let binary = tampered.join("rebuild-1/dist/hello");
    let mut bytes = std::fs::read(&binary).expect("binary");
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&binary, bytes).expect("tamper");
    let gate = job(&hosts[3], r, "gate-tampered", &checkout, &tampered, &shims).run(&jobs[3]);
    assert!(
        gate.failed.is_some(),
        "a tampered release passed:\n{}",
        gate.log
    );
    assert!(
        !tampered.join("release").exists(),
        "the tampered release was published:\n{}",
        gate.log
    );

    // A machine whose lock says another standard library is told which component differs,
    // and loads nothing.
    let lock = r.join("rebuild-2/ws/hermetic-image.lock");
    let text = std::fs::read_to_string(&lock).expect("lock");
    let std_line = text
        .lines()
        .find(|l| l.starts_with("rust-std = "))
        .expect("rust-std in the lock")
        .to_string();
    let other = format!("rust-std = \"sha256:{}\"", "0".repeat(64));
    std::fs::write(&lock, text.replace(&std_line, &other)).expect("lock");
    let before = e2.docker(&["images", "-q"]).stdout;
    let home = r.join("rebuild-2/home");
    let r2 =
        bootstrap_from_nothing(Some(&e2.endpoint()), &home, &lock, "hermetic/twin:three", 1).json();
    let msg = r2["error"]["message"].as_str().expect("message");
    assert!(
        msg.contains(r#"toolchain component "rust-std": "sha256:"#)
            && msg.contains(&format!("\"sha256:{}\" in the lock", "0".repeat(64))),
        "{msg}"
    );
    assert_eq!(
        e2.docker(&["images", "-q"]).stdout,
        before,
        "an image was loaded"
    );
}

/// An image moves between machines as a file: exported whole, imported with its digest
/// re-derived from the file and checked in the engine; a file that is not the image
/// expected is refused before anything is loaded.
#[test]
fn an_image_moves_as_a_file_and_its_digest_is_rederived() {
    let _serial = engine_lock();
    let digest = image_id();
    let engine = SecondEngine::start(None);
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("builder.tar");
    let mut export = hermetic(dir.path());
    export
        .env_remove("DOCKER_HOST")
        .args(["--json", "image", "export", &digest])
        .arg(&file);
    expect(&mut export, 0);
    assert!(file.is_file() && !dir.path().join("builder.partial").exists());

    let import = |expected: &str, code: i32| {
        let mut cmd = hermetic(dir.path());
        cmd.env("DOCKER_HOST", engine.endpoint())
            .args(["--json", "image", "import"])
            .arg(&file)
            .args(["--expect", expected]);
        expect(&mut cmd, code).json()
    };
    let wrong = format!("sha256:{}", "0".repeat(64));
    let r = import(&wrong, 1);
    assert!(
        r["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&wrong)),
        "{r}"
    );
    assert!(
        !engine
            .docker(&["image", "inspect", &digest])
            .status
            .success(),
        "loaded anyway"
    );
    let v = import(&digest, 0);
    assert_eq!(v["image"]["digest"].as_str(), Some(digest.as_str()), "{v}");
    assert!(
        engine
            .docker(&["image", "inspect", &digest])
            .status
            .success()
    );
}

/// A docker-archive of a tiny base image (no tags), made here: one layer with the files a
/// builder layer reads, a configuration with fixed times.
fn tiny_base(dir: &Path) -> PathBuf {
    use sha2::Digest;
    let layer = tar_of(&[
        ("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n".to_vec()),
        ("etc/group", b"root:x:0:\n".to_vec()),
        ("usr/local/bin/tool", b"#!/bin/sh\n".to_vec()),
    ]);
    let diff = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&layer)));
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/bin:/bin", "RUSTUP_HOME=/usr/local/rustup"]},
        "rootfs": {"type": "layers", "diff_ids": [diff]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "a tiny base"}],
    })
    .to_string();
    let id = hex::encode(sha2::Sha256::digest(config.as_bytes()));
    let manifest = serde_json::json!([{
        "Config": format!("{id}.json"),
        "Layers": ["layer.tar"],
        "RepoTags": null,
    }])
    .to_string();
    let config_name = format!("{id}.json");
    let archive = tar_of(&[
        (config_name.as_str(), config.into_bytes()),
        ("layer.tar", layer),
        ("manifest.json", manifest.into_bytes()),
    ]);
    let file = dir.join("base.tar");
    std::fs::write(&file, archive).expect("write");
    file
}

/// A tar of regular files (mode 0644, time 0), in the order given.
fn tar_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, body) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, body.as_slice()).expect("tar");
    }
    tar.into_inner().expect("tar")
}

/// Registry users: hermetic's layer on a base pinned by digest gives the same builder
/// digest on every engine that has the same base, and again after the image is removed; a
/// base named by a tag is refused with the fix.
#[test]
fn a_builder_on_a_pinned_base_has_the_same_digest_everywhere() {
    let _serial = engine_lock();
    let engine = SecondEngine::start(None);
    let dir = tempfile::tempdir().expect("tmp");
    let file = tiny_base(dir.path());
    let run = |host: Option<&str>, args: &[&str], code: i32| {
        let mut cmd = hermetic(dir.path());
        match host {
            Some(h) => cmd.env("DOCKER_HOST", h),
            None => cmd.env_remove("DOCKER_HOST"),
        };
        cmd.arg("--json").args(args);
        expect(&mut cmd, code).json()
    };
    let second = engine.endpoint();
    let file = file.to_str().expect("utf-8");
    let base = run(None, &["image", "import", file], 0)["image"]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    run(Some(&second), &["image", "import", file], 0);

    let v = run(
        None,
        &["image", "build", "--base", "hermetic/builder:latest"],
        2,
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("pinned by digest")),
        "{v}"
    );
    assert!(
        v["error"]["fix"]
            .as_str()
            .is_some_and(|f| f.contains("docker pull")),
        "{v}"
    );

    let build = |host: Option<&str>, tag: &str| {
        run(host, &["image", "build", "--base", &base, "--tag", tag], 0)["image"]["digest"]
            .as_str()
            .expect("digest")
            .to_string()
    };
    let here = build(None, "hermetic/onbase:test");
    let there = build(Some(&second), "hermetic/onbase:test");
    assert_eq!(here, there, "two engines made two builders from one base");
    let _ = Command::new("docker")
        .args(["rmi", "-f", "hermetic/onbase:test"])
        .output();
    assert_eq!(
        build(None, "hermetic/onbase:test"),
        here,
        "not the same again"
    );
    let user = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Config.User}}", &here])
        .output()
        .expect("docker");
    assert_eq!(String::from_utf8_lossy(&user.stdout).trim(), "10001:10001");

    // As a registry user pins it: pushed to a registry (Debian's, on this machine's
    // loopback, the test's own) and pulled by the digest the registry gave it.
    let registry = Registry::start(dir.path());
    let name = format!("127.0.0.1:{}/tiny-base", registry.port);
    let docker = |args: &[&str]| {
        let mut cmd = Command::new("docker");
        cmd.args(args);
        expect(&mut cmd, 0).stdout
    };
    docker(&["tag", &base, &format!("{name}:1")]);
    docker(&["push", "-q", &format!("{name}:1")]);
    let repo_digest = docker(&[
        "image",
        "inspect",
        "--format",
        "{{index .RepoDigests 0}}",
        &format!("{name}:1"),
    ])
    .trim()
    .to_string();
    assert!(
        repo_digest.starts_with(&format!("{name}@sha256:")),
        "{repo_digest}"
    );
    docker(&["rmi", &format!("{name}:1")]);
    let _ = Command::new("docker").args(["rmi", "-f", &base]).output();
    docker(&["pull", "-q", &repo_digest]);
    let by_repo_digest = || {
        run(
            None,
            &[
                "image",
                "build",
                "--base",
                &repo_digest,
                "--tag",
                "hermetic/onbase:registry",
            ],
            0,
        )["image"]["digest"]
            .as_str()
            .expect("digest")
            .to_string()
    };
    let pinned = by_repo_digest();
    let _ = Command::new("docker")
        .args(["rmi", "-f", "hermetic/onbase:registry"])
        .output();
    let again = by_repo_digest();
    assert_eq!(pinned, again, "one registry base, two builder digests");
    // A digest the engine does not hold is named, with the pull to run.
    let other = format!("{name}@sha256:{}", "0".repeat(64));
    let v = run(None, &["image", "build", "--base", &other], 2);
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&other)),
        "{v}"
    );
    let _ = Command::new("docker")
        .args([
            "rmi",
            "-f",
            "hermetic/onbase:test",
            "hermetic/onbase:registry",
            &repo_digest,
            &base,
        ])
        .output();
}

/// A container registry (Debian's `docker-registry`) on this machine's loopback, owned by
/// the test; stopped on drop.
struct Registry {
    child: Child,
    port: u16,
}

impl Registry {
    fn start(dir: &Path) -> Registry {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    \
                 rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("registry").display()
            ),
        )
        .expect("config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (Debian's docker-registry package; .ci/run installs it)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the registry did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Registry { child, port }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
