//! What the fuzz targets share: a private scratch directory for the readers that take a
//! path (`Cargo.lock`, `vendor-policy.toml`, `deps.json`), and the bounded sink the
//! engine's tar stream is read into.

use std::path::PathBuf;

/// Writes `bytes` to `name` in a scratch directory of this process's own and returns the
/// path; the directory lives as long as the process.
pub fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("scratch directory"));
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("scratch file");
    path
}

/// What the output stream hands its sink, bounded as the build's receiver bounds it.
pub struct Collect {
    pub cap: u64,
    pub got: u64,
}

impl hermetic_sandbox::container::FileSink for Collect {
    fn begin(&mut self, size: u64) -> std::io::Result<()> {
        if size > self.cap {
            return Err(std::io::Error::other("too large"));
        }
        Ok(())
    }

    fn data(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.got += bytes.len() as u64;
        if self.got > self.cap {
            return Err(std::io::Error::other("too large"));
        }
        Ok(())
    }
}
