//! Reaching a remote engine over ssh: its socket is forwarded to a local one by the
//! system's `ssh`, so the user's ssh configuration, keys and agent apply, as with the docker
//! CLI. One `ssh` process per engine handle; it ends when the handle is dropped, or when
//! hermetic dies (the remote side reads the tunnel's stdin and exits on end of file).

use crate::error::{Error, Result};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Environment variable with the ssh command to use, e.g. `ssh -F ./ssh_config`
/// (split on whitespace, like a simple `GIT_SSH_COMMAND`).
pub const SSH_COMMAND_ENV: &str = "HERMETIC_SSH_COMMAND";

/// How long the tunnel may take to come up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `ssh -L local.sock:remote.sock`.
pub struct Tunnel {
    child: Mutex<Child>,
    /// The local end; connect to it like to a local engine.
    pub socket: PathBuf,
    // Holds the local socket and ssh's log; removed when the tunnel ends.
    _dir: tempfile::TempDir,
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The ssh program and the arguments that come before hermetic's own.
fn ssh_command() -> Vec<String> {
    let configured = std::env::var(SSH_COMMAND_ENV).unwrap_or_default();
    let words: Vec<String> = configured.split_whitespace().map(String::from).collect();
    if words.is_empty() {
        vec!["ssh".into()]
    } else {
        words
    }
}

/// Opens a tunnel to `socket` on `host`; fails with ssh's own last words if it cannot.
pub async fn open(
    display: &str,
    user: Option<&str>,
    host: &str,
    port: Option<u16>,
    socket: &str,
) -> Result<Tunnel> {
    let unreachable = |detail: String| Error::SshTunnel {
        host: display.into(),
        detail,
    };
    let dir = tempfile::Builder::new()
        .prefix("hermetic-ssh-")
        .tempdir()
        .map_err(|e| unreachable(format!("temporary directory: {e}")))?;
    let local = dir.path().join("docker.sock");
    let log = dir.path().join("ssh.log");
    let log_file =
        std::fs::File::create(&log).map_err(|e| unreachable(format!("{}: {e}", log.display())))?;
    let words = ssh_command();
    let mut cmd = Command::new(&words[0]);
    // ssh and whatever it runs (a ProxyCommand) get none of hermetic's secrets.
    hermetic_deps::host::scrub(&mut cmd);
    // Not in the project: a relative `-F ./ssh_config` would otherwise read the project's
    // file, whose ProxyCommand or Match exec runs on the host.
    cmd.current_dir("/");
    cmd.args(&words[1..])
        .args([
            "-T",
            // Never prompt: a runner has no terminal to answer on.
            "-o",
            "BatchMode=yes",
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ServerAliveCountMax=3",
            "-L",
        ])
        .arg(format!("{}:{socket}", local.display()));
    if let Some(p) = port {
        cmd.arg("-p").arg(p.to_string());
    }
    if let Some(u) = user {
        cmd.arg("-l").arg(u);
    }
    // Keeps the session open while hermetic lives: when hermetic goes, stdin closes and
    // the remote `cat` ends, and with it the tunnel.
    cmd.arg("--").arg(host).arg("cat >/dev/null");
    let child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file))
        .spawn()
        .map_err(|e| unreachable(format!("cannot run {}: {e}", words[0])))?;
    let tunnel = Tunnel {
        child: Mutex::new(child),
        socket: local,
        _dir: dir,
    };
    let started = Instant::now();
    loop {
        if tunnel.socket.exists() {
            return Ok(tunnel);
        }
        let exited = tunnel
            .child
            .lock()
            .ok()
            .and_then(|mut c| c.try_wait().ok().flatten());
        if let Some(status) = exited {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            let last = said
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message");
            return Err(unreachable(format!("ssh exited ({status}): {last}")));
        }
        if started.elapsed() > CONNECT_TIMEOUT {
            return Err(unreachable(format!(
                "ssh did not forward the engine's socket within {} s",
                CONNECT_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
