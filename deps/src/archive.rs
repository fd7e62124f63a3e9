//! Reading `.crate` archives: listing their files with digests, and extracting them the way
//! `cargo vendor` lays them out.

use crate::error::{Error, IoContext, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path};

/// Files `cargo vendor` leaves out of a vendored crate; skipping the same ones keeps a tree
/// made by `cargo vendor` checkable too.
pub fn is_skipped(rel_path: &str) -> bool {
    rel_path.split('/').any(|c| {
        matches!(
            c,
            ".gitattributes" | ".gitignore" | ".git" | ".cargo-ok" | ".cargo-checksum.json"
        )
    })
}

/// File path (relative to the crate root, `/`-separated) → lowercase hex SHA-256.
pub type Listing = BTreeMap<String, String>;

/// Reads the archive `NAME-VERSION.crate`; when `dest` is given, writes its files there
/// (regular files only, modes normalised to 0644/0755). Returns the listing either way.
pub fn read_crate(archive: &Path, prefix: &str, dest: Option<&Path>) -> Result<Listing> {
    let bad = |detail: String| Error::BadArchive {
        archive: archive.to_path_buf(),
        detail,
    };
    let file = std::fs::File::open(archive).at(archive)?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut listing = Listing::new();
    let entries = tar.entries().map_err(|e| bad(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        let path = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let rel = path
            .strip_prefix(prefix)
            .map_err(|_| bad(format!("entry {} is outside {prefix}/", path.display())))?;
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(bad(format!(
                "entry {} escapes the crate root",
                path.display()
            )));
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            return Err(bad(format!(
                "entry {} is a {:?}, only regular files are expected",
                path.display(),
                kind
            )));
        }
        let rel_str = rel.to_string_lossy().replace('\\', "/");
        if is_skipped(&rel_str) {
            continue;
        }
        let executable = entry
            .header()
            .mode()
            .map(|m| m & 0o111 != 0)
            .unwrap_or(false);
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| bad(format!("{}: {e}", path.display())))?;
        listing.insert(rel_str, hex::encode(Sha256::digest(&bytes)));
        if let Some(dest) = dest {
            let out = dest.join(rel);
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent).at(parent)?;
            }
            std::fs::write(&out, &bytes).at(&out)?;
            set_mode(&out, executable)?;
        }
    }
    Ok(listing)
}

#[cfg(unix)]
pub(crate) fn set_mode(path: &Path, executable: bool) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if executable { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).at(path)
}

#[cfg(not(unix))]
pub(crate) fn set_mode(_path: &Path, _executable: bool) -> Result<()> {
    Ok(())
}
