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

/// `cargo` (or `$CARGO`), run from [`NEUTRAL_DIR`] with no secret in its environment. The
/// caller passes absolute paths (`--manifest-path`, `--config FILE`).
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(NEUTRAL_DIR)
        .env("CARGO_TARGET_DIR", cargo_target_dir());
    scrub(&mut cmd);
    cmd
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
            cmd.env("GIT_DIR", repo.join(".git"))
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
                check_repo_config(&dot_git)?;
                return Ok(Some(d.to_path_buf()));
            }
            // A linked worktree or a submodule's `.git` file, or a link: not followed.
            Ok(_) => return Ok(None),
            Err(_) => dir = d.parent(),
        }
    }
    Ok(None)
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

/// Reads a file of the project's that must be a regular file (not a link, fifo or device)
/// of at most `cap` bytes.
pub fn read_small(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // O_NOFOLLOW | O_NONBLOCK (Linux): a link is not followed, a fifo does not block.
    const FLAGS: i32 = 0o400000 | 0o4000;
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
    if meta.len() > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("larger than {cap} bytes"),
        ));
    }
    let mut data = Vec::new();
    f.take(cap + 1).read_to_end(&mut data)?;
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

/// Creates `dir` and every missing directory between `root` and it, refusing to go through
/// anything that is not a real directory: a project can commit `target/hermetic` (or `dist`)
/// as a link to anywhere on the host, and hermetic would write there. `dir` outside `root`
/// is the user's own choice and is created as usual.
pub fn real_dir(root: &Path, dir: &Path) -> std::io::Result<()> {
    let Ok(rel) = dir.strip_prefix(root) else {
        return std::fs::create_dir_all(dir);
    };
    let mut at = root.to_path_buf();
    for c in rel.components() {
        let std::path::Component::Normal(c) = c else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{}: not a plain path under {}",
                    dir.display(),
                    root.display()
                ),
            ));
        };
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "{} is a link or a file, not a directory: hermetic does not write \
                         through it (remove it)",
                        at.display()
                    ),
                ));
            }
            Err(_) => std::fs::create_dir(&at).or_else(|e| {
                // Made meanwhile by a parallel run of ours: fine if it is a real directory.
                match std::fs::symlink_metadata(&at) {
                    Ok(m) if m.file_type().is_dir() => Ok(()),
                    _ => Err(e),
                }
            })?,
        }
    }
    Ok(())
}

/// Runs `git -C workspace ARGS` (see [`git`]) and returns its standard output on success.
pub fn git_output<I, S>(workspace: &Path, args: I) -> Option<Vec<u8>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = git(workspace).args(args).output().ok()?;
    out.status.success().then_some(out.stdout)
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
        for cmd in [cargo(), git(Path::new("/tmp/p"))] {
            for v in SECRET_VARS {
                assert_eq!(env_of(&cmd, v), Some(None), "{v} is not removed");
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
    }
}
