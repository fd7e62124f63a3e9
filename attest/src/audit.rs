//! `hermetic audit`: what an auditor with only the released files can check, offline. Every
//! check is reported, pass or fail, with its reason; nothing passes silently. Only signed
//! documents are trusted: the unsigned build record is used only where it is first shown
//! to agree with them.

use crate::digest::parse_sha256sums;
use crate::documents::{
    CYCLONEDX, CYCLONEDX_BUNDLE, PROVENANCE, PROVENANCE_BUNDLE, SPDX, SPDX_BUNDLE, SUMS,
};
use crate::keys::PublicKey;
use crate::record::{BuildRecord, RECORD};
use crate::statement::{CYCLONEDX_BOM, SLSA_PROVENANCE_V1, SPDX_DOCUMENT, Statement};
use crate::verify::verify_bundle;
use hermetic_deps::hash::sha256_hex;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// All checks, in order, and the statements they verified.
#[derive(Debug, Default)]
pub struct Audit {
    pub checks: Vec<Check>,
    pub provenance: Option<Statement>,
    /// The record's dependency manifest, when shown to match the signed SBOM.
    pub record: Option<BuildRecord>,
}

impl Audit {
    fn check(&mut self, name: &str, ok: bool, detail: impl Into<String>) -> bool {
        self.checks.push(Check {
            name: name.into(),
            ok,
            detail: detail.into(),
        });
        ok
    }

    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// A file of the release: one plain name in it, a regular file, bounded.
fn read(dir: &Path, name: &str) -> Result<Vec<u8>, String> {
    if !crate::record::is_plain_name(name) {
        return Err(format!("{name:?} is not a file name of this directory"));
    }
    hermetic_deps::host::read_small(&dir.join(name), 1 << 32).map_err(|e| format!("{name}: {e}"))
}

/// Verifies a DSSE bundle with whichever given key signed it; returns its statement.
fn dsse(
    audit: &mut Audit,
    dir: &Path,
    bundle: &str,
    keys: &[PublicKey],
    want: &str,
) -> Option<Statement> {
    let name = format!("signature of {bundle}");
    let bytes = match read(dir, bundle) {
        Ok(b) => b,
        Err(e) => {
            audit.check(&name, false, e);
            return None;
        }
    };
    let mut last = String::from("no key given");
    for key in keys {
        match verify_bundle(&bytes, key, None) {
            Ok(v) => {
                let st = v.statement?;
                if st.predicate_type != want {
                    audit.check(
                        &name,
                        false,
                        format!("predicate type {} is not {want}", st.predicate_type),
                    );
                    return None;
                }
                audit.check(&name, true, format!("DSSE, key {}", key.hint()));
                return Some(st);
            }
            Err(f) => last = format!("{f} [{}]", f.code()),
        }
    }
    audit.check(&name, false, last);
    None
}

/// (purl, sha256) of the registry crates in a document: those pinned by a Cargo.lock
/// checksum. (Path packages are part of the source tree, and workspace members that are
/// libraries look like them in an SBOM.)
type Crates = BTreeSet<(String, Option<String>)>;

fn pinned(c: Crates) -> Crates {
    c.into_iter().filter(|(_, sum)| sum.is_some()).collect()
}

fn provenance_crates(p: &Statement) -> Crates {
    p.predicate["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| {
            let purl = d["uri"]
                .as_str()
                .filter(|u| u.starts_with("pkg:cargo/"))
                .or_else(|| d["annotations"]["purl"].as_str())?;
            Some((
                purl.to_string(),
                d["digest"]["sha256"].as_str().map(String::from),
            ))
        })
        .collect()
}

