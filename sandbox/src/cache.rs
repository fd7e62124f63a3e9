//! What each engine keeps between builds: the vendored trees, and copies of the builder
//! image's toolchain.
//!
//! - **Vendored trees.** A build's biggest input (a hundred megabytes for ripgrep), and
//!   unpacking it through the API is most of a warm build's overhead. A volume per SHA-256 of
//!   the tree's deterministic archive, filled by uploading that archive.
//! - **Toolchains.** On engines whose storage driver is FUSE-based (`fuse-overlayfs`:
//!   rootless and nested engines), every file rustc, cc and ld open in the image goes
//!   through a user-space daemon, which costs CPU and about 10% more per `rustc` start than
//!   the same toolchain on a plain filesystem. A volume per image digest holds a copy of
//!   the image's sysroot, made by the engine itself when a helper first mounts the empty
//!   volume at that path (the engine copies the image's files into it, owners and modes
//!   kept); builds mount it read-only over the same path, so paths, and outputs, are
//!   unchanged.
//!
//! Both are mounted read-only by builds, and published the same way. A volume is filled
//! through a helper container named `hermetic-filling-RUN-KIND` that mounts it. Only once it
//! is full is the helper renamed to `hermetic-KIND-KEY`: the rename is the commit. A name is
//! unique per engine, so two runs filling the same entry at once cannot both publish; the
//! loser uses the winner's copy. A run killed while filling leaves a `hermetic-filling-`
//! helper, removed once its process is gone ([`prune`]). The published helper also keeps
//! the volume in use, so that `docker volume prune` leaves it alone.
//!
//! These carry `hermetic.cache`, not the `hermetic` run label: a run's cleanup leaves them,
//! and `hermetic gc --cache` removes them.

use crate::container::{self, Limits, remove_volume};
use crate::engine::{Engine, permanent};
use crate::error::Result;
use crate::run::{RunId, owner_gone};
use bollard::models::{ContainerCreateBody, ContainerSummary};
use bollard::query_parameters::RenameContainerOptionsBuilder;
use std::collections::HashMap;

/// Marks the engine-side cache's containers and volumes; its value is the [`Kind`].
pub const LABEL_CACHE: &str = "hermetic.cache";
/// What a cache entry holds: the vendored tree's archive SHA-256, or the image digest.
pub const LABEL_KEY: &str = "hermetic.key";
const FILLING: &str = "hermetic-filling-";
/// A filling helper this old is abandoned even if its owner cannot be checked (another
/// machine's run).
const ABANDONED_AFTER_SECS: i64 = 24 * 3600;

/// What an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A vendored tree, keyed by its archive's SHA-256.
    Deps,
    /// An image's toolchain (its sysroot), keyed by the image digest.
    Toolchain,
}

impl Kind {
    const ALL: [Kind; 2] = [Kind::Deps, Kind::Toolchain];

    fn name(self) -> &'static str {
        match self {
            Kind::Deps => "deps",
            Kind::Toolchain => "toolchain",
        }
    }

    /// Published entries kept per engine (the newest); older ones go when one is added.
    /// Toolchains are few (one per builder image) and large (~600 MB).
    pub fn keep(self) -> usize {
        match self {
            Kind::Deps => 4,
            Kind::Toolchain => 2,
        }
    }

    fn published_prefix(self) -> String {
        format!("hermetic-{}-", self.name())
    }

    fn of(labels: &HashMap<String, String>) -> Option<Kind> {
        let value = labels.get(LABEL_CACHE)?;
        Kind::ALL.into_iter().find(|k| k.name() == value)
    }
}

/// A volume of the cache, as a build mounts it.
#[derive(Debug, Clone)]
pub struct CacheVolume {
    pub name: String,
    /// Found on the engine: nothing was filled.
    pub reused: bool,
    /// Pruning older entries failed after this one was published. That only wastes disk,
    /// so the build goes on and the caller reports it.
    pub prune_failed: Option<String>,
}

fn labels(kind: Kind, key: &str) -> HashMap<String, String> {
    let mut labels = crate::run::owner_labels();
    labels.insert(LABEL_CACHE.to_string(), kind.name().to_string());
    labels.insert(LABEL_KEY.to_string(), key.to_string());
    labels
}

/// The published helper's name: container names allow no `:`, so an image digest's
/// algorithm is left out.
fn published_name(kind: Kind, key: &str) -> String {
    let key = key.strip_prefix("sha256:").unwrap_or(key);
    format!("{}{key}", kind.published_prefix())
}

