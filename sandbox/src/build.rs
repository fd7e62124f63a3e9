//! One hermetic `cargo build` in a container.
//!
//! Layout inside the container (`P` is the build path, `/hermetic` unless varied):
//! - `P` — a volume of the run's own with the workspace at `P/src`, writable by the build
//!   (a build script may write into its own package; the copy goes with the run);
//! - `P/deps` — a volume with the vendored tree and its source-replacement config, mounted
//!   read-only; kept by the engine between builds of the same tree ([`crate::cache`]);
//! - `P/work` — a second volume, the only writable place besides `/tmp`: `target/`, `home/`,
//!   `cargo-home/`, owned by the build user.
//!
//! Inputs travel as tar archives through the API and outputs come back the same way, so a
//! remote engine works like the local one.

use crate::cache;
use crate::container::{self, Limits, StreamError, hardened_host_config, volume_mount};
use crate::engine::Engine;
use crate::error::{Error, IoContext, Result};
use crate::image::{self, BUILD_UID, ImageInfo};
use crate::run::{RunId, Scope, collect};
use bollard::models::ContainerCreateBody;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment a build sees. The defaults are the fixed, documented environment;
/// `hermetic verify` varies fields to prove they do not matter.
#[derive(Debug, Clone, Serialize)]
pub struct BuildEnv {
    /// Where inputs are mounted; the workspace is at `build_path/src`.
    pub build_path: String,
    pub hostname: String,
    pub domainname: String,
    pub uid: u32,
    pub gid: u32,
    pub umask: String,
    pub tz: String,
    pub locale: String,
    /// `HOME`; default `build_path/work/home`.
    pub home: Option<String>,
    pub extra_env: Vec<(String, String)>,
    /// `cargo build -j`; default: what cargo picks from the visible CPUs.
    pub jobs: Option<u32>,
    /// Create source files in reverse order (changes directory listing order).
    pub reverse_file_order: bool,
    /// CPUs visible to the build (`cpuset`, e.g. `0`); all when `None`.
    pub cpuset: Option<String>,
    /// Shift the wall clock that cargo and build scripts see this many days ahead
    /// (libfaketime, preloaded; rustc, whose allocator deadlocks under it, keeps the real
    /// clock); `None` leaves the clock alone.
    pub clock_offset_days: Option<i64>,
}

impl Default for BuildEnv {
    fn default() -> Self {
        BuildEnv {
            build_path: "/hermetic".into(),
            hostname: "hermetic".into(),
            domainname: String::new(),
            uid: BUILD_UID,
            gid: BUILD_UID,
            umask: "022".into(),
            tz: "UTC".into(),
            locale: "C.UTF-8".into(),
            home: None,
            extra_env: vec![],
            jobs: None,
            reverse_file_order: false,
            cpuset: None,
            clock_offset_days: None,
        }
    }
}

/// Stage timeouts.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Timeouts {
    /// Creating volumes and containers, uploading inputs.
    pub prepare: Duration,
    pub build: Duration,
    /// Downloading outputs.
    pub collect: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            prepare: Duration::from_secs(300),
            build: Duration::from_secs(3600),
            collect: Duration::from_secs(300),
        }
    }
}

/// Everything one build needs.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// Image reference or digest.
    pub image: String,
    /// Workspace root on this machine.
    pub workspace: PathBuf,
    /// A directory written by `hermetic vendor` (its `vendor/` is used).
    pub vendor_dir: PathBuf,
    /// Binary names to collect from `target/release/`.
    pub binaries: Vec<String>,
    /// The inputs, read once (shared by every runner of a verification).
    pub snapshot: std::sync::Arc<Snapshot>,
    pub env: BuildEnv,
    pub limits: Limits,
    pub timeouts: Timeouts,
    /// Where the binaries go.
    pub out_dir: PathBuf,
    /// Where the build log goes (streamed as it runs).
    pub log_path: PathBuf,
    /// Where diagnostics go on failure.
    pub diagnostics_dir: PathBuf,
    /// Extra arguments to `cargo build` (features, packages).
    pub cargo_args: Vec<String>,
    /// Reuse (and keep) the engine's copies of the vendored tree and of the image's
    /// toolchain ([`crate::cache`]); `false` uploads the tree for this build alone and reads
    /// the toolchain from the image.
    pub engine_cache: bool,
    /// The Debian packages the project declares (`[image] packages`): an image made by
    /// hermetic must carry them in its definition.
    pub packages: Vec<String>,
    /// Hash what the build made on the way ([`Intermediates`]), to trace a mismatch to a
    /// crate: what a verification's runners do, not a plain build.
    pub trace: bool,
}

/// The files beside the build log that say what the build made on the way.
#[derive(Debug, Clone, Serialize)]
pub struct Intermediates {
    pub sums: PathBuf,
    pub build_outputs: PathBuf,
}

/// What a successful build produced, with what provenance needs to know about it.
#[derive(Debug, Clone, Serialize)]
pub struct BuildResult {
    pub run_id: String,
    pub image: ImageInfo,
    /// Collected binaries, in `out_dir`.
    pub outputs: Vec<PathBuf>,
    /// SHA-256 of the deterministic archive of the workspace files sent in.
    pub source_tree_sha256: String,
    /// SHA-256 of the deterministic archive of the vendored tree sent in.
    pub vendor_tree_sha256: String,
    pub source_files: usize,
    pub env: BuildEnv,
    /// The environment variables the build ran with.
    pub environment: Vec<String>,
    pub command: Vec<String>,
    pub started_unix: u64,
    pub finished_unix: u64,
    pub stages: StageTimes,
    pub log_path: PathBuf,
    /// What the build made on the way, beside the log (`RUN.intermediates.sha256`,
    /// `RUN.build-outputs.txt`): for tracing a mismatch to a crate. `None` if the container
    /// did not leave them.
    pub intermediates: Option<Intermediates>,
    /// The vendored tree was already on the engine ([`crate::cache`]): not uploaded.
    pub deps_reused: bool,
    /// The toolchain came from the engine's copy of the image's sysroot, already there
    /// ([`crate::cache`]).
    pub toolchain_reused: bool,
}

/// Milliseconds per stage: where a build's time went.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct StageTimes {
    /// Image check, volumes, inputs uploaded, container created.
    pub prepare_ms: u64,
    /// Of `prepare_ms`: the inputs uploaded and unpacked by the engine.
    pub upload_ms: u64,
    /// Container start to exit.
    pub build_ms: u64,
    /// Outputs downloaded.
    pub collect_ms: u64,
    /// The run's container and volumes removed.
    pub cleanup_ms: u64,
}

fn ms_since(t: std::time::Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The files of the workspace that are sent in: what git tracks plus untracked files it
/// does not ignore, or (outside git) everything but `target/` and `.git/`; never anything
/// under `exclude` (the output directory, whose files would otherwise feed the next build).
/// Sorted.
pub fn source_files(workspace: &Path, exclude: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let excluded: Vec<PathBuf> = exclude
        .iter()
        .filter_map(|e| e.strip_prefix(workspace).ok().map(Path::to_path_buf))
        .collect();
    // A repository hermetic refuses to read is an error, not silently a plain directory.
    hermetic_deps::host::repository(workspace).map_err(|detail| Error::UnsafeSource {
        path: workspace.join(".git"),
        detail,
    })?;
    let listed = hermetic_deps::host::git_output(
        workspace,
        [
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
    );
    let inside_git =
        hermetic_deps::host::git_output(workspace, ["rev-parse", "--is-inside-work-tree"])
            .is_some();
    let mut files: Vec<PathBuf> = match listed {
        Some(out) if inside_git => out
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|rel| PathBuf::from(String::from_utf8_lossy(rel).into_owned()))
            .collect(),
        _ => walkdir_files(workspace)?,
    };
    files.retain(|f| {
        // cargo's target directory is never an input, even where git does not ignore it
        // (hermetic's own vendored tree and logs live there).
        !f.starts_with("target")
            && !excluded.iter().any(|e| f.starts_with(e))
            && !f
                .components()
                .next()
                .is_some_and(|c| c.as_os_str().to_string_lossy().contains(".partial-"))
    });
    // Classified only now: what is never sent (the target directory, the output) is never
    // looked at either.
    let mut kept = Vec::with_capacity(files.len());
    for f in files {
        if source_kind(workspace, &f)?.is_some() {
            kept.push(f);
        }
    }
    kept.sort();
    Ok(kept)
}

/// Every path under `root` that is not a directory (files, links, anything else), without
/// following links, and without `target` and `.git` at the top, whatever they are.
fn walkdir_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            let path = entry.path();
            let name = entry.file_name();
            if dir == root && (name == "target" || name == ".git") {
                continue;
            }
            let ft = entry.file_type().at(&path)?;
            if ft.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
            }
        }
    }
    Ok(out)
}

/// What a listed path of the workspace is sent as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    File,
    /// A symbolic link whose target stays inside the workspace: sent as the same link.
    Link(PathBuf),
}

