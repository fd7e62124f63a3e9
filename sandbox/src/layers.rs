//! Image layers and images that are a pure function of their contents: every layer a tar
//! written entry by entry in a fixed order with fixed times and owners, the configuration a
//! JSON document with fixed keys and times, and the whole loaded as a docker-archive
//! (`docker load`), whose image id is the SHA-256 of the configuration.

use crate::engine::{Attempt, Engine};
use crate::error::{Error, IoContext, Result};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A tar layer being written to a file, hashed as it is written (its diff id).
pub struct LayerWriter {
    tar: tar::Builder<Hashing<std::io::BufWriter<std::fs::File>>>,
    epoch: u64,
    path: PathBuf,
}

/// A writer that hashes what passes through it.
pub struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Who owns an entry, and its permission bits.
#[derive(Debug, Clone, Copy)]
pub struct Owner {
    pub uid: u64,
    pub gid: u64,
    pub mode: u32,
}

impl Owner {
    pub const ROOT_DIR: Owner = Owner {
        uid: 0,
        gid: 0,
        mode: 0o755,
    };
    pub const ROOT_FILE: Owner = Owner {
        uid: 0,
        gid: 0,
        mode: 0o644,
    };
    pub const ROOT_EXEC: Owner = Owner {
        uid: 0,
        gid: 0,
        mode: 0o755,
    };
}

impl LayerWriter {
    pub fn create(path: &Path, epoch: u64) -> Result<LayerWriter> {
        let file = std::fs::File::create(path).at(path)?;
        let mut tar = tar::Builder::new(Hashing {
            inner: std::io::BufWriter::with_capacity(1 << 20, file),
            hash: Sha256::new(),
        });
        tar.mode(tar::HeaderMode::Complete);
        Ok(LayerWriter {
            tar,
            epoch,
            path: path.to_path_buf(),
        })
    }

    fn header(&self, kind: tar::EntryType, size: u64, owner: Owner) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(owner.mode);
        h.set_uid(owner.uid);
        h.set_gid(owner.gid);
        h.set_mtime(self.epoch);
        let _ = h.set_username("");
        let _ = h.set_groupname("");
        h
    }

    /// A directory (`name` without a trailing slash).
    pub fn dir(&mut self, name: &str, owner: Owner) -> Result<()> {
        let mut h = self.header(tar::EntryType::Directory, 0, owner);
        let path = format!("{name}/");
        self.tar
            .append_data(&mut h, &path, std::io::empty())
            .at(&self.path)
    }

    /// A regular file with these bytes.
    pub fn file(&mut self, name: &str, bytes: &[u8], owner: Owner) -> Result<()> {
        let mut h = self.header(tar::EntryType::Regular, bytes.len() as u64, owner);
        self.tar.append_data(&mut h, name, bytes).at(&self.path)
    }

    /// A regular file copied from `from` (streamed, not held in memory).
    pub fn file_from(&mut self, name: &str, from: &Path, owner: Owner) -> Result<()> {
        let f = std::fs::File::open(from).at(from)?;
        let size = f.metadata().at(from)?.len();
        let mut h = self.header(tar::EntryType::Regular, size, owner);
        self.tar.append_data(&mut h, name, f.take(size)).at(from)
    }

    /// A symbolic link.
    pub fn link(&mut self, name: &str, target: &str) -> Result<()> {
        let mut h = self.header(tar::EntryType::Symlink, 0, Owner::ROOT_EXEC);
        self.tar.append_link(&mut h, name, target).at(&self.path)
    }

    /// Ends the archive; its diff id (`sha256:` + the SHA-256 of the uncompressed tar).
    pub fn finish(self) -> Result<String> {
        let path = self.path.clone();
        let mut hashing = self.tar.into_inner().at(&path)?;
        hashing.flush().at(&path)?;
        let Hashing { inner, hash } = hashing;
        inner.into_inner().map_err(|e| e.into_error()).at(&path)?;
        Ok(format!("sha256:{}", hex::encode(hash.finalize())))
    }
}

/// `sha256:` + the SHA-256 of a file, streamed.
pub fn file_digest(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).at(path)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).at(path)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(hash.finalize())))
}

/// What goes into an image's configuration besides its layers.
#[derive(Debug, Clone)]
pub struct ImageSettings {
    pub env: Vec<String>,
    pub user: String,
    pub working_dir: String,
    pub labels: BTreeMap<String, String>,
    /// `created` of the image and of each history entry.
    pub epoch: u64,
    /// One line per layer, for `docker history`.
    pub history: Vec<String>,
}

/// The image configuration: with the same layers and settings, the same bytes (and so the
/// same image id) on every machine.
pub fn config_json(diff_ids: &[String], s: &ImageSettings) -> Vec<u8> {
    let created = rfc3339(s.epoch);
    let config = serde_json::json!({
        "architecture": "amd64",
        "config": {
            "Env": s.env,
            "Labels": s.labels,
            "User": s.user,
            "WorkingDir": s.working_dir,
        },
        "created": created,
        "history": s.history.iter().map(|h| serde_json::json!({
            "created": created,
            "created_by": h,
        })).collect::<Vec<_>>(),
        "os": "linux",
        "rootfs": { "diff_ids": diff_ids, "type": "layers" },
    });
    // serde_json's maps are sorted by key: the bytes are fixed by the content.
    config.to_string().into_bytes()
}

