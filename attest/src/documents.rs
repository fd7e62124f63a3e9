//! The documents of a build output directory, made from its build record: `SHA256SUMS`,
//! the provenance statement and both SBOMs; with a key, a `.sig` and a bundle for every
//! artifact and DSSE bundles for the provenance and SBOM statements.

use crate::bundle::{sign_blob, sign_dsse};
use crate::digest::{digest_files, sha256sums};
use crate::error::{Error, IoContext, Result};
use crate::keys::SigningKey;
use crate::record::BuildRecord;
use crate::sbom::{self, Root};
use crate::statement::{CYCLONEDX_BOM, PAYLOAD_TYPE, SPDX_DOCUMENT, Statement};
use std::path::{Path, PathBuf};

pub const SUMS: &str = "SHA256SUMS";
pub const PROVENANCE: &str = "provenance.intoto.json";
pub const PROVENANCE_BUNDLE: &str = "provenance.sigstore.json";
pub const SPDX: &str = "sbom.spdx.json";
pub const SPDX_BUNDLE: &str = "sbom.spdx.sigstore.json";
pub const CYCLONEDX: &str = "sbom.cdx.json";
pub const CYCLONEDX_BUNDLE: &str = "sbom.cdx.sigstore.json";

/// Writes through a temporary name, synced before the rename, so that a file is either
/// complete or absent, also after a crash.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    hermetic_deps::durable::write(path, data).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// The SBOM documents (SPDX, CycloneDX) of a record.
pub fn sboms(rec: &BuildRecord) -> (Vec<u8>, Vec<u8>) {
    let root = Root {
        name: &rec.package.name,
        version: &rec.package.version,
    };
    (
        sbom::spdx(&rec.deps, &root, rec.source_date_epoch),
        sbom::cyclonedx(&rec.deps, &root, rec.source_date_epoch),
    )
}

/// An SBOM wrapped in an in-toto statement about the record's artifacts.
pub fn sbom_statement(rec: &BuildRecord, predicate_type: &str, doc: &[u8]) -> Result<Statement> {
    let predicate = serde_json::from_slice(doc).map_err(|e| Error::Invalid {
        path: "sbom".into(),
        detail: e.to_string(),
    })?;
    Ok(Statement::new(
        crate::provenance::subjects(rec),
        predicate_type,
        predicate,
    ))
}

/// Files of an output directory that `republish` keeps besides what the record names.
pub const KEPT_REPORTS: &[&str] = &["verify-report.json", "verify-report.md"];

/// The most a document (bundle, `SHA256SUMS`, record) read from a directory may weigh.
pub const MAX_DOCUMENT: u64 = 64 * 1024 * 1024;

/// Refuses to vouch for files that are not the ones the build produced (or not regular
/// files: a link could point anywhere, a FIFO never ends).
pub fn check_artifacts(dir: &Path, rec: &BuildRecord) -> Result<()> {
    for a in &rec.artifacts {
        let path = dir.join(&a.name);
        let meta = std::fs::symlink_metadata(&path).at(&path)?;
        if !meta.is_file() {
            return Err(Error::Invalid {
                path,
                detail: "is not a regular file (a link?): it is not signed".into(),
            });
        }
    }
    let names: Vec<PathBuf> = rec
        .artifacts
        .iter()
        .map(|a| PathBuf::from(&a.name))
        .collect();
    let actual = digest_files(dir, &names)?;
    // Both lists are sorted by name.
    for (want, got) in rec.artifacts.iter().zip(&actual) {
        if want.sha256 != got.sha256 {
            return Err(Error::Verification {
                path: dir.join(&want.name),
                failure: crate::verify::Failure::ChangedSinceBuild {
                    actual: got.sha256.clone(),
                    recorded: want.sha256.clone(),
                },
            });
        }
    }
    Ok(())
}

