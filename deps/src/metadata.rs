//! Reading the resolved graph through `cargo metadata --locked`.

use crate::error::{Error, Result};
use crate::lockfile::{Lockfile, Source};
use crate::manifest::{DepManifest, Dependency, FORMAT, Package};
use cargo_metadata::{DependencyKind, Metadata, MetadataCommand, TargetKind};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Runs `cargo metadata --locked`, optionally offline against a source-replacement config
/// (`offline_config`: the config file and the vendored tree it serves).
pub(crate) fn cargo_metadata(
    manifest_path: &Path,
    offline_config: Option<(&Path, &Path)>,
) -> Result<Metadata> {
    let mut cmd = MetadataCommand::new();
    // From a directory the project does not control, without secrets (see `host`).
    cmd.cargo_path(crate::host::cargo_program())
        .manifest_path(manifest_path)
        .current_dir(crate::host::NEUTRAL_DIR)
        .env("CARGO_TARGET_DIR", crate::host::cargo_target_dir());
    for v in crate::host::SECRET_VARS {
        cmd.env_remove(v);
    }
    let mut opts = vec!["--locked".to_string()];
    let mut visible = crate::host::Visible::project(manifest_path);
    if let Some((config, tree)) = offline_config {
        visible = visible
            .and_read(config.parent().unwrap_or(Path::new("/nonexistent")))
            .and_read(tree);
        opts.push("--offline".into());
        opts.push("--config".into());
        opts.push(config.display().to_string());
    }
    cmd.other_options(opts);
    // Run with a time limit (a member manifest that is a fifo would block cargo forever)
    // and a bounded answer.
    let host = crate::host::HostCommand::new(cmd.cargo_command(), visible).map_err(|source| {
        Error::Io {
            path: std::env::temp_dir(),
            source,
        }
    })?;
    let mut command = host.sandboxed()?;
    let out = crate::host::output_within(&mut command, None, CARGO_TIMEOUT)
        .map_err(|f| crate::vendor::cargo_failure(manifest_path, "cargo metadata", f))?;
    if !out.status.success() {
        return Err(classify_stderr(
            manifest_path.to_path_buf(),
            &String::from_utf8_lossy(&out.stderr),
        ));
    }
    MetadataCommand::parse(String::from_utf8_lossy(&out.stdout))
        .map_err(|e| classify(manifest_path, e))
}

/// How long host cargo may take to read the workspace (it may fetch the registry's index).
const CARGO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

fn classify(manifest_path: &Path, e: cargo_metadata::Error) -> Error {
    let path = manifest_path.to_path_buf();
    match e {
        cargo_metadata::Error::CargoMetadata { stderr } => classify_stderr(path, &stderr),
        cargo_metadata::Error::Io(io) => Error::CargoMissing(io),
        other => Error::Cargo {
            path,
            detail: other.to_string(),
        },
    }
}

