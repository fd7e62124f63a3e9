//! Verification of a vendored tree, stricter than cargo's.
//!
//! Cargo checks that `.cargo-checksum.json` matches the files it lists. An edit made to a
//! file *and* to its entry there passes that check, so each crate is also compared with its
//! original `.crate` archive, whose SHA-256 is pinned by Cargo.lock.

use crate::archive::{Listing, is_skipped};
use crate::cache::Cache;
use crate::error::{Error, IoContext, Result};
use crate::hash::sha256_hex;
use crate::manifest::DepManifest;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One problem found in a vendored tree. `code` is stable; scripts may match on it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    /// Vendored directory (`NAME-VERSION`).
    pub package: String,
    pub code: &'static str,
    /// File concerned, relative to the crate directory.
    pub path: Option<String>,
    pub message: String,
}

/// What a vendored crate directory must hold.
#[derive(Debug, Clone)]
pub struct Expected {
    /// `NAME-VERSION`, the directory under `vendor/`.
    pub dir: String,
    pub name: String,
    pub version: String,
    /// Cargo.lock checksum; `None` for git packages, which have no archive.
    pub checksum: Option<String>,
}

#[derive(Deserialize, Serialize)]
pub(crate) struct ChecksumFile {
    pub files: BTreeMap<String, String>,
    pub package: Option<String>,
}

impl Expected {
    pub fn from_manifest(m: &DepManifest) -> Vec<Expected> {
        m.vendored
            .iter()
            .map(|v| Expected {
                dir: v.dir.clone(),
                name: v.name.clone(),
                version: v.version.clone(),
                checksum: v.checksum.clone(),
            })
            .collect()
    }
}

/// Verifies every expected crate under `vendor`, and that nothing else is there. With
/// `copy_to`, each verified file is also written there (one read serves both).
pub fn verify_vendor(
    vendor: &Path,
    expected: &[Expected],
    cache: &Cache,
    copy_to: Option<&Path>,
) -> Result<Vec<Finding>> {
    let mut findings: Vec<Finding> = expected
        .par_iter()
        .map(|e| {
            verify_crate(
                &vendor.join(&e.dir),
                e,
                cache,
                copy_to.map(|c| c.join(&e.dir)).as_deref(),
            )
        })
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    let wanted: BTreeSet<&str> = expected.iter().map(|e| e.dir.as_str()).collect();
    let entries = std::fs::read_dir(vendor).at(vendor)?;
    for entry in entries {
        let entry = entry.at(vendor)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !wanted.contains(name.as_str()) && !name.starts_with('.') {
            findings.push(Finding {
                package: name,
                code: "crate-unexpected",
                path: None,
                message: "this directory is not a package of Cargo.lock".into(),
            });
        }
    }
    findings.sort();
    Ok(findings)
}

