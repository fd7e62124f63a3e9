//! A stat index of a verified tree: lets a later run see that nothing changed since the
//! tree was verified without reading it again.
//!
//! Each file is recorded with size, mtime, ctime and inode. Any write, rename over, chmod
//! or replacement changes the ctime (which user space cannot set back), so an unchanged
//! record means unchanged bytes. Anything that differs sends the caller back to full
//! verification against the archives. `hermetic vendor --check` always does the full one.
//!
//! The index is sealed ([`crate::seal`]): a cache writer who edits a file and writes the
//! index of the edited tree gets no fast path, only the full verification.

use crate::error::{IoContext, Result};
use crate::seal::Seal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The seal's kind for an index (its name is the vendor key).
const KIND: &str = "tree-index";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stat {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    mode: u32,
}

#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeIndex {
    /// The vendor key the tree was verified for.
    key: String,
    files: BTreeMap<String, Stat>,
}

#[cfg(unix)]
fn stat_of(meta: &std::fs::Metadata) -> Stat {
    use std::os::unix::fs::MetadataExt;
    Stat {
        size: meta.size(),
        mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
        ino: meta.ino(),
        mode: meta.mode(),
    }
}

#[cfg(not(unix))]
fn stat_of(meta: &std::fs::Metadata) -> Stat {
    // Without ctime there is no sound fast path: make every comparison fail.
    Stat {
        size: meta.len(),
        mtime_ns: -1,
        ctime_ns: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0),
        ino: 0,
        mode: 0,
    }
}

impl TreeIndex {
    /// Records the current state of every file and symlink under `dir`.
    pub fn record(dir: &Path, key: &str) -> Result<TreeIndex> {
        let mut files = BTreeMap::new();
        for entry in walkdir::WalkDir::new(dir) {
            let entry = entry.map_err(|e| crate::Error::Io {
                path: dir.to_path_buf(),
                source: e.into(),
            })?;
            if entry.file_type().is_dir() {
                continue;
            }
            let meta = entry.path().symlink_metadata().at(entry.path())?;
            let rel = entry
                .path()
                .strip_prefix(dir)
                .map(|r| r.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            files.insert(rel, stat_of(&meta));
        }
        Ok(TreeIndex {
            key: key.to_string(),
            files,
        })
    }

    /// Saves the index sealed: whoever can write the directory can change the tree and
    /// write a matching index, but cannot seal it.
    pub fn save(&self, path: &Path, seal: &Seal) -> Result<()> {
        let text = serde_json::to_string(self).unwrap_or_default();
        seal.write(path, KIND, &self.key, &text)
    }

    /// True if `dir` is exactly as recorded in the index file at `path`, for `key`, and
    /// this machine sealed that index.
    pub fn unchanged(path: &Path, dir: &Path, key: &str, seal: &Seal) -> bool {
        TreeIndex::unchanged_digest(path, dir, key, seal).is_some()
    }

    /// Like [`TreeIndex::unchanged`], with the SHA-256 of the index bytes that were judged
    /// (read once: what is named is what was checked).
    pub fn unchanged_digest(path: &Path, dir: &Path, key: &str, seal: &Seal) -> Option<String> {
        let bytes = std::fs::read(path).ok()?;
        let text = seal.open(KIND, key, std::str::from_utf8(&bytes).ok()?)?;
        let saved = serde_json::from_str::<TreeIndex>(&text).ok()?;
        (saved.key == key && TreeIndex::record(dir, key).is_ok_and(|now| now == saved))
            .then(|| crate::hash::sha256_hex(&bytes))
    }
}
