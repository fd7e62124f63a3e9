//! `hermetic vendor`: a complete, verified offline source tree from Cargo.lock.

use crate::archive;
use crate::cache::Cache;
use crate::check::{ChecksumFile, Expected, Finding, verify_vendor};
use crate::error::{Error, IoContext, Result};
use crate::index::TreeIndex;
use crate::lockfile::{LockedPackage, Lockfile, Source};
use crate::manifest::DepManifest;
use crate::metadata::{build_manifest, cargo_metadata, classify_stderr};
use crate::policy::{Diagnostic, Policy};
use crate::seal::Seal;
use rayon::prelude::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Name of the replacement source in the written `config.toml`.
const VENDORED_SOURCE: &str = "hermetic-vendored";

pub struct VendorOptions {
    pub manifest_path: PathBuf,
    /// Output directory: receives `vendor/`, `config.toml` and `deps.json`.
    pub out: PathBuf,
    pub cache: Cache,
    pub policy: Option<Policy>,
    /// `policy` is the user's (`--policy`), not a file of the project's: only such a
    /// policy can allow a source that reaches this machine (see [`host_source`]).
    pub policy_is_users: bool,
}

#[derive(Debug)]
pub struct VendorOutcome {
    pub manifest: DepManifest,
    pub workspace_root: PathBuf,
    pub out: PathBuf,
    /// The vendored tree came from the cache, with no network access.
    pub cache_hit: bool,
    pub warnings: Vec<String>,
    /// Policy findings, errors and warnings.
    pub diagnostics: Vec<Diagnostic>,
    /// False when policy errors stopped the outputs from being written.
    pub written: bool,
}

/// Vendors the workspace of `opts.manifest_path`. `stage` is told what is going on.
pub fn vendor(opts: &VendorOptions, stage: &dyn Fn(&str)) -> Result<VendorOutcome> {
    // A manifest that is a link could make any project of the host the workspace.
    if std::fs::symlink_metadata(&opts.manifest_path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::Unsupported {
            path: opts.manifest_path.clone(),
            detail: "the manifest is a symbolic link; hermetic builds the workspace it is in, \
                     not the one it points to: name the real Cargo.toml"
                .into(),
        });
    }
    let manifest_path = std::fs::canonicalize(&opts.manifest_path)
        .ok()
        .filter(|p| p.is_file())
        .ok_or_else(|| Error::ManifestNotFound {
            path: opts.manifest_path.clone(),
        })?;
    // Finding the lockfile by walking up spares a cargo process on the warm path; cargo's
    // own answer (the workspace root in its metadata) is checked afterwards.
    // cargo's own answer (`locate-project` fetches nothing), never a guess: the lockfile
    // checked before any fetch must be the one cargo then fetches for.
    let mut root = workspace_root(&manifest_path)?;
    match vendor_in(opts, &manifest_path, &root, stage)? {
        Attempt::Done(outcome) => Ok(*outcome),
        Attempt::WrongRoot(actual) => {
            root = actual;
            match vendor_in(opts, &manifest_path, &root, stage)? {
                Attempt::Done(outcome) => Ok(*outcome),
                Attempt::WrongRoot(again) => Err(Error::Cargo {
                    path: manifest_path,
                    detail: format!("cargo names two workspace roots: {}", again.display()),
                }),
            }
        }
    }
}

enum Attempt {
    Done(Box<VendorOutcome>),
    WrongRoot(PathBuf),
}

/// Why a Cargo.lock source would make host cargo reach into this machine rather than
/// fetch from the network: `file://` reads any repository or registry on the host's disk
/// (whose files would then be built into the project's binary), and `ssh://` signs in with
/// the host's ssh keys (`~/.ssh` is found through the user database, not `$HOME`, so an
/// empty home does not hide it). A project names its sources, so these are refused unless
/// a policy of the user's lists them.
pub fn host_source(source: &str) -> Option<&'static str> {
    let url = source
        .strip_prefix("registry+")
        .or_else(|| source.strip_prefix("sparse+"))
        .or_else(|| source.strip_prefix("git+"))
        .unwrap_or(source)
        .to_ascii_lowercase();
    if url.starts_with("file:") {
        Some("a file:// source reads this machine's disk")
    } else if url.starts_with("ssh:") || url.starts_with("git+ssh:") || url.starts_with("ssh+git:")
    {
        Some("an ssh:// source signs in with this machine's ssh keys")
    } else {
        None
    }
}