fn verify_crate(
    dir: &Path,
    expected: &Expected,
    cache: &Cache,
    copy_to: Option<&Path>,
) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let mut finding = |code: &'static str, path: Option<&str>, message: String| {
        findings.push(Finding {
            package: expected.dir.clone(),
            code,
            path: path.map(str::to_string),
            message,
        })
    };
    if !dir.is_dir() {
        finding("crate-missing", None, "not vendored".into());
        return Ok(findings);
    }
    let cj_path = dir.join(".cargo-checksum.json");
    let cj_text = std::fs::read(&cj_path);
    let checksums: Option<ChecksumFile> = match &cj_text {
        Ok(text) => serde_json::from_slice(text).ok(),
        Err(_) => None,
    };
    let Some(checksums) = checksums else {
        finding(
            "checksum-file-invalid",
            Some(".cargo-checksum.json"),
            "missing or not valid JSON".into(),
        );
        return Ok(findings);
    };
    if checksums.package != expected.checksum {
        finding(
            "package-checksum-mismatch",
            Some(".cargo-checksum.json"),
            format!(
                "package checksum is {}, Cargo.lock says {}",
                checksums.package.as_deref().unwrap_or("null"),
                expected.checksum.as_deref().unwrap_or("null")
            ),
        );
    }

    // Hash what is on disk (copying it along when asked).
    let mut on_disk: BTreeMap<String, String> = BTreeMap::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|e| Error::Io {
            path: dir.to_path_buf(),
            source: e.into(),
        })?;
        if entry.file_type().is_dir() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(dir)
            .map(|r| r.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        if is_skipped(&rel) {
            continue;
        }
        if !entry.file_type().is_file() {
            finding(
                "file-added",
                Some(&rel),
                "not a regular file (archives hold only regular files)".into(),
            );
            continue;
        }
        let bytes = std::fs::read(entry.path()).at(entry.path())?;
        if let Some(dest) = copy_to {
            let out = dest.join(&rel);
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent).at(parent)?;
            }
            std::fs::write(&out, &bytes).at(&out)?;
            crate::archive::set_mode(&out, is_executable(entry.path()))?;
        }
        on_disk.insert(rel, sha256_hex(&bytes));
    }
    if let Some(dest) = copy_to {
        std::fs::write(
            dest.join(".cargo-checksum.json"),
            cj_text.unwrap_or_default(),
        )
        .at(dest)?;
    }

    for (path, want) in &checksums.files {
        match on_disk.get(path) {
            None => finding(
                "checksum-file-mismatch",
                Some(path),
                "listed in .cargo-checksum.json but missing".into(),
            ),
            Some(have) if have != want => finding(
                "checksum-file-mismatch",
                Some(path),
                "does not match its .cargo-checksum.json entry".into(),
            ),
            Some(_) => {}
        }
    }

    let Some(sha) = &expected.checksum else {
        return Ok(findings);
    };
    if cache
        .import_from_cargo_home(&expected.name, &expected.version, sha)?
        .is_none()
        && !cache.crate_path(sha).is_file()
    {
        finding(
            "archive-unavailable",
            None,
            "the original .crate archive is not in the cache, so files could not be compared \
             with it; run `hermetic vendor` once with registry access"
                .into(),
        );
        return Ok(findings);
    }
    let mut listing = cache.listing(sha, &expected.dir)?;
    if listing.as_ref().is_some_and(|l| l != &on_disk) {
        // Never blame the tree on a saved listing alone: re-derive it from the archive.
        listing = cache.derive_listing(sha, &expected.dir)?;
    }
    match listing {
        Some(listing) => compare(&listing, &on_disk, &mut finding),
        None => finding(
            "archive-unavailable",
            None,
            "the cached .crate archive was corrupted and has been evicted; run \
             `hermetic vendor` once with registry access"
                .into(),
        ),
    }
    Ok(findings)
}

fn compare(
    archive: &Listing,
    on_disk: &BTreeMap<String, String>,
    finding: &mut impl FnMut(&'static str, Option<&str>, String),
) {
    for (path, want) in archive {
        match on_disk.get(path) {
            None => finding(
                "file-removed",
                Some(path),
                "in the original archive but not vendored".into(),
            ),
            Some(have) if have != want => finding(
                "file-modified",
                Some(path),
                format!("differs from the original archive (sha256 {have}, archive {want})"),
            ),
            Some(_) => {}
        }
    }
    for path in on_disk.keys() {
        if !archive.contains_key(path) {
            finding(
                "file-added",
                Some(path),
                "not in the original archive".into(),
            );
        }
    }
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(_path: &Path) -> bool {
    false
}

/// Result of `hermetic vendor --check DIR`.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub dir: String,
    pub packages_checked: usize,
    pub findings: Vec<Finding>,
}

/// Re-verifies a directory written by `hermetic vendor`: its `vendor/` against the
/// project's `Cargo.lock` (`lockfile`), never against the `deps.json` inside the directory
/// being checked, which whoever changed the tree could change too. A registry crate that
/// the lockfile gives no checksum cannot be checked, and is a finding.
pub fn check_dir(dir: &Path, cache: &Cache, lockfile: &Path) -> Result<CheckReport> {
    let vendor = dir.join("vendor");
    if !vendor.is_dir() {
        return Err(Error::BadVendorDir {
            path: dir.to_path_buf(),
            detail: "expected vendor/ in it".into(),
        });
    }
    let lock = crate::lockfile::Lockfile::read(lockfile)?;
    let expected = crate::vendor::expected_from_lock(&lock);
    let mut findings: Vec<Finding> = lock
        .external()
        .filter(|p| {
            p.checksum.is_none()
                && p.source
                    .as_deref()
                    .is_some_and(|s| s.starts_with("registry+") || s.starts_with("sparse+"))
        })
        .map(|p| Finding {
            package: p.dir_name(),
            code: "no-checksum",
            path: None,
            message: format!(
                "{} gives this registry crate no checksum: its archive cannot be checked \
                 (regenerate the lockfile with `cargo generate-lockfile`)",
                lock.path.display()
            ),
        })
        .collect();
    findings.extend(verify_vendor(&vendor, &expected, cache, None)?);
    Ok(CheckReport {
        dir: dir.display().to_string(),
        packages_checked: expected.len(),
        findings,
    })
}