/// The record of `dir`, read only when a trusted key vouches for it: its provenance bundle
/// verifies with one of `trusted`, the provenance that record gives is byte for byte the
/// signed one, and every artifact is what it records. What is re-signed is then what the
/// build signed, never the word of a file in the directory.
pub fn vouched_record(
    dir: &Path,
    trusted: &[crate::keys::PublicKey],
    inputs_digest: Option<&str>,
) -> Result<BuildRecord> {
    use crate::verify::Failure;
    let rec = BuildRecord::read(&dir.join(crate::record::RECORD))?;
    let fail = |failure: Failure| Error::Verification {
        path: dir.join(crate::record::RECORD),
        failure,
    };
    let bundle_path = dir.join(PROVENANCE_BUNDLE);
    let bundle = hermetic_deps::host::read_small(&bundle_path, MAX_DOCUMENT).map_err(|e| {
        fail(Failure::RecordNotSigned(format!(
            "{}: {e}",
            bundle_path.display()
        )))
    })?;
    let mut last = "no trusted key given".to_string();
    let mut statement = None;
    for key in trusted {
        match crate::verify::verify_bundle(&bundle, key, None) {
            Ok(v) => {
                statement = v.statement;
                break;
            }
            Err(f) => last = format!("key {}: {f} [{}]", key.hint(), f.code()),
        }
    }
    let Some(signed) = statement else {
        return Err(fail(Failure::RecordNotSigned(format!(
            "{} does not verify with a trusted key ({last})",
            bundle_path.display()
        ))));
    };
    if signed != crate::provenance::statement(&rec) {
        return Err(fail(Failure::RecordChangedSinceSigned));
    }
    // The inputs a quorum agreed on (the gate's): then what the documents say beyond the
    // bytes (dependencies, package) is k runners' word, not this directory's runner's.
    if let Some(want) = inputs_digest {
        let have = crate::gate::RebuildInputs::of(&rec).digest();
        if have != want {
            return Err(fail(Failure::RecordNotTheGated {
                record: have,
                gated: want.to_string(),
            }));
        }
    }
    check_artifacts(dir, &rec)?;
    // The SHA256SUMS a gate was shown must be this record's: otherwise a gate could pass
    // on one file while another set of bytes is signed here.
    let sums_path = dir.join(SUMS);
    let sums = hermetic_deps::host::read_small(&sums_path, MAX_DOCUMENT).at(&sums_path)?;
    if sums != sha256sums(&rec.artifacts).as_bytes() {
        return Err(Error::Verification {
            path: sums_path,
            failure: Failure::SumsNotTheRecords,
        });
    }
    Ok(rec)
}

/// Writes `SHA256SUMS`, the provenance statement and the SBOMs. Returns the file names.
pub fn write_unsigned(dir: &Path, rec: &BuildRecord) -> Result<Vec<String>> {
    write_atomic(&dir.join(SUMS), sha256sums(&rec.artifacts).as_bytes())?;
    write_atomic(
        &dir.join(PROVENANCE),
        &crate::provenance::statement(rec).to_bytes(),
    )?;
    let (spdx, cdx) = sboms(rec);
    write_atomic(&dir.join(SPDX), &spdx)?;
    write_atomic(&dir.join(CYCLONEDX), &cdx)?;
    Ok(vec![
        SUMS.into(),
        PROVENANCE.into(),
        SPDX.into(),
        CYCLONEDX.into(),
    ])
}

/// Signs every artifact and `SHA256SUMS` (`NAME.sig`, `NAME.sigstore.json`) and the three
/// statements (DSSE bundles). The unsigned documents must have been written, and artifacts
/// this process did not just produce checked with [`check_artifacts`]. Returns the file
/// names written.
pub fn sign(dir: &Path, rec: &BuildRecord, key: &SigningKey) -> Result<Vec<String>> {
    let mut written = vec![];
    let mut blobs: Vec<String> = rec.artifacts.iter().map(|a| a.name.clone()).collect();
    blobs.push(SUMS.into());
    for name in &blobs {
        let path = dir.join(name);
        let data = std::fs::read(&path).at(&path)?;
        // The very bytes signed are the recorded ones, whatever happened to the file since
        // it was checked.
        if let Some(a) = rec.artifacts.iter().find(|a| &a.name == name) {
            let got = hermetic_deps::hash::sha256_hex(&data);
            if got != a.sha256 {
                return Err(Error::Verification {
                    path,
                    failure: crate::verify::Failure::ChangedSinceBuild {
                        actual: got,
                        recorded: a.sha256.clone(),
                    },
                });
            }
        }
        let signed = sign_blob(&data, key)?;
        write_atomic(
            &dir.join(format!("{name}.sig")),
            signed.sig_base64.as_bytes(),
        )?;
        write_atomic(
            &dir.join(format!("{name}.sigstore.json")),
            &signed.bundle.to_bytes(),
        )?;
        written.push(format!("{name}.sig"));
        written.push(format!("{name}.sigstore.json"));
    }
    let provenance = std::fs::read(dir.join(PROVENANCE)).at(dir.join(PROVENANCE))?;
    write_atomic(
        &dir.join(PROVENANCE_BUNDLE),
        &sign_dsse(PAYLOAD_TYPE, &provenance, key)?.to_bytes(),
    )?;
    written.push(PROVENANCE_BUNDLE.into());
    for (doc, predicate_type, bundle) in [
        (SPDX, SPDX_DOCUMENT, SPDX_BUNDLE),
        (CYCLONEDX, CYCLONEDX_BOM, CYCLONEDX_BUNDLE),
    ] {
        let bytes = std::fs::read(dir.join(doc)).at(dir.join(doc))?;
        let statement = sbom_statement(rec, predicate_type, &bytes)?;
        write_atomic(
            &dir.join(bundle),
            &sign_dsse(PAYLOAD_TYPE, &statement.to_bytes(), key)?.to_bytes(),
        )?;
        written.push(bundle.into());
    }
    Ok(written)
}

