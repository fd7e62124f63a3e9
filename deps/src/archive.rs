//! Reading `.crate` archives: listing their files with digests, and extracting them the way
//! `cargo vendor` lays them out.

use crate::error::{Error, IoContext, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
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

/// At most this many bytes unpacked from one crate, as cargo allows (512 MiB): a small
/// archive that inflates without end is refused instead of filling the disk.
pub const MAX_UNPACKED: u64 = 512 * 1024 * 1024;

/// The most a crate archive may weigh: crates.io takes 10 MiB by default, a little more by
/// exception. It is read whole into memory, once per crate being unpacked.
pub const MAX_ARCHIVE: u64 = 128 * 1024 * 1024;

/// Reads the archive `NAME-VERSION.crate`; when `dest` is given, writes its files there
/// (regular files only, modes normalised to 0644/0755). Returns the listing either way.
///
/// When `sha256` is given, the archive is hashed first, from the same open file that is then
/// read: bytes that are not the ones Cargo.lock pins are never unpacked.
/// Files stream through a fixed buffer (no allocation sized from a header), and the whole
/// crate may not unpack to more than [`MAX_UNPACKED`].
pub fn read_crate(
    archive: &Path,
    prefix: &str,
    dest: Option<&Path>,
    sha256: Option<&str>,
) -> Result<Listing> {
    read_crate_limited(archive, prefix, dest, sha256, MAX_UNPACKED)
}

pub(crate) fn read_crate_limited(
    archive: &Path,
    prefix: &str,
    dest: Option<&Path>,
    sha256: Option<&str>,
    limit: u64,
) -> Result<Listing> {
    use std::io::{Read, Write};
    let bad = |detail: String| Error::BadArchive {
        archive: archive.to_path_buf(),
        detail,
    };
    // Read once, into memory, and hashed there before anything is listed or extracted:
    // the bytes checked are the bytes unpacked, whatever happens to the file meanwhile.
    // Never through a link, never a FIFO or device: judged by what was opened.
    let (mut file, meta) = crate::host::open_regular(archive)
        .map_err(|e| bad(format!("cannot be opened as a plain file: {e}")))?;
    let max = limit.min(MAX_ARCHIVE);
    if meta.len() > max {
        return Err(bad(format!(
            "is larger than {max} bytes (the limit for one crate archive); refused"
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&mut file)
        .take(max + 1)
        .read_to_end(&mut bytes)
        .at(archive)?;
    if bytes.len() as u64 > max {
        return Err(bad(format!(
            "is larger than {max} bytes (the limit for one crate archive); refused"
        )));
    }
    if let Some(expected) = sha256 {
        let actual = crate::hash::sha256_hex(&bytes);
        if actual != expected {
            return Err(Error::CachedArchiveChecksum {
                archive: archive.to_path_buf(),
                expected: expected.to_string(),
                actual,
            });
        }
    }
    let file = std::io::Cursor::new(bytes);
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut listing = Listing::new();
    let mut unpacked: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
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
        let mut out = match dest {
            Some(dest) => {
                let out = dest.join(rel);
                if let Some(parent) = out.parent() {
                    std::fs::create_dir_all(parent).at(parent)?;
                }
                // create_new: a second entry of the same name (or a file where a directory
                // was made) is refused, never written through.
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&out)
                    .map_err(|e| bad(format!("{}: {e}", path.display())))?;
                Some((out, f))
            }
            None => None,
        };
        let mut hasher = Sha256::new();
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| bad(format!("{}: {e}", path.display())))?;
            if n == 0 {
                break;
            }
            unpacked += n as u64;
            if unpacked > limit {
                if let Some((out, _)) = &out {
                    let _ = std::fs::remove_file(out);
                }
                return Err(bad(format!(
                    "unpacks to more than {limit} bytes (the limit for one crate); refused"
                )));
            }
            hasher.update(&buf[..n]);
            if let Some((out_path, f)) = &mut out {
                f.write_all(&buf[..n]).at(&*out_path)?;
            }
        }
        listing.insert(rel_str, hex::encode(hasher.finalize()));
        if let Some((out_path, _)) = out {
            set_mode(&out_path, executable)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A gzipped tar with `entries` (path, bytes, kind) written as-is (no path checks).
    fn crate_file(dir: &Path, entries: &[(&str, &[u8], tar::EntryType)]) -> std::path::PathBuf {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data, kind) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            h.set_size(if *kind == tar::EntryType::Symlink {
                0
            } else {
                data.len() as u64
            });
            // Raw name bytes: `set_path` would refuse the hostile ones.
            let name = &mut h.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            if *kind == tar::EntryType::Symlink {
                h.set_link_name("/etc/passwd").expect("link");
            }
            h.set_cksum();
            builder.append(&h, *data).expect("append");
        }
        let tar = builder.into_inner().expect("tar");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).expect("gz");
        let path = dir.join("c-1.0.0.crate");
        std::fs::write(&path, gz.finish().expect("gz")).expect("write");
        path
    }

    fn refused(entries: &[(&str, &[u8], tar::EntryType)], limit: u64) -> String {
        let dir = tempfile::tempdir().expect("tmp");
        let archive = crate_file(dir.path(), entries);
        let dest = dir.path().join("out");
        match read_crate_limited(&archive, "c-1.0.0", Some(&dest), None, limit) {
            Err(e) => e.to_string(),
            Ok(l) => panic!("accepted: {l:?}"),
        }
    }

    const FILE: tar::EntryType = tar::EntryType::Regular;

    #[test]
    fn a_good_crate_unpacks_and_lists() {
        let dir = tempfile::tempdir().expect("tmp");
        let archive = crate_file(
            dir.path(),
            &[("c-1.0.0/src/lib.rs", b"pub fn f() {}\n", FILE)],
        );
        let sha = crate::hash::sha256_file(&archive).expect("sha");
        let dest = dir.path().join("out");
        let listing = read_crate(&archive, "c-1.0.0", Some(&dest), Some(&sha)).expect("ok");
        assert_eq!(listing.len(), 1);
        assert_eq!(
            std::fs::read(dest.join("src/lib.rs")).expect("read"),
            b"pub fn f() {}\n"
        );
        // The same bytes under another checksum are not unpacked at all.
        let other = dir.path().join("out2");
        let e = read_crate(&archive, "c-1.0.0", Some(&other), Some(&"0".repeat(64)));
        assert!(
            matches!(e, Err(Error::CachedArchiveChecksum { .. })),
            "{e:?}"
        );
        assert!(!other.exists());
    }

    #[test]
    fn hostile_archives_are_refused() {
        let big = vec![0u8; 4096];
        let msg = refused(
            &[("c-1.0.0/a", &big, FILE), ("c-1.0.0/b", &big, FILE)],
            6000,
        );
        assert!(msg.contains("unpacks to more than 6000 bytes"), "{msg}");
        let msg = refused(&[("c-1.0.0/../../evil", b"x", FILE)], MAX_UNPACKED);
        assert!(msg.contains("escapes the crate root"), "{msg}");
        let msg = refused(&[("other-1.0.0/x", b"x", FILE)], MAX_UNPACKED);
        assert!(msg.contains("outside c-1.0.0/"), "{msg}");
        let msg = refused(
            &[("c-1.0.0/link", b"", tar::EntryType::Symlink)],
            MAX_UNPACKED,
        );
        assert!(msg.contains("only regular files"), "{msg}");
        let msg = refused(
            &[("c-1.0.0/a", b"1", FILE), ("c-1.0.0/a", b"2", FILE)],
            MAX_UNPACKED,
        );
        assert!(msg.contains("exists"), "{msg}");
    }
}
