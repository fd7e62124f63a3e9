//! Publishing by rename, durably: what a rename makes visible is on disk first.
//!
//! A rename is atomic for readers, but after a power loss or a kernel crash the file
//! system may hold the new name with no data behind it, which looks complete to the next
//! run. So the data is synced before the rename and the directory after it.

use crate::error::{IoContext, Result};
use std::path::Path;

/// Writes `data` at `path` through a fresh temporary name: a reader sees the whole file or
/// the old one, never part of it, even after a crash.
pub fn write(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = crate::cache::Cache::staging_path(path);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .at(&tmp)?;
        f.write_all(data).at(&tmp)?;
        f.sync_all().at(&tmp)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    rename(&tmp, path)
}

/// Renames a synced `from` to `to` and syncs the directory that now names it.
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    if let Err(e) = std::fs::rename(from, to) {
        let _ = std::fs::remove_file(from);
        return Err(e).at(to);
    }
    sync_dir(parent_of(to))
}

/// The directory that names `path` (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Syncs a directory's entries (names made, renamed or removed in it).
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Syncs everything written under `dir`: one `syncfs` of its file system, which costs far
/// less than a sync per file for a tree of thousands.
pub fn sync_tree(dir: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let d = std::fs::File::open(dir).at(dir)?;
    // SAFETY: the descriptor is open for the whole call.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error()).at(dir);
    }
    Ok(())
}

/// Publishes the complete directory `staging` as `dest` (same file system), replacing
/// any `dest` there: synced first, so a crash leaves the old tree, or the new one whole.
pub fn publish_dir(staging: &Path, dest: &Path) -> Result<()> {
    sync_tree(staging)?;
    let parent = parent_of(dest);
    if std::fs::symlink_metadata(dest).is_ok() {
        // One atomic exchange where the file system has it: at no moment is there no
        // output; the old tree is then under the staging name and removed.
        if exchange(staging, dest).is_ok() {
            sync_dir(parent)?;
            remove_any(staging);
            return Ok(());
        }
        let old = crate::cache::Cache::staging_path(dest);
        std::fs::rename(dest, &old).at(dest)?;
        if let Err(e) = std::fs::rename(staging, dest) {
            // Put the old tree back rather than leave no output at all.
            let _ = std::fs::rename(&old, dest);
            return Err(e).at(dest);
        }
        sync_dir(parent)?;
        remove_any(&old);
    } else {
        std::fs::rename(staging, dest).at(dest)?;
        sync_dir(parent)?;
    }
    Ok(())
}

/// `renameat2(RENAME_EXCHANGE)`: swaps two names atomically.
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let a = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let b = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths for the duration of the call.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn remove_any(p: &Path) {
    if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
        let _ = std::fs::remove_dir_all(p);
    } else {
        let _ = std::fs::remove_file(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("test");
        let p = dir.path().join("f");
        write(&p, b"one").expect("test");
        write(&p, b"two").expect("test");
        assert_eq!(std::fs::read(&p).expect("test"), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("test").collect();
        assert_eq!(names.len(), 1, "no temporary left: {names:?}");
    }

    #[test]
    fn a_published_tree_replaces_the_old_one() {
        let dir = tempfile::tempdir().expect("test");
        let dest = dir.path().join("out");
        std::fs::create_dir(&dest).expect("test");
        std::fs::write(dest.join("old"), "x").expect("test");
        let staging = dir.path().join(".out.new");
        std::fs::create_dir(&staging).expect("test");
        std::fs::write(staging.join("new"), "y").expect("test");
        publish_dir(&staging, &dest).expect("test");
        assert!(dest.join("new").is_file() && !dest.join("old").exists());
        assert!(!staging.exists());
        assert_eq!(std::fs::read_dir(dir.path()).expect("test").count(), 1);
    }
}
