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
    cmd.current_dir(NEUTRAL_DIR);
    scrub(&mut cmd);
    cmd
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
];

/// `git -C workspace` with the overrides above, no system or global config (the user's
/// settings are not needed to list files or read a commit), no prompts, and no secrets.
pub fn git(workspace: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(NEUTRAL_DIR)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_CONFIG_PARAMETERS")
        .env_remove("GIT_EXTERNAL_DIFF");
    for o in GIT_OVERRIDES {
        cmd.arg("-c").arg(o);
    }
    cmd.arg("--no-pager").arg("-C").arg(workspace);
    scrub(&mut cmd);
    cmd
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
