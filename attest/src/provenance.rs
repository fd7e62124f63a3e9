//! SLSA Provenance v1 for a hermetic build, as an in-toto statement whose subjects are the
//! released files. `buildDefinition` depends only on the inputs; `runDetails` on the run.
//! The build type and its parameters are documented in `docs/build-type-v1.md`.

use crate::record::BuildRecord;
use crate::statement::{SLSA_PROVENANCE_V1, Statement, Subject};
use crate::time::rfc3339;
use hermetic_deps::Source;
use serde_json::{Value, json};

/// Stable URI of hermetic's build type (the documentation of its parameters).
pub const BUILD_TYPE: &str =
    "https://github.com/hermetic-build/hermetic/blob/main/docs/build-type-v1.md";
/// Prefix of builder ids; the runner id follows.
pub const BUILDER_ID_PREFIX: &str = "https://github.com/hermetic-build/hermetic/runner/";

/// Subjects: every artifact of the record (binaries and the archive).
pub fn subjects(rec: &BuildRecord) -> Vec<Subject> {
    rec.artifacts
        .iter()
        .map(|a| Subject::sha256(&a.name, &a.sha256))
        .collect()
}

pub fn statement(rec: &BuildRecord) -> Statement {
    Statement::new(subjects(rec), SLSA_PROVENANCE_V1, predicate(rec))
}

fn source_descriptor(rec: &BuildRecord) -> Value {
    let mut digest = serde_json::Map::new();
    if let (Some(commit), false) = (&rec.source.commit, rec.source.dirty) {
        digest.insert("gitCommit".into(), json!(commit));
    }
    digest.insert("sha256".into(), json!(rec.source.tree_sha256));
    let mut d = json!({ "name": "source", "digest": digest });
    if let Some(uri) = &rec.source.uri {
        d["uri"] = match (&rec.source.commit, rec.source.dirty) {
            (Some(c), false) => json!(format!("{uri}@{c}")),
            _ => json!(uri),
        };
    }
    if rec.source.dirty {
        d["annotations"] = json!({ "dirty": true, "commit": rec.source.commit });
    }
    d
}

fn external_parameters(rec: &BuildRecord) -> Value {
    let mut source = json!({ "digest": source_descriptor(rec)["digest"] });
    if let Some(uri) = &rec.source.uri {
        source["uri"] = json!(uri);
    }
    json!({
        "source": source,
        "manifestPath": rec.source.manifest_path,
        // The SBOMs name it as what was built: part of what the signature covers.
        "package": { "name": rec.package.name, "version": rec.package.version },
        "profile": rec.profile,
        "features": rec.features,
        "target": rec.target,
    })
}

fn internal_parameters(rec: &BuildRecord) -> Value {
    let mut v = json!({
        "sourceDateEpoch": rec.source_date_epoch,
        "sourceDateEpochOrigin": rec.source_date_epoch_origin,
        "environment": rec.environment.variables,
        "command": rec.environment.command,
        "container": rec.environment.container,
        "variations": rec.environment.variations,
    });
    if !rec.verified_by.is_empty() {
        v["runners"] = json!(rec.verified_by);
    }
    v
}

fn crate_descriptor(p: &hermetic_deps::Package) -> Value {
    match &p.source {
        Source::Git { url, commit, .. } => json!({
            "name": p.name,
            "uri": format!("git+{url}@{commit}"),
            "digest": { "gitCommit": commit },
            "annotations": { "purl": p.purl() },
        }),
        Source::Registry { name, .. } => {
            let mut d = json!({ "name": p.name, "uri": p.purl() });
            if let Some(sum) = &p.checksum {
                d["digest"] = json!({ "sha256": sum });
            }
            if name != "crates-io" {
                d["annotations"] = json!({ "registry": name });
            }
            d
        }
        Source::Path { path } => json!({
            "name": p.name,
            "uri": p.purl(),
            "annotations": { "path": path },
        }),
    }
}

fn resolved_dependencies(rec: &BuildRecord) -> Vec<Value> {
    let mut out = vec![
        source_descriptor(rec),
        json!({ "name": "Cargo.lock", "digest": { "sha256": rec.lockfile_sha256 } }),
        json!({ "name": "vendor", "digest": { "sha256": rec.vendor_tree_sha256 } }),
    ];
    let image_hex = rec
        .image
        .digest
        .strip_prefix("sha256:")
        .unwrap_or(&rec.image.digest);
    let mut image = json!({
        "name": "builder-image",
        "uri": format!("docker-image://{}", rec.image.reference),
        "digest": { "sha256": image_hex },
    });
    // How to make the same image anywhere (see hermetic-image.lock).
    if let Some(d) = &rec.image.definition {
        image["annotations"] = json!({ "definition": d });
    }
    out.push(image);
    let mut toolchain = json!({ "name": "rust-toolchain" });
    if let Some(release) = rec.image.rustc_release() {
        toolchain["uri"] = json!(format!("pkg:generic/rust@{release}"));
    }
    toolchain["annotations"] = json!({ "rustc": rec.image.toolchain });
    // A descriptor needs a uri or digest: the toolchain is also pinned by the image digest.
    if toolchain.get("uri").is_none() {
        toolchain["digest"] = json!({ "sha256": image_hex });
    }
    out.push(toolchain);
    out.extend(rec.deps.dependencies().map(crate_descriptor));
    out
}

/// The byproduct naming the dependency manifest (the record's `deps`): everything a vendor
/// policy decides on (sources, build scripts, proc macros, licenses, edges) is bound to the
/// signature through its digest.
pub const DEPENDENCY_MANIFEST: &str = "dependency-manifest.json";

/// The digest the provenance signs for a record's dependency manifest.
pub fn dependency_manifest_sha256(rec: &BuildRecord) -> String {
    hermetic_deps::hash::sha256_hex(rec.deps.to_json().as_bytes())
}

pub fn predicate(rec: &BuildRecord) -> Value {
    let mut byproducts = vec![json!({
        "name": DEPENDENCY_MANIFEST,
        "digest": { "sha256": dependency_manifest_sha256(rec) },
        "mediaType": "application/json",
    })];
    if let Some(log) = &rec.log {
        byproducts.push(json!({ "name": log.name, "digest": { "sha256": log.sha256 } }));
    }
    json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external_parameters(rec),
            "internalParameters": internal_parameters(rec),
            "resolvedDependencies": resolved_dependencies(rec),
        },
        "runDetails": {
            "builder": {
                "id": format!("{BUILDER_ID_PREFIX}{}", rec.runner.id),
                "version": { "hermetic": rec.hermetic_version },
            },
            "metadata": {
                "invocationId": rec.run.invocation_id,
                "startedOn": rfc3339(rec.run.started_unix as i64),
                "finishedOn": rfc3339(rec.run.finished_unix as i64),
            },
            "byproducts": byproducts,
        },
    })
}