/// Name of the stat index beside `vendor/`, in the cache and in the output directory.
const INDEX: &str = ".vendor-index.json";

/// The vendored output `out` still holds, unchanged, the tree verified for `key` (by its
/// stat index: no file is read). The SHA-256 of the index file comes with it, so that
/// whatever is derived from the tree can be tied to this state of it.
pub fn tree_unchanged(out: &Path, key: &str, seal: &Seal) -> Option<String> {
    TreeIndex::unchanged_digest(&out.join(INDEX), &out.join("vendor"), key, seal)
}

/// Records the stat index of `out/vendor` as verified for `key` (as vendoring does).
pub fn record_tree_index(out: &Path, key: &str, seal: &Seal) -> Result<()> {
    TreeIndex::record(&out.join("vendor"), key)?.save(&out.join(INDEX), seal)
}

fn vendor_in(
    opts: &VendorOptions,
    manifest_path: &Path,
    root: &Path,
    stage: &dyn Fn(&str),
) -> Result<Attempt> {
    let lock = Lockfile::read(&root.join("Cargo.lock"))?;
    let users_policy = opts.policy.as_ref().filter(|_| opts.policy_is_users);
    let mut host_protocols = HostProtocols::default();
    for p in lock.external() {
        let source = p.source.as_deref().unwrap_or_default();
        if host_source(source).is_some() {
            if let Some((_, path)) = source.split_once("file://") {
                host_protocols.file = true;
                let path = path.split(['?', '#']).next().unwrap_or_default();
                host_protocols.paths.push(PathBuf::from(path));
            } else {
                host_protocols.ssh = true;
            }
        }
        if let Some(why) = p.source.as_deref().and_then(host_source)
            && !users_policy
                .is_some_and(|policy| policy.lists_source(p.source.as_deref().unwrap_or_default()))
        {
            return Err(Error::HostSource {
                path: lock.path.clone(),
                name: p.name.clone(),
                version: p.version.clone(),
                url: p.source.clone().unwrap_or_default(),
                why,
            });
        }
    }
    manifests_are_files(root)?;
    let expected = expected_from_lock(&lock);
    let key = lock.vendor_key();
    let tree = opts.cache.tree_dir(&key);
    let mut warnings = Vec::new();

    let out = absolute(&opts.out)?;
    let out_name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::BadVendorDir {
            path: out.clone(),
            detail: "the output must be a named directory".into(),
        })?;
    guard_output(&out)?;
    // An output inside the workspace sits in files the project controls: whatever is there
    // (a committed `deps.json`, stat index or config) is never believed, and no directory
    // on the way to it may be a link out of the workspace.
    let parent = out.parent().unwrap_or(Path::new("/"));
    crate::host::real_dir(root, parent).map_err(|e| Error::BadVendorDir {
        path: out.clone(),
        detail: e.to_string(),
    })?;
    // By real location, however `--out` and the manifest path were spelled.
    let out_in_project = std::fs::canonicalize(parent)
        .at(parent)?
        .starts_with(std::fs::canonicalize(root).at(root)?);

    // The output already holds this exact verified tree: nothing to copy.
    let out_current = !out_in_project
        && DepManifest::read(&out.join("deps.json")).is_ok_and(|m| m.vendor_key == key)
        && out.join("config.toml").is_file()
        && TreeIndex::unchanged(
            &out.join(INDEX),
            &out.join("vendor"),
            &key,
            opts.cache.seal()?,
        );
    let staging = Cache::staging_path(&out);
    let target = if out_current {
        out.clone()
    } else {
        staging.clone()
    };
    let result = (|| {
        let mut cache_hit = out_current;
        if !out_current {
            cache_hit =
                cached_tree_is_valid(&tree, &key, &expected, &opts.cache, &mut warnings, stage)?;
            if !cache_hit {
                build_tree(
                    manifest_path,
                    &host_protocols,
                    &lock,
                    &key,
                    &expected,
                    &opts.cache,
                    &tree,
                    &mut warnings,
                    stage,
                )?;
            }
            stage("copying the vendored tree");
            copy_tree(&tree.join("vendor"), &staging.join("vendor"))?;
            // Still the verified tree once copied: a file of the cache changed during the
            // copy would otherwise reach the output.
            if !TreeIndex::unchanged(
                &tree.join(INDEX),
                &tree.join("vendor"),
                &key,
                opts.cache.seal()?,
            ) {
                let _ = std::fs::remove_dir_all(&tree);
                return Err(Error::BadCache {
                    path: tree.clone(),
                    detail: "the cached tree changed while it was copied (someone else \
                             writes this cache); it was evicted"
                        .into(),
                });
            }
            TreeIndex::record(&staging.join("vendor"), &key)?
                .save(&staging.join(INDEX), opts.cache.seal()?)?;
        }

        stage("reading the dependency graph");
        // The config cargo reads is made here, in a directory of hermetic's own, never one
        // found on disk: a config file can name programs for cargo to run.
        let served_from = if out_current { &out } else { &tree };
        let private = tempfile::tempdir().at(std::env::temp_dir())?;
        let config = private.path().join("config.toml");
        std::fs::write(
            &config,
            write_source_config(&served_from.display().to_string(), &lock),
        )
        .at(&config)?;
        let meta = match cargo_metadata(manifest_path, Some((&config, served_from))) {
            Ok(meta) => meta,
            // Offline against the vendored tree, a stale lockfile shows up as a missing
            // package; ask cargo again as usual to get its real diagnosis.
            Err(Error::Cargo { .. }) => cargo_metadata(manifest_path, None)?,
            Err(e) => return Err(e),
        };
        if meta.workspace_root.as_std_path() != root {
            return Ok(None);
        }
        let manifest = build_manifest(&meta, &lock)?;
        let diagnostics = opts
            .policy
            .as_ref()
            .map(|p| p.check(&manifest))
            .unwrap_or_default();
        let written = !diagnostics.iter().any(Diagnostic::is_error);
        if written {
            write_atomically(
                &target.join("config.toml"),
                &write_source_config(&out_name, &lock),
            )?;
            write_atomically(&target.join("deps.json"), &manifest.to_json())?;
        }
        Ok(Some((manifest, cache_hit, diagnostics, written)))
    })();
    let outcome = match result {
        Ok(Some(r)) => r,
        Ok(None) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Ok(Attempt::WrongRoot(workspace_root(manifest_path)?));
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let (manifest, cache_hit, diagnostics, written) = outcome;
    if !out_current {
        if written {
            replace_dir(&staging, &out)?;
        } else {
            let _ = std::fs::remove_dir_all(&staging);
        }
    }
    Ok(Attempt::Done(Box::new(VendorOutcome {
        manifest,
        workspace_root: root.to_path_buf(),
        out,
        cache_hit,
        warnings,
        diagnostics,
        written,
    })))
}

