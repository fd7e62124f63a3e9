//! Programs hermetic runs on the host: cargo and git, on a project that may be hostile.
//!
//! Neither may run a program or read a setting that the project chose. cargo reads
//! `.cargo/config.toml` (with `build.rustc`, `build.rustc-wrapper`, `[env]`, credential
//! providers…) from its working directory and every parent, and rustup picks the toolchain
//! named by `rust-toolchain.toml` there (a `path` toolchain is any program): so host cargo
//! runs in `/`, which only root can write, and finds the project through `--manifest-path`
//! alone. git reads the repository's own `.git/config`, which can name programs for
//! fsmonitor, hooks, filters, pagers and signature checks: every git command gets
//! overrides for those, and only commands that never run filters are used.
//!
//! Neither sees hermetic's secrets: `COSIGN_PASSWORD` and the key variables are removed
//! from the environment of every child.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

/// Variables that hold secrets or name key files: never passed to a child process.
pub const SECRET_VARS: &[&str] = &[
    "COSIGN_PASSWORD",
    "RUNNER_KEY",
    "RELEASE_KEY",
    "COSIGN_KEY",
    "HERMETIC_KEY",
    "SIGSTORE_ID_TOKEN",
];

/// Removes every secret variable from `cmd`'s environment.
pub fn scrub(cmd: &mut Command) -> &mut Command {
    for v in SECRET_VARS {
        cmd.env_remove(v);
    }
    cmd
}

/// Where host cargo runs: no project config, toolchain file or parent of one is seen from
/// here, and nothing but root can place one.
pub const NEUTRAL_DIR: &str = "/";

/// `cargo` (or `$CARGO`), run from [`NEUTRAL_DIR`] with no secret in its environment,
/// none of the user's credentials within reach (see [`lend_no_credentials`]) and, once
/// [`HostCommand::sandboxed`], seeing only the system, the toolchain, hermetic's cargo
/// home and `visible`. The caller passes absolute paths (`--manifest-path`, `--config
/// FILE`).
pub fn cargo(visible: Visible) -> std::io::Result<HostCommand> {
    let mut cmd = Command::new(cargo_program());
    cmd.current_dir(NEUTRAL_DIR)
        .env("CARGO_TARGET_DIR", cargo_target_dir());
    scrub(&mut cmd);
    HostCommand::new(cmd, visible)
}

/// The cargo hermetic runs: `$CARGO`, else the first `cargo` on `PATH`, as an absolute
/// path (the sandbox has its own `PATH`).
pub fn cargo_program() -> std::path::PathBuf {
    let named: std::path::PathBuf = std::env::var_os("CARGO")
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "cargo".into())
        .into();
    if named.is_absolute() {
        return named;
    }
    // A bare name is looked up on PATH, once, here.
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(&named))
        .find(|c| c.is_file())
        .unwrap_or(named)
}

/// What a host command may see of the host besides the system and the toolchain.
#[derive(Debug, Clone, Default)]
pub struct Visible {
    /// Read only: the project's tree, a vendored tree, a config file's directory.
    pub read: Vec<std::path::PathBuf>,
    /// Read and written: hermetic's cargo home and host target directory.
    pub write: Vec<std::path::PathBuf>,
}

impl Visible {
    /// The workspace around `manifest_path`, read only.
    pub fn project(manifest_path: &Path) -> Visible {
        let start = manifest_path.parent().unwrap_or(Path::new("."));
        let start = std::fs::canonicalize(start).unwrap_or_else(|_| start.to_path_buf());
        // Where cargo looks for the workspace root: the nearest ancestor whose Cargo.toml
        // has a `[workspace]` (not through a link, and never `/`); else the package alone.
        let top = start
            .ancestors()
            .filter(|d| d.parent().is_some())
            .find(|d| {
                read_small(&d.join("Cargo.toml"), crate::lockfile::MAX_PROJECT_FILE)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|t| t.parse::<toml::Table>().ok())
                    .is_some_and(|t| t.contains_key("workspace"))
            })
            .unwrap_or(&start)
            .to_path_buf();
        Visible {
            read: vec![top],
            write: vec![],
        }
    }

    pub fn and_read(mut self, path: &Path) -> Visible {
        self.read.push(path.to_path_buf());
        self
    }
}

