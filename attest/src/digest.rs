//! SHA-256 of build outputs: streamed (constant memory per file), files hashed in parallel,
//! with `sha2`'s CPU-accelerated backend (SHA-NI where present, picked at run time).

use crate::error::{IoContext, Result};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// One file's digest, named relative to its directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct FileDigest {
    pub name: String,
    pub sha256: String,
    pub size: u64,
}

/// Streams a file through SHA-256 with a fixed buffer.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut file = std::fs::File::open(path).at(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).at(path)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Digests of `files` (paths under `base`), in parallel, sorted by name.
pub fn digest_files(base: &Path, files: &[PathBuf]) -> Result<Vec<FileDigest>> {
    let mut out: Vec<FileDigest> = files
        .par_iter()
        .map(|f| {
            let path = base.join(f);
            let (sha256, size) = sha256_file(&path)?;
            Ok(FileDigest {
                name: f.to_string_lossy().replace('\\', "/"),
                sha256,
                size,
            })
        })
        .collect::<Result<_>>()?;
    out.sort();
    Ok(out)
}

/// `SHA256SUMS` in the format `sha256sum -c` reads (binary mode marker, sorted by name).
pub fn sha256sums(digests: &[FileDigest]) -> String {
    let mut sorted = digests.to_vec();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    sorted
        .iter()
        .map(|d| format!("{} *{}\n", d.sha256, d.name))
        .collect()
}

/// Parses `SHA256SUMS` (text or binary mode lines) into (name, digest) pairs.
pub fn parse_sha256sums(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let (digest, rest) = l.split_once(' ')?;
            let name = rest.strip_prefix('*').or_else(|| rest.strip_prefix(' '))?;
            Some((name.to_string(), digest.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_sha256sum_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("b"), b"hello\n").expect("write");
        std::fs::write(dir.path().join("a"), b"").expect("write");
        let d = digest_files(dir.path(), &["b".into(), "a".into()]).expect("digest");
        let sums = sha256sums(&d);
        assert_eq!(
            sums,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 *a\n\
             5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03 *b\n"
        );
        assert_eq!(parse_sha256sums(&sums)[1].0, "b");
    }
}
