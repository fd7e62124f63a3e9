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

/// Independent machines agree: two builder images made from nothing, on two engines, with
/// two homes and caches, have the same digest and the same lock; a rebuild on each, signed
/// by each machine's key, passes a 2-of-2 gate. A lock that names another toolchain
/// component is told which one differs, and nothing is loaded.
#[test]
fn two_machines_make_the_same_builder_image_and_their_rebuilds_agree() {
    let _serial = engine_lock();
    let engine = SecondEngine::start(None);
    let (one, two) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let (lock1, lock2) = (
        one.path().join("hermetic-image.lock"),
        two.path().join("hermetic-image.lock"),
    );
    let a = bootstrap_from_nothing(None, one.path(), &lock1, "hermetic/twin:one", 0).json();
    let b = bootstrap_from_nothing(
        Some(&engine.endpoint()),
        two.path(),
        &lock2,
        "hermetic/twin:two",
        0,
    )
    .json();
    let digest = a["image"]["digest"].as_str().expect("digest").to_string();
    assert_eq!(
        b["image"]["digest"].as_str(),
        Some(digest.as_str()),
        "{a}\n{b}"
    );
    assert_eq!(
        std::fs::read(&lock1).expect("lock"),
        std::fs::read(&lock2).expect("lock"),
        "the two machines wrote different locks"
    );
    assert_eq!(a["lock"]["image"].as_str(), Some(digest.as_str()));
    assert!(a["lock"]["installed"]["gcc"].is_string(), "{}", a["lock"]);

    // Each machine rebuilds with its own image and key; the gate counts both.
    let keys = tempfile::tempdir().expect("tmp");
    let key = |name: &str| {
        let mut cmd = hermetic(keys.path());
        cmd.args(["keygen", "--output-key-prefix", name]);
        expect(&mut cmd, 0);
        (
            keys.path().join(format!("{name}.key")),
            keys.path().join(format!("{name}.pub")),
        )
    };
    let ((k1, p1), (k2, p2)) = (key("machine1"), key("machine2"));
    let project = fixture("hello");
    let attest = |host: Option<&str>, key: &Path, id: &str| {
        let att = keys.path().join(format!("{id}.json"));
        let mut cmd = hermetic(project.path());
        match host {
            Some(h) => cmd.env("DOCKER_HOST", h),
            None => cmd.env_remove("DOCKER_HOST"),
        };
        cmd.args(["--json", "rebuild", "--image", &digest, "--runner-id", id])
            .arg("--key")
            .arg(key)
            .arg("--emit-attestation")
            .arg(&att);
        expect(&mut cmd, 0);
        att
    };
    let a1 = attest(None, &k1, "machine-1");
    let a2 = attest(Some(&engine.endpoint()), &k2, "machine-2");
    let mut gate = hermetic(keys.path());
    gate.args(["--json", "gate"])
        .arg(&a1)
        .arg(&a2)
        .arg("--trusted-key")
        .arg(&p1)
        .arg("--trusted-key")
        .arg(&p2)
        .args(["--quorum", "2"]);
    let g = expect(&mut gate, 0).json();
    assert_eq!(g["status"], "ok", "{g}");

    // A lock that says the toolchain's standard library was another: that line is named.
    let text = std::fs::read_to_string(&lock2).expect("lock");
    let std_line = text
        .lines()
        .find(|l| l.starts_with("rust-std = "))
        .expect("rust-std in the lock")
        .to_string();
    let other = format!("rust-std = \"sha256:{}\"", "0".repeat(64));
    std::fs::write(&lock2, text.replace(&std_line, &other)).expect("lock");
    let before = engine.docker(&["images", "-q"]).stdout;
    let r = bootstrap_from_nothing(
        Some(&engine.endpoint()),
        two.path(),
        &lock2,
        "hermetic/twin:three",
        1,
    )
    .json();
    let msg = r["error"]["message"].as_str().expect("message");
    assert!(
        msg.contains(r#"toolchain component "rust-std": "sha256:"#),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("\"sha256:{}\" in the lock", "0".repeat(64))),
        "{msg}"
    );
    assert_eq!(
        engine.docker(&["images", "-q"]).stdout,
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
