//! Reading `Cargo.lock` and classifying where each package comes from.

use crate::error::{Error, Result};
use crate::hash::sha256_hex;
use crate::validate;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The crates.io index as Cargo.lock names it (whatever protocol fetched it).
pub const CRATES_IO_INDEX: &str = "https://github.com/rust-lang/crates.io-index";

/// Where a package comes from, as recorded in Cargo.lock.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// A registry; `name` is `crates-io` for crates.io, otherwise the index URL.
    Registry { name: String, url: String },
    /// A git repository at a resolved commit.
    Git {
        url: String,
        /// What the manifest asked for: `rev=…`, `branch=…`, `tag=…`, or none (default branch).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        reference: Option<GitReference>,
        /// The commit Cargo.lock resolved it to.
        commit: String,
    },
    /// A path inside the workspace, relative to the workspace root.
    Path { path: String },
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GitReference {
    Rev(String),
    Branch(String),
    Tag(String),
}

impl Source {
    /// Parses a Cargo.lock `source` string; `None` means a path package.
    pub fn parse(raw: &str) -> Option<Source> {
        if let Some(url) = raw
            .strip_prefix("registry+")
            .or_else(|| raw.strip_prefix("sparse+"))
        {
            let canonical = url.trim_end_matches('/');
            let name = if canonical == CRATES_IO_INDEX || canonical == "https://index.crates.io" {
                "crates-io".to_string()
            } else {
                url.to_string()
            };
            return Some(Source::Registry {
                name,
                url: raw.to_string(),
            });
        }
        let git = raw.strip_prefix("git+")?;
        let (base, commit) = git.split_once('#').unwrap_or((git, ""));
        let (url, query) = base.split_once('?').unwrap_or((base, ""));
        let reference = query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            match k {
                "rev" => Some(GitReference::Rev(v.to_string())),
                "branch" => Some(GitReference::Branch(v.to_string())),
                "tag" => Some(GitReference::Tag(v.to_string())),
                _ => None,
            }
        });
        Some(Source::Git {
            url: url.to_string(),
            reference,
            commit: commit.to_string(),
        })
    }

    /// The string Cargo.lock uses for this source (`None` for path packages).
    pub fn lock_string(&self) -> Option<String> {
        match self {
            Source::Registry { url, .. } => Some(url.clone()),
            Source::Git {
                url,
                reference,
                commit,
            } => {
                let query = match reference {
                    Some(GitReference::Rev(r)) => format!("?rev={r}"),
                    Some(GitReference::Branch(b)) => format!("?branch={b}"),
                    Some(GitReference::Tag(t)) => format!("?tag={t}"),
                    None => String::new(),
                };
                Some(format!("git+{url}{query}#{commit}"))
            }
            Source::Path { .. } => None,
        }
    }

    pub fn is_crates_io(&self) -> bool {
        matches!(self, Source::Registry { name, .. } if name == "crates-io")
    }
}

/// One `[[package]]` of Cargo.lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    /// The raw `source` string; `None` for path packages.
    pub source: Option<String>,
    pub checksum: Option<String>,
}

impl LockedPackage {
    /// Vendored directory name, as `cargo vendor --versioned-dirs` names it.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }
}

/// The Cargo.lock that governs a package in `dir`: the nearest one at or above it (the
/// workspace root's), else where it would be.
pub fn nearest(dir: &Path) -> PathBuf {
    dir.ancestors()
        .map(|d| d.join("Cargo.lock"))
        .find(|l| l.is_file())
        .unwrap_or_else(|| dir.join("Cargo.lock"))
}

/// The largest project file (Cargo.lock, vendor-policy.toml, hermetic.toml) hermetic reads:
/// far above any real one, far below what would exhaust the host.
pub const MAX_PROJECT_FILE: u64 = 16 << 20;

/// A parsed Cargo.lock.
#[derive(Debug, Clone)]
pub struct Lockfile {
    pub path: PathBuf,
    pub sha256: String,
    pub packages: Vec<LockedPackage>,
}

#[derive(Deserialize)]
struct RawLock {
    version: Option<u32>,
    #[serde(default)]
    package: Vec<RawPackage>,
}

#[derive(Deserialize)]
struct RawPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
}

