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
    let mut sorted = entries.to_vec();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = sorted.iter().map(|e| e.name.as_str()).collect();
    let mut stream = ArchiveStream::new(prefix, &names, mtime).at(dest)?;
    for e in &sorted {
        let mut file = std::fs::File::open(&e.source).at(&e.source)?;
        let size = file.metadata().at(&e.source)?.len();
        stream.begin(&e.name, size, e.executable).at(&e.source)?;
        let mut buf = vec![0u8; 1 << 16];
        let mut copied = 0u64;
        loop {
            let n = std::io::Read::read(&mut file, &mut buf).at(&e.source)?;
            if n == 0 {
                break;
            }
            copied += n as u64;
            stream.write(&buf[..n]).at(&e.source)?;
        }
        if copied != size {
            return Err(std::io::Error::other(
                "the file changed size while it was archived",
            ))
            .at(&e.source);
        }
    }
    let gz = stream.finish().at(dest)?;
    let tmp = dest.with_extension("partial");
    std::fs::write(&tmp, gz).at(&tmp)?;
    std::fs::rename(&tmp, dest).at(dest)
}

/// Directories of `prefix/` needed for `names`, each before anything inside it.
fn dirs(prefix: &str, names: &[&str]) -> std::collections::BTreeSet<String> {
    let mut dirs = std::collections::BTreeSet::new();
    dirs.insert(prefix.to_string());
    for name in names {
        let mut parts: Vec<&str> = name.split('/').collect();
        parts.pop();
        let mut cur = prefix.to_string();
        for p in parts {
            cur = format!("{cur}/{p}");
            dirs.insert(cur.clone());
        }
    }
    dirs
}

type Part = std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>;

/// A release archive made while its files arrive, with the same bytes as [`write_tar_gz`]:
/// each [`CHUNK`] of the tar stream is deflated on the rayon pool as soon as it is full, so
/// compression overlaps with whatever delivers the files (a download from the engine).
/// Files must come in name order, each with the size announced.
pub struct ArchiveStream {
    prefix: String,
    mtime: i64,
    /// Names still to come, in order.
    pending: std::collections::VecDeque<String>,
    /// Builds headers (long names included); its buffer is drained after each one.
    headers: tar::Builder<Vec<u8>>,
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
    len: u64,
    parts: Vec<Part>,
    /// Bytes of the current file still expected.
    remaining: u64,
    /// Size of the current file (for its padding).
    size: u64,
}

impl ArchiveStream {
    /// An archive of the files `names` (`/`-separated, relative to `prefix/`).
    pub fn new(prefix: &str, names: &[&str], mtime: i64) -> std::io::Result<ArchiveStream> {
        let mut sorted: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        sorted.sort();
        let mut stream = ArchiveStream {
            prefix: prefix.to_string(),
            mtime,
            pending: sorted.into(),
            headers: tar::Builder::new(Vec::new()),
            buf: Vec::with_capacity(CHUNK * 2),
            crc: crc32fast::Hasher::new(),
            len: 0,
            parts: Vec::new(),
            remaining: 0,
            size: 0,
        };
        for d in dirs(prefix, names) {
            let mut h = header(tar::EntryType::Directory, 0o755, 0, mtime);
            stream
                .headers
                .append_data(&mut h, format!("{d}/"), std::io::empty())?;
            stream.take_headers();
        }
        Ok(stream)
    }

    fn take_headers(&mut self) {
        let bytes = std::mem::take(self.headers.get_mut());
        self.push(&bytes);
    }

    /// Appends tar bytes; every full chunk that more bytes follow goes to the pool.
    fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            // A chunk is sent only once a byte after it exists: the last one is finished
            // differently.
            if self.buf.len() == CHUNK {
                let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK * 2));
                self.crc.update(&chunk);
                self.len += chunk.len() as u64;
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                rayon::spawn(move || {
                    let _ = tx.send(deflate_chunk(&chunk, false));
                });
                self.parts.push(rx);
            }
            let take = (CHUNK - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
    }

    /// Starts the next file: `name` must be the next in name order, and exactly `size`
    /// bytes must follow.
    pub fn begin(&mut self, name: &str, size: u64, executable: bool) -> std::io::Result<()> {
        if self.remaining != 0 {
            return Err(std::io::Error::other(format!(
                "{name}: the previous file is {} bytes short",
                self.remaining
            )));
        }
        if self.pending.front().map(String::as_str) != Some(name) {
            return Err(std::io::Error::other(format!(
                "{name}: not the next file of the archive (expected {:?})",
                self.pending.front()
            )));
        }
        self.pending.pop_front();
        let mode = if executable { 0o755 } else { 0o644 };
        let mut h = header(tar::EntryType::Regular, mode, size, self.mtime);
        let path = format!("{}/{name}", self.prefix);
        self.headers.append_data(&mut h, path, std::io::empty())?;
        self.take_headers();
        self.remaining = size;
        self.size = size;
        self.pad_if_done();
        Ok(())
    }

    /// The current file's next bytes.
    pub fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        if data.len() as u64 > self.remaining {
            return Err(std::io::Error::other(
                "more bytes than the file's announced size",
            ));
        }
        self.push(data);
        self.remaining -= data.len() as u64;
        self.pad_if_done();
        Ok(())
    }

    fn pad_if_done(&mut self) {
        if self.remaining == 0 && !self.size.is_multiple_of(512) {
            let pad = 512 - (self.size % 512) as usize;
            self.push(&[0u8; 512][..pad]);
            self.size = 0;
        }
    }

    /// The `.tar.gz` bytes, once every file is in.
    pub fn finish(mut self) -> std::io::Result<Vec<u8>> {
        if self.remaining != 0 || !self.pending.is_empty() {
            return Err(std::io::Error::other(format!(
                "the archive is incomplete: {} byte(s) and {} file(s) missing",
                self.remaining,
                self.pending.len()
            )));
        }
        let headers = std::mem::replace(&mut self.headers, tar::Builder::new(Vec::new()));
        let footer = headers.into_inner()?;
        self.push(&footer);
        let last = std::mem::take(&mut self.buf);
        self.crc.update(&last);
        self.len += last.len() as u64;
        let tail = deflate_chunk(&last, true)?;
        let mut out = Vec::with_capacity(18 + tail.len());
        out.extend_from_slice(&GZIP_HEADER);
        for part in std::mem::take(&mut self.parts) {
            let bytes = part
                .recv()
                .map_err(|_| std::io::Error::other("a deflate task failed"))??;
            out.extend_from_slice(&bytes);
        }
        out.extend_from_slice(&tail);
        out.extend_from_slice(&self.crc.clone().finalize().to_le_bytes());
        out.extend_from_slice(&(self.len as u32).to_le_bytes());
        Ok(out)
    }
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

