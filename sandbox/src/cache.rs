//! The engine's copy of a vendored tree, kept between builds.
//!
//! The vendored tree is a build's biggest input (a hundred megabytes for ripgrep), and
//! unpacking it through the API is most of a warm build's overhead. Each engine therefore
//! keeps it in a volume, keyed by the SHA-256 of its deterministic archive, and builds mount
//! that volume read-only.
//!
//! A volume is filled through a helper container named `hermetic-filling-RUN` that mounts
//! it. Only once the whole archive is unpacked is the helper renamed to
//! `hermetic-deps-SHA256`: the rename is the commit. A name is unique per engine, so two
//! runs filling the same tree at once cannot both publish; the loser uses the winner's copy.
//! A run killed while filling leaves a `hermetic-filling-` helper, removed once its process
//! is gone ([`prune`]). The published helper also keeps the volume in use, so that
//! `docker volume prune` leaves it alone.
//!
//! These carry `hermetic.cache`, not the `hermetic` run label: a run's cleanup leaves them,
//! and `hermetic gc --cache` removes them.

use crate::container::{self, Limits, remove_volume};
use crate::engine::{Engine, RetryPolicy, permanent, retry};
use crate::error::Result;
use crate::run::{LABEL_HOST, LABEL_PID, RunId, host_name, owner_gone};
use bollard::models::{ContainerCreateBody, ContainerSummary};
use bollard::query_parameters::RenameContainerOptionsBuilder;
use std::collections::HashMap;

/// Marks the engine-side cache's containers and volumes; its value is what is cached.
pub const LABEL_CACHE: &str = "hermetic.cache";
/// The SHA-256 of the archive a cache volume holds.
pub const LABEL_DEPS: &str = "hermetic.deps";
/// Where the helpers mount the volume; the archive's entries start with `deps/`.
const MOUNT: &str = "/deps";
const PUBLISHED: &str = "hermetic-deps-";
const FILLING: &str = "hermetic-filling-";
/// Published trees kept per engine (the newest); older ones go when a new one is added.
pub const KEEP: usize = 4;
/// A filling helper this old is abandoned even if its owner cannot be checked (another
/// machine's run).
const ABANDONED_AFTER_SECS: i64 = 24 * 3600;

/// The volume holding a build's vendored tree.
#[derive(Debug, Clone)]
pub struct DepsVolume {
    pub name: String,
    /// Found on the engine: nothing was uploaded.
    pub reused: bool,
    /// Pruning older trees failed after this one was published. That only wastes disk, so
    /// the build goes on and the caller reports it.
    pub prune_failed: Option<String>,
}

fn labels(sha256: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_CACHE.to_string(), "deps".to_string()),
        (LABEL_DEPS.to_string(), sha256.to_string()),
        (LABEL_PID.to_string(), std::process::id().to_string()),
        (LABEL_HOST.to_string(), host_name()),
    ])
}