/// Refuses a `[[package]]` whose fields cargo would never have written.
fn validate_package(path: &Path, index: usize, p: &RawPackage) -> Result<()> {
    let refuse = |field: &'static str, value: &str, why: String| Error::LockfileField {
        path: path.to_path_buf(),
        package: index + 1,
        field,
        value: value.to_string(),
        why,
    };
    validate::package_name(&p.name).map_err(|why| refuse("name", &p.name, why))?;
    validate::version(&p.version).map_err(|why| refuse("version", &p.version, why))?;
    if let Some(sum) = &p.checksum {
        validate::sha256_hex(sum).map_err(|why| refuse("checksum", sum, why))?;
    }
    if let Some(raw) = &p.source {
        match Source::parse(raw) {
            Some(Source::Registry { url, .. }) => {
                let index_url = url
                    .strip_prefix("registry+")
                    .or_else(|| url.strip_prefix("sparse+"))
                    .unwrap_or(&url);
                validate::source_url(index_url).map_err(|why| refuse("source", raw, why))?;
            }
            Some(Source::Git { url, commit, .. }) => {
                validate::source_url(&url).map_err(|why| refuse("source", raw, why))?;
                validate::git_commit(&commit).map_err(|why| refuse("source", raw, why))?;
            }
            Some(Source::Path { .. }) | None => {
                return Err(refuse(
                    "source",
                    raw,
                    "a source is `registry+URL`, `sparse+URL` or `git+URL#COMMIT`".into(),
                ));
            }
        }
    }
    Ok(())
}

impl Lockfile {
    pub fn read(path: &Path) -> Result<Lockfile> {
        let bytes = match crate::host::read_small(path, MAX_PROJECT_FILE) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoLockfile {
                    path: path.to_path_buf(),
                });
            }
            // A link, fifo, device or giant: the project's doing, so the user's to fix.
            Err(e) => {
                return Err(Error::BadLockfile {
                    path: path.to_path_buf(),
                    detail: format!("not readable as a regular file of at most 16 MiB: {e}"),
                });
            }
        };
        let bad = |detail: String| Error::BadLockfile {
            path: path.to_path_buf(),
            detail,
        };
        let text = std::str::from_utf8(&bytes).map_err(|e| bad(e.to_string()))?;
        let raw: RawLock = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        // Format 1 keeps checksums in a [metadata] table that cargo no longer writes;
        // supporting it would mean trusting a second, unverified code path.
        if raw.version.unwrap_or(1) < 3 {
            return Err(bad(format!(
                "lockfile format version {} is too old",
                raw.version.unwrap_or(1)
            )));
        }
        // Names, versions and checksums become paths and arguments later on: every one is
        // checked here, before anything is written.
        for (i, p) in raw.package.iter().enumerate() {
            validate_package(path, i, p)?;
        }
        let mut packages: Vec<LockedPackage> = raw
            .package
            .into_iter()
            .map(|p| LockedPackage {
                name: p.name,
                version: p.version,
                source: p.source,
                checksum: p.checksum,
            })
            .collect();
        packages.sort_by(|a, b| {
            (&a.name, &a.version, &a.source).cmp(&(&b.name, &b.version, &b.source))
        });
        Ok(Lockfile {
            path: path.to_path_buf(),
            sha256: sha256_hex(&bytes),
            packages,
        })
    }

    /// Packages that come from outside the workspace and are therefore vendored.
    pub fn external(&self) -> impl Iterator<Item = &LockedPackage> {
        self.packages.iter().filter(|p| p.source.is_some())
    }

    /// Digest of what is vendored: the external packages with their sources and checksums.
    /// Bumping a workspace member's version does not change it, so the cache survives.
    pub fn vendor_key(&self) -> String {
        let mut text = String::from("hermetic-vendor-tree v1\n");
        for p in self.external() {
            text.push_str(&format!(
                "{} {} {} {}\n",
                p.name,
                p.version,
                p.source.as_deref().unwrap_or(""),
                p.checksum.as_deref().unwrap_or("-")
            ));
        }
        sha256_hex(text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_lockfile_governs() {
        let dir = tempfile::tempdir().expect("tmp");
        let member = dir.path().join("crates/app");
        std::fs::create_dir_all(&member).expect("mkdir");
        assert_eq!(nearest(&member), member.join("Cargo.lock"));
        std::fs::write(dir.path().join("Cargo.lock"), "").expect("w");
        assert_eq!(nearest(&member), dir.path().join("Cargo.lock"));
    }

    #[test]
    fn parses_sources() {
        assert!(
            Source::parse("registry+https://github.com/rust-lang/crates.io-index")
                .is_some_and(|s| s.is_crates_io())
        );
        assert!(Source::parse("sparse+https://index.crates.io/").is_some_and(|s| s.is_crates_io()));
        let git = Source::parse("git+https://example.com/r.git?branch=main#0123abc");
        assert_eq!(
            git,
            Some(Source::Git {
                url: "https://example.com/r.git".into(),
                reference: Some(GitReference::Branch("main".into())),
                commit: "0123abc".into(),
            })
        );
        let raw = "git+https://example.com/r?rev=0123abc#0123abc";
        assert_eq!(
            Source::parse(raw).and_then(|s| s.lock_string()).as_deref(),
            Some(raw)
        );
    }
}