/// Classifies `rel` (relative to `root`) without following links: a regular file, a link
/// that stays inside `root`, or nothing (a directory, e.g. a submodule, or a path that is
/// gone). A link that leaves the workspace, a path that passes through a link, and sockets,
/// fifos and devices are errors: their bytes would come from outside the workspace.
pub fn source_kind(root: &Path, rel: &Path) -> Result<Option<SourceKind>> {
    let unsafe_source = |detail: String| Error::UnsafeSource {
        path: root.join(rel),
        detail,
    };
    if rel
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(unsafe_source(
            "the path is not plainly inside the workspace".into(),
        ));
    }
    // Every parent must be a real directory: git's index (which the project wrote) can
    // list `a/secret` where `a` is now a link to a host directory.
    let mut parent = root.to_path_buf();
    let components: Vec<_> = rel.components().collect();
    for c in &components[..components.len().saturating_sub(1)] {
        parent.push(c);
        match std::fs::symlink_metadata(&parent) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(unsafe_source(format!(
                    "the path passes through the symbolic link {}",
                    parent.display()
                )));
            }
            _ => return Ok(None),
        }
    }
    let path = root.join(rel);
    let Ok(meta) = std::fs::symlink_metadata(&path) else {
        return Ok(None);
    };
    let ft = meta.file_type();
    if ft.is_file() {
        return Ok(Some(SourceKind::File));
    }
    if ft.is_dir() {
        return Ok(None);
    }
    if ft.is_symlink() {
        let target = std::fs::read_link(&path).at(&path)?;
        if target.is_absolute() {
            return Err(unsafe_source(format!(
                "symbolic link to {}, outside the workspace",
                target.display()
            )));
        }
        // Lexically, from the link's directory; then, if it exists, where it really ends
        // (a chain of links inside can still end outside).
        let mut depth: usize = components.len() - 1;
        for c in target.components() {
            match c {
                std::path::Component::Normal(_) => depth += 1,
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir if depth > 0 => depth -= 1,
                _ => {
                    return Err(unsafe_source(format!(
                        "symbolic link to {}, outside the workspace",
                        target.display()
                    )));
                }
            }
        }
        if let Ok(real) = std::fs::canonicalize(&path) {
            let real_root = std::fs::canonicalize(root).at(root)?;
            if !real.starts_with(&real_root) {
                return Err(unsafe_source(format!(
                    "symbolic link to {} ends at {}, outside the workspace",
                    target.display(),
                    real.display()
                )));
            }
        }
        return Ok(Some(SourceKind::Link(target)));
    }
    Err(unsafe_source(
        "a socket, fifo or device: only files, directories and links are sent".into(),
    ))
}

/// SOURCE_DATE_EPOCH: the last commit's time in a git tree, else the newest mtime of the
/// files sent in. Returns the value and where it came from.
pub fn source_date_epoch(workspace: &Path, files: &[PathBuf]) -> (i64, String) {
    if let Some(out) = hermetic_deps::host::git_output(
        workspace,
        ["log", "-1", "--no-show-signature", "--format=%ct %H"],
    ) {
        let text = String::from_utf8_lossy(&out);
        let mut parts = text.split_whitespace();
        if let (Some(ts), Some(commit)) = (parts.next(), parts.next())
            && let Ok(ts) = ts.parse()
        {
            return (ts, format!("time of the last git commit {commit}"));
        }
    }
    let newest = files
        .iter()
        .filter_map(|f| std::fs::metadata(workspace.join(f)).ok()?.modified().ok())
        .filter_map(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .max()
        .unwrap_or(0);
    (
        newest,
        "newest modification time of the source files (not a git tree)".into(),
    )
}

/// Where the source comes from, for provenance: the `origin` remote (as `git+URL`), the
/// checked-out commit, and whether the work tree has changes that commit does not hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourceIdentity {
    pub uri: Option<String>,
    pub commit: Option<String>,
    pub dirty: bool,
}

pub fn source_identity(workspace: &Path) -> Result<SourceIdentity> {
    let Ok(Some(repo)) = hermetic_deps::host::repository(workspace) else {
        return Ok(SourceIdentity::default());
    };
    let Some(head) = hermetic_deps::host::git_output(&repo, ["rev-parse", "--verify", "HEAD"])
        .map(|out| String::from_utf8_lossy(&out).trim().to_string())
    else {
        return Ok(SourceIdentity::default());
    };
    // The repository's objects are its word: HEAD's commit and every tree under it are
    // re-hashed here, so that a forged object (another tree under the genuine commit id)
    // is caught, and the work tree is compared with what they really hold.
    let tree = verified_head_tree(&repo, &head).map_err(|detail| Error::UnsafeSource {
        path: repo.join(".git"),
        detail: format!("{detail} (`git fsck` tells what is wrong with the repository)"),
    })?;
    let uri = hermetic_deps::host::git_output(&repo, ["remote", "get-url", "origin"])
        .map(|out| String::from_utf8_lossy(&out).trim().to_string())
        .filter(|u| !u.is_empty() && !u.chars().any(char::is_control))
        .map(|u| hermetic_deps::host::without_userinfo(&u))
        .map(|u| {
            if u.starts_with("git+") {
                u
            } else {
                format!("git+{u}")
            }
        });
    Ok(SourceIdentity {
        uri,
        commit: Some(head),
        dirty: work_tree_differs(&repo, &tree),
    })
}

/// A git object id's hash, by its length: SHA-1 (40 hex digits) or SHA-256 (64).
fn git_object_id(kind: &str, body: &[u8], like: &str) -> String {
    let header = format!("{kind} {}\0", body.len());
    if like.len() == 64 {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(header.as_bytes());
        h.update(body);
        hex::encode(h.finalize())
    } else {
        use sha1::Digest;
        let mut h = sha1::Sha1::new();
        h.update(header.as_bytes());
        h.update(body);
        hex::encode(h.finalize())
    }
}

/// Reads `ids` with `git cat-file --batch` and checks that each object hashes to its id.
fn verified_objects(
    repo: &Path,
    ids: &[String],
) -> std::result::Result<Vec<(String, Vec<u8>)>, String> {
    let request: String = ids.iter().map(|id| format!("{id}\n")).collect();
    let mut cmd = hermetic_deps::host::git(repo);
    cmd.args(["cat-file", "--batch"]);
    let out = hermetic_deps::host::output_within(
        &mut cmd,
        Some(request.into_bytes()),
        hermetic_deps::host::GIT_TIMEOUT,
    )
    .ok()
    .filter(|o| o.status.success())
    .ok_or("git could not read the repository's objects")?;
    let mut rest: &[u8] = &out.stdout;
    let mut objects = Vec::with_capacity(ids.len());
    for id in ids {
        let nl = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or("git's answer ended early")?;
        let header = String::from_utf8_lossy(&rest[..nl]).into_owned();
        rest = &rest[nl + 1..];
        let mut fields = header.split(' ');
        let (Some(got), Some(kind), Some(size)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("object {id} is missing"));
        };
        let size: usize = size.parse().map_err(|_| format!("object {id}: bad size"))?;
        if got != id || size.checked_add(1).is_none_or(|n| rest.len() < n) {
            return Err(format!(
                "object {id}: git's answer does not match the request"
            ));
        }
        let body = rest[..size].to_vec();
        rest = &rest[size + 1..];
        if git_object_id(kind, &body, id) != *id {
            return Err(format!(
                "object {id} does not hash to its id: it was replaced or forged"
            ));
        }
        objects.push((kind.to_string(), body));
    }
    Ok(objects)
}

/// More entries than any Rust workspace's repository has (the largest monorepos hold a few
/// million files; Chromium about 400 000).
const MAX_TREE_ENTRIES: usize = 1_000_000;

/// Every file of HEAD's tree (path from the repository root → mode and blob id), each
/// tree on the way re-hashed.
fn verified_head_tree(
    repo: &Path,
    head: &str,
) -> std::result::Result<std::collections::BTreeMap<String, (String, String)>, String> {
    let commit = verified_objects(repo, &[head.to_string()])?;
    let (kind, body) = &commit[0];
    if kind != "commit" {
        return Err(format!("HEAD ({head}) is a {kind}, not a commit"));
    }
    let text = String::from_utf8_lossy(body);
    let root = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("tree "))
        .ok_or("HEAD's commit names no tree")?
        .to_string();
    let hex_len = head.len();
    let mut files = std::collections::BTreeMap::new();
    let mut level = vec![(String::new(), root)];
    // Each tree is fetched and verified once, however often it appears (a tiny hostile
    // repository can repeat one subtree into millions of paths: the entry cap stops it).
    let mut verified: std::collections::HashMap<String, Vec<u8>> = std::collections::HashMap::new();
    let mut entries = 0usize;
    // Depth is bounded by the paths the work tree can hold; the bound stops a cycle.
    for _ in 0..256 {
        if level.is_empty() {
            return Ok(files);
        }
        let mut wanted: Vec<String> = level
            .iter()
            .map(|(_, id)| id.clone())
            .filter(|id| !verified.contains_key(id))
            .collect();
        wanted.sort();
        wanted.dedup();
        for (id, (kind, body)) in wanted.iter().zip(verified_objects(repo, &wanted)?) {
            if kind != "tree" {
                return Err(format!("{id} is a {kind}, not a tree"));
            }
            verified.insert(id.clone(), body);
        }
        let mut next = Vec::new();
        for (prefix, id) in &level {
            let body = verified.get(id).ok_or("a tree went missing")?;
            let mut rest: &[u8] = body;
            while !rest.is_empty() {
                entries += 1;
                if entries > MAX_TREE_ENTRIES {
                    return Err(format!(
                        "HEAD's tree has more than {MAX_TREE_ENTRIES} entries"
                    ));
                }
                let sp = rest
                    .iter()
                    .position(|b| *b == b' ')
                    .ok_or("a bad tree entry")?;
                let nul = rest
                    .iter()
                    .position(|b| *b == 0)
                    .ok_or("a bad tree entry")?;
                let raw_len = hex_len / 2;
                if nul < sp || rest.len() < nul + 1 + raw_len {
                    return Err(format!("tree {id} is malformed"));
                }
                let mode = String::from_utf8_lossy(&rest[..sp]).into_owned();
                let name = String::from_utf8_lossy(&rest[sp + 1..nul]).into_owned();
                let oid = hex::encode(&rest[nul + 1..nul + 1 + raw_len]);
                rest = &rest[nul + 1 + raw_len..];
                let path = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                match mode.as_str() {
                    "40000" => next.push((path, oid)),
                    // A submodule's commit is not in this repository.
                    "160000" => {}
                    _ => {
                        files.insert(path, (mode, oid));
                    }
                }
            }
        }
        level = next;
    }
    Err("HEAD's tree is deeper than any work tree".into())
}

