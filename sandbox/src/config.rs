//! `hermetic.toml`: the runners a project verifies on, so that a pipeline names its engines
//! once instead of on every command line.
//!
//! ```toml
//! [[runners]]            # the first runner is the reference
//! endpoint = "local"
//!
//! [[runners]]
//! name = "builder-2"
//! endpoint = "tcp://builder-2.example:2376"
//! cert-path = "certs/builder-2"   # ca.pem, cert.pem, key.pem; relative to this file
//! vary = ["build-path", "user"]   # default: verify's --vary
//!
//! [[runners]]
//! endpoint = "ssh://build@builder-3.example"
//! ```

use crate::endpoint::{Endpoint, Tls};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The most runners a file may name.
pub const MAX_RUNNERS: usize = 32;

/// The file's name, looked up beside the workspace's `Cargo.toml`.
pub const FILE: &str = "hermetic.toml";

/// Who vouches for the file. The project's own `hermetic.toml` is as untrusted as the rest
/// of the project: if it could choose engines, a hostile project would build on an engine of
/// its own, whose answers hermetic would then sign, with the user's TLS identity or ssh keys.
/// So a file found in the project may only name the local engine; a file the user names
/// (`--config`) is the user's word, and may name any engine and certificate directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Found beside the project's `Cargo.toml`.
    Project,
    /// Named by the user on the command line.
    User,
}

/// A runner as configured.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub name: Option<String>,
    pub endpoint: Endpoint,
    /// As written, for reports and breaker state.
    pub spec: String,
    /// Variations for this runner; `None`: the command's `--vary`.
    pub vary: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub runners: Vec<RunnerConfig>,
    /// `[image] packages`: the Debian packages the project's build scripts need beyond gcc
    /// and libc6-dev (sorted, each once). They become part of the builder image's
    /// definition, and so of its digest.
    pub packages: Vec<String>,
}

/// An error in the file, with where it is and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", path.display())]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    runners: Vec<RawRunner>,
    image: Option<RawImage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    #[serde(default)]
    packages: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRunner {
    name: Option<Spanned<String>>,
    endpoint: Spanned<String>,
    tls_verify: Option<bool>,
    cert_path: Option<PathBuf>,
    vary: Option<Spanned<Vec<String>>>,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, column)
}

