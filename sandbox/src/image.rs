//! Builder images: made offline from a Debian rootfs and the host's toolchain, or built from
//! `Dockerfile.hermetic`; always referred to by content digest.

use crate::container::run_probe;
use crate::engine::{Attempt, Engine};
use crate::error::{Error, IoContext, Result};
use crate::run::RunId;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, BuilderVersion, CreateImageOptionsBuilder,
};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokio::io::AsyncReadExt;

/// The reference `hermetic build` uses unless told otherwise.
pub const DEFAULT_BUILDER: &str = "hermetic/builder:latest";
/// The uid/gid builds run as (the `builder` user of Dockerfile.hermetic).
pub const BUILD_UID: u32 = 10001;

/// What hermetic knows about a builder image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageInfo {
    pub reference: String,
    /// Content digest (`sha256:…`, the image id): what provenance and cache keys record.
    pub digest: String,
    pub size_bytes: i64,
    pub tags: Vec<String>,
    /// `rustc -vV` inside the image.
    pub toolchain: Option<String>,
    /// `rustc --print sysroot` inside the image (remapped in builds).
    pub sysroot: Option<String>,
}

impl ImageInfo {
    /// The `release:` line of `rustc -vV`.
    pub fn rustc_release(&self) -> Option<&str> {
        self.toolchain
            .as_deref()?
            .lines()
            .find_map(|l| l.strip_prefix("release: "))
    }
}

/// Looks an image up; `ImageMissing` (with the command that makes it) if absent.
pub async fn inspect(engine: &Engine, reference: &str) -> Result<bollard::models::ImageInspect> {
    // A 404 is an answer, given at once: no retries.
    match engine
        .call("inspect an image", || {
            engine.docker.inspect_image(reference)
        })
        .await
    {
        Err(Error::Engine { status: 404, .. }) => Err(Error::ImageMissing {
            reference: reference.into(),
            host: engine.host.clone(),
        }),
        other => other,
    }
}

/// What `rustc` says inside an image: the same for as long as the image's content digest
/// is, so it is asked once per image and kept in the cache.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Toolchain {
    toolchain: Option<String>,
    sysroot: Option<String>,
}

fn toolchain_cache(digest: &str) -> PathBuf {
    hermetic_deps::cache::Cache::from_env()
        .root()
        .join("images")
        .join(format!("{}.json", digest.trim_start_matches("sha256:")))
}

async fn toolchain(engine: &Engine, digest: &str) -> Result<Toolchain> {
    let cached = toolchain_cache(digest);
    if let Some(t) = std::fs::read(&cached)
        .ok()
        .and_then(|b| serde_json::from_slice::<Toolchain>(&b).ok())
        .filter(|t| t.toolchain.is_some() && t.sysroot.is_some())
    {
        return Ok(t);
    }
    let run = RunId::new();
    let (code, toolchain) = run_probe(engine, &run, digest, &["rustc", "-vV"]).await?;
    let (_, sysroot) = run_probe(engine, &run, digest, &["rustc", "--print", "sysroot"]).await?;
    let t = Toolchain {
        toolchain: (code == 0).then(|| toolchain.trim().to_string()),
        sysroot: (code == 0).then(|| sysroot.trim().to_string()),
    };
    if code == 0
        && let Some(dir) = cached.parent()
        && std::fs::create_dir_all(dir).is_ok()
    {
        // Written whole under a temporary name: a reader never sees half an entry.
        let tmp = cached.with_extension(format!("tmp-{}", std::process::id()));
        if std::fs::write(&tmp, serde_json::to_vec(&t).unwrap_or_default()).is_ok() {
            let _ = std::fs::rename(&tmp, &cached);
        }
    }
    Ok(t)
}

/// Digest, size, tags and toolchain of an image (`rustc -vV` inside it, without network;
/// asked once per image digest).
pub async fn show(engine: &Engine, reference: &str) -> Result<ImageInfo> {
    let inspected = inspect(engine, reference).await?;
    let digest = inspected.id.clone().unwrap_or_default();
    // The engine's answer names a cache file and every build's inputs: it must be an image
    // id, and the one asked for when a digest was asked for.
    let asked_digest = reference.starts_with("sha256:").then_some(reference);
    if !digest
        .strip_prefix("sha256:")
        .is_some_and(hermetic_deps::hash::is_sha256_hex)
        || asked_digest.is_some_and(|d| d != digest)
    {
        return Err(Error::ImageDigestMismatch {
            host: engine.host.clone(),
            expected: asked_digest.unwrap_or("sha256:<64 hex digits>").to_string(),
            found: digest
                .chars()
                .take(100)
                .collect::<String>()
                .escape_debug()
                .to_string(),
        });
    }
    let t = toolchain(engine, &digest).await?;
    Ok(ImageInfo {
        reference: reference.into(),
        digest,
        size_bytes: inspected.size.unwrap_or(0),
        tags: inspected.repo_tags.unwrap_or_default(),
        toolchain: t.toolchain,
        sysroot: t.sysroot,
    })
}