/// A host command, the empty home it runs with (removed when both are done), and what it
/// may see of the host.
pub struct HostCommand {
    cmd: Command,
    home: tempfile::TempDir,
    visible: Visible,
}

impl HostCommand {
    /// Gives `cmd` an empty home of its own and lends it no credentials.
    pub fn new(mut cmd: Command, visible: Visible) -> std::io::Result<HostCommand> {
        let home = tempfile::Builder::new()
            .prefix("hermetic-home-")
            .tempdir()?;
        lend_no_credentials(&mut cmd, home.path());
        Ok(HostCommand { cmd, home, visible })
    }

    /// The command to run: this one inside bubblewrap, with a view of the host made of
    /// the system's programs and libraries, a few files of `/etc` (name resolution and
    /// certificates), the toolchain, its empty home, hermetic's cargo home and target
    /// directory, and what `visible` names; the rest of the host (the user's files, other
    /// projects, `/root`, `/etc/shadow`) is not there. cargo can be made to read any path
    /// it can see (a `sparse+file://` registry named in a dependency's manifest, a path
    /// dependency of a git dependency), so what it can see is what it may read. Its own
    /// pid, ipc and uts namespaces and a new session (no terminal to prompt on); the
    /// network is shared, to reach the registry.
    pub fn sandboxed(&self) -> Result<Command, SandboxMissing> {
        let bwrap = ["/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.is_file())
            .ok_or(SandboxMissing)?;
        let mut b = Command::new(bwrap);
        b.args([
            "--die-with-parent",
            "--new-session",
            // Run as root, the sandbox would keep root's capabilities (and could open host
            // files by handle): none are needed to fetch.
            "--cap-drop",
            "ALL",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
        ]);
        for d in [
            "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
        ] {
            match std::fs::symlink_metadata(d) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(d) {
                        b.arg("--symlink").arg(target).arg(d);
                    }
                }
                Ok(m) if m.is_dir() => {
                    b.args(["--ro-bind", d, d]);
                }
                _ => {}
            }
        }
        // /usr/local holds what the machine's admin installed by hand, in Rust images a
        // cargo home with its credentials: hidden, but for the toolchain bound below.
        if Path::new("/usr/local").is_dir() {
            b.args(["--tmpfs", "/usr/local"]);
        }
        b.args(["--dir", "/etc"]);
        for f in [
            "resolv.conf",
            "hosts",
            "nsswitch.conf",
            "host.conf",
            "gai.conf",
            "services",
            "protocols",
            // Certificates only: /etc/ssl/private holds the machine's keys.
            "ssl/certs",
            "ssl/openssl.cnf",
            "ca-certificates",
            "ca-certificates.conf",
            "pki",
            "passwd",
            "group",
            "localtime",
            "alternatives",
            "ld.so.cache",
            "ld.so.conf",
            "ld.so.conf.d",
        ] {
            let path = format!("/etc/{f}");
            b.args(["--ro-bind-try", &path, &path]);
        }
        let program = std::path::PathBuf::from(self.cmd.get_program());
        if !program.is_absolute() || !program.is_file() {
            // Nothing to run (hermetic names cargo by an absolute path it found): a command
            // that cannot start, which says so, never the command outside the sandbox.
            return Ok(Command::new(
                Path::new("/nonexistent/hermetic").join(program.file_name().unwrap_or_default()),
            ));
        }
        let mut read: Vec<std::path::PathBuf> = self.visible.read.clone();
        if let Some(dir) = program.parent().filter(|d| d.is_absolute()) {
            read.push(dir.to_path_buf());
            // A rustup proxy is a link to rustup, which may live elsewhere.
            if let Ok(real) = std::fs::canonicalize(&program)
                && let Some(real_dir) = real.parent()
            {
                read.push(real_dir.to_path_buf());
            }
        }
        let env_of = |k: &str| {
            self.cmd
                .get_envs()
                .find(|(name, _)| *name == k)
                .and_then(|(_, v)| v.map(std::path::PathBuf::from))
        };
        if let Some(rustup) = env_of("RUSTUP_HOME") {
            read.push(rustup);
        }
        let mut write: Vec<std::path::PathBuf> = self.visible.write.clone();
        write.push(self.home.path().to_path_buf());
        if let Some(cargo_home) = env_of("CARGO_HOME") {
            let _ = std::fs::create_dir_all(&cargo_home);
            write.push(cargo_home);
        }
        if let Some(target) = env_of("CARGO_TARGET_DIR") {
            let _ = std::fs::create_dir_all(&target);
            write.push(target);
        }
        for r in &read {
            b.arg("--ro-bind-try").arg(r).arg(r);
        }
        for w in &write {
            b.arg("--bind-try").arg(w).arg(w);
        }
        b.arg("--chdir")
            .arg(self.cmd.get_current_dir().unwrap_or(Path::new("/")));
        b.arg("--").arg(&program).args(self.cmd.get_args());
        // The environment: what hermetic sets for the command, and of what it inherits only
        // what cargo and git need to reach the network. cargo can be made to print any
        // file it can see, `/proc/self/environ` included, so nothing else of the user's
        // environment (cloud credentials, CI tokens) goes in.
        b.env_clear();
        let mut env: std::collections::BTreeMap<std::ffi::OsString, std::ffi::OsString> =
            std::env::vars_os()
                .filter(|(k, _)| inherited(&k.to_string_lossy()))
                .collect();
        for (k, v) in self.cmd.get_envs() {
            match v {
                Some(v) => env.insert(k.to_os_string(), v.to_os_string()),
                None => env.remove(k),
            };
        }
        let path = format!(
            "{}:/usr/local/bin:/usr/bin:/bin",
            program
                .parent()
                .map(|d| d.display().to_string())
                .unwrap_or_default()
        );
        env.insert("PATH".into(), path.into());
        b.envs(env);
        Ok(b)
    }
}

