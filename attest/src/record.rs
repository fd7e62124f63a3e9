//! The build record (`hermetic-build.json`) that `hermetic build` leaves in its output
//! directory: everything the attestations are made from, so that `hermetic attest` can
//! write and sign them later, on another machine, without the build machine's files.

use crate::digest::FileDigest;
use crate::error::{Error, IoContext, Result};
use hermetic_deps::DepManifest;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// File name of the record in an output directory.
pub const RECORD: &str = "hermetic-build.json";
/// Bumped whenever the record's shape changes incompatibly.
pub const FORMAT: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildRecord {
    pub format: u32,
    pub hermetic_version: String,
    /// The workspace member whose binaries are released (names the archive).
    pub package: PackageRef,
    /// Target triple of the outputs.
    pub target: String,
    /// File name of the release archive.
    pub archive: String,
    /// Binaries and the archive, sorted by name.
    pub artifacts: Vec<FileDigest>,
    pub source: SourceRef,
    pub profile: String,
    pub features: Vec<String>,
    pub source_date_epoch: i64,
    pub source_date_epoch_origin: String,
    pub lockfile_sha256: String,
    /// SHA-256 of the deterministic archive of the vendored tree sent into the build.
    pub vendor_tree_sha256: String,
    pub image: ImageRef,
    pub environment: Environment,
    pub runner: Runner,
    pub run: RunTimes,
    /// The build log, a byproduct.
    pub log: Option<FileDigest>,
    /// The dependency manifest of the vendoring stage.
    pub deps: DepManifest,
    /// For `hermetic verify`: every runner that produced the same outputs, with what it
    /// varied. Empty for a single build.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verified_by: Vec<VerifiedRunner>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifiedRunner {
    pub runner: String,
    pub engine: String,
    /// Names of the variations applied.
    pub variations: Vec<String>,
    /// The environment it built in.
    pub container: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageRef {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRef {
    /// `git+URL` of the `origin` remote, when there is one.
    pub uri: Option<String>,
    /// The checked-out commit, for a git work tree.
    pub commit: Option<String>,
    /// True if the work tree had changes not in `commit` (then only `tree_sha256` names it).
    pub dirty: bool,
    /// SHA-256 of the deterministic archive of the source files sent into the build.
    pub tree_sha256: String,
    pub files: usize,
    /// The manifest path, relative to the workspace root.
    pub manifest_path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRef {
    pub reference: String,
    /// `sha256:…` content digest of the builder image.
    pub digest: String,
    /// `rustc -vV` inside the image.
    pub toolchain: Option<String>,
    /// The image's definition (suite, mirror, packages, Rust version, epoch), as the image
    /// itself records it, when hermetic made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<serde_json::Value>,
}

impl ImageRef {
    pub fn rustc_release(&self) -> Option<&str> {
        self.toolchain
            .as_deref()?
            .lines()
            .find_map(|l| l.strip_prefix("release: "))
    }
}

/// The fixed environment the build ran in (and the variations applied, if any).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// `NAME=value` variables, in the order they were set.
    pub variables: Vec<String>,
    pub command: Vec<String>,
    /// The container settings (build path, hostname, uid/gid, umask, TZ, locale, jobs…).
    pub container: serde_json::Value,
    /// Names of the settings varied from the defaults (empty for a normal build).
    pub variations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Runner {
    /// Names the runner among several (`local` for a plain build).
    pub id: String,
    /// The Docker endpoint it used.
    pub engine: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunTimes {
    pub invocation_id: String,
    pub started_unix: u64,
    pub finished_unix: u64,
    /// Milliseconds spent in each stage (where a build's time goes).
    #[serde(default)]
    pub stages: StageTimes,
}

/// Milliseconds per stage of a build in the sandbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageTimes {
    /// Image check, packing inputs, volumes, upload, container creation.
    pub prepare_ms: u64,
    /// From container start to its exit: cargo.
    pub build_ms: u64,
    /// Downloading the outputs.
    pub collect_ms: u64,
}

impl BuildRecord {
    pub fn read(path: &Path) -> Result<BuildRecord> {
        let bytes =
            hermetic_deps::host::read_small(path, crate::documents::MAX_DOCUMENT).at(path)?;
        let text = String::from_utf8_lossy(&bytes);
        let probe: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Invalid {
            path: path.into(),
            detail: format!("not JSON: {e}"),
        })?;
        let format = probe.get("format").and_then(|f| f.as_u64()).unwrap_or(0);
        if format != u64::from(FORMAT) {
            return Err(Error::Invalid {
                path: path.into(),
                detail: format!(
                    "build record format {format}, this hermetic reads format {FORMAT}: rebuild with this version"
                ),
            });
        }
        let rec: BuildRecord = serde_json::from_value(probe).map_err(|e| Error::Invalid {
            path: path.into(),
            detail: format!("not a hermetic build record: {e}"),
        })?;
        // Every name becomes a path in the directory: one plain file name each.
        let names = rec
            .artifacts
            .iter()
            .chain(rec.log.as_ref())
            .map(|a| a.name.as_str());
        let mut seen = std::collections::BTreeSet::new();
        for name in names {
            if !is_plain_name(name) || is_reserved_name(name) || !seen.insert(name) {
                return Err(Error::Verification {
                    path: path.into(),
                    failure: crate::verify::Failure::ArtifactName(name.to_string()),
                });
            }
        }
        Ok(rec)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        crate::statement::to_pretty(self)
    }
}

/// One file name, in the directory it is joined to and nowhere else: not empty, no
/// separator, not `.`/`..`, not hidden (where staging files live), no control character.
pub fn is_plain_name(name: &str) -> bool {
    // Characters that change how a name reads (direction overrides, invisible ones).
    let deceptive = |c: char| matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}');
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && !name.chars().any(|c| c.is_control() || deceptive(c))
        // Room for the signature files named after it.
        && name.len() <= 255 - ".sigstore.json".len()
}

/// An artifact name that would collide with a document of the directory or another
/// artifact's signature files.
pub fn is_reserved_name(name: &str) -> bool {
    use crate::documents as d;
    [
        RECORD,
        d::SUMS,
        d::PROVENANCE,
        d::PROVENANCE_BUNDLE,
        d::SPDX,
        d::SPDX_BUNDLE,
        d::CYCLONEDX,
        d::CYCLONEDX_BUNDLE,
    ]
    .contains(&name)
        || name.ends_with(".sig")
        || name.ends_with(".sigstore.json")
}