fn spdx_crates(doc: &serde_json::Value) -> Crates {
    doc["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["primaryPackagePurpose"] != "APPLICATION")
        .filter_map(|p| {
            let purl = p["externalRefs"]
                .as_array()?
                .iter()
                .find(|r| r["referenceType"] == "purl")?["referenceLocator"]
                .as_str()?;
            Some((
                purl.to_string(),
                p["checksums"][0]["checksumValue"]
                    .as_str()
                    .map(String::from),
            ))
        })
        .collect()
}

fn cdx_crates(doc: &serde_json::Value) -> Crates {
    doc["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["type"] != "application")
        .filter_map(|c| {
            Some((
                c["purl"].as_str()?.to_string(),
                c["hashes"][0]["content"].as_str().map(String::from),
            ))
        })
        .collect()
}

fn differences(a: &Crates, b: &Crates) -> String {
    let only_a: Vec<String> = a.difference(b).take(3).map(|(p, _)| p.clone()).collect();
    let only_b: Vec<String> = b.difference(a).take(3).map(|(p, _)| p.clone()).collect();
    format!("only in the first: {only_a:?}; only in the second: {only_b:?}")
}

/// Runs every offline check on a release directory.
pub fn audit(dir: &Path, keys: &[PublicKey], lockfile: Option<&Path>) -> Audit {
    let mut a = Audit::default();

    // Signed blobs: each artifact listed in SHA256SUMS, and SHA256SUMS itself.
    let sums_text = match read(dir, SUMS) {
        Ok(t) => String::from_utf8_lossy(&t).into_owned(),
        Err(e) => {
            a.check("SHA256SUMS present", false, e);
            return a;
        }
    };
    let sums: BTreeMap<String, String> = parse_sha256sums(&sums_text).into_iter().collect();
    a.check(
        "SHA256SUMS lists artifacts",
        !sums.is_empty(),
        format!("{} artifact(s)", sums.len()),
    );
    let mut blobs: Vec<String> = sums.keys().cloned().collect();
    blobs.push(SUMS.into());
    for name in &blobs {
        let data = match read(dir, name) {
            Ok(d) => d,
            Err(e) => {
                a.check(&format!("{name} present"), false, e);
                continue;
            }
        };
        if let Some(want) = sums.get(name) {
            let got = sha256_hex(&data);
            a.check(
                &format!("{name} matches SHA256SUMS"),
                &got == want,
                format!("sha256 {got}"),
            );
        }
        let sig = read(dir, &format!("{name}.sig")).ok().and_then(|s| {
            base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                String::from_utf8_lossy(&s).trim(),
            )
            .ok()
        });
        let signer = sig
            .as_ref()
            .and_then(|sig| keys.iter().find(|k| k.verify(sig, &data)));
        a.check(
            &format!("{name}.sig"),
            signer.is_some(),
            match signer {
                Some(k) => format!("ECDSA P-256, key {}", k.hint()),
                None if sig.is_none() => "missing or not base64".into(),
                None => "does not verify with any given key".into(),
            },
        );
        let bundle = read(dir, &format!("{name}.sigstore.json"));
        let verdict = bundle.as_ref().map_err(Clone::clone).and_then(|b| {
            let mut last = "no key given".to_string();
            for k in keys {
                match verify_bundle(b, k, Some(&data)) {
                    Ok(_) => return Ok(k.hint().to_string()),
                    Err(f) => last = format!("{f} [{}]", f.code()),
                }
            }
            Err(last)
        });
        match verdict {
            Ok(h) => a.check(
                &format!("{name}.sigstore.json"),
                true,
                format!("bundle v0.3, key {h}"),
            ),
            Err(e) => a.check(&format!("{name}.sigstore.json"), false, e),
        };
    }

    // The signed statements.
    let provenance = dsse(&mut a, dir, PROVENANCE_BUNDLE, keys, SLSA_PROVENANCE_V1);
    let spdx = dsse(&mut a, dir, SPDX_BUNDLE, keys, SPDX_DOCUMENT);
    let cdx = dsse(&mut a, dir, CYCLONEDX_BUNDLE, keys, CYCLONEDX_BOM);

    // The plain documents are the signed ones.
    for (file, st) in [(PROVENANCE, &provenance), (SPDX, &spdx), (CYCLONEDX, &cdx)] {
        let Some(st) = st else { continue };
        let plain: Option<serde_json::Value> = read(dir, file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let signed = if file == PROVENANCE {
            serde_json::to_value(st).ok()
        } else {
            Some(st.predicate.clone())
        };
        a.check(
            &format!("{file} is the signed document"),
            plain.is_some() && plain == signed,
            if plain.is_none() {
                "missing or not JSON"
            } else {
                "compared with the signed statement"
            },
        );
    }

    // Every artifact is a subject of every statement, with the same digest, and nothing more.
    let listed: BTreeSet<(String, String)> =
        sums.iter().map(|(n, d)| (n.clone(), d.clone())).collect();
    for (what, st) in [
        ("provenance", &provenance),
        ("SPDX statement", &spdx),
        ("CycloneDX statement", &cdx),
    ] {
        let Some(st) = st else { continue };
        let subjects: BTreeSet<(String, String)> = st
            .subject
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    s.digest.get("sha256").cloned().unwrap_or_default(),
                )
            })
            .collect();
        a.check(
            &format!("{what} subjects = SHA256SUMS"),
            subjects == listed,
            format!("{} subject(s)", subjects.len()),
        );
    }

    // The same crates, versions and checksums everywhere.
    if let (Some(p), Some(s), Some(c)) = (&provenance, &spdx, &cdx) {
        let (pc, sc, cc) = (
            pinned(provenance_crates(p)),
            pinned(spdx_crates(&s.predicate)),
            pinned(cdx_crates(&c.predicate)),
        );
        a.check(
            "provenance crates = SPDX packages",
            pc == sc,
            if pc == sc {
                format!("{} crates", pc.len())
            } else {
                differences(&pc, &sc)
            },
        );
        a.check(
            "provenance crates = CycloneDX components",
            pc == cc,
            if pc == cc {
                format!("{} crates", pc.len())
            } else {
                differences(&pc, &cc)
            },
        );
        if let Some(lock_path) = lockfile {
            match hermetic_deps::lockfile::Lockfile::read(lock_path) {
                Ok(lock) => {
                    let recorded = p.predicate["buildDefinition"]["resolvedDependencies"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|d| d["name"] == "Cargo.lock")
                        .and_then(|d| d["digest"]["sha256"].as_str().map(String::from));
                    a.check(
                        "Cargo.lock is the one built",
                        recorded.as_deref() == Some(lock.sha256.as_str()),
                        format!("sha256 {}", lock.sha256),
                    );
                    let locked: BTreeMap<String, Option<String>> = lock
                        .packages
                        .iter()
                        .map(|l| {
                            (
                                format!("pkg:cargo/{}@{}", l.name, l.version),
                                l.checksum.clone(),
                            )
                        })
                        .collect();
                    let wrong: Vec<&String> = pc
                        .iter()
                        .filter(|(purl, sum)| {
                            sum.is_some() && locked.get(purl).cloned().flatten() != *sum
                        })
                        .map(|(purl, _)| purl)
                        .collect();
                    a.check(
                        "crate checksums = Cargo.lock",
                        wrong.is_empty(),
                        if wrong.is_empty() {
                            format!("{} crates", pc.len())
                        } else {
                            format!("differ: {wrong:?}")
                        },
                    );
                }
                Err(e) => {
                    a.check("Cargo.lock readable", false, e.to_string());
                }
            }
        }
        // The record's dependency manifest, trusted only if it lists the signed crates.
        if let Ok(rec) = BuildRecord::read(&dir.join(RECORD)) {
            let rc: Crates = rec
                .deps
                .dependencies()
                .map(|d| (d.purl(), d.checksum.clone()))
                .collect();
            let rc = pinned(rc);
            let crates_match = a.check(
                "build record matches the signed provenance",
                rc == pc,
                if rc == pc {
                    "same crates and checksums".to_string()
                } else {
                    differences(&rc, &pc)
                },
            );
            // What a policy decides on (build scripts, proc macros, sources, licenses,
            // edges) is believed only as the manifest the provenance signs by digest.
            let signed = provenance.as_ref().and_then(|p| {
                p.predicate["runDetails"]["byproducts"]
                    .as_array()?
                    .iter()
                    .find(|b| b["name"] == crate::provenance::DEPENDENCY_MANIFEST)?["digest"]
                    ["sha256"]
                    .as_str()
                    .map(String::from)
            });
            let have = crate::provenance::dependency_manifest_sha256(&rec);
            let manifest_signed = a.check(
                "dependency manifest is the signed one",
                signed.as_deref() == Some(have.as_str()),
                match &signed {
                    Some(s) if *s == have => format!("sha256 {have}"),
                    Some(s) => format!(
                        "the record's dependency manifest has sha256 {have}, the signed \
                         provenance names {s}: {RECORD} was changed after signing"
                    ),
                    None => "the signed provenance names no dependency manifest (made by an \
                             older hermetic): rebuild the release to audit it against a policy"
                        .into(),
                },
            );
            if crates_match && manifest_signed {
                a.record = Some(rec);
            }
        }
    }
    a.provenance = provenance;
    a
}