/// Checks the cached tree: quickly through its stat index, else by full verification
/// against the archives. A corrupted entry is evicted (with a warning) and `false` returned.
fn cached_tree_is_valid(
    tree: &Path,
    key: &str,
    expected: &[Expected],
    cache: &Cache,
    warnings: &mut Vec<String>,
    stage: &dyn Fn(&str),
) -> Result<bool> {
    if !tree.join("vendor").is_dir() {
        return Ok(false);
    }
    if TreeIndex::unchanged(&tree.join(INDEX), &tree.join("vendor"), key, cache.seal()?) {
        return Ok(true);
    }
    stage("verifying the cached vendored tree");
    // Stated before the bytes are read and again after: a file changed meanwhile (by
    // whoever else can write the cache) is not recorded as verified.
    let before = TreeIndex::record(&tree.join("vendor"), key)?;
    let findings = verify_vendor(&tree.join("vendor"), expected, cache, None)?;
    if findings.is_empty() && TreeIndex::record(&tree.join("vendor"), key)? == before {
        before.save(&tree.join(INDEX), cache.seal()?)?;
        return Ok(true);
    }
    warnings.push(format!(
        "[cache-tree-corrupted] cache entry {} is corrupted ({}); evicted, rebuilding it",
        tree.display(),
        describe(&findings)
    ));
    std::fs::remove_dir_all(tree).at(tree)?;
    Ok(false)
}

