//! The dependency manifest (`deps.json`): what later stages know about dependencies.

use crate::error::{Error, IoContext, Result};
pub use crate::lockfile::{GitReference, Source};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Bumped whenever the shape of `deps.json` changes incompatibly.
pub const FORMAT: u32 = 1;

/// Every package of the locked dependency graph, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepManifest {
    pub format: u32,
    /// SHA-256 of the Cargo.lock this was made from.
    pub lockfile_sha256: String,
    /// Digest of the vendored package set (see `Lockfile::vendor_key`).
    pub vendor_key: String,
    /// Ids of the workspace members, sorted.
    pub workspace_members: Vec<String>,
    /// All packages of the resolve, sorted by id: what the build uses.
    pub packages: Vec<Package>,
    /// Every crate in `vendor/`: all external packages of Cargo.lock, which also pins
    /// optional dependencies that the resolve does not use.
    pub vendored: Vec<VendoredCrate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VendoredCrate {
    /// Directory under `vendor/` (`NAME-VERSION`).
    pub dir: String,
    pub name: String,
    pub version: String,
    /// The Cargo.lock source string.
    pub source: String,
    /// Cargo.lock checksum (SHA-256 of the `.crate` archive); none for git packages.
    pub checksum: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// `name@version`, or `name@version+source` when two sources share a name and version.
    pub id: String,
    pub name: String,
    pub version: String,
    pub source: Source,
    /// The Cargo.lock checksum (SHA-256 of the `.crate` archive) for registry packages.
    pub checksum: Option<String>,
    /// The SPDX license expression from the package manifest, as written.
    pub license: Option<String>,
    pub license_file: Option<String>,
    /// Has a build script (runs code at build time).
    pub build_script: bool,
    /// Is a procedural macro (runs code at build time).
    pub proc_macro: bool,
    pub workspace_member: bool,
    /// Binary targets (workspace members only): what a release build produces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bin_targets: Vec<String>,
    /// Directory under `vendor/`, for vendored packages.
    pub vendor_dir: Option<String>,
    pub dependencies: Vec<Dependency>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub id: String,
    /// `normal`, `build` and/or `dev`, sorted.
    pub kinds: Vec<String>,
}

impl Package {
    /// Purl of the package (`pkg:cargo/NAME@VERSION`), for SBOMs and provenance.
    pub fn purl(&self) -> String {
        format!("pkg:cargo/{}@{}", self.name, self.version)
    }

    /// True if the package runs code while being built.
    pub fn runs_build_time_code(&self) -> bool {
        self.build_script || self.proc_macro
    }
}

impl DepManifest {
    pub fn package(&self, id: &str) -> Option<&Package> {
        self.packages
            .binary_search_by(|p| p.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.packages[i])
    }

    /// Binary targets of all workspace members, sorted.
    pub fn binaries(&self) -> Vec<String> {
        let mut bins: Vec<String> = self
            .packages
            .iter()
            .filter(|p| p.workspace_member)
            .flat_map(|p| p.bin_targets.iter().cloned())
            .collect();
        bins.sort();
        bins.dedup();
        bins
    }

    /// Packages that are not workspace members.
    pub fn dependencies(&self) -> impl Iterator<Item = &Package> {
        self.packages.iter().filter(|p| !p.workspace_member)
    }

    pub fn to_json(&self) -> String {
        // Serialising plain structs with string keys cannot fail.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    pub fn read(path: &Path) -> Result<DepManifest> {
        let text = std::fs::read_to_string(path).at(path)?;
        let m: DepManifest = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        if m.format != FORMAT {
            return Err(Error::BadVendorDir {
                path: path.to_path_buf(),
                detail: format!("deps.json format {} is not {FORMAT}", m.format),
            });
        }
        Ok(m)
    }
}