/// Seconds since the epoch as RFC 3339 in UTC (`1970-01-01T00:00:00Z`).
pub fn rfc3339(epoch: u64) -> String {
    hermetic_deps::time::rfc3339(i64::try_from(epoch).unwrap_or(i64::MAX))
}

/// Writes a docker-archive (`docker save` format) of one image: its configuration, its
/// layers (files already written) and one tag.
pub fn write_archive(out: &Path, config: &[u8], layers: &[PathBuf], tag: &str) -> Result<String> {
    let id = hex::encode(Sha256::digest(config));
    let mut w = LayerWriter::create(out, 0)?;
    let names: Vec<String> = (0..layers.len())
        .map(|i| format!("layer-{i}.tar"))
        .collect();
    let manifest = serde_json::json!([{
        "Config": format!("{id}.json"),
        "Layers": names,
        "RepoTags": [tag],
    }])
    .to_string();
    w.file(&format!("{id}.json"), config, Owner::ROOT_FILE)?;
    for (name, layer) in names.iter().zip(layers) {
        w.file_from(name, layer, Owner::ROOT_FILE)?;
    }
    w.file("manifest.json", manifest.as_bytes(), Owner::ROOT_FILE)?;
    w.finish()?;
    Ok(format!("sha256:{id}"))
}

/// `docker load` of a docker-archive file; a transient failure loads again from the start
/// (loading an image that is already there changes nothing). Then the engine's id for it
/// must be `expected`.
pub async fn load(engine: &Engine, archive: &Path, expected: &str) -> Result<()> {
    engine
        .call_whole("load an image", async || {
            let file = tokio::fs::File::open(archive)
                .await
                .at(archive)
                .map_err(Attempt::Fatal)?;
            let body = tokio_util_stream(file);
            let opts = bollard::query_parameters::ImportImageOptionsBuilder::default()
                .quiet(true)
                .build();
            let mut loading = engine.docker.import_image_stream(opts, body, None);
            while let Some(item) = loading.next().await {
                let info = item?;
                if let Some(detail) = info.error_detail {
                    return Err(Attempt::Fatal(Error::Bootstrap {
                        what: format!("load {}", archive.display()),
                        detail: detail.message.unwrap_or_default(),
                    }));
                }
            }
            Ok(())
        })
        .await?;
    let loaded = crate::image::inspect(engine, expected).await?;
    if loaded.id.as_deref() != Some(expected) {
        return Err(Error::ImageDigestMismatch {
            host: engine.host.clone(),
            expected: expected.into(),
            found: loaded.id.unwrap_or_default(),
        });
    }
    Ok(())
}

/// A file as a stream of 1 MiB chunks; a read error ends the upload as a failure, never as
/// a short image.
fn tokio_util_stream(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    futures_util::stream::unfold(Some(file), |f| async move {
        use tokio::io::AsyncReadExt;
        let mut f = f?;
        let mut buf = vec![0u8; 1 << 20];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_the_shared_formatter_s() {
        // The calendar is tested in hermetic-deps::time; this is the conversion to it.
        assert_eq!(
            rfc3339(1_700_000_000),
            hermetic_deps::time::rfc3339(1_700_000_000)
        );
        assert_eq!(rfc3339(u64::MAX), hermetic_deps::time::rfc3339(i64::MAX));
    }

    /// The same entries give the same layer, byte for byte, whenever and wherever written.
    #[test]
    fn a_layer_is_a_function_of_its_entries() {
        let dir = tempfile::tempdir().expect("tmp");
        let src = dir.path().join("src");
        std::fs::write(&src, b"payload").expect("src");
        let write = |name: &str| {
            let path = dir.path().join(name);
            let mut w = LayerWriter::create(&path, 1_700_000_000).expect("create");
            w.dir("opt", Owner::ROOT_DIR).expect("dir");
            w.file("opt/a", b"a", Owner::ROOT_FILE).expect("file");
            w.file_from("opt/b", &src, Owner::ROOT_EXEC).expect("file");
            w.link("opt/c", "a").expect("link");
            let id = w.finish().expect("finish");
            (id, std::fs::read(&path).expect("read"))
        };
        let (id1, bytes1) = write("one.tar");
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let (id2, bytes2) = write("two.tar");
        assert_eq!(id1, id2);
        assert_eq!(bytes1, bytes2);
        assert_eq!(
            id1,
            file_digest(&dir.path().join("one.tar")).expect("digest")
        );
        let mut entries = tar::Archive::new(&bytes1[..]);
        for e in entries.entries().expect("entries") {
            let e = e.expect("entry");
            assert_eq!(e.header().mtime().expect("mtime"), 1_700_000_000);
            assert_eq!(e.header().uid().expect("uid"), 0);
        }
    }

    #[test]
    fn the_configuration_is_fixed_by_its_content() {
        let s = ImageSettings {
            env: vec!["PATH=/bin".into()],
            user: "10001:10001".into(),
            working_dir: "/hermetic".into(),
            labels: BTreeMap::from([("b".into(), "2".into()), ("a".into(), "1".into())]),
            epoch: 1_700_000_000,
            history: vec!["rootfs".into()],
        };
        let a = config_json(&["sha256:00".into()], &s);
        let b = config_json(&["sha256:00".into()], &s.clone());
        assert_eq!(a, b);
        let text = String::from_utf8(a).expect("utf8");
        assert!(
            text.contains(r#""created":"2023-11-14T22:13:20Z""#),
            "{text}"
        );
        assert!(text.find(r#""a":"1""#) < text.find(r#""b":"2""#), "{text}");
    }
}
