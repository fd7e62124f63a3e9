//! SBOMs from the dependency manifest: SPDX 2.3 JSON and CycloneDX 1.6 JSON. Both are
//! reproducible: the only time in them is SOURCE_DATE_EPOCH, and the SPDX namespace and
//! CycloneDX serial number are derived from the document's own content.

use crate::statement::to_pretty;
use crate::time::rfc3339;
use hermetic_deps::{DepManifest, Package, Source};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Names the document and its described package.
pub struct Root<'a> {
    pub name: &'a str,
    pub version: &'a str,
}

const TOOL: &str = concat!("hermetic-", env!("CARGO_PKG_VERSION"));

/// Cargo accepts the legacy `MIT/Apache-2.0`; SPDX needs `MIT OR Apache-2.0`. Anything that
/// is still not a valid SPDX expression is reported as unknown rather than guessed at.
pub fn license_expression(raw: Option<&str>) -> Option<String> {
    let raw = raw?.trim();
    let normalised = raw
        .split('/')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" OR ");
    spdx::Expression::parse(&normalised).ok()?;
    Some(normalised)
}

/// Where the package's source can be fetched: the `.crate` of crates.io, a git URL at the
/// commit, or nothing known.
fn download_location(p: &Package) -> Option<String> {
    match &p.source {
        Source::Registry { name, .. } if name == "crates-io" => Some(format!(
            "https://static.crates.io/crates/{0}/{0}-{1}.crate",
            p.name, p.version
        )),
        Source::Git { url, commit, .. } => Some(format!("git+{url}@{commit}")),
        _ => None,
    }
}

fn spdx_ids(m: &DepManifest) -> BTreeMap<&str, String> {
    let mut taken = std::collections::BTreeSet::new();
    let mut ids = BTreeMap::new();
    for p in &m.packages {
        let base: String = format!("SPDXRef-Package-{}-{}", p.name, p.version)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let mut id = base.clone();
        if taken.contains(&id) {
            // Same name and version from two sources: disambiguate by the package id.
            id = format!("{base}-{}", &hex::encode(Sha256::digest(&p.id))[..12]);
        }
        taken.insert(id.clone());
        ids.insert(p.id.as_str(), id);
    }
    ids
}

/// SPDX 2.3 JSON, as bytes.
pub fn spdx(m: &DepManifest, root: &Root, source_date_epoch: i64) -> Vec<u8> {
    let ids = spdx_ids(m);
    let mut packages = vec![];
    for p in &m.packages {
        let mut pkg = json!({
            "SPDXID": ids[p.id.as_str()],
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": download_location(p).unwrap_or_else(|| "NOASSERTION".into()),
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": license_expression(p.license.as_deref())
                .unwrap_or_else(|| "NOASSERTION".into()),
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose":
                if p.workspace_member && !p.bin_targets.is_empty() { "APPLICATION" } else { "LIBRARY" },
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": p.purl(),
            }],
        });
        if let Some(sum) = &p.checksum {
            pkg["checksums"] = json!([{ "algorithm": "SHA256", "checksumValue": sum }]);
        }
        packages.push(pkg);
    }
    let mut relationships = vec![];
    for member in m.packages.iter().filter(|p| p.workspace_member) {
        relationships.push(json!({
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": ids[member.id.as_str()],
        }));
    }
    for p in &m.packages {
        for d in &p.dependencies {
            let Some(dep_id) = ids.get(d.id.as_str()) else {
                continue;
            };
            let from = &ids[p.id.as_str()];
            let kinds = &d.kinds;
            // A normal edge says it all; build-only and dev-only edges are typed as such.
            let (element, kind, related) = if kinds.iter().any(|k| k == "normal") {
                (from, "DEPENDS_ON", dep_id)
            } else if kinds.iter().any(|k| k == "build") {
                (dep_id, "BUILD_DEPENDENCY_OF", from)
            } else {
                (dep_id, "DEV_DEPENDENCY_OF", from)
            };
            relationships.push(json!({
                "spdxElementId": element,
                "relationshipType": kind,
                "relatedSpdxElement": related,
            }));
        }
    }
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}-{}", root.name, root.version),
        "documentNamespace": "",
        "creationInfo": {
            "created": rfc3339(source_date_epoch),
            "creators": [format!("Tool: {TOOL}")],
        },
        "packages": packages,
        "relationships": relationships,
    });
    // Unique per content, identical for identical content.
    let digest = hex::encode(Sha256::digest(to_pretty(&doc)));
    doc["documentNamespace"] = json!(format!(
        "https://github.com/hermetic-build/hermetic/spdx/{}-{}-{digest}",
        root.name, root.version
    ));
    to_pretty(&doc)
}