/// The inherited variables host cargo keeps: locale and time zone, the proxy and
/// certificate settings it and git need to reach a registry, the toolchain's choice, and
/// cargo's own network and registry settings (their tokens and credential providers are
/// removed elsewhere).
fn inherited(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "LANG",
        "LC_ALL",
        "TZ",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "GIT_SSL_CAINFO",
        "RUSTUP_TOOLCHAIN",
    ];
    let secret = name.ends_with("_TOKEN") || name.contains("CREDENTIAL");
    NAMES.contains(&name)
        || (!secret
            && [
                "CARGO_NET_",
                "CARGO_HTTP_",
                "CARGO_REGISTRIES_",
                "CARGO_REGISTRY_",
            ]
            .iter()
            .any(|p| name.starts_with(p)))
}

/// bubblewrap is not installed: host cargo does not run without it.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "bubblewrap (bwrap) is not installed: hermetic runs host cargo only inside it, since a \
     project can make cargo read any file cargo can see"
)]
pub struct SandboxMissing;

impl std::ops::Deref for HostCommand {
    type Target = Command;
    fn deref(&self) -> &Command {
        &self.cmd
    }
}

impl std::ops::DerefMut for HostCommand {
    fn deref_mut(&mut self) -> &mut Command {
        &mut self.cmd
    }
}

/// Variables through which a fetch could authenticate as the user.
const CREDENTIAL_VARS: &[&str] = &[
    "SSH_AUTH_SOCK",
    "GIT_SSL_CERT",
    "GIT_SSL_KEY",
    "GIT_SSL_CERT_PASSWORD_PROTECTED",
    "GIT_PROXY_COMMAND",
    "GIT_SSH_VARIANT",
    "GIT_EXEC_PATH",
    "GIT_TEMPLATE_DIR",
    "SSH_ASKPASS",
    "GIT_ASKPASS",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "XDG_CONFIG_HOME",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "CARGO_REGISTRY_TOKEN",
    "CARGO_REGISTRY_CREDENTIAL_PROVIDER",
    "CARGO_REGISTRY_GLOBAL_CREDENTIAL_PROVIDERS",
    "CARGO_CREDENTIAL_PROVIDER",
];