/// The volume of a published entry, if this engine has one.
async fn published(engine: &Engine, kind: Kind, key: &str) -> Result<Option<String>> {
    let name = published_name(kind, key);
    let inspected = engine
        .call("inspect the engine's cache", || {
            engine.docker.inspect_container(&name, None)
        })
        .await;
    match inspected {
        Ok(c) => Ok(c.mounts.iter().flatten().find_map(|m| m.name.clone())),
        Err(crate::Error::Engine { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Where the vendored tree's helpers mount its volume; the archive's entries start with
/// `deps/`.
const DEPS_MOUNT: &str = "/deps";

fn reused(name: String) -> CacheVolume {
    CacheVolume {
        name,
        reused: true,
        prune_failed: None,
    }
}

/// A volume holding the vendored tree whose archive `archive()` makes (SHA-256 `sha256`):
/// the published copy if there is one, else a new one, filled by uploading the archive and
/// (if `share`) published for later builds. An unshared volume carries the run's labels and
/// goes with the run.
pub async fn deps_volume(
    engine: &Engine,
    run: &RunId,
    image: &str,
    limits: &Limits,
    sha256: &str,
    archive: impl FnOnce() -> Result<bytes::Bytes>,
    share: bool,
) -> Result<CacheVolume> {
    if share && let Some(name) = published(engine, Kind::Deps, sha256).await? {
        return Ok(reused(name));
    }
    // Made before anything is created on the engine, so that failing leaves nothing.
    let archive = archive()?;
    let entry = Entry {
        kind: Kind::Deps,
        key: sha256,
        image,
        mount: DEPS_MOUNT,
    };
    fill(engine, run, limits, entry, share, async |helper: &str| {
        container::upload(engine, helper, "/", archive).await
    })
    .await
}

/// A volume holding a copy of the toolchain that image `digest` has at `sysroot`, for
/// builds to mount over that path: the published copy if there is one, else a new one,
/// published.
pub async fn toolchain_volume(
    engine: &Engine,
    run: &RunId,
    digest: &str,
    limits: &Limits,
    sysroot: &str,
) -> Result<CacheVolume> {
    if let Some(name) = published(engine, Kind::Toolchain, digest).await? {
        return Ok(reused(name));
    }
    let entry = Entry {
        kind: Kind::Toolchain,
        key: digest,
        image: digest,
        mount: sysroot,
    };
    // The engine copies the image's files into the empty volume when the helper that
    // mounts it is created: nothing more to send.
    fill(engine, run, limits, entry, true, async |_: &str| Ok(())).await
}

/// One entry to fill: its volume is mounted at `mount` in a helper made from `image`.
struct Entry<'a> {
    kind: Kind,
    key: &'a str,
    image: &'a str,
    mount: &'a str,
}

/// Creates the entry's volume and its helper, runs `content` on the helper, then publishes
/// the helper (or, unshared, removes it).
async fn fill(
    engine: &Engine,
    run: &RunId,
    limits: &Limits,
    entry: Entry<'_>,
    share: bool,
    content: impl AsyncFnOnce(&str) -> Result<()>,
) -> Result<CacheVolume> {
    let Entry {
        kind,
        key,
        image,
        mount,
    } = entry;
    let volume = format!("hermetic-{}-{}", run.0, kind.name());
    let labels = if share {
        labels(kind, key)
    } else {
        run.labels()
    };
    container::create_volume(engine, &volume, labels.clone()).await?;
    let mut host_config = container::hardened_host_config(
        vec![container::volume_mount(&volume, mount, false)],
        limits,
    );
    // Never started: the engine fills the mounted volume (copy or upload), under `/`.
    host_config.readonly_rootfs = Some(false);
    let helper = container::create(
        engine,
        &format!("{FILLING}{}-{}", run.0, kind.name()),
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
    if let Err(e) = content(&helper).await {
        // Half an entry is worth nothing: it goes now, not when this process is gone.
        let _ = container::remove(engine, &helper).await;
        let _ = remove_volume(engine, &volume).await;
        return Err(e);
    }
    if !share {
        container::remove(engine, &helper).await?;
        return Ok(CacheVolume {
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
                .name(&published_name(kind, key))
                .build(),
        )
        .await;
    match publish {
        Ok(()) => {
            // Room for this one: the oldest published entries go.
            let prune_failed = prune(engine, Some(key))
                .await
                .err()
                .map(|e| format!("pruning the engine's cache on {}: {e}", engine.host));
            Ok(CacheVolume {
                name: volume,
                reused: false,
                prune_failed,
            })
        }
        // Another run published the same entry meanwhile: use it, drop this copy.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => {
            container::remove(engine, &helper).await?;
            remove_volume(engine, &volume).await?;
            match published(engine, kind, key).await? {
                Some(name) => Ok(reused(name)),
                None => Err(crate::Error::Engine {
                    op: format!("publish the engine's {} cache", kind.name()),
                    status: 409,
                    message: "the published copy vanished while this run filled its own".into(),
                }),
            }
        }
        Err(e) => Err(permanent(
            &format!("publish the engine's {} cache", kind.name()),
            e,
        )),
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

/// The volume a helper mounts (it mounts one).
fn volume_of(c: &ContainerSummary) -> Option<String> {
    c.mounts.iter().flatten().find_map(|m| m.name.clone())
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

/// Whether to drop each entry (given newest first): filling helpers whose run is gone (or
/// older than a day), and published entries beyond their kind's [`Kind::keep`] newest
/// (never the one keyed `keep`).
fn doomed(entries: &[ContainerSummary], keep: Option<&str>, now: i64) -> Vec<bool> {
    let mut kept: HashMap<&str, usize> = HashMap::new();
    entries
        .iter()
        .map(|c| {
            let name = name_of(c);
            let labels = c.labels.clone().unwrap_or_default();
            if name.starts_with(FILLING) {
                return owner_gone(&labels)
                    || now - c.created.unwrap_or(now) > ABANDONED_AFTER_SECS;
            }
            let Some(kind) = Kind::of(&labels).filter(|k| name.starts_with(&k.published_prefix()))
            else {
                return false;
            };
            let n = kept.entry(kind.name()).or_default();
            *n += 1;
            *n > kind.keep()
                && (keep.is_none() || labels.get(LABEL_KEY).map(String::as_str) != keep)
        })
        .collect()
}

/// What was abandoned or is beyond its kind's [`Kind::keep`] ([`doomed`]). Returns the
/// volumes removed.
pub async fn prune(engine: &Engine, keep: Option<&str>) -> Result<Vec<String>> {
    let now = i64::try_from(crate::run::now_unix()).unwrap_or(i64::MAX);
    let mut entries = cache_containers(engine).await?;
    entries.sort_by_key(|c| std::cmp::Reverse(c.created.unwrap_or(0)));
    let mut removed = Vec::new();
    for (c, drop) in entries.iter().zip(doomed(&entries, keep, now)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{LABEL_HOST, LABEL_PID, host_name};

    fn entry(name: &str, kind: &str, key: &str, created: i64) -> ContainerSummary {
        ContainerSummary {
            names: Some(vec![format!("/{name}")]),
            labels: Some(HashMap::from([
                (LABEL_CACHE.to_string(), kind.to_string()),
                (LABEL_KEY.to_string(), key.to_string()),
                (LABEL_PID.to_string(), std::process::id().to_string()),
                (LABEL_HOST.to_string(), host_name()),
            ])),
            created: Some(created),
            ..Default::default()
        }
    }

    /// Each kind keeps its own newest entries; the entry just published is never dropped;
    /// a fill whose owner lives stays.
    #[test]
    fn each_kind_keeps_its_newest() {
        let mut entries: Vec<ContainerSummary> = (0..6)
            .map(|i| {
                entry(
                    &format!("hermetic-deps-{i}"),
                    "deps",
                    &i.to_string(),
                    100 - i,
                )
            })
            .collect();
        entries.extend((0..3).map(|i| {
            entry(
                &format!("hermetic-toolchain-t{i}"),
                "toolchain",
                &format!("sha256:t{i}"),
                50 - i,
            )
        }));
        entries.push(entry("hermetic-filling-run-deps", "deps", "x", 10));
        let doomed = doomed(&entries, Some("5"), 100);
        let names: Vec<String> = entries
            .iter()
            .zip(&doomed)
            .filter(|(_, d)| **d)
            .map(|(c, _)| name_of(c))
            .collect();
        assert_eq!(names, ["hermetic-deps-4", "hermetic-toolchain-t2"]);
        assert_eq!(
            published_name(Kind::Toolchain, "sha256:ab"),
            "hermetic-toolchain-ab"
        );
    }
}