/// True unless the work tree holds exactly HEAD's files (as re-hashed by
/// [`verified_head_tree`]): the same paths tracked, no untracked file that is not ignored,
/// and every file's raw bytes (or a link's target) hashing to HEAD's blob. Not
/// `git status`, which runs the clean filters the repository's attributes and config name:
/// a file a filter would convert counts as changed (conservative).
fn work_tree_differs(
    repo: &Path,
    head: &std::collections::BTreeMap<String, (String, String)>,
) -> bool {
    use hermetic_deps::host::git_output;
    let list = |args: &[&str]| -> Option<std::collections::BTreeSet<String>> {
        let out = git_output(repo, args)?;
        Some(
            out.split(|b| *b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect(),
        )
    };
    let Some(untracked) = list(&[
        "ls-files",
        "-z",
        "--full-name",
        "--others",
        "--exclude-standard",
    ]) else {
        return true;
    };
    let Some(tracked) = list(&["ls-files", "-z", "--full-name", "--cached"]) else {
        return true;
    };
    // Submodules are listed by git but are no files of HEAD's tree here.
    let tracked: std::collections::BTreeSet<String> = tracked
        .into_iter()
        .filter(|p| !repo.join(p).is_dir() || repo.join(p).is_symlink())
        .collect();
    if !untracked.is_empty() || tracked.iter().ne(head.keys()) {
        return true;
    }
    head.iter().any(|(path, (mode, oid))| {
        // The repository's paths are its word: one that is not plainly inside the work
        // tree (`..`, through a link) is never opened, and counts as a change.
        if hermetic_deps::validate::relative_path(path).is_err()
            || !matches!(
                source_kind(repo, Path::new(path)),
                Ok(Some(SourceKind::File)) | Ok(Some(SourceKind::Link(_)))
            )
        {
            return true;
        }
        let full = repo.join(path);
        let bytes = if mode == "120000" {
            match std::fs::read_link(&full) {
                Ok(t) => t.as_os_str().as_encoded_bytes().to_vec(),
                Err(_) => return true,
            }
        } else {
            match std::fs::symlink_metadata(&full) {
                Ok(m) if m.file_type().is_file() => {}
                _ => return true,
            }
            match read_regular(&full) {
                Ok(Content::File { data, executable }) => {
                    if executable != (mode == "100755") {
                        return true;
                    }
                    data
                }
                _ => return true,
            }
        };
        git_object_id("blob", &bytes, oid) != *oid
    })
}

/// Deterministic tar builder: fixed owner, mtime and modes, explicit directory entries.
struct TarWriter {
    builder: tar::Builder<Vec<u8>>,
    mtime: u64,
    dirs: std::collections::BTreeSet<PathBuf>,
    /// Entries writable by every user (see [`TarWriter::writable`]).
    writable: bool,
}

impl TarWriter {
    fn new(mtime: i64) -> TarWriter {
        TarWriter {
            builder: tar::Builder::new(Vec::new()),
            mtime: mtime.max(0) as u64,
            dirs: Default::default(),
            writable: false,
        }
    }

    /// For the workspace: its directories and files writable by whichever user the build
    /// runs as (the uid is varied), so that a build script that writes into its own package
    /// (shell completions, generated code) works as it does in a checkout. The writes land
    /// in the run's own copy, removed with the run; the snapshot that was hashed and
    /// recorded is these bytes, and vendored dependencies stay read-only.
    fn writable(mtime: i64) -> TarWriter {
        TarWriter {
            writable: true,
            ..TarWriter::new(mtime)
        }
    }

    fn dir(&mut self, path: &Path, uid: u32) -> Result<()> {
        if path.as_os_str().is_empty() || !self.dirs.insert(path.to_path_buf()) {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            self.dir(parent, 0)?;
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(if self.writable { 0o777 } else { 0o755 });
        h.set_uid(uid as u64);
        h.set_gid(uid as u64);
        h.set_mtime(self.mtime);
        h.set_size(0);
        h.set_cksum();
        self.builder
            .append_data(&mut h, path, std::io::empty())
            .at(path)
    }

    fn file(&mut self, path: &Path, data: &[u8], executable: bool) -> Result<()> {
        if let Some(parent) = path.parent() {
            self.dir(parent, 0)?;
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(match (executable, self.writable) {
            (true, false) => 0o755,
            (false, false) => 0o644,
            (true, true) => 0o777,
            (false, true) => 0o666,
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(self.mtime);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.builder.append_data(&mut h, path, data).at(path)
    }

    /// A symbolic link (mode 0777, like every link), its target as it was.
    fn link(&mut self, path: &Path, target: &Path) -> Result<()> {
        if let Some(parent) = path.parent() {
            self.dir(parent, 0)?;
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(self.mtime);
        h.set_size(0);
        self.builder.append_link(&mut h, path, target).at(path)
    }

    fn entry(&mut self, path: &Path, content: &Content) -> Result<()> {
        match content {
            Content::File { data, executable } => self.file(path, data, *executable),
            Content::Link(target) => self.link(path, target),
        }
    }

    fn finish(self) -> Result<Vec<u8>> {
        self.builder.into_inner().at("tar archive")
    }
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}

/// A source file as it is sent in.
#[derive(Debug, Clone)]
enum Content {
    File { data: Vec<u8>, executable: bool },
    Link(PathBuf),
}

/// Reads a regular file without following a link that replaced it since it was listed.
fn read_regular(path: &Path) -> Result<Content> {
    use std::io::Read;
    let (f, meta) = hermetic_deps::host::open_regular(path).map_err(|e| Error::UnsafeSource {
        path: path.to_path_buf(),
        detail: format!("cannot be opened as a regular file: {e}"),
    })?;
    // A sparse terabyte "source" must not be read into memory.
    if meta.len() > MAX_SOURCE_FILE {
        return Err(Error::UnsafeSource {
            path: path.to_path_buf(),
            detail: format!(
                "larger than {} MiB, the most hermetic reads of one input file",
                MAX_SOURCE_FILE >> 20
            ),
        });
    }
    let mut data = Vec::new();
    f.take(MAX_SOURCE_FILE + 1)
        .read_to_end(&mut data)
        .at(path)?;
    if data.len() as u64 > MAX_SOURCE_FILE {
        return Err(Error::InputsChanged {
            path: path.to_path_buf(),
        });
    }
    Ok(Content::File {
        data,
        executable: is_executable(&meta),
    })
}

/// The largest input file read (sources and vendored files are held in memory).
const MAX_SOURCE_FILE: u64 = 1 << 30;
/// All source files together.
const MAX_SOURCE_TOTAL: u64 = 4 << 30;

fn add_tree(tar: &mut TarWriter, root: &Path, files: &[PathBuf], prefix: &Path) -> Result<()> {
    for rel in files {
        // Regular files only: the vendored tree holds nothing else, and a link planted in
        // it is refused rather than followed.
        let content = read_regular(&root.join(rel))?;
        tar.entry(&prefix.join(rel), &content)?;
    }
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Modification time of every entry of the vendored tree's archive (1980-01-01, the
/// earliest date zip can hold). Not `SOURCE_DATE_EPOCH`: the archive, and the engine's copy
/// keyed by its digest ([`crate::cache`]), then stay the same for every commit built with
/// the same lockfile.
pub const DEPS_MTIME: i64 = 315_532_800;

/// Bumped whenever the vendored tree's archive is laid out differently: digests remembered
/// on disk for an older layout must not be believed.
const DEPS_ARCHIVE_FORMAT: u32 = 3;

/// Where a vendored output remembers its archive's digest.
const DEPS_DIGEST: &str = ".deps-archive.json";

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Eq)]
struct RememberedDigest {
    format: u32,
    /// SHA-256 of the vendored output's stat index when the digest was taken.
    index_sha256: String,
    sha256: String,
}

/// The inputs of a build, read once: the workspace's files (in memory), the archive of the
/// vendored tree (the biggest input) and their digests. Every runner of a verification
/// builds from one snapshot, so a file edited while it runs cannot make runners build
/// different inputs and look like nondeterminism.
///
/// The vendored tree's archive is made only when an engine lacks its copy: its digest is
/// remembered beside the tree, tied to the tree's stat index, and an archive made later
/// must have that digest.
pub struct Snapshot {
    /// Workspace-relative paths, sorted.
    pub files: Vec<PathBuf>,
    /// Each file's bytes and whether it is executable, in `files` order.
    contents: Vec<Content>,
    /// `src/`: the workspace files in canonical order (shared, never copied, by runners).
    src: bytes::Bytes,
    /// `deps/`: the vendored tree and its source replacement config, once made.
    deps: std::sync::Mutex<Option<bytes::Bytes>>,
    /// The vendored output (its `vendor/` is archived).
    vendor_dir: PathBuf,
    /// `deps/config.toml`.
    deps_config: String,
    /// SHA-256 of the `src/` archive.
    pub source_tree_sha256: String,
    /// SHA-256 of the `deps/` archive.
    pub vendor_tree_sha256: String,
    pub source_date_epoch: i64,
    /// The workspace's Cargo.toml pins `[profile.release] codegen-units`.
    pub codegen_units_pinned: bool,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("files", &self.files.len())
            .field("source_tree_sha256", &self.source_tree_sha256)
            .field("vendor_tree_sha256", &self.vendor_tree_sha256)
            .field("source_date_epoch", &self.source_date_epoch)
            .finish_non_exhaustive()
    }
}

/// The archive of `vendor_dir/vendor` under `deps/vendor`, with `deps/config.toml`.
fn deps_archive(vendor_dir: &Path, config: &str) -> Result<Vec<u8>> {
    let vendor_root = vendor_dir.join("vendor");
    let mut vendor_files: Vec<PathBuf> = walkdir_files(&vendor_root)?;
    // Only what verification looked at goes in: files it skips (under `.git`, `.cargo-ok`,
    // git's own files) were never compared with the archives, so they are not sent either.
    // Each crate's `.cargo-checksum.json` is the one exception cargo needs.
    vendor_files.retain(|f| {
        let rel = f.to_string_lossy().replace('\\', "/");
        let in_crate = rel.split_once('/').map(|(_, r)| r).unwrap_or("");
        in_crate == ".cargo-checksum.json" || !hermetic_deps::archive::is_skipped(in_crate)
    });
    vendor_files.sort();
    let mut deps = TarWriter::new(DEPS_MTIME);
    add_tree(
        &mut deps,
        &vendor_root,
        &vendor_files,
        Path::new("deps/vendor"),
    )?;
    deps.file(Path::new("deps/config.toml"), config.as_bytes(), false)?;
    deps.finish()
}

impl Snapshot {
    /// Reads `files` of `workspace`, and the digest of the vendored tree in `vendor_dir`
    /// (remembered if the tree is unchanged since it was taken, else made now).
    pub fn take(
        workspace: &Path,
        vendor_dir: &Path,
        files: Vec<PathBuf>,
        source_date_epoch: i64,
    ) -> Result<Snapshot> {
        let mut contents = Vec::with_capacity(files.len());
        let mut total: u64 = 0;
        let mut src = TarWriter::writable(source_date_epoch);
        for rel in &files {
            // Classified again as it is read: the tree may have changed since it was listed.
            let content = match source_kind(workspace, rel)? {
                Some(SourceKind::File) => read_regular(&workspace.join(rel))?,
                Some(SourceKind::Link(target)) => Content::Link(target),
                None => {
                    return Err(Error::InputsChanged {
                        path: workspace.join(rel),
                    });
                }
            };
            if let Content::File { data, .. } = &content {
                total += data.len() as u64;
                if total > MAX_SOURCE_TOTAL {
                    return Err(Error::UnsafeSource {
                        path: workspace.join(rel),
                        detail: format!(
                            "the sources pass {} MiB here, the most hermetic reads: leave \
                             large files out of the workspace (or ignore them in git)",
                            MAX_SOURCE_TOTAL >> 20
                        ),
                    });
                }
            }
            src.entry(&Path::new("src").join(rel), &content)?;
            contents.push(content);
        }
        let src = src.finish()?;
        let codegen_units_pinned = files
            .iter()
            .position(|f| f == Path::new("Cargo.toml"))
            .and_then(|i| match &contents[i] {
                Content::File { data, .. } => Some(data),
                Content::Link(_) => None,
            })
            .is_some_and(|data| sets_codegen_units(&String::from_utf8_lossy(data)));
        let lock = hermetic_deps::lockfile::Lockfile::read(&workspace.join("Cargo.lock"))?;
        let deps_config = hermetic_deps::write_source_config("deps", &lock);

        // Shortcuts only, each sealed: without this machine's seal, the tree is read again.
        let cache = hermetic_deps::cache::Cache::from_env();
        let seal = cache.seal().ok();
        let index = seal
            .and_then(|seal| hermetic_deps::tree_unchanged(vendor_dir, &lock.vendor_key(), seal));
        let remembered_path = vendor_dir.join(DEPS_DIGEST);
        let remembered = index.as_ref().zip(seal).and_then(|(index_sha256, seal)| {
            let text = seal.read(&remembered_path, DEPS_DIGEST, index_sha256)?;
            let r: RememberedDigest = serde_json::from_str(&text).ok()?;
            (r.format == DEPS_ARCHIVE_FORMAT && r.index_sha256 == *index_sha256).then_some(r.sha256)
        });
        let (vendor_tree_sha256, deps) = match remembered {
            Some(sha) => (sha, None),
            None => {
                let archive = deps_archive(vendor_dir, &deps_config)?;
                let sha = sha256_hex(&archive);
                if let Some((index_sha256, seal)) = index.zip(seal) {
                    let r = RememberedDigest {
                        format: DEPS_ARCHIVE_FORMAT,
                        index_sha256: index_sha256.clone(),
                        sha256: sha.clone(),
                    };
                    // Only a shortcut: a failure to remember costs the next run time.
                    let _ = seal.write(
                        &remembered_path,
                        DEPS_DIGEST,
                        &index_sha256,
                        &serde_json::to_string(&r).unwrap_or_default(),
                    );
                }
                (sha, Some(bytes::Bytes::from(archive)))
            }
        };
        Ok(Snapshot {
            source_tree_sha256: sha256_hex(&src),
            vendor_tree_sha256,
            files,
            contents,
            src: src.into(),
            deps: std::sync::Mutex::new(deps),
            vendor_dir: vendor_dir.to_path_buf(),
            deps_config,
            source_date_epoch,
            codegen_units_pinned,
        })
    }

    /// The `deps/` archive (made once, then shared): its digest is the snapshot's
    /// `vendor_tree_sha256`, or the tree changed meanwhile and this is an error.
    pub fn deps_archive(&self) -> Result<bytes::Bytes> {
        let mut deps = self.deps.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = deps.as_ref() {
            return Ok(d.clone());
        }
        let archive = bytes::Bytes::from(deps_archive(&self.vendor_dir, &self.deps_config)?);
        if sha256_hex(&archive) != self.vendor_tree_sha256 {
            return Err(Error::InputsChanged {
                path: self.vendor_dir.clone(),
            });
        }
        *deps = Some(archive.clone());
        Ok(archive)
    }

    /// The archives to unpack in the input volume: `work/` and `deps/` (the mount points
    /// of the other volumes) and `src/`. Only a file-order variation sends the sources a
    /// second way (reversed), from memory.
    fn archives(&self, reverse_file_order: bool) -> Result<Vec<bytes::Bytes>> {
        let src = if reverse_file_order {
            let mut tar = TarWriter::writable(self.source_date_epoch);
            for (rel, content) in self.files.iter().zip(&self.contents).rev() {
                tar.entry(&Path::new("src").join(rel), content)?;
            }
            tar.finish()?.into()
        } else {
            self.src.clone()
        };
        let mut work = TarWriter::new(self.source_date_epoch);
        work.dir(Path::new("work"), 0)?;
        work.dir(Path::new("deps"), 0)?;
        Ok(vec![work.finish()?.into(), src])
    }
}

/// The writable volume's skeleton, owned by the build user.
fn work_archive(env: &BuildEnv) -> Result<Vec<u8>> {
    let mut tar = TarWriter::new(0);
    for d in ["target", "home", "cargo-home"] {
        tar.dir(Path::new(d), env.uid)?;
    }
    tar.finish()
}

/// The environment variables and command of the build.
pub fn command_and_env(
    spec: &BuildSpec,
    sysroot: Option<&str>,
    faketime: Option<&str>,
) -> (Vec<String>, Vec<String>) {
    let p = spec.env.build_path.trim_end_matches('/');
    let home = spec
        .env
        .home
        .clone()
        .unwrap_or_else(|| format!("{p}/work/home"));
    // Remap every absolute path that can end up in a binary to a fixed name, so that
    // outputs do not depend on where things were.
    let mut remaps = vec![
        format!("{p}/src=/hermetic/src"),
        format!("{p}/deps/vendor=/hermetic/vendor"),
        format!("{p}/work/cargo-home=/hermetic/cargo-home"),
        format!("{p}/work/target=/hermetic/target"),
    ];
    if let Some(sysroot) = sysroot {
        remaps.push(format!("{sysroot}=/hermetic/rust"));
    }
    let mut rustflags: Vec<String> = remaps
        .iter()
        .map(|r| format!("--remap-path-prefix={r}"))
        .collect();
    // The GNU build id is a hash of the output; neutralise it rather than depend on it.
    rustflags.push("-Clink-arg=-Wl,--build-id=none".into());
    let mut env = vec![
        format!("SOURCE_DATE_EPOCH={}", spec.snapshot.source_date_epoch),
        format!("TZ={}", spec.env.tz),
        format!("LANG={}", spec.env.locale),
        format!("LC_ALL={}", spec.env.locale),
        format!("HOME={home}"),
        format!("CARGO_HOME={p}/work/cargo-home"),
        "CARGO_INCREMENTAL=0".into(),
        "CARGO_TERM_COLOR=never".into(),
        format!("RUSTFLAGS={}", rustflags.join(" ")),
    ];
    // Codegen units must not follow the CPU count: keep the project's own setting, else
    // pin release's documented default.
    if !spec.snapshot.codegen_units_pinned {
        env.push("CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16".into());
    }
    if let Some(j) = spec.env.jobs {
        env.push(format!("CARGO_BUILD_JOBS={j}"));
    }
    for (k, v) in &spec.env.extra_env {
        env.push(format!("{k}={v}"));
    }
    let mut cargo = vec![
        "cargo".to_string(),
        "build".into(),
        "--release".into(),
        "--locked".into(),
        "--offline".into(),
        "--config".into(),
        format!("{p}/deps/config.toml"),
        "--target-dir".into(),
        format!("{p}/work/target"),
    ];
    cargo.extend(spec.cargo_args.iter().cloned());
    let mut script = format!("umask {} && cd {p}/src && ", spec.env.umask);
    if let (Some(days), Some(lib)) = (spec.env.clock_offset_days, faketime) {
        // cargo and what it runs (build scripts, the C compilers they call) see the clock
        // shifted; rustc does not: libfaketime's first clock call, made inside rustc's
        // jemalloc initialisation, allocates and deadlocks. A `rustc` first on PATH (which
        // cargo, and build scripts through RUSTC=rustc, find it by) takes the preload away
        // from rustc alone; cargo hashes rustc's version, not its path, so no output
        // changes. The shift is checked before cargo starts: a library the loader cannot
        // preload is skipped with a warning only, and the build would run unshifted.
        let dir = format!("{p}/work/target/.hermetic-real-clock");
        let fail = |why: &str| format!("{{ echo 'hermetic: {why}' >&2; false; }}");
        script.push_str(&format!(
            "real=$(command -v rustc) && case \"$real\" in /*) ;; *) false ;; esac && \
             case \"$real\" in *[!A-Za-z0-9/._+-]*) false ;; esac || {no_rustc} && \
             mkdir -p {dir} && \
             printf '#!/bin/sh\\nunset LD_PRELOAD FAKETIME\\nexec %s \"$@\"\\n' \"$real\" \
             > {dir}/rustc && chmod 755 {dir}/rustc && \
             shifted=$(env LD_PRELOAD={lib} FAKETIME=+{days}d date +%s) && now=$(date +%s) && \
             [ $((shifted - now)) -gt {least} ] || {unshifted} && \
             env \"PATH={dir}:$PATH\" LD_PRELOAD={lib} FAKETIME=+{days}d \
             FAKETIME_DONT_FAKE_MONOTONIC=1 NO_FAKE_STAT=1 ",
            no_rustc = fail("the clock variation needs rustc on PATH as a plain absolute path"),
            unshifted = fail(&format!("libfaketime ({lib}) did not shift the clock")),
            least = (days - 1).max(0) * 86_400,
        ));
    }
    script.push_str(
        &cargo
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" "),
    );
    // The build records that it ended by itself: an exit seen only after the engine
    // connection broke (an engine restart stops containers) counts only with this record.
    // After a build that succeeded, what it made on the way (build-script outputs and
    // generated files, every crate's rlib, rmeta and objects) is hashed where it lies, and
    // the build scripts' `output` files are kept whole: a mismatch is then traced to the
    // first crate that differs, without bringing the target directory back. Dep-info
    // files and cargo's own records name absolute paths and say nothing of the crates.
    script.push_str("; code=$?; ");
    if spec.trace {
        script.push_str(&format!(
            "if [ $code -eq 0 ]; then (cd {p}/work/target/release && \
             find build deps -type f ! -name '*.d' ! -name root-output ! -name invoked.timestamp \
             ! -name stderr ! -name build-script-build ! -name 'build_script_build-*' -print0 \
             | sort -z | xargs -0 -r sha256sum > {p}/work/target/{INTERMEDIATES} && \
             for f in build/*/output; do [ -f \"$f\" ] && printf '== %s\\n' \"$f\" && \
             head -c 65536 \"$f\" && printf '\\n'; done > {p}/work/target/{BUILD_OUTPUTS}) \
             >/dev/null 2>&1 || true; fi; "
        ));
    }
    script.push_str(&format!(
        "echo $code > {p}/work/target/{EXIT_RECORD}; exit $code"
    ));
    (vec!["/bin/sh".into(), "-c".into(), script], env)
}

/// True if a Cargo.toml pins `[profile.release] codegen-units`.
fn sets_codegen_units(manifest: &str) -> bool {
    manifest
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| {
            t.get("profile")?
                .get("release")?
                .get("codegen-units")
                .map(|_| ())
        })
        .is_some()
}

fn shell_quote(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_./=:".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Runs a build. Every container and volume of the run is removed on the way out, whatever
/// happens; on failure, diagnostics are written to `spec.diagnostics_dir`.
pub async fn build(
    engine: &Engine,
    run: &RunId,
    spec: &BuildSpec,
    stage: &(dyn Fn(&str) + Sync),
    log_line: &(dyn Fn(&str) + Sync),
    sink: &mut dyn OutputSink,
) -> Result<BuildResult> {
    let result = build_inner(engine, run, spec, stage, log_line, sink).await;
    let clock = std::time::Instant::now();
    let cleaned = collect(engine, Scope::Run(run.0.clone())).await;
    let mut result = result?;
    cleaned?;
    result.stages.cleanup_ms = ms_since(clock);
    Ok(result)
}

async fn build_inner(
    engine: &Engine,
    run: &RunId,
    spec: &BuildSpec,
    stage: &(dyn Fn(&str) + Sync),
    log_line: &(dyn Fn(&str) + Sync),
    sink: &mut dyn OutputSink,
) -> Result<BuildResult> {
    let started_unix = crate::run::now_unix();
    let mut stages = StageTimes::default();
    let clock = std::time::Instant::now();
    stage("checking the builder image");
    let info = image::show(engine, &spec.image).await?;
    // The image was found by a tag or digest; what it holds is in its definition.
    if info.definition.is_some() {
        let has = declared_packages(&info);
        let missing: Vec<String> = spec
            .packages
            .iter()
            .filter(|p| !has.contains(p))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(Error::ImageLacksPackages {
                image: info.digest.clone(),
                missing,
            });
        }
    }
    let p = spec.env.build_path.trim_end_matches('/').to_string();

    stage("packing inputs");
    let source_count = spec.snapshot.files.len();
    let source_tree_sha256 = spec.snapshot.source_tree_sha256.clone();
    let vendor_tree_sha256 = spec.snapshot.vendor_tree_sha256.clone();
    let inputs = spec.snapshot.archives(spec.env.reverse_file_order)?;
    let work = work_archive(&spec.env)?;

    let in_vol = format!("hermetic-{}-in", run.0);
    let work_vol = format!("hermetic-{}-work", run.0);
    if spec.env.clock_offset_days.is_some() && info.faketime.is_none() {
        return Err(Error::NoFaketime {
            image: info.digest.clone(),
        });
    }
    let (command, environment) =
        command_and_env(spec, info.sysroot.as_deref(), info.faketime.as_deref());
    let body = ContainerCreateBody {
        image: Some(info.digest.clone()),
        cmd: Some(command.clone()),
        env: Some(environment.clone()),
        user: Some(format!("{}:{}", spec.env.uid, spec.env.gid)),
        hostname: Some(spec.env.hostname.clone()),
        domainname: Some(spec.env.domainname.clone()),
        working_dir: Some(format!("{p}/src")),
        labels: Some(run.labels()),
        network_disabled: Some(true),
        ..Default::default()
    };

    let name = format!("hermetic-{}-build", run.0);
    let prepare = async {
        stage("sending inputs to the engine");
        let uploading = std::time::Instant::now();
        // Independent engine calls, made at once: a warm build's preparation is mostly
        // round trips. Whatever is made before one fails carries the run's labels (or is
        // the shared cache) and goes with the run's cleanup.
        // Mounted over the image's sysroot, so only where the image names one.
        let sysroot = info.sysroot.as_deref().filter(|_| spec.engine_cache);
        let toolchain = async {
            match sysroot {
                Some(s) => cache::toolchain_volume(engine, run, &info.digest, &spec.limits, s)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        };
        let (deps, toolchain, made_in, made_work) = tokio::join!(
            cache::deps_volume(
                engine,
                run,
                &info.digest,
                &spec.limits,
                &vendor_tree_sha256,
                || spec.snapshot.deps_archive(),
                spec.engine_cache,
            ),
            toolchain,
            container::create_volume(engine, &in_vol, run.labels()),
            container::create_volume(engine, &work_vol, run.labels()),
        );
        let deps = deps?;
        let toolchain = toolchain?;
        made_in?;
        made_work?;
        let pruning = [Some(&deps), toolchain.as_ref()];
        for note in pruning
            .into_iter()
            .flatten()
            .filter_map(|v| v.prune_failed.as_ref())
        {
            log_line(&format!("note: {note}"));
        }
        // The build mounts the inputs read-only, so they go in through a helper that is
        // never started.
        let helper = container::create(
            engine,
            &format!("hermetic-{}-upload", run.0),
            ContainerCreateBody {
                image: Some(info.digest.clone()),
                cmd: Some(vec!["true".into()]),
                labels: Some(run.labels()),
                network_disabled: Some(true),
                host_config: Some(hardened_host_config(
                    vec![
                        volume_mount(&in_vol, &p, false),
                        volume_mount(&work_vol, &format!("{p}/work"), false),
                    ],
                    &spec.limits,
                )),
                ..Default::default()
            },
        )
        .await?;
        for archive in inputs {
            container::upload(engine, &helper, &p, archive).await?;
        }
        container::upload(engine, &helper, &format!("{p}/work"), work.into()).await?;
        let upload_ms = ms_since(uploading);
        let mut body = body.clone();
        // The workspace is the run's own copy, writable (see `TarWriter::writable`); the
        // vendored tree and the toolchain are shared, and read-only.
        let mut mounts = vec![
            volume_mount(&in_vol, &p, false),
            volume_mount(&deps.name, &format!("{p}/deps"), true),
            volume_mount(&work_vol, &format!("{p}/work"), false),
        ];
        // Over the image's own sysroot: same paths, same files, read from a plain volume.
        if let (Some(v), Some(sysroot)) = (&toolchain, sysroot) {
            mounts.push(volume_mount(&v.name, sysroot, true));
        }
        body.host_config = Some(hardened_host_config(mounts, &spec.limits));
        let (removed, id) = tokio::join!(
            container::remove(engine, &helper),
            container::create(engine, &name, body.clone())
        );
        removed?;
        let id = id?;
        let toolchain_reused = toolchain.is_some_and(|v| v.reused);
        Ok::<_, Error>((id, body, upload_ms, deps.reused, toolchain_reused))
    };
    let (id, body, upload_ms, deps_reused, toolchain_reused) =
        within("prepare", spec.timeouts.prepare, prepare).await?;

    if let Some(dir) = spec.log_path.parent() {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    let mut log = std::fs::File::create(&spec.log_path).at(&spec.log_path)?;
    stage("building (cargo build --release --locked --offline, no network)");
    stages.prepare_ms = ms_since(clock);
    stages.upload_ms = upload_ms;
    let clock = std::time::Instant::now();
    container::start(engine, &id).await?;
    let mut capped = CappedLog::new(spec.limits.log_bytes);
    let follow = container::follow_logs(engine, &id, |bytes| {
        capped.take(bytes, &mut log, log_line);
    });
    let (waited, ()) = tokio::join!(container::wait(engine, &id, spec.timeouts.build), follow);
    let code = match waited? {
        container::Waited::TimedOut => None,
        container::Waited::Exited(0) => Some(0),
        // A build that failed, or any exit seen only after the connection broke: it is the
        // build's only if the build's own shell recorded it. Otherwise something stopped
        // the container from outside: the engine (restarting, it stops every container)
        // or another program; that is not the build's failure.
        container::Waited::Exited(c) | container::Waited::ExitedAfterBreak(c) => {
            let path = format!("{p}/work/target/{EXIT_RECORD}");
            match exit_record(engine, &id, &path).await {
                Some(recorded) if recorded == c => Some(c),
                // The kernel's OOM killer stops the shell too: the memory limit is the
                // build's failure.
                _ if c != 0 && oom_killed(engine, &id).await => Some(c),
                recorded => {
                    return Err(Error::EngineLost {
                        host: engine.host.clone(),
                        detail: format!(
                            "its container stopped with exit code {c}{} {}; the engine \
                             stopped it (restarting?), or another program did",
                            if c > 128 {
                                format!(" (signal {})", c - 128)
                            } else {
                                String::new()
                            },
                            match recorded {
                                Some(r) => format!("while the build recorded {r}"),
                                None => "without the build recording that it ended".into(),
                            }
                        ),
                    });
                }
            }
        }
    };
    stages.build_ms = ms_since(clock);
    capped.finish(&mut log, log_line);
    drop(log);

    let diagnose = |exit: Option<i64>| {
        write_diagnostics(
            spec,
            &info,
            &body,
            exit,
            &source_tree_sha256,
            &vendor_tree_sha256,
        )
    };
    match code {
        None => {
            let dir = diagnose(None)?;
            return Err(Error::Timeout {
                stage: "build",
                after: spec.timeouts.build,
                diagnostics: Some(dir),
            });
        }
        Some(c) if c != 0 => {
            let dir = diagnose(Some(c))?;
            return Err(Error::BuildFailed {
                exit_code: c,
                diagnostics: dir,
                cause: log_tail(&spec.log_path)
                    .as_deref()
                    .and_then(crate::needs::diagnose)
                    .map(Box::new),
                declared: declared_packages(&info),
            });
        }
        Some(_) => {}
    }

    stage("collecting outputs");
    let clock = std::time::Instant::now();
    std::fs::create_dir_all(&spec.out_dir).at(&spec.out_dir)?;
    let collect_outputs = async {
        let mut outputs = Vec::new();
        let mut total: u64 = 0;
        // In name order: the order the sink (the release archive) takes them in.
        let mut names = spec.binaries.clone();
        names.sort();
        for bin in &names {
            let path = format!("{p}/work/target/release/{bin}");
            let dest = spec.out_dir.join(bin);
            // Written under a temporary name first: a half-written binary never looks
            // complete.
            let tmp = dest.with_extension("partial");
            let file = std::fs::File::create(&tmp).at(&tmp)?;
            let mut receiver = Receiver {
                file: std::io::BufWriter::with_capacity(1 << 20, file),
                sink: &mut *sink,
                image: &info,
                name: bin,
                cap: spec
                    .limits
                    .output_bytes
                    .min(spec.limits.outputs_total_bytes.saturating_sub(total)),
                received: 0,
                too_large: false,
            };
            let downloading = std::time::Instant::now();
            let streamed = container::download_file(engine, &id, &path, &mut receiver).await;
            if receiver.too_large {
                drop(receiver);
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::OutputTooLarge {
                    name: bin.clone(),
                    cap: spec.limits.output_bytes,
                    total_cap: spec.limits.outputs_total_bytes,
                });
            }
            total += receiver.received;
            let written = receiver.file.into_inner().map_err(|e| e.into_error());
            let done = streamed
                .map_err(|e| download_error(&engine.host, bin, &tmp, e, downloading.elapsed()))
                .and_then(|()| written.at(&tmp));
            if done.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            drop(done?);
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).at(&tmp)?;
            }
            std::fs::rename(&tmp, &dest).at(&dest)?;
            outputs.push(dest);
        }
        Ok::<_, Error>(outputs)
    };
    let outputs = within("collect", spec.timeouts.collect, collect_outputs).await?;
    // Evidence for explaining a mismatch, never part of the release: best effort, bounded.
    let intermediates = async {
        let dir = spec.log_path.parent()?;
        let sums = small_file(
            engine,
            &id,
            &format!("{p}/work/target/{INTERMEDIATES}"),
            INTERMEDIATES_CAP,
        )
        .await?;
        let outs = small_file(
            engine,
            &id,
            &format!("{p}/work/target/{BUILD_OUTPUTS}"),
            INTERMEDIATES_CAP,
        )
        .await
        .unwrap_or_default();
        // Named after the run's log: runners share the log directory.
        let stem = spec.log_path.file_stem()?.to_string_lossy().into_owned();
        let found = Intermediates {
            sums: dir.join(format!("{stem}.intermediates.sha256")),
            build_outputs: dir.join(format!("{stem}.build-outputs.txt")),
        };
        std::fs::write(&found.sums, sums).ok()?;
        std::fs::write(&found.build_outputs, outs).ok()?;
        Some(found)
    }
    .await;

    Ok(BuildResult {
        run_id: run.0.clone(),
        image: info,
        outputs,
        source_tree_sha256,
        vendor_tree_sha256,
        source_files: source_count,
        env: spec.env.clone(),
        environment,
        command,
        started_unix,
        finished_unix: crate::run::now_unix(),
        stages: StageTimes {
            collect_ms: ms_since(clock),
            ..stages
        },
        log_path: spec.log_path.clone(),
        intermediates,
        deps_reused,
        toolchain_reused,
    })
}

/// Where the build's shell writes its exit code, in the target directory of the run's work
/// volume (the one directory there the build user may write).
const EXIT_RECORD: &str = ".hermetic-exit";

/// `sha256sum` lines of what the build made on the way (under `target/release`).
const INTERMEDIATES: &str = ".hermetic-intermediates";
/// The build scripts' `output` files, each under a `== build/PKG-HASH/output` line.
const BUILD_OUTPUTS: &str = ".hermetic-build-outputs";
/// The most either may weigh when brought back (hostile like all the build writes).
const INTERMEDIATES_CAP: usize = 16 << 20;

/// A file of the container, whole, if it is at most `cap` bytes.
async fn small_file(engine: &Engine, id: &str, path: &str, cap: usize) -> Option<Vec<u8>> {
    struct Capped(Vec<u8>, usize);
    impl container::FileSink for Capped {
        fn begin(&mut self, size: u64) -> std::io::Result<()> {
            if size > self.1 as u64 {
                return Err(std::io::Error::other("larger than expected"));
            }
            Ok(())
        }
        fn data(&mut self, bytes: &[u8]) -> std::io::Result<()> {
            if self.0.len() + bytes.len() > self.1 {
                return Err(std::io::Error::other("larger than expected"));
            }
            self.0.extend_from_slice(bytes);
            Ok(())
        }
    }
    let mut sink = Capped(Vec::new(), cap);
    container::download_file(engine, id, path, &mut sink)
        .await
        .ok()?;
    Some(sink.0)
}

/// The exit code the build's shell recorded (hostile like all it writes, but it only ever
/// tells apart a build that ended from one the engine stopped), if any.
async fn exit_record(engine: &Engine, id: &str, path: &str) -> Option<i64> {
    let record = small_file(engine, id, path, 64).await?;
    std::str::from_utf8(&record).ok()?.trim().parse().ok()
}

/// True if the kernel killed the container for its memory limit.
async fn oom_killed(engine: &Engine, id: &str) -> bool {
    engine
        .call("inspect a container", || {
            engine.docker.inspect_container(id, None)
        })
        .await
        .ok()
        .and_then(|c| c.state)
        .and_then(|s| s.oom_killed)
        .unwrap_or(false)
}

/// Runs a stage within its timeout; past it, the stage has timed out (with no diagnostics:
/// only a timed-out build has any).
async fn within<T>(
    stage: &'static str,
    after: Duration,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(after, work)
        .await
        .map_err(|_| Error::Timeout {
            stage,
            after,
            diagnostics: None,
        })?
}

/// Takes one output as it downloads: to its file, and to the caller's sink.
/// The end of a build log, where cargo reports why it stopped: at most 4 MiB, read from the
/// file hermetic wrote (already bounded), never more.
fn log_tail(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 4 << 20;
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(TAIL))).ok()?;
    let mut bytes = Vec::new();
    f.take(TAIL).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The packages an image made by hermetic has beyond its base ones (from the definition it
/// carries): what the project already declared.
fn declared_packages(info: &crate::image::ImageInfo) -> Vec<String> {
    info.definition
        .as_ref()
        .and_then(|d| d.get("packages"))
        .and_then(|p| p.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str())
                .filter(|p| !crate::recipe::BASE_PACKAGES.contains(p))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The build log as it streams from the container (hostile: it can be endless, or one
/// endless line): written to the log file and shown line by line up to `limit` bytes, lines
/// cut at [`container::LOG_LINE_BYTES`]; past the limit the rest is only counted, and the
/// log ends saying how much was dropped.
struct CappedLog {
    limit: u64,
    kept: u64,
    dropped: u64,
    line: Vec<u8>,
    /// The current line was cut: its rest is dropped up to the next newline.
    cutting: bool,
}

impl CappedLog {
    fn new(limit: u64) -> CappedLog {
        CappedLog {
            limit,
            kept: 0,
            dropped: 0,
            line: Vec::new(),
            cutting: false,
        }
    }

    fn take(&mut self, bytes: &[u8], log: &mut impl Write, show: &(dyn Fn(&str) + Sync)) {
        let room = self.limit.saturating_sub(self.kept);
        let (keep, drop) =
            bytes.split_at(bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX)));
        self.dropped += drop.len() as u64;
        self.kept += keep.len() as u64;
        let _ = log.write_all(keep);
        for &b in keep {
            if b == b'\n' {
                show(String::from_utf8_lossy(&self.line).trim_end());
                self.line.clear();
                self.cutting = false;
            } else if self.cutting {
            } else if self.line.len() >= container::LOG_LINE_BYTES {
                self.line.extend_from_slice(b" [line cut by hermetic]");
                show(&String::from_utf8_lossy(&self.line));
                self.line.clear();
                self.cutting = true;
            } else {
                self.line.push(b);
            }
        }
    }

    fn finish(&mut self, log: &mut impl Write, show: &(dyn Fn(&str) + Sync)) {
        if !self.line.is_empty() {
            show(String::from_utf8_lossy(&self.line).trim_end());
            self.line.clear();
        }
        if self.dropped > 0 {
            let note = format!(
                "\n[hermetic: the log was cut at {} bytes (--max-log-mib); {} more bytes were \
                 dropped]\n",
                self.limit, self.dropped
            );
            let _ = log.write_all(note.as_bytes());
            show(note.trim());
        }
    }
}

struct Receiver<'a> {
    file: std::io::BufWriter<std::fs::File>,
    sink: &'a mut dyn OutputSink,
    image: &'a ImageInfo,
    name: &'a str,
    /// What this output may be, and what it has been so far: the engine's size header is
    /// not believed, the bytes are counted.
    cap: u64,
    received: u64,
    too_large: bool,
}

