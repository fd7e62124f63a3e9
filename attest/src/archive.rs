//! A release archive that is the same bytes whenever it is made from the same files.
//!
//! The `tar` crate's `append_dir_all` walks in directory order and follows symlinks, and
//! `HeaderMode::Deterministic` uses its own fixed mtime; so every header is built here:
//! entries sorted, mtime = SOURCE_DATE_EPOCH, uid/gid 0, no user/group names, modes 0644 or
//! 0755. Compression is pinned too: gzip framing written here (mtime 0, OS byte 255) around
//! raw deflate from `zlib-rs` (called directly) at a fixed level and chunk size, so no other
//! crate's choice of `flate2` backend, nor the number of cores, can change the bytes.
//! `zlib-rs` uses SIMD only where the result is exact (match lengths, hash sliding), so the
//! CPU does not change them either; [`tests`] pins the bytes of a known input.

use crate::error::{IoContext, Result};
use std::path::{Path, PathBuf};

/// Deflate level of release archives. Changing it changes every archive's digest. Level 6
/// (gzip's default): level 9 takes four times as long on release binaries for ~1% less.
/// On ripgrep's 27 MB binary, `zlib-rs` takes 0.41 s on one core where `miniz_oxide` took
/// 1.14 s, for 0.6% more bytes.
pub const LEVEL: u8 = 6;

/// A file to put into an archive.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path inside the archive, `/`-separated.
    pub name: String,
    pub source: PathBuf,
    pub executable: bool,
}

/// Writes `entries` under the directory `prefix/` as a deterministic `tar.gz` at `dest`.
pub fn write_tar_gz(dest: &Path, prefix: &str, entries: &[Entry], mtime: i64) -> Result<()> {
    let tar = tar_bytes(prefix, entries, mtime)?;
    let gz = gzip(&tar).at(dest)?;
    let tmp = dest.with_extension("partial");
    std::fs::write(&tmp, gz).at(&tmp)?;
    std::fs::rename(&tmp, dest).at(dest)
}

fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: i64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime.max(0) as u64);
    h.set_size(size);
    // Empty names: the builder's account must not leak into the archive.
    let _ = h.set_username("");
    let _ = h.set_groupname("");
    h
}

/// The uncompressed tar stream.
pub fn tar_bytes(prefix: &str, entries: &[Entry], mtime: i64) -> Result<Vec<u8>> {
    let mut sorted = entries.to_vec();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut builder = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    dirs.insert(prefix.to_string());
    for e in &sorted {
        let mut parts: Vec<&str> = e.name.split('/').collect();
        parts.pop();
        let mut cur = prefix.to_string();
        for p in parts {
            cur = format!("{cur}/{p}");
            dirs.insert(cur.clone());
        }
    }
    // Directories first, each before anything inside it (sorted order guarantees that).
    for d in &dirs {
        let mut h = header(tar::EntryType::Directory, 0o755, 0, mtime);
        builder
            .append_data(&mut h, format!("{d}/"), std::io::empty())
            .at(d.as_str())?;
    }
    for e in &sorted {
        let data = std::fs::read(&e.source).at(&e.source)?;
        let mode = if e.executable { 0o755 } else { 0o644 };
        let mut h = header(tar::EntryType::Regular, mode, data.len() as u64, mtime);
        builder
            .append_data(&mut h, format!("{prefix}/{}", e.name), data.as_slice())
            .at(&e.source)?;
    }
    builder.into_inner().at(prefix)
}

/// Input is deflated in independent chunks of this size, in parallel. Fixed, so that the
/// bytes do not depend on the number of threads; changing it changes every archive.
pub const CHUNK: usize = 1 << 20;

/// Raw deflate of one chunk: ends with a sync flush (byte-aligned, not final) unless it is
/// the last, so that the concatenation of all chunks is one valid deflate stream.
fn deflate_chunk(chunk: &[u8], last: bool) -> std::io::Result<Vec<u8>> {
    use zlib_rs::{Deflate, DeflateFlush, Status};
    let mut d = Deflate::new(i32::from(LEVEL), false, 15);
    let flush = if last {
        DeflateFlush::Finish
    } else {
        DeflateFlush::SyncFlush
    };
    let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    // The bound, plus room for the sync flush's empty stored block: one call is enough.
    let mut out = vec![0u8; zlib_rs::compress_bound(chunk.len()) + 16];
    loop {
        let (read, written) = (count(d.total_in()), count(d.total_out()));
        let status = d
            .compress(&chunk[read..], &mut out[written..], flush)
            .map_err(|e| std::io::Error::other(format!("deflate: {e:?}")))?;
        let (read, written) = (count(d.total_in()), count(d.total_out()));
        // Done: the final block is out, or (sync flush) all input is in and the output
        // did not fill up.
        let done = if last {
            status == Status::StreamEnd
        } else {
            read == chunk.len() && written < out.len()
        };
        if done {
            out.truncate(written);
            return Ok(out);
        }
        let len = out.len();
        out.resize(len * 2, 0);
    }
}