/// Makes `cmd` fetch as nobody. The project names the URLs host cargo fetches from (git
/// dependencies, registries): answered with a 401, cargo would run the user's git
/// credential helper and send its user name and password to that host, or offer the
/// user's ssh agent, and the repository it then reads (the user's private one) would be
/// built into the project's binary. So cargo gets a home of hermetic's own, empty, in
/// place of the user's (no `~/.gitconfig`, `~/.git-credentials`, `~/.config/git`), no ssh
/// agent, no askpass program and no registry token; `CARGO_HOME` is hermetic's own (see
/// [`crate::cache::cargo_home`]) and `RUSTUP_HOME` is pinned; `home` is an empty
/// directory (a fresh private one: see [`HostCommand`]). A dependency that needs
/// credentials fails to fetch; a user who trusts the project can lend a cargo home
/// (`HERMETIC_CARGO_HOME`).
pub fn lend_no_credentials<'a>(cmd: &'a mut Command, home: &Path) -> &'a mut Command {
    for v in CREDENTIAL_VARS {
        cmd.env_remove(v);
    }
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_REGISTRIES_")
            && (k.ends_with("_TOKEN") || k.ends_with("_CREDENTIAL_PROVIDER"))
        {
            cmd.env_remove(k.as_ref());
        }
    }
    match crate::cache::cargo_home() {
        Some(cargo_home) => cmd.env("CARGO_HOME", cargo_home),
        None => cmd.env("CARGO_HOME", "/nonexistent/hermetic-cargo-home"),
    };
    if let Some(rustup_home) = std::env::var_os("RUSTUP_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| dirs::home_dir().map(|h| h.join(".rustup")))
    {
        cmd.env("RUSTUP_HOME", rustup_home);
    }
    // Every git fetch goes through the git CLI, which honours what follows (libgit2 reads
    // /etc/gitconfig, credential helpers included, whatever the environment says): no
    // global or system config, no prompt, no ssh, and only network protocols, submodules
    // included (a fetched repository's `.gitmodules` can name `file:///…` or `ssh://…`).
    cmd.env("HOME", home)
        .env("CARGO_NET_GIT_FETCH_WITH_CLI", "true")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_SSH_COMMAND", "false")
        .env("GIT_ALLOW_PROTOCOL", NETWORK_PROTOCOLS);
    cmd
}

/// The git protocols host cargo may fetch with unless the user's policy allows more.
pub const NETWORK_PROTOCOLS: &str = "https:http:git";

/// Lets `cmd` fetch git sources over `file` and `ssh` too (with the user's ssh), for
/// sources a policy of the user's lists.
pub fn allow_host_protocols(cmd: &mut Command, file: bool, ssh: bool) {
    let mut protocols = NETWORK_PROTOCOLS.to_string();
    if file {
        protocols.push_str(":file");
    }
    if ssh {
        protocols.push_str(":ssh");
        cmd.env_remove("GIT_SSH_COMMAND");
    }
    cmd.env("GIT_ALLOW_PROTOCOL", protocols);
}

/// Where host cargo may write (it caches `rustc -vV` in its target directory): hermetic's
/// cache, not the project's `target/`, which the project may have made a link to anywhere.
pub fn cargo_target_dir() -> std::path::PathBuf {
    crate::cache::Cache::from_env()
        .root()
        .join("host-cargo-target")
}

/// Settings that make git run a program or consult one; each is turned off for every git
/// command hermetic runs, whatever the repository's config says.
const GIT_OVERRIDES: &[&str] = &[
    "core.fsmonitor=false",
    // Any host file as ignore patterns (the list sent would tell what it holds).
    "core.excludesFile=/dev/null",
    "core.hooksPath=/dev/null",
    "core.untrackedCache=false",
    "core.pager=cat",
    "core.sshCommand=false",
    "core.askPass=false",
    "credential.helper=",
    "diff.external=",
    "log.showSignature=false",
    "gpg.program=false",
    "gpg.ssh.program=false",
    "gpg.x509.program=false",
    "protocol.allow=never",
    // Replace refs and a commit graph can make HEAD's tree look like another's.
    "core.useReplaceRefs=false",
    "core.commitGraph=false",
];