/// How to make the builder image offline.
#[derive(Debug, Clone)]
pub struct BootstrapOptions {
    /// Debian suite; default: the host's `VERSION_CODENAME`.
    pub suite: Option<String>,
    /// Debian mirror; default: the first Debian URI in the host's apt sources.
    pub mirror: Option<String>,
    /// Toolchain to copy in; default: `rustc --print sysroot` on the host.
    pub sysroot: Option<PathBuf>,
    /// Scratch space for the rootfs (removed afterwards).
    pub scratch: PathBuf,
    /// `Dockerfile.hermetic`, built on top of the base.
    pub dockerfile: PathBuf,
    /// Rebuild the base even if present.
    pub force: bool,
    /// Tag for the result.
    pub tag: String,
}

fn sh(cmd: &mut std::process::Command, what: &str) -> Result<String> {
    // No secret of hermetic's reaches a child.
    hermetic_deps::host::scrub(cmd);
    let out = cmd.output().map_err(|e| Error::Bootstrap {
        what: what.into(),
        detail: format!("cannot run {:?}: {e}", cmd.get_program()),
    })?;
    if !out.status.success() {
        return Err(Error::Bootstrap {
            what: what.into(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The host's Debian suite (`VERSION_CODENAME` of /etc/os-release).
pub fn host_suite() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// The first Debian archive URI in the host's apt sources (deb822 or one-line format).
pub fn host_mirror() -> Option<String> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for line in text.lines() {
            let line = line.trim();
            let uri = if let Some(rest) = line.strip_prefix("URIs:") {
                rest.split_whitespace().next()
            } else if let Some(rest) = line.strip_prefix("deb ") {
                rest.split_whitespace().find(|w| w.contains("://"))
            } else {
                None
            };
            if let Some(uri) = uri
                && uri.trim_end_matches('/').ends_with("/debian")
            {
                return Some(uri.to_string());
            }
        }
    }
    None
}

/// Makes the builder image without any registry: a minimal Debian rootfs (debootstrap),
/// the host's Rust toolchain (rustc, cargo, the standard library; no docs), imported through
/// the API as a base, then `Dockerfile.hermetic` built on it.
pub async fn bootstrap(
    engine: &Engine,
    opts: &BootstrapOptions,
    stage: &(dyn Fn(&str) + Sync),
) -> Result<ImageInfo> {
    let sysroot = match &opts.sysroot {
        Some(s) => s.clone(),
        None => PathBuf::from(sh(
            // From `/`: run inside a project, rustup would take its rust-toolchain.toml.
            hermetic_deps::host::scrub(
                std::process::Command::new("rustc")
                    .current_dir(hermetic_deps::host::NEUTRAL_DIR)
                    .args(["--print", "sysroot"]),
            ),
            "find the host toolchain",
        )?),
    };
    let version_line = sh(
        std::process::Command::new(sysroot.join("bin/rustc")).arg("-V"),
        "read the toolchain version",
    )?;
    let version = version_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("unknown")
        .to_string();
    let suite = opts
        .suite
        .clone()
        .or_else(host_suite)
        .ok_or_else(|| Error::Bootstrap {
            what: "choose a Debian suite".into(),
            detail: "the host has no VERSION_CODENAME; pass --suite".into(),
        })?;
    let base = format!("hermetic/base:{suite}-rust-{version}");

    if opts.force || inspect(engine, &base).await.is_err() {
        let mirror = opts
            .mirror
            .clone()
            .or_else(host_mirror)
            .ok_or_else(|| Error::Bootstrap {
                what: "choose a Debian mirror".into(),
                detail: "no Debian URI in the apt sources; pass --mirror".into(),
            })?;
        std::fs::create_dir_all(&opts.scratch).at(&opts.scratch)?;
        let rootfs = opts
            .scratch
            .join(format!("rootfs-{}-{}", suite, std::process::id()));
        let made = make_rootfs(&rootfs, &suite, &mirror, &sysroot, stage);
        let imported = match made {
            Ok(()) => {
                stage("importing the base image through the API");
                import_rootfs(engine, &rootfs, &base).await
            }
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_dir_all(&rootfs);
        imported?;
    }
    stage("building Dockerfile.hermetic on the base");
    build_dockerfile(engine, &opts.dockerfile, &base, &opts.tag).await?;
    show(engine, &opts.tag).await
}

fn make_rootfs(
    rootfs: &Path,
    suite: &str,
    mirror: &str,
    sysroot: &Path,
    stage: &(dyn Fn(&str) + Sync),
) -> Result<()> {
    stage(&format!(
        "debootstrap {suite} from {mirror} (about a minute)"
    ));
    let debootstrap = which("debootstrap").ok_or_else(|| Error::Bootstrap {
        what: "make a Debian rootfs".into(),
        detail: "debootstrap is not installed (apt-get install debootstrap)".into(),
    })?;
    sh(
        std::process::Command::new(debootstrap)
            .args(["--variant=minbase", "--include=gcc,libc6-dev", suite])
            .arg(rootfs)
            .arg(mirror),
        "debootstrap (needs root and the Debian mirror)",
    )?;
    stage("trimming the rootfs and adding the toolchain");
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists", "var/log"] {
        let d = rootfs.join(dir);
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
    }
    let _ = std::fs::remove_file(rootfs.join("var/cache/apt/pkgcache.bin"));
    let _ = std::fs::remove_file(rootfs.join("var/cache/apt/srcpkgcache.bin"));
    // debootstrap copies the host's identity; the image must not carry it.
    std::fs::write(rootfs.join("etc/hostname"), "hermetic\n").at(rootfs.join("etc/hostname"))?;
    std::fs::write(rootfs.join("etc/resolv.conf"), "").at(rootfs.join("etc/resolv.conf"))?;
    let opt = rootfs.join("opt/rust");
    std::fs::create_dir_all(opt.join("bin")).at(&opt)?;
    for bin in ["rustc", "cargo", "rustdoc"] {
        let src = sysroot.join("bin").join(bin);
        if src.is_file() {
            std::fs::copy(&src, opt.join("bin").join(bin)).at(&src)?;
        }
    }
    sh(
        std::process::Command::new("cp")
            .arg("-a")
            .arg(sysroot.join("lib"))
            .arg(&opt),
        "copy the toolchain's libraries",
    )?;
    // Sources and docs are not needed to build; they only make the image bigger.
    for extra in ["lib/rustlib/src", "lib/rustlib/rustc-src"] {
        let _ = std::fs::remove_dir_all(opt.join(extra));
    }
    Ok(())
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `docker import`: streams `tar` of the rootfs into the engine; a transient failure runs
/// `tar` again and imports again from the start (an import only adds an image).
async fn import_rootfs(engine: &Engine, rootfs: &Path, reference: &str) -> Result<()> {
    engine
        .call_whole("import the rootfs", async || {
            import_once(engine, rootfs, reference).await
        })
        .await
}

async fn import_once(
    engine: &Engine,
    rootfs: &Path,
    reference: &str,
) -> std::result::Result<(), Attempt> {
    let fatal = Attempt::Fatal;
    let (repo, tag) = reference.rsplit_once(':').unwrap_or((reference, "latest"));
    let mut tar = tokio::process::Command::new("tar");
    for v in hermetic_deps::host::SECRET_VARS {
        tar.env_remove(v);
    }
    let mut child = tar
        .args([
            "--numeric-owner",
            "--exclude=./dev/*",
            "--exclude=./proc/*",
            "--exclude=./sys/*",
            "-C",
        ])
        .arg(rootfs)
        .args(["-cf", "-", "."])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .at("tar")
        .map_err(fatal)?;
    let stdout = child.stdout.take().ok_or_else(|| {
        fatal(Error::Bootstrap {
            what: "import the rootfs".into(),
            detail: "tar has no stdout".into(),
        })
    })?;
    let body = futures_util::stream::unfold(stdout, |mut out| async move {
        let mut buf = vec![0u8; 1 << 20];
        match out.read(&mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((bytes::Bytes::from(buf), out))
            }
        }
    });
    let opts = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(repo)
        .tag(tag)
        .changes(vec![
            "ENV PATH=/opt/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                .to_string(),
            "ENV LANG=C.UTF-8".to_string(),
            "LABEL dev.hermetic.base=1".to_string(),
        ])
        .build();
    let mut stream = engine
        .docker
        .create_image(Some(opts), Some(bollard::body_stream(body)), None);
    while let Some(item) = stream.next().await {
        item?;
    }
    let status = child.wait().await.at("tar").map_err(fatal)?;
    if !status.success() {
        return Err(fatal(Error::Bootstrap {
            what: "import the rootfs".into(),
            detail: format!("tar exited with {status}"),
        }));
    }
    Ok(())
}

/// Builds `dockerfile` with `BASE=base` through the API (classic builder: no frontend
/// image to pull) and tags it.
pub async fn build_dockerfile(
    engine: &Engine,
    dockerfile: &Path,
    base: &str,
    tag: &str,
) -> Result<()> {
    let text = std::fs::read(dockerfile).at(dockerfile)?;
    let mut context = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(text.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    context
        .append_data(&mut header, "Dockerfile", text.as_slice())
        .at(dockerfile)?;
    let context = context.into_inner().at(dockerfile)?;
    let args = HashMap::from([("BASE".to_string(), base.to_string())]);
    let opts = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(tag)
        .buildargs(&args)
        .rm(true)
        .forcerm(true)
        .version(BuilderVersion::BuilderV1)
        .build();
    let context = bytes::Bytes::from(context);
    // Building the same Dockerfile on the same base again gives the same image (its steps
    // are cached): a transient failure builds again from the start.
    engine
        .call_whole("build an image", async || {
            let mut stream = engine.docker.build_image(
                opts.clone(),
                None,
                Some(bollard::body_full(context.clone())),
            );
            let mut log = String::new();
            while let Some(item) = stream.next().await {
                let failed = match item {
                    Ok(info) => {
                        if let Some(s) = info.stream {
                            log.push_str(&s);
                        }
                        match info.error_detail {
                            Some(detail) => detail.message.unwrap_or_default(),
                            None => continue,
                        }
                    }
                    Err(bollard::errors::Error::DockerStreamError { error }) => error,
                    Err(e) => return Err(Attempt::Engine(e)),
                };
                return Err(Attempt::Fatal(Error::Bootstrap {
                    what: format!("build {}", dockerfile.display()),
                    detail: format!("{failed}\n{log}"),
                }));
            }
            Ok(())
        })
        .await
}

/// How an image came to be on an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Presence {
    /// It was there already.
    Present,
    /// It was copied from another engine and its digest checked there.
    Transferred,
}

/// The tag a transferred image gets on its new engine, so that it is visible and not
/// pruned as dangling: `hermetic/builder:sha256-HEX`.
pub fn transfer_tag(digest: &str) -> (String, String) {
    (
        "hermetic/builder".into(),
        digest.replacen("sha256:", "sha256-", 1),
    )
}

/// Makes sure the engine `to` has the image `digest`, copying it from `from` if it lacks it
/// (`docker save` streamed into `docker load`, never through a registry), then checks that
/// the image there has the same content digest. A transient failure restarts the copy.
pub async fn ensure_present(from: &Engine, to: &Engine, digest: &str) -> Result<Presence> {
    match inspect(to, digest).await {
        Ok(i) if i.id.as_deref() == Some(digest) => return Ok(Presence::Present),
        Ok(_) | Err(Error::ImageMissing { .. }) => {}
        Err(e) => return Err(e),
    }
    // Loading is idempotent: a transient failure restarts the whole copy.
    to.call(&format!("copy image {digest} from {}", from.host), || {
        copy_image(from, to, digest)
    })
    .await?;
    let loaded = inspect(to, digest).await?;
    if loaded.id.as_deref() != Some(digest) {
        return Err(Error::ImageDigestMismatch {
            host: to.host.clone(),
            expected: digest.into(),
            found: loaded.id.unwrap_or_default(),
        });
    }
    let (repo, tag) = transfer_tag(digest);
    let opts = bollard::query_parameters::TagImageOptionsBuilder::default()
        .repo(&repo)
        .tag(&tag)
        .build();
    to.call("tag an image", || {
        to.docker.tag_image(digest, Some(opts.clone()))
    })
    .await?;
    Ok(Presence::Transferred)
}

/// One `save | load` pass; the export stream is fed to the import as it arrives.
async fn copy_image(
    from: &Engine,
    to: &Engine,
    digest: &str,
) -> Result<(), bollard::errors::Error> {
    let saved = from.docker.export_image(digest);
    let opts = bollard::query_parameters::ImportImageOptionsBuilder::default()
        .quiet(true)
        .build();
    let mut loading = to.docker.import_image_stream(opts, saved, None);
    while let Some(item) = loading.next().await {
        let info = item?;
        if let Some(detail) = info.error_detail {
            return Err(bollard::errors::Error::DockerStreamError {
                error: detail.message.unwrap_or_default(),
            });
        }
    }
    Ok(())
}
