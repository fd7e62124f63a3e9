//! Cache entries only this machine's hermetic can have written.
//!
//! Whoever can write the cache (a CI cache restore, a shared `HERMETIC_CACHE`, another
//! user) can write any entry in it, checksums included. So an entry that stands for work
//! not redone (a stat index that skips re-hashing a tree, a remembered verdict, an image
//! probe, a breaker) is sealed: HMAC-SHA256 under a secret made on first use, kept outside
//! the cache (`HERMETIC_STATE`, else the user's state directory), readable by its owner
//! only. An entry whose seal does not verify is ignored and its work redone; a cache
//! carried to another machine is therefore re-derived there, never believed.
//!
//! The seal covers the entry's kind and its name (the digest it is filed under), so an
//! entry cannot be moved to another name or read as another kind.

use crate::error::{Error, IoContext, Result};
use hmac::{KeyInit, Mac};
use std::path::{Path, PathBuf};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The file name of the secret inside the state directory.
pub const SECRET_FILE: &str = "cache.secret";

#[derive(Clone)]
pub struct Seal {
    key: [u8; 32],
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seal(..)")
    }
}

/// Where the secret lives: `HERMETIC_STATE`, else the platform state (or data) directory.
pub fn state_dir() -> PathBuf {
    std::env::var_os("HERMETIC_STATE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::state_dir().map(|d| d.join("hermetic")))
        .or_else(|| dirs::data_local_dir().map(|d| d.join("hermetic")))
        .unwrap_or_else(|| PathBuf::from("/nonexistent/hermetic-state"))
}

impl Seal {
    /// This machine's seal, made on first use. `cache_root` is where the entries live: a
    /// secret inside it would travel with them, so that is refused.
    pub fn local(cache_root: &Path) -> Result<Seal> {
        let dir = state_dir();
        let refuse = |detail: String| Error::Secret {
            path: dir.join(SECRET_FILE),
            detail,
        };
        if !dir.is_absolute() {
            return Err(refuse(
                "HERMETIC_STATE is not an absolute path (a relative one would land in \
                 whatever directory hermetic runs in, such as the project)"
                    .into(),
            ));
        }
        // By real location, however either was spelled or whichever exists yet.
        if real(&dir).starts_with(real(cache_root)) {
            return Err(refuse(format!(
                "it is inside the cache {}, so whoever writes the cache could read or \
                 replace it",
                cache_root.display()
            )));
        }
        Seal::at(&dir.join(SECRET_FILE))
    }

    /// The seal whose secret is the file at `path`, made there if it is missing.
    pub fn at(path: &Path) -> Result<Seal> {
        match read_secret(path)? {
            Some(key) => Ok(Seal { key }),
            None => {
                make_secret(path)?;
                read_secret(path)?
                    .map(|key| Seal { key })
                    .ok_or_else(|| Error::Secret {
                        path: path.to_path_buf(),
                        detail: "it vanished right after it was made".into(),
                    })
            }
        }
    }

    pub fn from_key(key: [u8; 32]) -> Seal {
        Seal { key }
    }

    fn tag(&self, kind: &str, name: &str, data: &[u8]) -> Vec<u8> {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        // Lengths first: ("ab", "c") and ("a", "bc") are different entries.
        for part in [kind.as_bytes(), name.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    /// `data` in a sealed envelope, as the text of a cache file.
    pub fn wrap(&self, kind: &str, name: &str, data: &str) -> String {
        serde_json::json!({
            "seal": hex::encode(self.tag(kind, name, data.as_bytes())),
            "data": data,
        })
        .to_string()
    }

    /// The data of an envelope this seal made for `kind` and `name`; `None` for anything
    /// else (another machine's, a forged or damaged one, plain text).
    pub fn open(&self, kind: &str, name: &str, text: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let data = v.get("data")?.as_str()?;
        let seal = hex::decode(v.get("seal")?.as_str()?).ok()?;
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.key).ok()?;
        for part in [kind.as_bytes(), name.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(data.as_bytes());
        // Constant time: a cache writer may time the comparison.
        mac.verify_slice(&seal).ok()?;
        Some(data.to_string())
    }

    /// Writes a sealed entry at `path`, published by rename after fsync.
    pub fn write(&self, path: &Path, kind: &str, name: &str, data: &str) -> Result<()> {
        crate::durable::write(path, self.wrap(kind, name, data).as_bytes())
    }

    /// The data of the sealed entry at `path`, if it is there and this seal made it.
    pub fn read(&self, path: &Path, kind: &str, name: &str) -> Option<String> {
        let text = std::fs::read_to_string(path).ok()?;
        self.open(kind, name, &text)
    }
}

/// `p` as the file system resolves it: its nearest existing ancestor canonicalized, the
/// rest appended.
fn real(p: &Path) -> PathBuf {
    let mut rest = vec![];
    let mut at = p;
    loop {
        if let Ok(c) = std::fs::canonicalize(at) {
            return rest
                .iter()
                .rev()
                .fold(c, |acc: PathBuf, part| acc.join(part));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                at = parent;
            }
            _ => return p.to_path_buf(),
        }
    }
}

/// The directory holding the secret must be this user's alone: whoever can write it can
/// swap the secret.
fn check_dir(dir: &Path, path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir).at(dir)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let detail = if !meta.is_dir() {
        Some("its directory is not a directory (a link?)".to_string())
    } else if meta.uid() != me {
        Some(format!(
            "its directory {} belongs to uid {}, not to you (made by another user, or by \
             a run as root?)",
            dir.display(),
            meta.uid()
        ))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "others may write its directory {} (mode {:o})",
            dir.display(),
            meta.mode() & 0o777
        ))
    } else {
        None
    };
    match detail {
        Some(detail) => Err(Error::Secret {
            path: path.to_path_buf(),
            detail,
        }),
        None => Ok(()),
    }
}