/// `git` on the repository of `workspace` with the overrides above, no system or global
/// config (the user's settings are not needed to list files or read a commit), no replace
/// objects, no prompts, and no secrets. The repository is the one [`repository`] found and
/// accepted, named explicitly (`GIT_DIR`, `GIT_WORK_TREE`): git's own discovery would
/// follow a `.git` file, or `core.worktree`, wherever they point. Without an accepted
/// repository the command has no repository at all, and fails.
pub fn git(workspace: &Path) -> Command {
    // git runs from `/`: a relative workspace (`--source .`) is made absolute first.
    let absolute = std::path::absolute(workspace).unwrap_or_else(|_| workspace.to_path_buf());
    let workspace = absolute.as_path();
    let mut cmd = Command::new("git");
    cmd.current_dir(NEUTRAL_DIR)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_NO_REPLACE_OBJECTS", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env_remove("GIT_CONFIG_PARAMETERS")
        .env_remove("GIT_CONFIG_COUNT")
        .env_remove("GIT_EXTERNAL_DIFF");
    match repository(workspace) {
        Ok(Some(repo)) => {
            // GIT_COMMON_DIR too: a `commondir` file would otherwise send git to another
            // repository's config, refs and objects.
            cmd.env("GIT_DIR", repo.join(".git"))
                .env("GIT_COMMON_DIR", repo.join(".git"))
                .env("GIT_WORK_TREE", &repo);
        }
        // Nothing to read: point git at a directory that is no repository.
        _ => {
            cmd.env("GIT_DIR", "/nonexistent/hermetic-no-repository")
                .env("GIT_WORK_TREE", workspace);
        }
    }
    for o in GIT_OVERRIDES {
        cmd.arg("-c").arg(o);
    }
    cmd.arg("--no-pager").arg("-C").arg(workspace);
    scrub(&mut cmd);
    cmd
}

/// The work tree of the git repository that holds `workspace`: the nearest directory at or
/// above it with a `.git` *directory* (not a link, not a `gitdir:` file, which could point
/// at any repository of the host), whose config includes no other file. `Ok(None)` if there
/// is none (the workspace is then read as a plain directory); an error names a repository
/// that hermetic refuses to read.
pub fn repository(workspace: &Path) -> Result<Option<std::path::PathBuf>, String> {
    let mut dir = Some(workspace);
    while let Some(d) = dir {
        let dot_git = d.join(".git");
        match std::fs::symlink_metadata(&dot_git) {
            Ok(m) if m.file_type().is_dir() => {
                check_repo(&dot_git, &m)?;
                return Ok(Some(d.to_path_buf()));
            }
            // A linked worktree or a submodule's `.git` file, or a link: not followed.
            Ok(_) => return Ok(None),
            Err(_) => dir = d.parent(),
        }
    }
    Ok(None)
}

/// Refuses a repository that is not the user's own (git's "dubious ownership": with
/// `GIT_DIR` named, git no longer checks it), that borrows from other repositories
/// (`commondir`, alternates), whose files git reads at every call are not regular files (a
/// fifo hangs git), or whose config includes other files.
fn check_repo(dot_git: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    let euid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    if euid.is_some_and(|u| u != meta.uid()) {
        return Err(format!(
            "{} belongs to uid {}, not to the user running hermetic: a repository of \
             someone else's decides nothing here (clone it, or run as its owner)",
            dot_git.display(),
            meta.uid()
        ));
    }
    for borrowed in [
        "commondir",
        "objects/info/alternates",
        "objects/info/http-alternates",
    ] {
        if std::fs::symlink_metadata(dot_git.join(borrowed)).is_ok() {
            return Err(format!(
                "{}: the repository borrows from another one ({borrowed}); hermetic reads \
                 only self-contained repositories (`git repack -a -d` and remove the file, \
                 or clone without --shared/--reference)",
                dot_git.display()
            ));
        }
    }
    for file in ["HEAD", "index", "packed-refs", "config", "info/exclude"] {
        if let Ok(m) = std::fs::symlink_metadata(dot_git.join(file))
            && !m.file_type().is_file()
        {
            return Err(format!(
                "{}: not a regular file; git would read through it",
                dot_git.join(file).display()
            ));
        }
    }
    check_repo_config(dot_git)
}