/// Writes and signs the documents of `dir` anew with `key`, all at once: in a private copy
/// beside it of the files the record names, published by one rename, so that a kill
/// leaves the old set or the new one, never a mix. `rec` must be vouched for
/// ([`vouched_record`]).
pub fn republish(dir: &Path, rec: &BuildRecord, key: &SigningKey) -> Result<Vec<String>> {
    let staging = hermetic_deps::cache::Cache::staging_path(dir);
    let made = (|| {
        // Only what the record names, copied into a private directory and checked there:
        // what is signed below is these copies, and nothing else of the directory (an
        // unsigned extra file) is published beside them.
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .at(&staging)?;
        // The build log is recorded by digest but kept only where the build left it.
        let log = rec
            .log
            .as_ref()
            .filter(|l| std::fs::symlink_metadata(dir.join(&l.name)).is_ok());
        let names = rec
            .artifacts
            .iter()
            .chain(log)
            .map(|a| a.name.as_str())
            .chain([crate::record::RECORD]);
        // And the reports of a verification, which describe and sign nothing.
        let reports = KEPT_REPORTS
            .iter()
            .copied()
            .filter(|n| std::fs::symlink_metadata(dir.join(n)).is_ok_and(|m| m.is_file()));
        for name in names.chain(reports) {
            let from = dir.join(name);
            let bytes = hermetic_deps::host::read_small(&from, u64::MAX).at(&from)?;
            std::fs::write(staging.join(name), &bytes).at(staging.join(name))?;
            let mode = std::fs::metadata(&from).at(&from)?.permissions();
            std::fs::set_permissions(staging.join(name), mode).at(staging.join(name))?;
        }
        check_artifacts(&staging, rec)?;
        if let Some(log) = log {
            let got = hermetic_deps::hash::sha256_file(&staging.join(&log.name))
                .at(staging.join(&log.name))?;
            if got != log.sha256 {
                return Err(Error::Verification {
                    path: dir.join(&log.name),
                    failure: crate::verify::Failure::ChangedSinceBuild {
                        actual: got,
                        recorded: log.sha256.clone(),
                    },
                });
            }
        }
        let mut written = write_unsigned(&staging, rec)?;
        for f in signature_files(rec) {
            let _ = std::fs::remove_file(staging.join(f));
        }
        written.extend(sign(&staging, rec, key)?);
        hermetic_deps::durable::publish_dir(&staging, dir).map_err(|e| Error::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(written)
    })();
    if made.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    made
}

/// Every signature file `sign` writes, for removal before re-signing.
pub fn signature_files(rec: &BuildRecord) -> Vec<String> {
    let mut out = vec![];
    for name in rec.artifacts.iter().map(|a| a.name.as_str()).chain([SUMS]) {
        out.push(format!("{name}.sig"));
        out.push(format!("{name}.sigstore.json"));
    }
    out.extend([PROVENANCE_BUNDLE, SPDX_BUNDLE, CYCLONEDX_BUNDLE].map(String::from));
    out
}