/// Gzip (RFC 1952) with a fixed header: no name, mtime 0, OS 255 (unknown). The deflate
/// stream is made of independently compressed chunks (as `pigz --independent` does).
pub fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use rayon::prelude::*;
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![data]
    } else {
        data.chunks(CHUNK).collect()
    };
    let n = chunks.len();
    let parts: Vec<Vec<u8>> = chunks
        .par_iter()
        .enumerate()
        .map(|(i, c)| deflate_chunk(c, i + 1 == n))
        .collect::<std::io::Result<_>>()?;
    let mut out = Vec::with_capacity(parts.iter().map(Vec::len).sum::<usize>() + 18);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255]);
    for p in &parts {
        out.extend_from_slice(p);
    }
    out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn same_files_same_bytes_and_a_valid_gzip_tar() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("bin"), b"\x7fELF...").expect("write");
        std::fs::write(dir.path().join("README"), b"hi").expect("write");
        let entries = vec![
            Entry {
                name: "bin/tool".into(),
                source: dir.path().join("bin"),
                executable: true,
            },
            Entry {
                name: "README".into(),
                source: dir.path().join("README"),
                executable: false,
            },
        ];
        let a = dir.path().join("a.tar.gz");
        let b = dir.path().join("b.tar.gz");
        write_tar_gz(&a, "tool-1.0", &entries, 1_700_000_000).expect("a");
        let mut reversed = entries.clone();
        reversed.reverse();
        write_tar_gz(&b, "tool-1.0", &reversed, 1_700_000_000).expect("b");
        let a_bytes = std::fs::read(&a).expect("read");
        assert_eq!(a_bytes, std::fs::read(&b).expect("read"));

        // Decodes with an independent gzip reader (the system's `gzip`) and lists in order.
        let out = std::process::Command::new("tar")
            .args(["-tvzf"])
            .arg(&a)
            .output()
            .expect("tar");
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{listing}");
        let names: Vec<&str> = listing
            .lines()
            .filter_map(|l| l.split_whitespace().last())
            .collect();
        assert_eq!(
            names,
            [
                "tool-1.0/",
                "tool-1.0/bin/",
                "tool-1.0/README",
                "tool-1.0/bin/tool"
            ]
        );
        assert!(listing.contains("-rwxr-xr-x 0/0"), "{listing}");
        assert!(
            listing.contains("2023-11-14"),
            "mtime is SOURCE_DATE_EPOCH: {listing}"
        );
        let mut gz_header = [0u8; 10];
        std::fs::File::open(&a)
            .expect("open")
            .read_exact(&mut gz_header)
            .expect("read");
        assert_eq!(gz_header[4..8], [0, 0, 0, 0], "gzip mtime 0");
        assert_eq!(gz_header[9], 255, "gzip OS unknown");
    }

    #[test]
    fn chunked_gzip_decodes_and_does_not_depend_on_threads() {
        // 3.5 chunks of compressible, non-repeating data.
        let data: Vec<u8> = (0..(CHUNK * 7 / 2) as u64)
            .map(|i| ((i * 2654435761) >> 13) as u8 % 16 + b'a')
            .collect();
        let many = gzip(&data).expect("gzip");
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("pool")
            .install(|| gzip(&data))
            .expect("gzip");
        assert_eq!(many, one);
        // The bytes themselves are pinned: a change of deflate implementation, version or
        // settings that moves them changes every release archive, and must be deliberate.
        assert_eq!(
            hermetic_deps::hash::sha256_hex(&many),
            "0609ecd37822e3e73436779e0b0293a1df79213055f32e8b7c03b4698f6b5e48",
            "the archive bytes moved"
        );
        for input in [data.as_slice(), b"".as_slice()] {
            let gz = gzip(input).expect("gzip");
            let mut child = std::process::Command::new("gzip")
                .args(["-dc"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("gzip");
            let mut stdin = child.stdin.take().expect("stdin");
            let writer = std::thread::spawn(move || {
                use std::io::Write;
                stdin.write_all(&gz).expect("write");
            });
            let out = child.wait_with_output().expect("gzip output");
            writer.join().expect("writer");
            assert!(out.status.success());
            assert_eq!(out.stdout, input);
        }
    }
}