/// Refuses a repository whose config pulls in other files (`[include]`, `[includeIf]`, a
/// per-worktree config): git would read them, and they can be any file of the host (a fifo
/// that hangs every call, another repository's credentials).
fn check_repo_config(dot_git: &Path) -> Result<(), String> {
    let config = dot_git.join("config");
    let text = match read_small(&config, 1 << 20) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).to_lowercase(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", config.display())),
    };
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.contains("[include") || compact.contains("worktreeconfig") {
        return Err(format!(
            "{}: the repository's config includes other files ([include], [includeIf] or \
             extensions.worktreeConfig), which git would read from anywhere on the host: \
             remove them",
            config.display()
        ));
    }
    Ok(())
}

/// Opens a file of the project's that must be a regular file: a link is not followed and a
/// fifo does not block (`O_NOFOLLOW | O_NONBLOCK`), and anything else is refused. Returns
/// the open file and what it is, from the same descriptor.
pub fn open_regular(path: &Path) -> std::io::Result<(std::fs::File, std::fs::Metadata)> {
    use std::os::unix::fs::OpenOptionsExt;
    const FLAGS: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(FLAGS)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.file_type().is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok((f, meta))
}

/// Reads a file of the project's that must be a regular file (see [`open_regular`]) of at
/// most `cap` bytes.
pub fn read_small(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let (f, meta) = open_regular(path)?;
    if meta.len() > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("larger than {cap} bytes"),
        ));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    f.take(cap.saturating_add(1)).read_to_end(&mut data)?;
    if data.len() as u64 > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("larger than {cap} bytes"),
        ));
    }
    Ok(data)
}

/// `url` without user name or password (`https://user:token@host/…` → `https://host/…`):
/// a remote URL from the repository goes into signed documents.
pub fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://{host}{path}"),
        None => url.to_string(),
    }
}

/// Creates `dir` and its missing parents, refusing to pass through a link or a file that
/// lies inside `root`: a project can commit `target/hermetic` (or `dist`) as a link to
/// anywhere on the host, and hermetic would write there. Links outside `root` (the user's
/// own, say a home directory that is a link) are followed.
///
/// The walk goes by real locations, one component at a time, so the answer does not depend
/// on how `dir` is spelled (relative, through `..`, through the user's link to the
/// workspace, or with the workspace's canonical path).
pub fn real_dir(root: &Path, dir: &Path) -> std::io::Result<()> {
    let refuse = |at: &Path, what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{} is {what} inside the workspace, not a directory: hermetic does not \
                 write through it (remove it)",
                at.display()
            ),
        )
    };
    let root = std::fs::canonicalize(root)?;
    let absolute = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()?.join(dir)
    };
    let mut real = std::path::PathBuf::from("/");
    for c in absolute.components() {
        match c {
            std::path::Component::RootDir | std::path::Component::Prefix(_) => {}
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                real.pop();
            }
            std::path::Component::Normal(name) => {
                let next = real.join(name);
                let inside = real.starts_with(&root) || next == root;
                match std::fs::symlink_metadata(&next) {
                    Ok(m) if m.file_type().is_dir() => real = next,
                    Ok(m) if m.file_type().is_symlink() => {
                        if inside && next != root {
                            return Err(refuse(&next, "a link"));
                        }
                        real = std::fs::canonicalize(&next)?;
                    }
                    Ok(_) => return Err(refuse(&next, "a file")),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        std::fs::create_dir(&next).or_else(|e| {
                            // Made meanwhile by a parallel run of ours: fine if a directory.
                            match std::fs::symlink_metadata(&next) {
                                Ok(m) if m.file_type().is_dir() => Ok(()),
                                _ => Err(e),
                            }
                        })?;
                        real = next;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}

/// Runs `git -C workspace ARGS` (see [`git`]) within [`GIT_TIMEOUT`] and returns its
/// standard output on success.
pub fn git_output<I, S>(workspace: &Path, args: I) -> Option<Vec<u8>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = git(workspace);
    cmd.args(args);
    let out = output_within(&mut cmd, None, GIT_TIMEOUT).ok()?;
    out.status.success().then_some(out.stdout)
}

/// The most a child's standard output may hold (git listing a huge tree, say): past it the
/// child is killed and its answer dropped.
pub const OUTPUT_CAP: u64 = 256 << 20;

/// How long one git command may take: listing or hashing a large tree takes seconds; a
/// repository that makes git wait (a fifo somewhere it reads) must not hang hermetic.
pub const GIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs `cmd` with `stdin` fed to it, and kills it if it has not finished within `limit`.
/// Standard output past [`OUTPUT_CAP`] is a failure too: the answer is not kept.
pub fn output_within(
    cmd: &mut Command,
    stdin: Option<Vec<u8>>,
    limit: std::time::Duration,
) -> Result<std::process::Output, RunFailure> {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(RunFailure::NotStarted)?;
    let feeder = match (stdin, child.stdin.take()) {
        (Some(bytes), Some(mut pipe)) => Some(std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })),
        _ => None,
    };
    let (Some(mut out_pipe), Some(mut err_pipe)) = (child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(RunFailure::NotStarted(std::io::Error::other(
            "no output pipes",
        )));
    };
    let reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = (&mut out_pipe).take(OUTPUT_CAP + 1).read_to_end(&mut b);
        // The rest is drained, not kept, so that the child can finish.
        let _ = std::io::copy(&mut out_pipe, &mut std::io::sink());
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = (&mut err_pipe).take(1 << 20).read_to_end(&mut b);
        let _ = std::io::copy(&mut err_pipe, &mut std::io::sink());
        b
    });
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RunFailure::TimedOut(limit));
            }
        }
    };
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let stdout = reader.join().unwrap_or_default();
    if stdout.len() as u64 > OUTPUT_CAP {
        return Err(RunFailure::TooMuchOutput);
    }
    Ok(std::process::Output {
        status,
        stdout,
        stderr: err_reader.join().unwrap_or_default(),
    })
}