fn write_atomically(path: &Path, text: &str) -> Result<()> {
    crate::durable::write(path, text.as_bytes())
}

/// Copies a verified tree (regular files and directories only); the kernel does the copying.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.map_err(|e| Error::Io {
            path: from.to_path_buf(),
            source: e.into(),
        })?;
        let rel = entry.path().strip_prefix(from).unwrap_or(Path::new(""));
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).at(&dest)?;
        } else {
            std::fs::copy(entry.path(), &dest).at(&dest)?;
        }
    }
    Ok(())
}

fn describe(findings: &[Finding]) -> String {
    let first = &findings[0];
    format!(
        "{} finding(s), first: {} {} {}",
        findings.len(),
        first.code,
        first.package,
        first.path.as_deref().unwrap_or("")
    )
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir().at(p)?.join(p))
    }
}

/// Refuses to replace a directory that `hermetic vendor` did not write.
fn guard_output(out: &Path) -> Result<()> {
    if std::fs::symlink_metadata(out).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::BadVendorDir {
            path: out.to_path_buf(),
            detail: "is a symbolic link; hermetic does not write through it (remove it)".into(),
        });
    }
    if !out.exists() {
        return Ok(());
    }
    let empty = std::fs::read_dir(out)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    if out.is_dir() && (empty || out.join("deps.json").is_file()) {
        return Ok(());
    }
    Err(Error::BadVendorDir {
        path: out.to_path_buf(),
        detail: "exists and was not written by `hermetic vendor`; refusing to replace it \
                 (choose another --out or remove it)"
            .into(),
    })
}

/// Swaps `staging` into `out`, so that `out` is either the old or the new complete tree,
/// also after a crash.
fn replace_dir(staging: &Path, out: &Path) -> Result<()> {
    crate::durable::publish_dir(staging, out)
}

