//! The content-addressed cache: original `.crate` archives by SHA-256, their file listings,
//! and verified vendored trees by the digest of the locked package set.
//!
//! Layout under the root (`HERMETIC_CACHE`, or the user's cache dir + `hermetic`):
//! - `crates/<sha256>.crate`: the archive whose SHA-256 is the Cargo.lock checksum;
//! - `crates/<sha256>.files.json`: its file listing (derived from the archive, never trusted
//!   over it: a mismatch leads back to the archive);
//! - `trees/<vendor-key>/`: a complete `vendor/` tree with its `config.toml`.
//!
//! Every entry is written under a temporary name and renamed into place, so a killed run
//! never leaves an entry that looks complete.

use crate::archive::{self, Listing};
use crate::error::{Error, IoContext, Result};
use crate::hash::sha256_file;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    /// `HERMETIC_CACHE` if set, else the platform cache directory.
    pub fn from_env() -> Cache {
        let root = std::env::var_os("HERMETIC_CACHE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| dirs::cache_dir().map(|d| d.join("hermetic")))
            .unwrap_or_else(|| std::env::temp_dir().join("hermetic-cache"));
        Cache { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn crate_path(&self, sha256: &str) -> PathBuf {
        self.root.join("crates").join(format!("{sha256}.crate"))
    }

    fn listing_path(&self, sha256: &str) -> PathBuf {
        self.root
            .join("crates")
            .join(format!("{sha256}.files.json"))
    }

    pub fn trees_dir(&self) -> PathBuf {
        self.root.join("trees")
    }

    pub fn tree_dir(&self, key: &str) -> PathBuf {
        self.trees_dir().join(key)
    }

    /// A fresh, unique staging path next to `final_path` (same filesystem, so rename works).
    pub fn staging_path(final_path: &Path) -> PathBuf {
        let name = final_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        final_path.with_file_name(format!(".{name}.partial-{}-{nanos}", std::process::id()))
    }

    /// Copies `src` into the store after checking that its SHA-256 is `sha256`.
    pub fn store_crate(&self, src: &Path, sha256: &str) -> Result<PathBuf> {
        let dest = self.crate_path(sha256);
        if dest.is_file() {
            return Ok(dest);
        }
        let dir = self.root.join("crates");
        std::fs::create_dir_all(&dir).at(&dir)?;
        let tmp = Self::staging_path(&dest);
        std::fs::copy(src, &tmp).at(&tmp)?;
        let actual = sha256_file(&tmp).at(&tmp)?;
        if actual != sha256 {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::BadArchive {
                archive: src.to_path_buf(),
                detail: format!("sha256 is {actual}, expected {sha256}"),
            });
        }
        std::fs::rename(&tmp, &dest).at(&dest)?;
        Ok(dest)
    }

    /// The listing of a stored archive: from its saved listing, or derived from the archive
    /// (after re-checking the archive's digest) and saved. `None` if the archive is not stored.
    pub fn listing(&self, sha256: &str, prefix: &str) -> Result<Option<Listing>> {
        let path = self.listing_path(sha256);
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(listing) = serde_json::from_str::<Listing>(&text)
        {
            return Ok(Some(listing));
        }
        self.derive_listing(sha256, prefix)
    }

    /// Re-derives a listing from the archive itself, ignoring any saved one.
    pub fn derive_listing(&self, sha256: &str, prefix: &str) -> Result<Option<Listing>> {
        let archive = self.crate_path(sha256);
        if !archive.is_file() {
            return Ok(None);
        }
        if sha256_file(&archive).at(&archive)? != sha256 {
            // A corrupted archive is useless: evict it so that it is fetched again.
            let _ = std::fs::remove_file(&archive);
            return Ok(None);
        }
        let listing = archive::read_crate(&archive, prefix, None, None)?;
        self.save_listing(sha256, &listing)?;
        Ok(Some(listing))
    }

    pub(crate) fn save_listing(&self, sha256: &str, listing: &Listing) -> Result<()> {
        let path = self.listing_path(sha256);
        let tmp = Self::staging_path(&path);
        let text = serde_json::to_string(listing).unwrap_or_default();
        std::fs::write(&tmp, text).at(&tmp)?;
        std::fs::rename(&tmp, &path).at(&path)
    }
}

/// The cargo home host cargo fetches into: hermetic's own (`cargo-home` in its cache), not
/// the user's. The user's holds `credentials.toml` (registry tokens a project's registry
/// URL could ask for), `config.toml` (credential providers, programs) and git checkouts
/// fetched with the user's credentials, which a project naming their commit would get.
/// `HERMETIC_CARGO_HOME` lends another, the user's say, with all of that: only for a
/// project the user trusts.
pub fn cargo_home() -> Option<PathBuf> {
    if let Some(lent) = std::env::var_os("HERMETIC_CARGO_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(lent));
    }
    let own = Cache::from_env().root().join("cargo-home");
    std::fs::create_dir_all(&own).ok()?;
    // hermetic writes no configuration there; whatever is found was put by someone else.
    for file in ["config.toml", "config", "credentials.toml", "credentials"] {
        let path = own.join(file);
        if std::fs::symlink_metadata(&path).is_ok() {
            std::fs::remove_file(&path)
                .or_else(|_| std::fs::remove_dir_all(&path))
                .ok()?;
        }
    }
    Some(own)
}

impl Cache {
    /// Takes `NAME-VERSION.crate` from cargo's download cache into the store, if cargo has a
    /// copy whose SHA-256 is `sha256`. Returns the stored path.
    pub fn import_from_cargo_home(
        &self,
        name: &str,
        version: &str,
        sha256: &str,
    ) -> Result<Option<PathBuf>> {
        if self.crate_path(sha256).is_file() {
            return Ok(Some(self.crate_path(sha256)));
        }
        let Some(home) = cargo_home() else {
            return Ok(None);
        };
        let registry_cache = home.join("registry").join("cache");
        let Ok(indexes) = std::fs::read_dir(&registry_cache) else {
            return Ok(None);
        };
        let file_name = format!("{name}-{version}.crate");
        let mut candidates: Vec<PathBuf> = indexes
            .filter_map(|e| e.ok())
            .map(|e| e.path().join(&file_name))
            .filter(|p| p.is_file())
            .collect();
        candidates.sort();
        for candidate in candidates {
            if sha256_file(&candidate).at(&candidate)? == sha256 {
                return self.store_crate(&candidate, sha256).map(Some);
            }
        }
        Ok(None)
    }
}