impl container::FileSink for Receiver<'_> {
    fn begin(&mut self, size: u64) -> std::io::Result<()> {
        if size > self.cap {
            self.too_large = true;
            return Err(std::io::Error::other("output larger than --max-output-mib"));
        }
        self.sink.begin(self.image, self.name, size)
    }

    fn data(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.received += bytes.len() as u64;
        if self.received > self.cap {
            self.too_large = true;
            return Err(std::io::Error::other("output larger than --max-output-mib"));
        }
        self.file.write_all(bytes)?;
        self.sink.data(bytes)
    }
}

/// Receives each output binary while it downloads, in name order: the CLI makes the
/// release archive from it meanwhile.
pub trait OutputSink: Send {
    /// The next binary, `size` bytes, built with `image`.
    fn begin(&mut self, image: &ImageInfo, name: &str, size: u64) -> std::io::Result<()>;

    /// Its next bytes.
    fn data(&mut self, bytes: &[u8]) -> std::io::Result<()>;
}

/// What a failed download of output `bin` (into `tmp`) means for the build.
fn download_error(host: &str, bin: &str, tmp: &Path, e: StreamError, elapsed: Duration) -> Error {
    match e {
        StreamError::NotAFile(detail) => Error::MissingOutput {
            name: bin.to_string(),
            detail,
        },
        StreamError::Engine { error, attempts } => {
            crate::engine::failure(host, &format!("download {bin}"), (error, attempts, elapsed))
        }
        StreamError::Sink(e) => Error::Io {
            path: tmp.to_path_buf(),
            source: e,
        },
    }
}