fn workspace_root(manifest_path: &Path) -> Result<PathBuf> {
    let mut cmd =
        crate::host::cargo(crate::host::Visible::project(manifest_path)).at(std::env::temp_dir())?;
    cmd.args(["locate-project", "--workspace", "--message-format", "plain"])
        .arg("--manifest-path")
        .arg(manifest_path);
    let output = run_cargo(&mut cmd.sandboxed()?, manifest_path, 120)?;
    if !output.status.success() {
        return Err(Error::Cargo {
            path: manifest_path.to_path_buf(),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    let root_manifest = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    Ok(root_manifest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default())
}

pub(crate) fn expected_from_lock(lock: &Lockfile) -> Vec<Expected> {
    lock.external()
        .map(|p| Expected {
            dir: p.dir_name(),
            name: p.name.clone(),
            version: p.version.clone(),
            checksum: p.checksum.clone(),
        })
        .collect()
}

/// Cold path: gathers every archive (asking cargo to download what is missing), extracts
/// them into a fresh tree and moves it into the cache.
#[allow(clippy::too_many_arguments)]
fn build_tree(
    manifest_path: &Path,
    host: &HostProtocols,
    lock: &Lockfile,
    key: &str,
    expected: &[Expected],
    cache: &Cache,
    tree: &Path,
    warnings: &mut Vec<String>,
    stage: &dyn Fn(&str),
) -> Result<()> {
    let registry: Vec<&LockedPackage> = lock
        .external()
        .filter(|p| {
            matches!(
                p.source.as_deref().and_then(Source::parse),
                Some(Source::Registry { .. })
            )
        })
        .collect();
    for p in &registry {
        if p.checksum.is_none() {
            return Err(Error::BadLockfile {
                path: lock.path.clone(),
                detail: format!("{}@{} has no checksum", p.name, p.version),
            });
        }
    }
    let missing = |cache: &Cache| -> Result<Vec<&LockedPackage>> {
        let mut missing = Vec::new();
        for p in &registry {
            let sha = p.checksum.as_deref().unwrap_or_default();
            if cache
                .import_from_cargo_home(&p.name, &p.version, sha)?
                .is_none()
            {
                missing.push(*p);
            }
        }
        Ok(missing)
    };
    let git: Vec<&LockedPackage> = lock
        .external()
        .filter(|p| {
            matches!(
                p.source.as_deref().and_then(Source::parse),
                Some(Source::Git { .. })
            )
        })
        .collect();
    // A cached archive that is not the one its name says is evicted and fetched again,
    // once: a second wrong one means someone keeps writing the cache.
    for attempt in 0.. {
        // The second time, only the evicted archive is missing: git packages are there.
        if !missing(cache)?.is_empty() || (attempt == 0 && !git.is_empty()) {
            stage("downloading crates (cargo fetch --locked)");
            cargo_fetch(manifest_path, host)?;
        }
        if let Some(p) = missing(cache)?.first() {
            return Err(Error::ArchiveNotFound {
                name: p.name.clone(),
                version: p.version.clone(),
                searched: crate::cache::cargo_home()
                    .unwrap_or_default()
                    .join("registry/cache"),
            });
        }
        match extract_tree(
            manifest_path,
            lock,
            key,
            expected,
            &registry,
            &git,
            cache,
            tree,
            stage,
        ) {
            Err(Error::WrongArchives(wrong)) if attempt == 0 => {
                for e in wrong {
                    if let Error::CachedArchiveChecksum {
                        archive,
                        expected,
                        actual,
                    } = e
                    {
                        warnings.push(format!(
                            "[cache-archive-wrong] {}: the cached archive has sha256 {actual}, \
                             Cargo.lock pins {expected}; evicted and fetched again",
                            archive.display()
                        ));
                        cache.evict(&expected);
                    }
                }
            }
            Err(Error::WrongArchives(mut wrong)) if !wrong.is_empty() => {
                return Err(wrong.remove(0));
            }
            r => return r,
        }
    }
    Ok(())
}

/// Extracts every registry archive (each hashed against Cargo.lock as it is read) and the
/// git packages into a staging tree, verifies it, and publishes it as `tree`.
#[allow(clippy::too_many_arguments)]
fn extract_tree(
    manifest_path: &Path,
    lock: &Lockfile,
    key: &str,
    expected: &[Expected],
    registry: &[&LockedPackage],
    git: &[&LockedPackage],
    cache: &Cache,
    tree: &Path,
    stage: &dyn Fn(&str),
) -> Result<()> {
    stage("extracting and verifying crates");
    let staging = Cache::staging_path(tree);
    let vendor = staging.join("vendor");
    std::fs::create_dir_all(&vendor).at(&vendor)?;
    let built = (|| {
        let results: Vec<Result<()>> = registry
            .par_iter()
            .map(|p| -> Result<()> {
                let sha = p.checksum.as_deref().unwrap_or_default();
                let dir = vendor.join(p.dir_name());
                let archive = cache.crate_path(sha);
                let listing = archive::read_crate(&archive, &p.dir_name(), Some(&dir), Some(sha))?;
                cache.save_listing(sha, &p.dir_name(), &listing)?;
                write_checksum_file(&dir, listing, Some(sha.to_string()))
            })
            .collect();
        // Every wrong archive at once, so that all are evicted and fetched in one go.
        let (wrong, other): (Vec<Error>, Vec<Error>) = results
            .into_iter()
            .filter_map(Result::err)
            .partition(|e| matches!(e, Error::CachedArchiveChecksum { .. }));
        if let Some(e) = other.into_iter().next() {
            return Err(e);
        }
        if !wrong.is_empty() {
            return Err(Error::WrongArchives(wrong));
        }
        if !git.is_empty() {
            vendor_git(manifest_path, git, &vendor)?;
        }
        let dir_name = tree
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        std::fs::write(
            staging.join("config.toml"),
            write_source_config(&dir_name, lock),
        )
        .at(&staging)?;
        let before = TreeIndex::record(&vendor, key)?;
        let findings = verify_vendor(&vendor, expected, cache, None)?;
        if let Some(f) = findings.first() {
            return Err(Error::BadArchive {
                archive: cache.crate_path(""),
                detail: format!("{} {}: {}", f.package, f.code, f.message),
            });
        }
        if TreeIndex::record(&vendor, key)? != before {
            return Err(Error::BadCache {
                path: staging.clone(),
                detail: "the tree changed while it was verified (someone else writes this \
                         cache)"
                    .into(),
            });
        }
        before.save(&staging.join(INDEX), cache.seal()?)?;
        crate::durable::sync_tree(&staging)
    })();
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    cache.real_dir("trees")?;
    if let Err(e) = std::fs::rename(&staging, tree)
        .and_then(|()| std::fs::File::open(cache.trees_dir()).and_then(|d| d.sync_all()))
    {
        // Another run finished the same entry first; theirs is as good as ours.
        let _ = std::fs::remove_dir_all(&staging);
        if !tree.is_dir() {
            return Err(e).at(tree);
        }
    }
    Ok(())
}

fn write_checksum_file(
    dir: &Path,
    files: crate::archive::Listing,
    package: Option<String>,
) -> Result<()> {
    let text = serde_json::to_string(&ChecksumFile { files, package }).unwrap_or_default();
    let path = dir.join(".cargo-checksum.json");
    std::fs::write(&path, text).at(&path)
}

/// The host protocols that sources the user's policy allows need (see [`host_source`]).
#[derive(Debug, Clone, Default)]
struct HostProtocols {
    file: bool,
    ssh: bool,
    /// The directories `file://` sources name.
    paths: Vec<PathBuf>,
}

fn cargo_fetch(manifest_path: &Path, host: &HostProtocols) -> Result<()> {
    let mut visible = crate::host::Visible::project(manifest_path);
    // The sources of this machine that the user's policy allows, and nothing else of it.
    visible.read.extend(host.paths.iter().cloned());
    if host.ssh
        && let Some(home) = dirs::home_dir()
    {
        visible.read.push(home.join(".ssh"));
    }
    let mut cmd = crate::host::cargo(visible).at(std::env::temp_dir())?;
    if host.file || host.ssh {
        crate::host::allow_host_protocols(&mut cmd, host.file, host.ssh);
    }
    cmd.args(["fetch", "--locked", "--manifest-path"])
        .arg(manifest_path);
    // Downloads take their time; a cargo blocked on a hostile manifest must not forever.
    let output = run_cargo(&mut cmd.sandboxed()?, manifest_path, 1800)?;
    if output.status.success() {
        return Ok(());
    }
    Err(classify_stderr(
        manifest_path.to_path_buf(),
        &String::from_utf8_lossy(&output.stderr),
    ))
}

/// Refuses a `Cargo.toml` anywhere in the workspace that is not a regular file of at most
/// 16 MiB: host cargo reads every member's manifest, and one that is a link (to
/// `/dev/zero`, to a host file whose lines its errors would echo) or a fifo would exhaust
/// or block it.
fn manifests_are_files(root: &Path) -> Result<()> {
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| {
            !(e.depth() == 1 && (e.file_name() == "target" || e.file_name() == ".git"))
        });
    for entry in walker.flatten() {
        if entry.file_name() != "Cargo.toml" {
            continue;
        }
        let ok = entry.file_type().is_file()
            && entry
                .metadata()
                .is_ok_and(|m| m.len() <= crate::lockfile::MAX_PROJECT_FILE);
        if !ok {
            return Err(Error::Unsupported {
                path: entry.path().to_path_buf(),
                detail: "a manifest must be a regular file of at most 16 MiB (not a link, \
                         fifo or device): cargo would read through it"
                    .into(),
            });
        }
    }
    Ok(())
}

/// Runs host cargo within `secs` seconds (see [`crate::host::output_within`]).
fn run_cargo(
    cmd: &mut std::process::Command,
    manifest_path: &Path,
    secs: u64,
) -> Result<std::process::Output> {
    crate::host::output_within(cmd, None, std::time::Duration::from_secs(secs))
        .map_err(|f| cargo_failure(manifest_path, "cargo", f))
}

/// Why host cargo gave no answer: not installed is the machine's problem; a run that hangs
/// or floods its output is the workspace's (a manifest that is a fifo, a huge workspace).
pub(crate) fn cargo_failure(
    manifest_path: &Path,
    what: &str,
    failure: crate::host::RunFailure,
) -> Error {
    match failure {
        crate::host::RunFailure::NotStarted(e) => Error::CargoMissing(e),
        f => Error::Cargo {
            path: manifest_path.to_path_buf(),
            detail: format!("{what} {f}"),
        },
    }
}

/// Git packages have no archive: they are copied from cargo's checkout of the locked commit.
fn vendor_git(manifest_path: &Path, git: &[&LockedPackage], vendor: &Path) -> Result<()> {
    let meta = cargo_metadata(manifest_path, None)?;
    for p in git {
        let Some(pkg) = meta.packages.iter().find(|m| {
            m.name.as_str() == p.name
                && m.version.to_string() == p.version
                && m.source.as_ref().map(|s| s.repr.as_str()) == p.source.as_deref()
        }) else {
            return Err(Error::Cargo {
                path: manifest_path.to_path_buf(),
                detail: format!("cargo metadata does not list {}@{}", p.name, p.version),
            });
        };
        let listed = pkg
            .manifest_path
            .parent()
            .map(|d| d.as_std_path().to_path_buf())
            .unwrap_or_default();
        // A git package is its repository's checkout, nothing else: a path dependency of
        // a git dependency (or a link in the repository) naming a directory of the host
        // would otherwise be copied into the build.
        let src = std::fs::canonicalize(&listed).at(&listed)?;
        let checkouts = crate::cache::cargo_home()
            .map(|h| h.join("git").join("checkouts"))
            .and_then(|c| std::fs::canonicalize(c).ok());
        // And in the checkout of its own repository: cargo names a checkout directory
        // after the repository (`NAME-HASH`), so a path dependency reaching into another
        // repository's checkout in the shared cargo home is refused too.
        let repo_name = p
            .source
            .as_deref()
            .and_then(|s| s.split(['?', '#']).next())
            .and_then(|u| u.trim_end_matches('/').rsplit('/').next())
            .map(|n| n.trim_end_matches(".git").to_string())
            .unwrap_or_default();
        let own_checkout = checkouts.as_ref().is_some_and(|c| {
            src.strip_prefix(c)
                .ok()
                .and_then(|rel| rel.components().next())
                .is_some_and(|first| {
                    first
                        .as_os_str()
                        .to_string_lossy()
                        .strip_prefix(repo_name.as_str())
                        .is_some_and(|rest| rest.starts_with('-'))
                })
        });
        if !own_checkout {
            return Err(Error::Unsupported {
                path: listed,
                detail: format!(
                    "the git package {}@{} is not inside its repository's checkout: a git \
                     dependency's packages must live in its own repository (a path \
                     dependency or a link out of it is refused)",
                    p.name, p.version
                ),
            });
        }
        let dest = vendor.join(p.dir_name());
        let mut files = crate::archive::Listing::new();
        let mut total: u64 = 0;
        let walker = walkdir::WalkDir::new(&src)
            .follow_links(false)
            .follow_root_links(false)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                let n = e.file_name().to_string_lossy();
                // Another package's directory is its own (as `cargo package` leaves it
                // out): a repository of nested packages is not copied once per package.
                let nested =
                    e.depth() > 0 && e.file_type().is_dir() && e.path().join("Cargo.toml").exists();
                !(e.depth() == 1 && n == "target") && n != ".git" && !nested
            });
        for entry in walker {
            let entry = entry.map_err(|e| Error::Io {
                path: src.clone(),
                source: e.into(),
            })?;
            if !entry.file_type().is_file() {
                continue;
            }
            let rel = entry
                .path()
                .strip_prefix(&src)
                .map(|r| r.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            if crate::archive::is_skipped(&rel) {
                continue;
            }
            let out = dest.join(&rel);
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent).at(parent)?;
            }
            // Streamed, and bounded as a crate archive is: a repository can hold a file far
            // larger than its packed size.
            let left = crate::archive::MAX_UNPACKED.saturating_sub(total);
            let (copied, sha) = copy_hashed(entry.path(), &out, left)?;
            total += copied;
            if copied > left {
                return Err(Error::BadArchive {
                    archive: src.clone(),
                    detail: format!(
                        "the git package {}@{} holds more than {} MiB, the most a crate may \
                         unpack to",
                        p.name,
                        p.version,
                        crate::archive::MAX_UNPACKED >> 20
                    ),
                });
            }
            files.insert(rel, sha);
        }
        write_checksum_file(&dest, files, None)?;
    }
    Ok(())
}