fn read_secret(path: &Path) -> Result<Option<[u8; 32]>> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    if std::fs::symlink_metadata(dir).is_err() {
        return Ok(None);
    }
    check_dir(dir, path)?;
    // Opened without following a link, and judged by what was opened.
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Error::Secret {
                path: path.to_path_buf(),
                detail: "it is a symbolic link".into(),
            });
        }
        Err(e) => return Err(e).at(path),
    };
    let meta = file.metadata().at(path)?;
    let bad = |detail: String| Error::Secret {
        path: path.to_path_buf(),
        detail,
    };
    if !meta.file_type().is_file() {
        return Err(bad("it is not a regular file".into()));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(bad(format!("it belongs to uid {}, not to you", meta.uid())));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(bad(format!(
            "others may read or write it (mode {:o})",
            meta.mode() & 0o777
        )));
    }
    let mut text = String::new();
    file.by_ref().take(256).read_to_string(&mut text).at(path)?;
    let bytes = hex::decode(text.trim()).map_err(|_| bad("it is not hex".into()))?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| bad("it does not hold 32 bytes".into()))?;
    Ok(Some(key))
}

fn make_secret(path: &Path) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .at(dir)?;
    check_dir(dir, path)?;
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| Error::Secret {
        path: path.to_path_buf(),
        detail: format!("no randomness to make it: {e}"),
    })?;
    let tmp = crate::cache::Cache::staging_path(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .at(&tmp)?;
    f.write_all(hex::encode(key).as_bytes()).at(&tmp)?;
    f.sync_all().at(&tmp)?;
    drop(f);
    // A link, not a rename: two first runs at once keep the one made first.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => crate::durable::sync_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).at(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_opens_only_for_its_kind_name_and_data() {
        let seal = Seal::from_key([7; 32]);
        let text = seal.wrap("memo", "abc", "{\"ok\":true}");
        assert_eq!(
            seal.open("memo", "abc", &text).as_deref(),
            Some("{\"ok\":true}")
        );
        assert_eq!(seal.open("memo", "abd", &text), None, "another name");
        assert_eq!(seal.open("index", "abc", &text), None, "another kind");
        assert_eq!(
            Seal::from_key([8; 32]).open("memo", "abc", &text),
            None,
            "another machine's secret"
        );
        let forged = text.replace("true", "false");
        assert_eq!(seal.open("memo", "abc", &forged), None, "edited data");
        assert_eq!(seal.open("memo", "abc", "{\"ok\":true}"), None, "no seal");
        // Kind and name are length-prefixed: shifting a byte between them is another entry.
        let a = seal.wrap("ab", "c", "x");
        assert_eq!(seal.open("a", "bc", &a), None);
    }

    #[test]
    fn the_secret_is_made_once_private_and_refused_when_others_can_read_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("test");
        let path = dir.path().join("state").join(SECRET_FILE);
        let a = Seal::at(&path).expect("test");
        let b = Seal::at(&path).expect("test");
        assert_eq!(a.key, b.key, "made once, then read");
        let mode = std::fs::metadata(&path).expect("test").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("test");
        let e = Seal::at(&path).expect_err("test");
        assert!(e.to_string().contains("others may read"), "{e}");
        assert!(
            e.fix().expect("test").contains("chmod 600"),
            "{:?}",
            e.fix()
        );
        // A link planted where the secret goes is not followed.
        std::fs::remove_file(&path).expect("test");
        std::os::unix::fs::symlink("/etc/hostname", &path).expect("test");
        let e = Seal::at(&path).expect_err("test");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        // Nor is a secret in a directory others can write.
        std::fs::remove_file(&path).expect("test");
        let dir = path.parent().expect("test");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("test");
        let e = Seal::at(&path).expect_err("test");
        assert!(e.to_string().contains("others may write"), "{e}");
    }
}