/// Why [`output_within`] has no output to give.
#[derive(Debug, thiserror::Error)]
pub enum RunFailure {
    /// The program could not be started (not installed, not executable).
    #[error("could not be started: {0}")]
    NotStarted(std::io::Error),
    #[error("did not finish within {} s and was stopped", .0.as_secs())]
    TimedOut(std::time::Duration),
    #[error("answered more than {} MiB", OUTPUT_CAP >> 20)]
    TooMuchOutput,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(cmd: &Command, key: &str) -> Option<Option<String>> {
        cmd.get_envs()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
    }

    #[test]
    fn children_get_no_secret_and_no_project_directory() {
        let cargo = cargo(Visible::default()).expect("home");
        for cmd in [&*cargo, &git(Path::new("/tmp/p"))] {
            for v in SECRET_VARS {
                assert_eq!(env_of(cmd, v), Some(None), "{v} is not removed");
            }
            assert_eq!(cmd.get_current_dir(), Some(Path::new(NEUTRAL_DIR)));
        }
        let git = git(Path::new("/tmp/p"));
        let args: Vec<String> = git
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.windows(2).any(|w| w == ["-c", "core.fsmonitor=false"]));
        assert!(args.ends_with(&["-C".to_string(), "/tmp/p".to_string()]));
        assert_eq!(
            env_of(&git, "GIT_CONFIG_GLOBAL"),
            Some(Some("/dev/null".into()))
        );
        // cargo fetches as nobody: an empty home, no agent.
        let home = env_of(&cargo, "HOME").flatten().expect("HOME set");
        assert_eq!(std::fs::read_dir(&home).expect("home").count(), 0);
        assert_eq!(env_of(&cargo, "SSH_AUTH_SOCK"), Some(None));
    }

    #[test]
    fn only_a_plain_repository_is_read() {
        let dir = tempfile::tempdir().expect("tmp");
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join("sub")).expect("mkdir");
        assert_eq!(repository(&ws.join("sub")), Ok(None));
        // A `gitdir:` file pointing elsewhere is not followed.
        std::fs::write(ws.join(".git"), "gitdir: /root/other/.git\n").expect("w");
        assert_eq!(repository(&ws.join("sub")), Ok(None));
        std::fs::remove_file(ws.join(".git")).expect("rm");
        std::fs::create_dir(ws.join(".git")).expect("mkdir");
        assert_eq!(repository(&ws.join("sub")), Ok(Some(ws.clone())));
        std::fs::write(
            ws.join(".git/config"),
            "[core]\n\tbare = false\n[ Include ]\n\tpath = /dev/stdin\n",
        )
        .expect("w");
        assert!(repository(&ws).is_err_and(|e| e.contains("includes other files")));
        std::fs::write(ws.join(".git/config"), "[core]\n").expect("w");
        std::fs::write(ws.join(".git/commondir"), "/root/other/.git\n").expect("w");
        assert!(repository(&ws).is_err_and(|e| e.contains("borrows")));
        std::fs::remove_file(ws.join(".git/commondir")).expect("rm");
        let made = Command::new("mkfifo").arg(ws.join(".git/HEAD")).status();
        assert!(made.is_ok_and(|s| s.success()));
        assert!(repository(&ws).is_err_and(|e| e.contains("not a regular file")));
    }

    #[test]
    fn a_hanging_child_is_killed() {
        let started = std::time::Instant::now();
        let out = output_within(
            Command::new("sleep").arg("30"),
            None,
            std::time::Duration::from_millis(200),
        );
        assert!(matches!(out, Err(RunFailure::TimedOut(_))), "{out:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let out = output_within(
            &mut Command::new("cat"),
            Some(b"fed".to_vec()),
            std::time::Duration::from_secs(10),
        )
        .expect("cat");
        assert_eq!(out.stdout, b"fed");
        let out = output_within(
            &mut Command::new("/nonexistent/cargo"),
            None,
            std::time::Duration::from_secs(10),
        );
        assert!(
            matches!(&out, Err(RunFailure::NotStarted(e)) if e.kind() == std::io::ErrorKind::NotFound),
            "{out:?}"
        );
    }

    #[test]
    fn credentials_leave_remote_urls() {
        assert_eq!(
            without_userinfo("https://user:tok@example.com/a/b.git"),
            "https://example.com/a/b.git"
        );
        assert_eq!(without_userinfo("ssh://git@host:22/r"), "ssh://host:22/r");
        assert_eq!(without_userinfo("git@host:r.git"), "git@host:r.git");
        assert_eq!(without_userinfo("https://h/p@q"), "https://h/p@q");
    }

    #[test]
    fn real_dir_refuses_links_inside_the_root_however_spelled() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().join("ws");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(root.join("target")).expect("mkdir");
        std::fs::create_dir_all(&elsewhere).expect("mkdir");
        std::os::unix::fs::symlink(&elsewhere, root.join("target/hermetic")).expect("ln");
        let e = real_dir(&root, &root.join("target/hermetic/logs"));
        assert!(e.is_err_and(|e| e.to_string().contains("a link inside the workspace")));
        real_dir(&root, &root.join("dist/a")).expect("plain dirs are made");
        assert!(root.join("dist/a").is_dir());
        assert!(real_dir(&root, &root.join("dist/../target/hermetic/x")).is_err());
        // Through the user's own link to the workspace (outside it, so followed).
        let user_link = dir.path().join("my-link");
        std::os::unix::fs::symlink(&root, &user_link).expect("ln");
        assert!(real_dir(&root, &user_link.join("target/hermetic/x")).is_err());
        real_dir(&root, &user_link.join("dist/b")).expect("through the user's link");
        assert!(root.join("dist/b").is_dir());
        assert_eq!(std::fs::read_dir(&elsewhere).expect("read").count(), 0);
    }

    #[test]
    fn project_files_are_read_only_as_small_regular_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("Cargo.lock");
        std::fs::write(&f, "x").expect("w");
        assert_eq!(read_small(&f, 10).expect("read"), b"x");
        assert!(read_small(&f, 0).is_err());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&f, &link).expect("ln");
        assert!(read_small(&link, 10).is_err());
        assert!(read_small(Path::new("/dev/zero"), 10).is_err());
    }
}