/// Writes what is needed to understand and rerun a failed build.
fn write_diagnostics(
    spec: &BuildSpec,
    info: &ImageInfo,
    body: &ContainerCreateBody,
    exit: Option<i64>,
    source_digest: &str,
    vendor_digest: &str,
) -> Result<PathBuf> {
    let dir = &spec.diagnostics_dir;
    std::fs::create_dir_all(dir).at(dir)?;
    if spec.log_path.is_file() {
        std::fs::copy(&spec.log_path, dir.join("build.log")).at(dir.join("build.log"))?;
    }
    let config = serde_json::to_string_pretty(body).unwrap_or_default();
    std::fs::write(dir.join("container.json"), config).at(dir.join("container.json"))?;
    let summary = serde_json::json!({
        "exit_code": exit,
        "timed_out": exit.is_none(),
        "image": info.digest,
        "toolchain": info.toolchain,
        "inputs": {
            "source_tree_sha256": source_digest,
            "vendor_tree_sha256": vendor_digest,
            "source_date_epoch": spec.snapshot.source_date_epoch,
        },
        "limits": spec.limits,
        "timeouts": spec.timeouts,
    });
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&summary).unwrap_or_default(),
    )
    .at(dir.join("summary.json"))?;
    let (command, env) = (
        body.cmd.clone().unwrap_or_default(),
        body.env.clone().unwrap_or_default(),
    );
    let p = spec.env.build_path.trim_end_matches('/');
    let mut script = String::from(
        "#!/bin/sh\n# Reruns the failed build with the same image, environment and isolation.\n\
         # Run from the workspace root after `hermetic vendor`; needs a local engine.\nset -eu\n",
    );
    script.push_str(&format!(
        "docker run --rm --network none --read-only --cap-drop ALL \
         --security-opt no-new-privileges --user {}:{} --hostname {} \
         --tmpfs /tmp:rw,exec,nosuid,size=1g --tmpfs {p}/work:rw,exec,mode=1777 \\\n  \
         -v \"$PWD\":{p}/src:ro -v \"{}\":{p}/deps/vendor:ro \
         -v \"$(dirname \"$0\")/config.toml\":{p}/deps/config.toml:ro \\\n",
        spec.env.uid,
        spec.env.gid,
        spec.env.hostname,
        spec.vendor_dir.join("vendor").display()
    ));
    for e in &env {
        script.push_str(&format!("  -e {} \\\n", shell_quote(e)));
    }
    script.push_str(&format!("  {} \\\n  ", info.digest));
    script.push_str(
        &command
            .iter()
            .map(|c| shell_quote(c))
            .collect::<Vec<_>>()
            .join(" "),
    );
    script.push('\n');
    let config_path = dir.join("config.toml");
    if let Ok(lock) = hermetic_deps::lockfile::Lockfile::read(&spec.workspace.join("Cargo.lock")) {
        std::fs::write(
            &config_path,
            hermetic_deps::write_source_config("deps", &lock),
        )
        .at(&config_path)?;
    }
    let path = dir.join("reproduce.sh");
    std::fs::write(&path, script).at(&path)?;
    Ok(dir.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(tar_bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut archive = tar::Archive::new(tar_bytes);
        let mut out = vec![];
        for e in archive.entries().expect("entries") {
            let mut e = e.expect("entry");
            if e.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let name = e.path().expect("path").display().to_string();
            let mut data = vec![];
            std::io::Read::read_to_end(&mut e, &mut data).expect("read");
            out.push((name, data));
        }
        out
    }

    /// A vendored output as `hermetic vendor` leaves it (with its stat index), for `lock`.
    fn vendored(lock: &str) -> (tempfile::TempDir, tempfile::TempDir) {
        let ws = tempfile::tempdir().expect("tmp");
        std::fs::write(ws.path().join("Cargo.lock"), lock).expect("write");
        let out = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(out.path().join("vendor/x-1.0.0")).expect("mkdir");
        std::fs::write(out.path().join("vendor/x-1.0.0/lib.rs"), "pub fn x() {}\n").expect("write");
        let key = hermetic_deps::lockfile::Lockfile::read(&ws.path().join("Cargo.lock"))
            .expect("lock")
            .vendor_key();
        let cache = hermetic_deps::cache::Cache::from_env();
        hermetic_deps::record_tree_index(out.path(), &key, cache.seal().expect("seal"))
            .expect("index");
        (ws, out)
    }

    /// The clock-varied script, run by the host's shell around stand-ins for cargo and
    /// rustc: cargo (and what it runs) sees the clock shifted by libfaketime (Debian's,
    /// installed by .ci/run), rustc found on PATH sees neither the preload nor the shift,
    /// and a library that shifts nothing stops the build before cargo runs.
    #[test]
    fn the_clock_is_shifted_for_cargo_and_not_for_rustc() {
        use std::os::unix::fs::PermissionsExt;
        const LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
        assert!(
            Path::new(LIB).is_file(),
            "{LIB} is missing: apt-get install libfaketime"
        );
        let (ws, out) = vendored("version = 4\n\n[[package]]\nname = \"a\"\nversion = \"0.1.0\"\n");
        let snapshot = Snapshot::take(ws.path(), out.path(), vec![], 1).expect("snapshot");
        let root = tempfile::tempdir().expect("tmp");
        let p = root.path().join("b");
        let bin = root.path().join("bin");
        for d in [p.join("src"), p.join("work/target"), bin.clone()] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        let script = |name: &str, text: &str| {
            let f = bin.join(name);
            std::fs::write(&f, text).expect("write");
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        };
        script(
            "rustc",
            "#!/bin/sh\necho \"rustc now=$(date +%s) preload=[$LD_PRELOAD]\"\n",
        );
        script(
            "cargo",
            "#!/bin/sh\necho \"cargo now=$(date +%s) rustc=$(command -v rustc)\"\nrustc\n",
        );
        let mut spec = BuildSpec {
            image: "i".into(),
            workspace: ws.path().into(),
            vendor_dir: out.path().into(),
            binaries: vec![],
            snapshot: std::sync::Arc::new(snapshot),
            env: BuildEnv {
                build_path: p.to_string_lossy().into_owned(),
                clock_offset_days: Some(500),
                ..BuildEnv::default()
            },
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            out_dir: root.path().join("out"),
            log_path: root.path().join("log"),
            diagnostics_dir: root.path().join("diag"),
            cargo_args: vec![],
            engine_cache: false,
            packages: vec![],
            trace: false,
        };
        let run = |spec: &BuildSpec, lib: &str| {
            let (command, env) = command_and_env(spec, None, Some(lib));
            let path = format!("{}:/usr/bin:/bin", bin.display());
            let out = std::process::Command::new(&command[0])
                .args(&command[1..])
                .env_clear()
                .env("PATH", path)
                .envs(env.iter().filter_map(|kv| kv.split_once('=')))
                .output()
                .expect("sh");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            (
                out.status.code(),
                text,
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let (code, text, err) = run(&spec, LIB);
        assert_eq!(code, Some(0), "{text}{err}");
        let field = |line: &str, key: &str| -> u64 {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|v| v.parse().ok())
                .expect("a number")
        };
        let cargo = text
            .lines()
            .find(|l| l.starts_with("cargo "))
            .expect("cargo ran");
        let rustc = text
            .lines()
            .find(|l| l.starts_with("rustc "))
            .expect("rustc ran");
        let shifted = field(cargo, "now=");
        assert!(shifted >= now + 499 * 86_400, "cargo's clock: {cargo}");
        assert!(cargo.contains(".hermetic-real-clock/rustc"), "{cargo}");
        assert!(
            field(rustc, "now=") < now + 86_400,
            "rustc's clock: {rustc}"
        );
        assert!(rustc.contains("preload=[]"), "{rustc}");
        // No shift, no build: a library that loads but shifts nothing stands in for one
        // the loader skips.
        spec.env.clock_offset_days = Some(500);
        let (code, text, err) = run(&spec, "/usr/lib/x86_64-linux-gnu/libc.so.6");
        assert_ne!(code, Some(0));
        assert!(!text.contains("cargo "), "cargo must not run: {text}");
        assert!(err.contains("did not shift the clock"), "{err}");
    }

    #[test]
    fn the_vendored_archive_is_made_only_when_needed_and_must_match() {
        let (ws, out) = vendored("version = 4\n\n[[package]]\nname = \"a\"\nversion = \"0.1.0\"\n");
        let first = Snapshot::take(ws.path(), out.path(), vec![], 1).expect("snapshot");
        assert!(out.path().join(DEPS_DIGEST).is_file(), "digest remembered");
        // Another commit: the digest is remembered, and does not follow SOURCE_DATE_EPOCH.
        let second = Snapshot::take(ws.path(), out.path(), vec![], 2).expect("snapshot");
        assert_eq!(second.vendor_tree_sha256, first.vendor_tree_sha256);
        assert!(second.deps.lock().expect("lock").is_none(), "not made yet");
        let made = second.deps_archive().expect("archive");
        assert_eq!(sha256_hex(&made), first.vendor_tree_sha256);
        assert_eq!(made, first.deps_archive().expect("archive"));

        // Edited after the snapshot: the archive made now is refused, not sent.
        let third = Snapshot::take(ws.path(), out.path(), vec![], 3).expect("snapshot");
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(out.path().join("vendor/x-1.0.0/lib.rs"), "pub fn y() {}\n").expect("edit");
        assert!(matches!(
            third.deps_archive(),
            Err(Error::InputsChanged { .. })
        ));
        // The index no longer matches: nothing remembered is believed.
        let fourth = Snapshot::take(ws.path(), out.path(), vec![], 4).expect("snapshot");
        assert_ne!(fourth.vendor_tree_sha256, first.vendor_tree_sha256);
        let made = fourth.deps_archive().expect("archive");
        assert_eq!(sha256_hex(&made), fourth.vendor_tree_sha256);
    }

    #[test]
    fn an_endless_log_is_cut_and_says_so() {
        let shown = std::sync::Mutex::new(Vec::<String>::new());
        let show = |l: &str| shown.lock().expect("lock").push(l.to_string());
        let mut log = Vec::new();
        let mut capped = CappedLog::new(200 * 1024);
        capped.take(b"first line\n", &mut log, &show);
        // One line with no end, in pieces, far past the limit.
        for _ in 0..100 {
            capped.take(&[b'x'; 10 * 1024], &mut log, &show);
        }
        capped.finish(&mut log, &show);
        let shown = shown.into_inner().expect("lock");
        assert_eq!(shown[0], "first line");
        assert!(shown[1].ends_with("[line cut by hermetic]"));
        assert!(shown[1].len() < container::LOG_LINE_BYTES + 64);
        assert!(
            shown
                .iter()
                .all(|l| l.len() < container::LOG_LINE_BYTES + 64)
        );
        let text = String::from_utf8_lossy(&log);
        assert!(log.len() < 200 * 1024 + 300, "{}", log.len());
        assert!(
            text.contains("the log was cut at 204800 bytes"),
            "{}",
            &text[text.len() - 200..]
        );
        assert!(text.contains(&format!(
            "{} more bytes were dropped",
            100 * 10 * 1024 + 11 - 200 * 1024
        )));
    }

    #[test]
    fn a_snapshot_does_not_follow_later_edits() {
        let ws = tempfile::tempdir().expect("tmp");
        let w = ws.path();
        std::fs::create_dir_all(w.join("src")).expect("mkdir");
        std::fs::write(
            w.join("Cargo.toml"),
            "[package]\nname = \"a\"\nversion = \"0.1.0\"\n\n[profile.release]\ncodegen-units = 4\n",
        )
        .expect("write");
        std::fs::write(
            w.join("Cargo.lock"),
            "version = 4\n\n[[package]]\nname = \"a\"\nversion = \"0.1.0\"\n",
        )
        .expect("write");
        std::fs::write(w.join("src/main.rs"), "fn main() {}\n").expect("write");
        let deps = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(deps.path().join("vendor/x-1.0.0")).expect("mkdir");
        std::fs::write(deps.path().join("vendor/x-1.0.0/lib.rs"), "").expect("write");
        let files = vec![
            PathBuf::from("Cargo.lock"),
            PathBuf::from("Cargo.toml"),
            PathBuf::from("src/main.rs"),
        ];
        let snap = Snapshot::take(w, deps.path(), files, 1_700_000_000).expect("snapshot");
        assert!(snap.codegen_units_pinned);
        std::fs::write(w.join("src/main.rs"), "fn main() { edited() }\n").expect("write");

        let [work, src] = <[bytes::Bytes; 2]>::try_from(snap.archives(false).expect("archives"))
            .expect("two archives");
        let deps_tar = snap.deps_archive().expect("deps archive");
        assert!(entries(&work).is_empty());
        let src_entries = entries(&src);
        assert_eq!(
            src_entries.last(),
            Some(&("src/src/main.rs".to_string(), b"fn main() {}\n".to_vec()))
        );
        assert_eq!(sha256_hex(&src), snap.source_tree_sha256);
        assert_eq!(sha256_hex(&deps_tar), snap.vendor_tree_sha256);
        assert!(
            entries(&deps_tar)
                .iter()
                .any(|(n, _)| n == "deps/config.toml")
        );

        // The file-order variation: the same files, created the other way round.
        let reversed = snap.archives(true).expect("archives");
        let mut back = entries(&reversed[1]);
        back.reverse();
        assert_eq!(back, src_entries);
    }
}