impl Config {
    /// Reads `path`; `Ok(None)` if it does not exist.
    pub fn load(path: &Path, origin: Origin) -> Result<Option<Config>, ConfigError> {
        let read = hermetic_deps::host::read_small(path, hermetic_deps::lockfile::MAX_PROJECT_FILE)
            .and_then(|b| {
                String::from_utf8(b)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            });
        match read {
            Ok(text) => Config::parse(path, &text, origin).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ConfigError {
                path: path.into(),
                line: 0,
                column: 0,
                message: e.to_string(),
            }),
        }
    }

    /// The packages a `hermetic.toml` adds to the builder image (none if it does not
    /// exist). Only they are read for this: any project may name them, while its runners
    /// are checked where they are used, as the file's origin allows.
    pub fn packages_in(path: &Path) -> Result<Vec<String>, ConfigError> {
        Ok(Config::load(path, Origin::User)?
            .map(|c| c.packages)
            .unwrap_or_default())
    }

    /// Parses the text of `path` (relative paths in it are relative to its directory).
    pub fn parse(path: &Path, text: &str, origin: Origin) -> Result<Config, ConfigError> {
        let error = |offset: usize, message: String| {
            let (line, column) = line_col(text, offset);
            ConfigError {
                path: path.into(),
                line,
                column,
                message,
            }
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            error(offset, e.message().to_string())
        })?;
        // Each runner is a whole build, with its outputs kept until the end.
        if raw.runners.len() > MAX_RUNNERS {
            return Err(error(
                0,
                format!(
                    "{} runners: at most {MAX_RUNNERS} (each is a whole build)",
                    raw.runners.len()
                ),
            ));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut runners = vec![];
        for (i, r) in raw.runners.into_iter().enumerate() {
            if origin == Origin::Project {
                let local = matches!(r.endpoint.get_ref().as_str(), "local" | "docker+local")
                    && r.cert_path.is_none()
                    && r.tls_verify.is_none();
                if !local {
                    return Err(error(
                        r.endpoint.span().start,
                        format!(
                            "runners[{i}] names the engine {:?}{}: a project's own \
                             hermetic.toml may only use the local engine (it could otherwise \
                             build on an engine of its own and have hermetic sign the answer); \
                             name engines with --runner, or in a file of your own outside the \
                             checkout passed with --config (--config {} only after reviewing \
                             it: a pull request can change it)",
                            r.endpoint.get_ref(),
                            if r.cert_path.is_some() || r.tls_verify.is_some() {
                                " with TLS settings"
                            } else {
                                ""
                            },
                            path.display()
                        ),
                    ));
                }
            }
            let tls = match (r.tls_verify, r.cert_path) {
                (Some(false), Some(_)) => {
                    return Err(error(
                        r.endpoint.span().start,
                        "cert-path with tls-verify = false: remove one of them".into(),
                    ));
                }
                (_, Some(dir)) => Some(Tls::in_dir(&base.join(dir))),
                (Some(true), None) => Some(Tls::in_dir(&crate::endpoint::default_cert_dir())),
                _ => None,
            };
            let spec = r.endpoint.get_ref().clone();
            let mut endpoint = Endpoint::parse(&spec, tls).map_err(|m| {
                error(
                    r.endpoint.span().start,
                    format!("runners[{i}].endpoint: {m}"),
                )
            })?;
            if r.tls_verify == Some(false)
                && let Endpoint::Tcp { tls, .. } = &mut endpoint
            {
                *tls = None;
            }
            if i == 0
                && let Some(v) = &r.vary
                && !v.get_ref().is_empty()
            {
                return Err(error(
                    v.span().start,
                    "the first runner is the reference and varies nothing: remove its vary, \
                     or put another runner first"
                        .into(),
                ));
            }
            // A runner's name becomes a directory of its outputs: one plain path component.
            if let Some(name) = &r.name {
                hermetic_deps::validate::path_component(name.get_ref()).map_err(|why| {
                    error(
                        name.span().start,
                        format!("runners[{i}].name {:?} is refused: {why}", name.get_ref()),
                    )
                })?;
                let n = name.get_ref();
                let numbered = n
                    .strip_prefix("runner-")
                    .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()));
                if numbered || n.starts_with("explain") {
                    return Err(error(
                        name.span().start,
                        format!(
                            "runners[{i}].name {n:?} is reserved: unnamed runners are called \
                             runner-K and explanations are built in explain*; choose another name"
                        ),
                    ));
                }
                if runners
                    .iter()
                    .any(|o: &RunnerConfig| o.name.as_deref() == Some(name.get_ref().as_str()))
                {
                    return Err(error(
                        name.span().start,
                        format!(
                            "runners[{i}].name {:?} is already another runner's: names must differ",
                            name.get_ref()
                        ),
                    ));
                }
            }
            runners.push(RunnerConfig {
                name: r.name.map(Spanned::into_inner),
                endpoint,
                spec,
                vary: r.vary.map(Spanned::into_inner),
            });
        }
        // Packages come from Debian's signed archive: a project may choose them, but each
        // must be a plain package name (it becomes an argument of mmdebstrap).
        let mut packages: Vec<String> = Vec::new();
        let listed = raw.image.map(|i| i.packages).unwrap_or_default();
        if listed.len() > 128 {
            return Err(error(
                listed[128].span().start,
                format!("{} packages: at most 128", listed.len()),
            ));
        }
        for p in listed {
            if !crate::recipe::is_debian_package(p.get_ref()) {
                return Err(error(
                    p.span().start,
                    format!(
                        "image.packages: {:?} is not a Debian package name (lowercase letters, \
                         digits, `+`, `-`, `.`; as `apt-cache search` lists it)",
                        p.get_ref()
                    ),
                ));
            }
            let name = p.into_inner();
            if !crate::recipe::BASE_PACKAGES.contains(&name.as_str()) && !packages.contains(&name) {
                packages.push(name);
            }
        }
        packages.sort();
        Ok(Config { runners, packages })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_are_read_whoever_wrote_the_runners() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("hermetic.toml");
        assert!(Config::packages_in(&path).expect("absent").is_empty());
        std::fs::write(
            &path,
            "[image]\npackages = [\"make\", \"gcc\", \"make\"]\n\n[[runners]]\nendpoint = \"tcp://b2:2376\"\n",
        )
        .expect("w");
        // The base packages and repeats go; a remote runner does not stop the reading.
        assert_eq!(Config::packages_in(&path).expect("read"), ["make"]);
        std::fs::write(&path, "[image]\npackages = [\"gcc-\"]\n").expect("w");
        assert!(Config::packages_in(&path).is_err());
    }

    #[test]
    fn runners_in_order_with_their_settings() {
        let text = r#"
[[runners]]
endpoint = "local"

[[runners]]
name = "b2"
endpoint = "tcp://b2:2376"
cert-path = "certs/b2"
vary = ["build-path"]

[[runners]]
endpoint = "ssh://build@b3:2222"
"#;
        let c = Config::parse(Path::new("/p/hermetic.toml"), text, Origin::User).expect("parses");
        assert_eq!(c.runners.len(), 3);
        assert_eq!(c.runners[1].name.as_deref(), Some("b2"));
        assert_eq!(
            c.runners[1].endpoint,
            Endpoint::Tcp {
                addr: "b2:2376".into(),
                tls: Some(Tls::in_dir(Path::new("/p/certs/b2")))
            }
        );
        assert_eq!(c.runners[1].vary, Some(vec!["build-path".to_string()]));
        assert!(matches!(c.runners[2].endpoint, Endpoint::Ssh { .. }));
    }

    #[test]
    fn errors_name_file_line_and_fix() {
        let path = Path::new("/p/hermetic.toml");
        let e = Config::parse(path, "[[runners]]\nendpoint = \"b2:2376\"\n", Origin::User)
            .expect_err("not an endpoint");
        assert_eq!((e.line, e.column), (2, 12), "{e}");
        assert!(
            e.to_string()
                .starts_with("/p/hermetic.toml:2:12: runners[0].endpoint")
        );

        let e = Config::parse(path, "[[runners]]\nendpont = \"local\"\n", Origin::User)
            .expect_err("typo");
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("endpont"), "{e}");

        let e = Config::parse(
            path,
            "[[runners]]\nendpoint = \"local\"\nvary = [\"tz\"]\n[[runners]]\nendpoint = \"local\"\n",
            Origin::Project,
        )
        .expect_err("reference varies");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("reference"), "{e}");
    }

    #[test]
    fn names_hermetic_gives_are_reserved_and_runners_are_bounded() {
        let path = Path::new("/p/hermetic.toml");
        for name in [
            "runner-1",
            "runner-12",
            "explain",
            "explain-reference-again",
        ] {
            let text = format!(
                "[[runners]]\nendpoint = \"local\"\n[[runners]]\nname = \"{name}\"\nendpoint = \"local\"\n"
            );
            let e = Config::parse(path, &text, Origin::Project).expect_err(name);
            assert!(e.message.contains("reserved"), "{e}");
        }
        let ok = "[[runners]]\nendpoint = \"local\"\n[[runners]]\nname = \"runner-b\"\nendpoint = \"local\"\n";
        assert!(Config::parse(path, ok, Origin::Project).is_ok());
        let many = "[[runners]]\nendpoint = \"local\"\n".repeat(MAX_RUNNERS + 1);
        let e = Config::parse(path, &many, Origin::User).expect_err("too many");
        assert!(e.message.contains("at most 32"), "{e}");
    }

    #[test]
    fn a_projects_own_file_names_only_the_local_engine() {
        let path = Path::new("/p/hermetic.toml");
        let local = "[[runners]]\nendpoint = \"local\"\n[[runners]]\nname = \"b\"\nendpoint = \"local\"\nvary = [\"tz\"]\n";
        assert!(Config::parse(path, local, Origin::Project).is_ok());
        for (text, at) in [
            (
                "[[runners]]\nendpoint = \"tcp://127.0.0.1:2375\"\n",
                (2, 12),
            ),
            (
                "[[runners]]\nendpoint = \"ssh://me@evil.example\"\n",
                (2, 12),
            ),
            (
                "[[runners]]\nendpoint = \"unix:///run/other.sock\"\n",
                (2, 12),
            ),
            (
                "[[runners]]\nendpoint = \"local\"\ncert-path = \"/root/.docker\"\n",
                (2, 12),
            ),
            (
                "[[runners]]\nendpoint = \"local\"\ntls-verify = true\n",
                (2, 12),
            ),
        ] {
            let e = Config::parse(path, text, Origin::Project).expect_err(text);
            assert_eq!((e.line, e.column), at, "{e}");
            assert!(e.message.contains("--config /p/hermetic.toml"), "{e}");
            assert!(Config::parse(path, text, Origin::User).is_ok(), "{text}");
        }
    }
}