/// Sorts cargo's failures into the user's errors and the registry's.
pub(crate) fn classify_stderr(path: PathBuf, stderr: &str) -> Error {
    let detail = stderr
        .lines()
        .map(|l| l.trim().trim_start_matches("error: ").trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    let has = |needle: &str| stderr.contains(needle);
    // A path dependency that host cargo could not read because it is outside the
    // workspace, the only tree it sees (and the only one a hermetic build sees).
    let dependency = stderr
        .split("failed to load manifest for dependency `")
        .nth(1)
        .and_then(|r| r.split('`').next());
    let read = stderr
        .split("failed to read `")
        .nth(1)
        .and_then(|r| r.split('`').next())
        .map(PathBuf::from);
    if let (Some(name), Some(dep_manifest)) = (dependency, read) {
        let root = crate::host::Visible::project(&path)
            .read
            .into_iter()
            .next()
            .unwrap_or_default();
        if !dep_manifest.starts_with(&root) {
            return Error::PathDependencyOutside {
                manifest: path,
                name: name.to_string(),
                dep_path: dep_manifest
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default(),
                root,
            };
        }
    }
    if has("needs to be updated but --locked") || has("cannot update the lock file") {
        Error::LockOutdated { path, detail }
    } else if has("failed to authenticate")
        || has("no authentication methods succeeded")
        || has("could not read Username")
        || has("Authentication failed for")
    {
        Error::CredentialsNeeded { path, detail }
    } else if has("Couldn't resolve host")
        || has("failed to download")
        || has("failed to query replaced source")
        || has("failed to get `")
        || has("spurious network error")
        || has("Could not resolve host")
        || has("Failed to connect")
        || has("failed to fetch")
        || has("download of ")
        || has("failed to load source for dependency")
            && (has("network") || has("Unable to update"))
    {
        Error::RegistryUnreachable { path, detail }
    } else {
        Error::Cargo { path, detail }
    }
}

/// Builds the dependency manifest from cargo's resolve and the lockfile's checksums.
pub(crate) fn build_manifest(meta: &Metadata, lock: &Lockfile) -> Result<DepManifest> {
    let root = meta.workspace_root.as_std_path();
    let members: BTreeSet<&cargo_metadata::PackageId> = meta.workspace_members.iter().collect();
    let checksums: HashMap<(&str, &str, Option<&str>), Option<&str>> = lock
        .packages
        .iter()
        .map(|p| {
            (
                (p.name.as_str(), p.version.as_str(), p.source.as_deref()),
                p.checksum.as_deref(),
            )
        })
        .collect();

    // Ids are `name@version` unless two sources share one.
    let mut count: HashMap<(String, String), usize> = HashMap::new();
    for p in &meta.packages {
        *count
            .entry((p.name.to_string(), p.version.to_string()))
            .or_default() += 1;
    }
    let mut ids: HashMap<&cargo_metadata::PackageId, String> = HashMap::new();
    let mut packages = Vec::new();
    for p in &meta.packages {
        let name = p.name.to_string();
        let version = p.version.to_string();
        let raw_source = p.source.as_ref().map(|s| s.repr.clone());
        let member = members.contains(&p.id);
        let source = match raw_source.as_deref().and_then(Source::parse) {
            Some(s) => s,
            None => {
                let dir = p
                    .manifest_path
                    .parent()
                    .map(|d| d.as_std_path().to_path_buf())
                    .unwrap_or_default();
                // By real location: a member or path dependency may be a link out.
                let real = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
                let real_root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
                if !real.starts_with(&real_root) {
                    return Err(Error::PathDependencyOutside {
                        manifest: p.manifest_path.clone().into_std_path_buf(),
                        name: p.name.to_string(),
                        dep_path: real,
                        root: real_root,
                    });
                }
                let rel = dir
                    .strip_prefix(root)
                    .map_err(|_| Error::PathDependencyOutside {
                        manifest: root.join("Cargo.toml"),
                        name: name.clone(),
                        dep_path: dir.clone(),
                        root: root.to_path_buf(),
                    })?;
                Source::Path {
                    path: if rel.as_os_str().is_empty() {
                        ".".into()
                    } else {
                        rel.to_string_lossy().replace('\\', "/")
                    },
                }
            }
        };
        let id = if count[&(name.clone(), version.clone())] > 1 {
            format!(
                "{name}@{version}+{}",
                source.lock_string().unwrap_or_else(|| "path".into())
            )
        } else {
            format!("{name}@{version}")
        };
        let checksum = checksums
            .get(&(name.as_str(), version.as_str(), raw_source.as_deref()))
            .copied()
            .flatten()
            .map(str::to_string);
        let has_kind = |k: &TargetKind| p.targets.iter().any(|t| t.kind.iter().any(|tk| tk == k));
        ids.insert(&p.id, id.clone());
        packages.push(Package {
            id,
            vendor_dir: raw_source.as_ref().map(|_| format!("{name}-{version}")),
            name,
            version,
            source,
            checksum,
            license: p.license.clone(),
            license_file: p.license_file.as_ref().map(|f| f.to_string()),
            build_script: has_kind(&TargetKind::CustomBuild),
            proc_macro: has_kind(&TargetKind::ProcMacro),
            workspace_member: member,
            bin_required_features: if member {
                p.targets
                    .iter()
                    .filter(|t| {
                        t.kind.contains(&TargetKind::Bin) && !t.required_features.is_empty()
                    })
                    .map(|t| (t.name.clone(), t.required_features.clone()))
                    .collect()
            } else {
                Default::default()
            },
            features: if member {
                p.features.clone().into_iter().collect()
            } else {
                Default::default()
            },
            bin_targets: if member {
                let mut bins: Vec<String> = p
                    .targets
                    .iter()
                    .filter(|t| t.kind.contains(&TargetKind::Bin))
                    .map(|t| t.name.clone())
                    .collect();
                bins.sort();
                bins
            } else {
                Vec::new()
            },
            enabled_features: Vec::new(),
            dependencies: Vec::new(),
        });
    }

    if let Some(resolve) = &meta.resolve {
        let mut edges: HashMap<String, Vec<Dependency>> = HashMap::new();
        for node in &resolve.nodes {
            let Some(from) = ids.get(&node.id) else {
                continue;
            };
            let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for dep in &node.deps {
                let Some(to) = ids.get(&dep.pkg) else {
                    continue;
                };
                let kinds = deps.entry(to.clone()).or_default();
                for k in &dep.dep_kinds {
                    kinds.insert(
                        match k.kind {
                            DependencyKind::Development => "dev",
                            DependencyKind::Build => "build",
                            _ => "normal",
                        }
                        .to_string(),
                    );
                }
            }
            edges.insert(
                from.clone(),
                deps.into_iter()
                    .map(|(id, kinds)| Dependency {
                        id,
                        kinds: kinds.into_iter().collect(),
                    })
                    .collect(),
            );
        }
        let mut features: HashMap<String, Vec<String>> = resolve
            .nodes
            .iter()
            .filter_map(|n| {
                // Shown in reports: only names cargo itself would accept, of a sane length.
                let mut on: Vec<String> = n
                    .features
                    .iter()
                    .map(|f| f.to_string())
                    .filter(|f| {
                        f.len() <= 64
                            && f.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"_-+.".contains(&b))
                    })
                    .collect();
                on.sort();
                Some((ids.get(&n.id)?.clone(), on))
            })
            .collect();
        for p in &mut packages {
            p.dependencies = edges.remove(&p.id).unwrap_or_default();
            p.enabled_features = features.remove(&p.id).unwrap_or_default();
        }
    }

    packages.sort_by(|a, b| a.id.cmp(&b.id));
    let mut workspace_members: Vec<String> = meta
        .workspace_members
        .iter()
        .filter_map(|id| ids.get(id).cloned())
        .collect();
    workspace_members.sort();
    let manifest = DepManifest {
        format: FORMAT,
        lockfile_sha256: lock.sha256.clone(),
        vendor_key: lock.vendor_key(),
        workspace_members,
        packages,
        vendored: lock
            .external()
            .map(|p| crate::manifest::VendoredCrate {
                dir: p.dir_name(),
                name: p.name.clone(),
                version: p.version.clone(),
                source: p.source.clone().unwrap_or_default(),
                checksum: p.checksum.clone(),
            })
            .collect(),
    };
    // A binary's name becomes an output file: the project's manifests are not trusted.
    manifest.validate().map_err(|detail| Error::Cargo {
        path: lock.path.with_file_name("Cargo.toml"),
        detail,
    })?;
    Ok(manifest)
}
