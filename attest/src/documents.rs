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

/// Refuses to vouch for files that are not the ones the build produced.
pub fn check_artifacts(dir: &Path, rec: &BuildRecord) -> Result<()> {
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
pub fn vouched_record(dir: &Path, trusted: &[crate::keys::PublicKey]) -> Result<BuildRecord> {
    use crate::verify::Failure;
    let rec = BuildRecord::read(&dir.join(crate::record::RECORD))?;
    let fail = |failure: Failure| Error::Verification {
        path: dir.join(crate::record::RECORD),
        failure,
    };
    let bundle_path = dir.join(PROVENANCE_BUNDLE);
    let bundle = std::fs::read(&bundle_path).map_err(|e| {
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
    check_artifacts(dir, &rec)?;
    // The SHA256SUMS a gate was shown must be this record's: otherwise a gate could pass
    // on one file while another set of bytes is signed here.
    let sums_path = dir.join(SUMS);
    let sums = std::fs::read(&sums_path).at(&sums_path)?;
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

/// Writes and signs the documents of `dir` anew with `key`, all at once: in a staging copy
/// beside it (the artifacts hard-linked, not copied), published by one rename, so that a
/// kill leaves the old set or the new one, never a mix. `rec` must be vouched for
/// ([`vouched_record`]).
pub fn republish(dir: &Path, rec: &BuildRecord, key: &SigningKey) -> Result<Vec<String>> {
    let staging = hermetic_deps::cache::Cache::staging_path(dir);
    let made = (|| {
        link_tree(dir, &staging)?;
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

/// A copy of the tree `from` at `to`: files hard-linked (copied across file systems),
/// links re-made as links, never followed.
fn link_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir(to).at(to)?;
    for entry in std::fs::read_dir(from).at(from)? {
        let entry = entry.at(from)?;
        let (src, dest) = (entry.path(), to.join(entry.file_name()));
        let t = entry.file_type().at(&src)?;
        if t.is_dir() {
            link_tree(&src, &dest)?;
        } else if t.is_symlink() {
            let target = std::fs::read_link(&src).at(&src)?;
            std::os::unix::fs::symlink(target, &dest).at(&dest)?;
        } else if std::fs::hard_link(&src, &dest).is_err() {
            std::fs::copy(&src, &dest).at(&dest)?;
        }
    }
    Ok(())
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