/// Copies the regular file `from` to `to`, at most `limit` bytes (one more is read, to
/// tell that there was more), and returns how many were read and the SHA-256 of what was
/// written.
fn copy_hashed(from: &Path, to: &Path, limit: u64) -> Result<(u64, String)> {
    use sha2::Digest;
    use std::io::{Read, Write};
    let (f, _) = crate::host::open_regular(from).at(from)?;
    let mut reader = f.take(limit.saturating_add(1));
    let mut w = std::fs::File::create(to).at(to)?;
    let mut hash = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n_total: u64 = 0;
    loop {
        let n = reader.read(&mut buf).at(from)?;
        if n == 0 {
            break;
        }
        n_total += n as u64;
        if n_total > limit {
            break;
        }
        hash.update(&buf[..n]);
        w.write_all(&buf[..n]).at(to)?;
    }
    Ok((n_total, hex::encode(hash.finalize())))
}

/// The source-replacement config for a vendored tree in the directory `dir_name`.
///
/// Cargo resolves relative paths of a `--config FILE` against the parent of the file's
/// directory, so `DIR/config.toml` names `DIR_NAME/vendor`: the file works from the project
/// root wherever DIR is placed under it, and moves with it.
pub fn write_source_config(dir_name: &str, lock: &Lockfile) -> String {
    let mut out = String::from(
        "# Written by `hermetic vendor`. Use from the project root:\n\
         #   cargo build --offline --frozen --config DIR/config.toml\n\n",
    );
    let mut sources = BTreeSet::new();
    for p in lock.external() {
        if let Some(s) = p.source.as_deref().and_then(Source::parse) {
            sources.insert(s);
        }
    }
    let mut registries = BTreeSet::new();
    let mut gits = BTreeSet::new();
    for s in sources {
        match s {
            Source::Registry { name, url } => {
                registries.insert((name, url));
            }
            Source::Git { url, reference, .. } => {
                gits.insert((url, reference));
            }
            Source::Path { .. } => {}
        }
    }
    out.push_str(&format!(
        "[source.crates-io]\nreplace-with = \"{VENDORED_SOURCE}\"\n\n"
    ));
    for (i, (name, url)) in registries.iter().enumerate() {
        if name == "crates-io" {
            continue;
        }
        let index = url.strip_prefix("registry+").unwrap_or(url);
        out.push_str(&format!(
            "[source.hermetic-registry-{i}]\nregistry = {}\nreplace-with = \"{VENDORED_SOURCE}\"\n\n",
            toml_str(index)
        ));
    }
    for (url, reference) in &gits {
        let source = Source::Git {
            url: url.clone(),
            reference: reference.clone(),
            commit: String::new(),
        };
        let key = source
            .lock_string()
            .unwrap_or_default()
            .trim_end_matches('#')
            .to_string();
        out.push_str(&format!(
            "[source.{}]\ngit = {}\n",
            toml_str(&key),
            toml_str(url)
        ));
        match reference {
            Some(crate::lockfile::GitReference::Rev(r)) => {
                out.push_str(&format!("rev = {}\n", toml_str(r)))
            }
            Some(crate::lockfile::GitReference::Branch(b)) => {
                out.push_str(&format!("branch = {}\n", toml_str(b)))
            }
            Some(crate::lockfile::GitReference::Tag(t)) => {
                out.push_str(&format!("tag = {}\n", toml_str(t)))
            }
            None => {}
        }
        out.push_str(&format!("replace-with = \"{VENDORED_SOURCE}\"\n\n"));
    }
    out.push_str(&format!(
        "[source.{VENDORED_SOURCE}]\ndirectory = {}\n",
        toml_str(&format!("{dir_name}/vendor"))
    ));
    out
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}