/// A UUID (version 5 layout, as the CycloneDX schema requires) from a SHA-256.
fn uuid_from(digest: &[u8]) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn cdx_component(p: &Package) -> Value {
    let mut c = json!({
        "type": if p.workspace_member && !p.bin_targets.is_empty() { "application" } else { "library" },
        "bom-ref": p.id,
        "name": p.name,
        "version": p.version,
        "purl": p.purl(),
    });
    if let Some(sum) = &p.checksum {
        c["hashes"] = json!([{ "alg": "SHA-256", "content": sum }]);
    }
    if let Some(expr) = license_expression(p.license.as_deref()) {
        c["licenses"] = json!([{ "expression": expr }]);
    }
    match (&p.source, download_location(p)) {
        (Source::Git { url, .. }, _) => {
            c["externalReferences"] = json!([{ "type": "vcs", "url": url }]);
        }
        (_, Some(url)) => {
            c["externalReferences"] = json!([{ "type": "distribution", "url": url }]);
        }
        _ => {}
    }
    let mut props = vec![];
    if p.build_script {
        props.push(json!({ "name": "hermetic:cargo:build-script", "value": "true" }));
    }
    if p.proc_macro {
        props.push(json!({ "name": "hermetic:cargo:proc-macro", "value": "true" }));
    }
    if !props.is_empty() {
        c["properties"] = json!(props);
    }
    c
}

/// CycloneDX 1.6 JSON, as bytes.
pub fn cyclonedx(m: &DepManifest, root: &Root, source_date_epoch: i64) -> Vec<u8> {
    let main = m
        .packages
        .iter()
        .find(|p| p.workspace_member && p.name == root.name && p.version == root.version);
    let components: Vec<Value> = m
        .packages
        .iter()
        .filter(|p| Some(p.id.as_str()) != main.map(|m| m.id.as_str()))
        .map(cdx_component)
        .collect();
    let dependencies: Vec<Value> = m
        .packages
        .iter()
        .map(|p| {
            let mut on: Vec<&str> = p
                .dependencies
                .iter()
                .filter(|d| m.package(&d.id).is_some())
                .map(|d| d.id.as_str())
                .collect();
            on.sort();
            on.dedup();
            json!({ "ref": p.id, "dependsOn": on })
        })
        .collect();
    let mut metadata = json!({
        "timestamp": rfc3339(source_date_epoch),
        "tools": { "components": [{
            "type": "application",
            "name": "hermetic",
            "version": env!("CARGO_PKG_VERSION"),
        }]},
    });
    if let Some(main) = main {
        metadata["component"] = cdx_component(main);
    }
    let mut doc = json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": "",
        "version": 1,
        "metadata": metadata,
        "components": components,
        "dependencies": dependencies,
    });
    let digest = Sha256::digest(to_pretty(&doc));
    doc["serialNumber"] = json!(format!("urn:uuid:{}", uuid_from(&digest)));
    to_pretty(&doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn licenses_are_normalised_or_dropped() {
        assert_eq!(
            license_expression(Some("MIT/Apache-2.0")).as_deref(),
            Some("MIT OR Apache-2.0")
        );
        assert_eq!(
            license_expression(Some("MIT OR Apache-2.0")).as_deref(),
            Some("MIT OR Apache-2.0")
        );
        assert_eq!(license_expression(Some("Proprietary junk")), None);
        assert_eq!(license_expression(None), None);
    }

    #[test]
    fn uuid_has_version_and_variant() {
        let u = uuid_from(&Sha256::digest(b"x"));
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "5");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }
}
