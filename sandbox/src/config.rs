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

/// The file's name, looked up beside the workspace's `Cargo.toml`.
pub const FILE: &str = "hermetic.toml";

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
    pub fn load(path: &Path) -> Result<Option<Config>, ConfigError> {
        let read = hermetic_deps::host::read_small(path, hermetic_deps::lockfile::MAX_PROJECT_FILE)
            .and_then(|b| {
                String::from_utf8(b)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            });
        match read {
            Ok(text) => Config::parse(path, &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ConfigError {
                path: path.into(),
                line: 0,
                column: 0,
                message: e.to_string(),
            }),
        }
    }

    /// Parses the text of `path` (relative paths in it are relative to its directory).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
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
        let base = path.parent().unwrap_or(Path::new("."));
        let mut runners = vec![];
        for (i, r) in raw.runners.into_iter().enumerate() {
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
        Ok(Config { runners })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let c = Config::parse(Path::new("/p/hermetic.toml"), text).expect("parses");
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
        let e = Config::parse(path, "[[runners]]\nendpoint = \"b2:2376\"\n")
            .expect_err("not an endpoint");
        assert_eq!((e.line, e.column), (2, 12), "{e}");
        assert!(
            e.to_string()
                .starts_with("/p/hermetic.toml:2:12: runners[0].endpoint")
        );

        let e = Config::parse(path, "[[runners]]\nendpont = \"local\"\n").expect_err("typo");
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("endpont"), "{e}");

        let e = Config::parse(
            path,
            "[[runners]]\nendpoint = \"local\"\nvary = [\"tz\"]\n[[runners]]\nendpoint = \"local\"\n",
        )
        .expect_err("reference varies");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("reference"), "{e}");
    }
}
