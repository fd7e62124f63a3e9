//! The content-addressed cache: original `.crate` archives by SHA-256, their file listings,
//! and verified vendored trees by the digest of the locked package set.
//!
//! Layout under the root (`HERMETIC_CACHE`, or the user's cache dir + `hermetic`):
//! - `crates/<sha256>.crate`: the archive whose SHA-256 is the Cargo.lock checksum;
//! - `crates/<sha256>.files.json`: its file listing, derived from the archive and sealed
//!   ([`crate::seal`]): an unsealed or foreign one leads back to the archive;
//! - `trees/<vendor-key>/`: a complete `vendor/` tree with its `config.toml`.
//!
//! Every entry is written under a temporary name and renamed into place, so a killed run
//! never leaves an entry that looks complete.

use crate::archive::{self, Listing};
use crate::error::{Error, IoContext, Result};
use crate::hash::sha256_file;
use crate::seal::Seal;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    /// Made on first use: a run that finds every entry by its digest needs no secret.
    seal: std::sync::OnceLock<Seal>,
}

impl Cache {
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache {
            root: root.into(),
            seal: std::sync::OnceLock::new(),
        }
    }

    /// The seal of the entries that stand for work not redone (stat indexes, listings).
    pub fn seal(&self) -> Result<&Seal> {
        if let Some(s) = self.seal.get() {
            return Ok(s);
        }
        let made = Seal::local(&self.root)?;
        Ok(self.seal.get_or_init(|| made))
    }

    /// `HERMETIC_CACHE` if set, else the platform cache directory.
    pub fn from_env() -> Cache {
        let root = std::env::var_os("HERMETIC_CACHE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| dirs::cache_dir().map(|d| d.join("hermetic")))
            .unwrap_or_else(|| std::env::temp_dir().join("hermetic-cache"));
        Cache::new(root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory `rel` under the root, made if missing, every component of it a real
    /// directory: a link planted there by whoever else writes the cache would make
    /// hermetic write, read or delete files elsewhere.
    pub fn real_dir(&self, rel: &str) -> Result<PathBuf> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::create_dir_all(&self.root).at(&self.root)?;
        let mut at = self.root.clone();
        for part in Path::new(rel).components() {
            at.push(part);
            match std::fs::symlink_metadata(&at) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(Error::BadCache {
                        path: at,
                        detail: "is not a directory (a link?): hermetic does not follow it".into(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    match std::fs::DirBuilder::new().mode(0o700).create(&at) {
                        Ok(()) => {}
                        // Made by a run beside this one: checked on the next turn.
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                            if !std::fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir()) {
                                return Err(Error::BadCache {
                                    path: at,
                                    detail: "is not a directory".into(),
                                });
                            }
                        }
                        Err(e) => return Err(e).at(&at),
                    }
                }
                Err(e) => return Err(e).at(&at),
            }
        }
        Ok(at)
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
        self.real_dir("crates")?;
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
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .at(&tmp)?;
        crate::durable::rename(&tmp, &dest)?;
        Ok(dest)
    }

    /// The listing of a stored archive: from its saved listing if this machine sealed it,
    /// else derived from the archive (re-hashed as it is read) and saved. `None` if the
    /// archive is not stored, or was not the one its name says (then it is evicted).
    pub fn listing(&self, sha256: &str, prefix: &str) -> Result<Option<Listing>> {
        let path = self.listing_path(sha256);
        if let Some(text) = self
            .seal()?
            .read(&path, LISTING, &listing_name(sha256, prefix))
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
        match archive::read_crate(&archive, prefix, None, Some(sha256)) {
            Ok(listing) => {
                self.save_listing(sha256, prefix, &listing)?;
                Ok(Some(listing))
            }
            Err(Error::CachedArchiveChecksum { .. }) => {
                // Not the archive Cargo.lock pins: useless, evicted so that it is fetched
                // again.
                self.evict(sha256);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Removes an archive and its listing: neither is the truth any more.
    pub fn evict(&self, sha256: &str) {
        if self.real_dir("crates").is_ok() {
            let _ = std::fs::remove_file(self.crate_path(sha256));
            let _ = std::fs::remove_file(self.listing_path(sha256));
        }
    }

    pub(crate) fn save_listing(&self, sha256: &str, prefix: &str, listing: &Listing) -> Result<()> {
        self.real_dir("crates")?;
        let text = serde_json::to_string(listing).unwrap_or_default();
        self.seal()?.write(
            &self.listing_path(sha256),
            LISTING,
            &listing_name(sha256, prefix),
            &text,
        )
    }
}

/// The seal's kind for a saved listing (its name is the archive's SHA-256 and the folder
/// its files were listed under).
const LISTING: &str = "listing";

fn listing_name(sha256: &str, prefix: &str) -> String {
    format!("{sha256}\n{prefix}")
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
    let own = Cache::from_env().real_dir("cargo-home").ok()?;
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
        // Real directories and files only, never links: a candidate may be removed below.
        let real_dir = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
        if !real_dir(&home.join("registry")) || !real_dir(&registry_cache) {
            return Ok(None);
        }
        let Ok(indexes) = std::fs::read_dir(&registry_cache) else {
            return Ok(None);
        };
        let file_name = format!("{name}-{version}.crate");
        let mut candidates: Vec<PathBuf> = indexes
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path().join(&file_name))
            .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
            .collect();
        candidates.sort();
        let own = std::env::var_os("HERMETIC_CARGO_HOME").is_none_or(|v| v.is_empty());
        for candidate in candidates {
            if sha256_file(&candidate).at(&candidate)? == sha256 {
                return self.store_crate(&candidate, sha256).map(Some);
            }
            // cargo never re-checks a download it already has: in hermetic's own cargo
            // home, a wrong one is removed so that `cargo fetch` gets the real one.
            if own {
                let _ = std::fs::remove_file(&candidate);
            }
        }
        Ok(None)
    }
}