/// The uncompressed tar stream, made in one piece: the reference [`ArchiveStream`] is
/// tested against.
#[cfg(test)]
fn tar_bytes(prefix: &str, entries: &[Entry], mtime: i64) -> Result<Vec<u8>> {
    let mut sorted = entries.to_vec();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut builder = tar::Builder::new(Vec::new());
    let names: Vec<&str> = sorted.iter().map(|e| e.name.as_str()).collect();
    let dirs = dirs(prefix, &names);
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

/// The fixed gzip header: deflate, no flags and no name, mtime 0, XFL 2, OS 255 (unknown).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255];

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
/// stream is made of independently compressed chunks (as `pigz --independent` does). The
/// one-piece form of what [`ArchiveStream`] writes, kept as its tests' reference.
#[cfg(test)]
fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
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
    out.extend_from_slice(&GZIP_HEADER);
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

    /// Files of the given sizes, their bytes, and the archive made the plain way.
    fn reference(dir: &Path, files: &[(&str, usize)]) -> (Vec<Entry>, Vec<Vec<u8>>, Vec<u8>) {
        let mut entries = vec![];
        let mut contents = vec![];
        for (i, (name, size)) in files.iter().enumerate() {
            let data: Vec<u8> = (0..*size as u64)
                .map(|k| ((k * 2654435761 + i as u64) >> 11) as u8)
                .collect();
            let source = dir.join(format!("f{i}"));
            std::fs::write(&source, &data).expect("write");
            entries.push(Entry {
                name: name.to_string(),
                source,
                executable: i % 2 == 0,
            });
            contents.push(data);
        }
        let tar = tar_bytes("p-1.0", &entries, 1_700_000_000).expect("tar");
        if files == [("x", CHUNK - 2 * 512 - 1024)] {
            assert_eq!(tar.len(), CHUNK);
        }
        (entries, contents, gzip(&tar).expect("gz"))
    }

    #[test]
    fn the_stream_makes_the_same_bytes_however_files_arrive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let long = format!("deep/{}/tool", "d".repeat(120));
        let cases: Vec<Vec<(&str, usize)>> = vec![
            vec![("rg", 0)],
            vec![("rg", 1)],
            vec![("a", 511), ("b", 512), ("c", 513)],
            // The tar stream ends exactly on a chunk boundary: the directory's and the
            // file's headers, the data, the 1024-byte footer.
            vec![("x", CHUNK - 2 * 512 - 1024)],
            vec![("x", CHUNK - 2 * 512 - 1024 + 1)],
            vec![
                ("tool", 2 * CHUNK + 77),
                ("sub/helper", CHUNK / 3),
                (long.as_str(), 9),
            ],
        ];
        for files in cases {
            let (entries, contents, plain) = reference(dir.path(), &files);
            let mut order: Vec<usize> = (0..entries.len()).collect();
            order.sort_by(|a, b| entries[*a].name.cmp(&entries[*b].name));
            let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
            // Pieces of odd sizes, as a download delivers them.
            for piece in [1usize, 4093, 1 << 20, usize::MAX] {
                if piece == 1 && contents.iter().map(Vec::len).sum::<usize>() > 100_000 {
                    continue;
                }
                let mut stream = ArchiveStream::new("p-1.0", &names, 1_700_000_000).expect("new");
                for i in &order {
                    let data = &contents[*i];
                    stream
                        .begin(&entries[*i].name, data.len() as u64, entries[*i].executable)
                        .expect("begin");
                    for part in data.chunks(piece.min(data.len().max(1))) {
                        stream.write(part).expect("write");
                    }
                }
                let streamed = stream.finish().expect("finish");
                assert!(streamed == plain, "{files:?} in pieces of {piece}");
            }
            let dest = dir.path().join("w.tar.gz");
            write_tar_gz(&dest, "p-1.0", &entries, 1_700_000_000).expect("write");
            assert!(std::fs::read(&dest).expect("read") == plain, "{files:?}");
        }
    }

    #[test]
    fn the_stream_refuses_what_would_make_a_wrong_archive() {
        let mut s = ArchiveStream::new("p", &["a", "b"], 0).expect("new");
        assert!(s.begin("b", 1, true).is_err(), "out of order");
        s.begin("a", 2, true).expect("a");
        s.write(b"x").expect("one byte");
        assert!(s.begin("b", 1, true).is_err(), "a is one byte short");
        assert!(s.write(b"yz").is_err(), "more than announced");
        let mut s = ArchiveStream::new("p", &["a", "b"], 0).expect("new");
        s.begin("a", 0, true).expect("a");
        assert!(s.finish().is_err(), "b is missing");
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