/// The volume of a published tree, if this engine has one.
async fn published(engine: &Engine, sha256: &str) -> Result<Option<String>> {
    let name = format!("{PUBLISHED}{sha256}");
    let inspected = retry(
        "inspect the vendored-tree cache",
        RetryPolicy::default(),
        || engine.docker.inspect_container(&name, None),
    )
    .await;
    match inspected {
        Ok(c) => Ok(deps_mount(
            c.mounts
                .iter()
                .flatten()
                .map(|m| (m.destination.as_deref(), m.name.as_deref())),
        )),
        Err(crate::Error::Engine { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A volume holding the archive `archive()` makes (SHA-256 `sha256`) on this engine: the
/// published copy if there is one, else a new one, filled and (if `share`) published for
/// later builds. An unshared volume carries the run's labels and goes with the run.
pub async fn deps_volume(
    engine: &Engine,
    run: &RunId,
    image: &str,
    limits: &Limits,
    sha256: &str,
    archive: impl FnOnce() -> Result<bytes::Bytes>,
    share: bool,
) -> Result<DepsVolume> {
    if share && let Some(name) = published(engine, sha256).await? {
        return Ok(DepsVolume {
            name,
            reused: true,
            prune_failed: None,
        });
    }
    // Made before anything is created on the engine, so that failing leaves nothing.
    let archive = archive()?;
    let volume = format!("hermetic-{}-deps", run.0);
    let labels = if share { labels(sha256) } else { run.labels() };
    container::create_volume(engine, &volume, labels.clone()).await?;
    let mut host_config = container::hardened_host_config(
        vec![container::volume_mount(&volume, MOUNT, false)],
        limits,
    );
    // Never started: the engine unpacks into the mounted volume, under `/`.
    host_config.readonly_rootfs = Some(false);
    let helper = container::create(
        engine,
        &format!("{FILLING}{}", run.0),
        ContainerCreateBody {
            image: Some(image.into()),
            cmd: Some(vec!["true".into()]),
            labels: Some(labels),
            network_disabled: Some(true),
            host_config: Some(host_config),
            ..Default::default()
        },
    )
    .await;
    let helper = match helper {
        Ok(h) => h,
        Err(e) => {
            let _ = remove_volume(engine, &volume).await;
            return Err(e);
        }
    };
    if let Err(e) = container::upload(engine, &helper, "/", archive).await {
        // Half a tree is worth nothing: it goes now, not when this process is gone.
        let _ = container::remove(engine, &helper).await;
        let _ = remove_volume(engine, &volume).await;
        return Err(e);
    }
    if !share {
        container::remove(engine, &helper).await?;
        return Ok(DepsVolume {
            name: volume,
            reused: false,
            prune_failed: None,
        });
    }
    let publish = engine
        .docker
        .rename_container(
            &helper,
            RenameContainerOptionsBuilder::default()
                .name(&format!("{PUBLISHED}{sha256}"))
                .build(),
        )
        .await;
    match publish {
        Ok(()) => {
            // Room for this one: the oldest published trees go.
            let prune_failed = prune(engine, Some(sha256))
                .await
                .err()
                .map(|e| format!("pruning the vendored-tree cache on {}: {e}", engine.host));
            Ok(DepsVolume {
                name: volume,
                reused: false,
                prune_failed,
            })
        }
        // Another run published the same tree meanwhile: use it, drop this copy.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => {
            container::remove(engine, &helper).await?;
            remove_volume(engine, &volume).await?;
            match published(engine, sha256).await? {
                Some(name) => Ok(DepsVolume {
                    name,
                    reused: true,
                    prune_failed: None,
                }),
                None => Err(crate::Error::Engine {
                    op: "publish the vendored-tree cache".into(),
                    status: 409,
                    message: "the published copy vanished while this run filled its own".into(),
                }),
            }
        }
        Err(e) => Err(permanent("publish the vendored-tree cache", e)),
    }
}

async fn cache_containers(engine: &Engine) -> Result<Vec<ContainerSummary>> {
    container::list(engine, "label", LABEL_CACHE).await
}

fn name_of(c: &ContainerSummary) -> String {
    c.names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_default()
}

/// The volume mounted at [`MOUNT`], from (destination, volume name) pairs: the engine
/// describes mounts with one type in listings and another in inspection.
fn deps_mount<'a>(
    mut mounts: impl Iterator<Item = (Option<&'a str>, Option<&'a str>)>,
) -> Option<String> {
    mounts
        .find(|(destination, _)| *destination == Some(MOUNT))
        .and_then(|(_, name)| name.map(String::from))
}

fn volume_of(c: &ContainerSummary) -> Option<String> {
    deps_mount(
        c.mounts
            .iter()
            .flatten()
            .map(|m| (m.destination.as_deref(), m.name.as_deref())),
    )
}

/// Removes one cache entry: its helper, then its volume. An entry whose volume a build
/// still mounts is left whole.
async fn drop_entry(engine: &Engine, c: &ContainerSummary) -> Result<Option<String>> {
    let Some(id) = c.id.as_deref() else {
        return Ok(None);
    };
    if let Some(v) = volume_of(c) {
        let users = container::list(engine, "volume", &v).await?;
        if users.iter().any(|u| u.id.as_deref() != Some(id)) {
            return Ok(None);
        }
    }
    container::remove(engine, id).await?;
    match volume_of(c) {
        Some(v) => Ok(remove_volume(engine, &v).await?.then_some(v)),
        None => Ok(None),
    }
}

/// What was abandoned or is beyond [`KEEP`]: filling helpers whose run is gone (or older
/// than a day), and published trees other than the newest (never `keep`). Returns the
/// volumes removed.
pub async fn prune(engine: &Engine, keep: Option<&str>) -> Result<Vec<String>> {
    let now = i64::try_from(crate::run::now_unix()).unwrap_or(i64::MAX);
    let mut entries = cache_containers(engine).await?;
    // Newest first.
    entries.sort_by_key(|c| std::cmp::Reverse(c.created.unwrap_or(0)));
    let mut removed = Vec::new();
    let mut kept = 0;
    for c in &entries {
        let name = name_of(c);
        let labels = c.labels.clone().unwrap_or_default();
        let drop = if name.starts_with(PUBLISHED) {
            kept += 1;
            kept > KEEP && labels.get(LABEL_DEPS).map(String::as_str) != keep
        } else if name.starts_with(FILLING) {
            owner_gone(&labels) || now - c.created.unwrap_or(now) > ABANDONED_AFTER_SECS
        } else {
            false
        };
        if drop && let Some(v) = drop_entry(engine, c).await? {
            removed.push(v);
        }
    }
    Ok(removed)
}

/// Removes every cache entry of this engine (`hermetic gc --cache`), and cache volumes
/// whose helper was removed by hand. Returns the volumes removed; one still mounted by a
/// running build stays.
pub async fn clear(engine: &Engine) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for c in cache_containers(engine).await? {
        if let Some(v) = drop_entry(engine, &c).await? {
            removed.push(v);
        }
    }
    for v in container::list_volumes(engine, LABEL_CACHE).await? {
        if remove_volume(engine, &v.name).await? {
            removed.push(v.name);
        }
    }
    Ok(removed)
}
