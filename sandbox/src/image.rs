//! Builder images: made offline from a Debian rootfs and the host's toolchain, or built from
//! `Dockerfile.hermetic`; always referred to by content digest.

use crate::container::run_probe;
use crate::engine::{Attempt, Engine};
use crate::error::{Error, IoContext, Result};
use crate::run::RunId;
use crate::{layers, recipe};
use bollard::query_parameters::{BuildImageOptionsBuilder, BuilderVersion};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The reference `hermetic build` uses unless told otherwise.
pub const DEFAULT_BUILDER: &str = "hermetic/builder:latest";
/// The builder image a project's builds use: `hermetic/builder:latest` for the base
/// definition, and for a project whose `hermetic.toml` adds packages a tag named by that
/// set, so that images differing only in packages coexist in one engine.
pub fn builder_reference(extra_packages: &[String]) -> String {
    let mut extra: Vec<&str> = extra_packages
        .iter()
        .map(String::as_str)
        .filter(|p| !crate::recipe::BASE_PACKAGES.contains(p))
        .collect();
    extra.sort_unstable();
    extra.dedup();
    if extra.is_empty() {
        return DEFAULT_BUILDER.to_string();
    }
    let digest = hermetic_deps::hash::sha256_hex(extra.join("\n").as_bytes());
    format!("hermetic/builder:packages-{}", &digest[..16])
}

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
    /// The definition the image carries (`dev.hermetic.definition`), if hermetic made it.
    pub definition: Option<serde_json::Value>,
    /// Debian's libfaketime inside the image, which the `clock` variation preloads.
    pub faketime: Option<String>,
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
    #[serde(default)]
    faketime: Option<String>,
}

/// A probe is the word of the engine that ran it: kept per engine and image, so that one
/// engine's answer is never taken for another's.
fn probe_name(engine: &Engine, digest: &str) -> String {
    format!("{}\n{digest}", engine.host)
}

fn toolchain_cache(name: &str) -> Option<PathBuf> {
    let dir = hermetic_deps::cache::Cache::from_env()
        .real_dir("images")
        .ok()?;
    Some(dir.join(format!(
        "{}.json",
        hermetic_deps::hash::sha256_hex(name.as_bytes())
    )))
}

/// The seal's kind of an image's probed toolchain (its name is the engine and the image
/// digest).
const PROBE: &str = "image-probe-2";

/// Where an image keeps libfaketime (Debian's multiarch path).
const FAKETIME_PROBE: &str = "for f in /usr/lib/*/faketime/libfaketime.so.1; do \
     if [ -f \"$f\" ]; then echo \"$f\"; fi; done; true";

/// libfaketime's path becomes an `LD_PRELOAD` of every clock-varied build: the one in
/// Debian's multiarch directory of the image's own toolchain (`x86_64-linux-gnu` for host
/// `x86_64-unknown-linux-gnu`; a library of another architecture would not load), or
/// nothing.
fn plain_faketime(probed: &str, toolchain: Option<&str>) -> Option<String> {
    let host = toolchain?
        .lines()
        .find_map(|l| l.strip_prefix("host: "))?
        .trim();
    let multiarch = host.replacen("-unknown-", "-", 1);
    let want = format!("/usr/lib/{multiarch}/faketime/libfaketime.so.1");
    let plain = want
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b));
    (plain && probed.lines().any(|l| l.trim() == want)).then_some(want)
}

/// A sysroot becomes a path remapping flag of every build: an absolute path of plain
/// characters, or nothing (an image's answer is the image's, and may be hostile).
fn plain_sysroot(s: &str) -> Option<String> {
    let ok = s.starts_with('/')
        && s.len() < 4096
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._+-".contains(&b));
    ok.then(|| s.to_string())
}

/// The engine could not start a probe because the image lacks the program: an answer
/// about the image, not a failure.
fn lacks_program(e: &Error) -> bool {
    e.to_string().contains("executable file not found")
}

async fn toolchain(engine: &Engine, digest: &str) -> Result<Toolchain> {
    let name = probe_name(engine, digest);
    let cached = toolchain_cache(&name);
    // Believed only when sealed here: the toolchain is written into every provenance.
    let cache = hermetic_deps::cache::Cache::from_env();
    let seal = cache.seal().ok();
    if let Some(t) = seal
        .zip(cached.as_ref())
        .and_then(|(seal, cached)| seal.read(cached, PROBE, &name))
        .and_then(|text| serde_json::from_str::<Toolchain>(&text).ok())
        .filter(|t| t.toolchain.is_some() && t.sysroot.is_some())
    {
        // Sealed here, and still held to what a fresh answer must be.
        return Ok(Toolchain {
            sysroot: t.sysroot.as_deref().and_then(plain_sysroot),
            faketime: t
                .faketime
                .as_deref()
                .and_then(|f| plain_faketime(f, t.toolchain.as_deref())),
            toolchain: t.toolchain,
        });
    }
    let run = RunId::new();
    let (code, toolchain) = match run_probe(engine, &run, digest, &["rustc", "-vV"]).await {
        // An image without rustc (a base image, say) has no toolchain; the engine says so
        // when it cannot start the probe.
        Err(e) if lacks_program(&e) => {
            return Ok(Toolchain {
                toolchain: None,
                sysroot: None,
                faketime: None,
            });
        }
        r => r?,
    };
    let (_, sysroot) = run_probe(engine, &run, digest, &["rustc", "--print", "sysroot"]).await?;
    let toolchain = (code == 0).then(|| toolchain.trim().to_string());
    // An image without a shell has no libfaketime to find, and builds without the clock.
    // A probe that failed otherwise is not remembered: it says nothing of the image.
    let (faketime, clean) =
        match run_probe(engine, &run, digest, &["/bin/sh", "-c", FAKETIME_PROBE]).await {
            Ok((0, out)) => (plain_faketime(&out, toolchain.as_deref()), true),
            Ok(_) => (None, false),
            Err(e) if lacks_program(&e) => (None, true),
            Err(e) => return Err(e),
        };
    let t = Toolchain {
        toolchain,
        sysroot: (code == 0).then(|| plain_sysroot(sysroot.trim())).flatten(),
        faketime,
    };
    if code == 0
        && clean
        && let Some(seal) = seal
        && let Some(cached) = &cached
    {
        let _ = seal.write(
            cached,
            PROBE,
            &name,
            &serde_json::to_string(&t).unwrap_or_default(),
        );
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
    // The label is the engine's word, like the rest of its answer: kept only if it is a
    // definition hermetic would write.
    let definition = inspected
        .config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .and_then(|l| l.get("dev.hermetic.definition"))
        .filter(|d| d.len() <= 64 << 10)
        .and_then(|d| serde_json::from_str::<recipe::Definition>(d).ok())
        .filter(|d| d.validate().is_ok())
        // Kept only if the image is what this definition and the image's own layers give.
        .filter(|d| {
            let layers = inspected
                .root_fs
                .as_ref()
                .and_then(|r| r.layers.clone())
                .unwrap_or_default();
            let config = layers::config_json(&layers, &recipe::settings(d));
            use sha2::Digest;
            format!("sha256:{}", hex::encode(sha2::Sha256::digest(&config))) == digest
        })
        .and_then(|d| serde_json::to_value(d).ok());
    Ok(ImageInfo {
        reference: reference.into(),
        digest,
        size_bytes: inspected.size.unwrap_or(0),
        tags: inspected.repo_tags.unwrap_or_default(),
        toolchain: t.toolchain,
        sysroot: t.sysroot,
        definition,
        faketime: t.faketime,
    })
}

/// How to make the builder image offline.
#[derive(Debug, Clone)]
pub struct BootstrapOptions {
    /// Debian suite; default: the lock's, else the host's `VERSION_CODENAME`.
    pub suite: Option<String>,
    /// Debian mirror; default: the lock's, else the first Debian URI in the host's apt
    /// sources.
    pub mirror: Option<String>,
    /// Debian packages beyond gcc and libc6-dev.
    pub packages: Vec<String>,
    /// Toolchain to copy in; default: `rustc --print sysroot` on the host.
    pub sysroot: Option<PathBuf>,
    /// Scratch space for the layers (removed afterwards).
    pub scratch: PathBuf,
    /// Make the image even if the engine has the locked one.
    pub force: bool,
    /// Tag for the result.
    pub tag: String,
    /// The lock file: read if it exists (its definition is used and the result must match
    /// it), written if not.
    pub lock: PathBuf,
    /// Ignore the lock's definition and write it anew.
    pub update_lock: bool,
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

/// What bootstrap did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Bootstrapped {
    pub image: ImageInfo,
    pub lock: recipe::ImageLock,
    /// The lock file, and whether this run wrote it (no lock yet, or `--update-lock`).
    pub lock_path: PathBuf,
    pub lock_written: bool,
    /// False when the engine had the locked image already.
    pub made: bool,
}

/// Makes the builder image without any registry, as a pure function of its definition
/// (see [`recipe`]): the definition comes from the lock file if there is one (and the
/// result must match it), else from the options and the host, and is then written there.
pub async fn bootstrap(
    engine: &Engine,
    opts: &BootstrapOptions,
    stage: &(dyn Fn(&str) + Sync),
) -> Result<Bootstrapped> {
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
    let tc = recipe::host_toolchain(&sysroot)?;
    let locked = if opts.update_lock {
        None
    } else {
        recipe::ImageLock::read(&opts.lock)?
    };
    let def =
        match &locked {
            Some(l) => {
                let d = &l.definition;
                let conflict = |flag: &str, given: &str, locked: &str| Error::Bootstrap {
                    what: format!("{flag} {given}"),
                    detail: format!(
                        "{} defines the image with {locked}: drop {flag}, or pass --update-lock to \
                     define the image anew",
                        opts.lock.display()
                    ),
                };
                if let Some(s) = opts.suite.as_ref().filter(|s| **s != d.suite) {
                    return Err(conflict("--suite", s, &d.suite));
                }
                if let Some(m) = opts.mirror.as_ref().filter(|m| **m != d.mirror) {
                    return Err(conflict("--mirror", m, &d.mirror));
                }
                if let Some(p) = opts.packages.iter().find(|p| !d.packages.contains(p)) {
                    return Err(conflict("--package", p, &d.packages.join(",")));
                }
                // Nor more than asked for: the image's tag names the packages asked for,
                // and a project that asks for these must get only these.
                if let Some(extra) = d.packages.iter().find(|p| {
                    !recipe::BASE_PACKAGES.contains(&p.as_str()) && !opts.packages.contains(p)
                }) {
                    return Err(Error::Bootstrap {
                        what: format!("the package {extra} of {}", opts.lock.display()),
                        detail: "it is not asked for (hermetic.toml's [image] packages, or \
                                 --package): add it there, or pass --update-lock to define \
                                 the image without it"
                            .into(),
                    });
                }
                d.clone()
            }
            None => {
                recipe::Definition {
                    suite: opts.suite.clone().or_else(host_suite).ok_or_else(|| {
                        Error::Bootstrap {
                            what: "choose a Debian suite".into(),
                            detail: "the host has no VERSION_CODENAME; pass --suite".into(),
                        }
                    })?,
                    mirror: opts.mirror.clone().or_else(host_mirror).ok_or_else(|| {
                        Error::Bootstrap {
                            what: "choose a Debian mirror".into(),
                            detail: "no Debian URI in the apt sources; pass --mirror".into(),
                        }
                    })?,
                    packages: {
                        let mut p: Vec<String> = recipe::BASE_PACKAGES
                            .iter()
                            .map(|s| s.to_string())
                            .chain(opts.packages.iter().cloned())
                            .collect();
                        p.sort();
                        p.dedup();
                        p
                    },
                    rust: tc.version.clone(),
                    target: tc.target.clone(),
                    epoch: recipe::epoch_of_date(&tc.commit_date).unwrap_or(0),
                }
            }
        };
    // Each field becomes an argument of mmdebstrap, run as root.
    def.validate().map_err(|detail| match &locked {
        Some(_) => Error::BadImageLock {
            path: opts.lock.clone(),
            detail,
        },
        None => Error::Bootstrap {
            what: "define the builder image".into(),
            detail,
        },
    })?;
    if let Some(l) = &locked
        && (tc.version != l.definition.rust || tc.target != l.definition.target)
    {
        return Err(Error::ImageDiffers {
            lock: opts.lock.clone(),
            differences: vec![format!(
                "rust: {} ({}) here, {} ({}) in the lock: install it (`rustup toolchain \
                 install {}`) and run with that toolchain",
                tc.version, tc.target, l.definition.rust, l.definition.target, l.definition.rust
            )],
        });
    }
    // The lock is a project file: its image id must be what its own layers and definition
    // give, or it could name any image of the engine as "the locked one".
    if let Some(l) = &locked
        && !l.image_follows()
    {
        return Err(Error::BadImageLock {
            path: opts.lock.clone(),
            detail: format!(
                "its image {} is not the one its layers and definition give",
                l.image
            ),
        });
    }
    // The locked image is here already, with the locked layers: nothing to make (the
    // engine's word for its layers; --force makes it anyway and checks every byte).
    let locked_layers: Option<Vec<String>> = locked
        .as_ref()
        .map(|l| l.layers.values().cloned().collect());
    if let Some(l) = &locked
        && !opts.force
        && inspect(engine, &l.image).await.is_ok_and(|i| {
            i.id.as_deref() == Some(l.image.as_str())
                && i.root_fs.and_then(|r| r.layers) == locked_layers
        })
    {
        tag(engine, &l.image, &opts.tag).await?;
        return Ok(Bootstrapped {
            image: show(engine, &opts.tag).await?,
            lock: l.clone(),
            lock_path: opts.lock.clone(),
            lock_written: false,
            made: false,
        });
    }
    // A private directory (0700, a fresh name): nothing else can swap its files.
    std::fs::create_dir_all(&opts.scratch).at(&opts.scratch)?;
    let scratch = tempfile::Builder::new()
        .prefix("image-")
        .tempdir_in(&opts.scratch)
        .at(&opts.scratch)?;
    let dir = scratch.path().to_path_buf();
    let made = recipe::make(
        &def,
        &tc,
        &dir,
        &opts.tag,
        locked.as_ref().map(|l| (opts.lock.as_path(), l)),
        stage,
    );
    let loaded = async {
        let made = made?;
        if let Some(l) = &locked {
            let differences = made.lock.differences(l);
            if !differences.is_empty() {
                return Err(Error::ImageDiffers {
                    lock: opts.lock.clone(),
                    differences,
                });
            }
        }
        stage("loading the image through the API");
        layers::load(engine, &made.archive, &made.lock.image).await?;
        Ok(made.lock)
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    let lock = loaded?;
    tag(engine, &lock.image, &opts.tag).await?;
    let lock_written = locked.is_none();
    if lock_written {
        lock.write(&opts.lock)?;
    }
    Ok(Bootstrapped {
        image: show(engine, &opts.tag).await?,
        lock,
        lock_path: opts.lock.clone(),
        lock_written,
        made: true,
    })
}

/// Tags image `id` as `reference` (`repo:tag`).
async fn tag(engine: &Engine, id: &str, reference: &str) -> Result<()> {
    let (repo, tag) = reference.rsplit_once(':').unwrap_or((reference, "latest"));
    let opts = bollard::query_parameters::TagImageOptionsBuilder::default()
        .repo(repo)
        .tag(tag)
        .build();
    engine
        .call("tag an image", || {
            engine.docker.tag_image(id, Some(opts.clone()))
        })
        .await
}

/// Writes image `digest` of the engine to `file` (`docker save`), whole or not at all.
pub async fn export(engine: &Engine, digest: &str, file: &Path) -> Result<()> {
    let info = inspect(engine, digest).await?;
    if info.id.as_deref() != Some(digest) {
        return Err(Error::ImageDigestMismatch {
            host: engine.host.clone(),
            expected: digest.into(),
            found: info.id.unwrap_or_default(),
        });
    }
    // A fresh name beside the file (never a planted link), renamed into place only when
    // the file has been re-read and holds the image asked for.
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".hermetic-export.")
        .tempfile_in(dir)
        .at(dir)?
        .into_temp_path();
    engine
        .call_whole("export an image", async || {
            use tokio::io::AsyncWriteExt;
            let mut out = tokio::fs::File::create(&tmp)
                .await
                .at(&tmp)
                .map_err(Attempt::Fatal)?;
            let mut written: u64 = 0;
            let mut stream = engine.docker.export_image(digest);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                written += chunk.len() as u64;
                if written > MAX_IMAGE_FILE {
                    return Err(Attempt::Fatal(Error::Bootstrap {
                        what: format!("export {digest}"),
                        detail: format!("the engine sent more than {} GiB", MAX_IMAGE_FILE >> 30),
                    }));
                }
                out.write_all(&chunk)
                    .await
                    .at(&tmp)
                    .map_err(Attempt::Fatal)?;
            }
            out.sync_all().await.at(&tmp).map_err(Attempt::Fatal)?;
            Ok(())
        })
        .await?;
    let got = checked_archive(&tmp)?;
    if got != digest {
        return Err(Error::ImageDigestMismatch {
            host: engine.host.clone(),
            expected: digest.into(),
            found: got,
        });
    }
    tmp.persist(file).map_err(|e| e.error).at(file)
}

/// The largest image file hermetic writes or reads.
pub const MAX_IMAGE_FILE: u64 = 64 << 30;

/// Loads an image file (`docker save` format) and returns its id, which must be the digest
/// of the configuration the file holds (and `expect`, if given). The file is someone
/// else's: it is copied first into a private directory, checked there, and only that copy
/// is read and loaded, so it cannot change between the check and the load.
pub async fn import(
    engine: &Engine,
    file: &Path,
    scratch: &Path,
    expect: Option<&str>,
) -> Result<String> {
    std::fs::create_dir_all(scratch).at(scratch)?;
    let private = tempfile::Builder::new()
        .prefix("import-")
        .tempdir_in(scratch)
        .at(scratch)?;
    let copy = private.path().join("image.tar");
    {
        let (src, meta) = hermetic_deps::host::open_regular(file).at(file)?;
        if meta.len() > MAX_IMAGE_FILE {
            return Err(Error::Bootstrap {
                what: format!("import {}", file.display()),
                detail: format!("larger than {} GiB", MAX_IMAGE_FILE >> 30),
            });
        }
        let mut dst = std::fs::File::create(&copy).at(&copy)?;
        std::io::copy(&mut std::io::Read::take(src, MAX_IMAGE_FILE), &mut dst).at(&copy)?;
    }
    let id = checked_archive(&copy)?;
    if let Some(want) = expect
        && want != id
    {
        return Err(Error::ImageDiffers {
            lock: file.to_path_buf(),
            differences: vec![format!("image: {id:?} in the file, {want:?} expected")],
        });
    }
    layers::load(engine, &copy, &id).await?;
    Ok(id)
}

/// The image id a docker-archive defines (`sha256:` of its one configuration's bytes),
/// after checking that the archive holds one image, no tags (loading it must not move
/// any), each name once, and no oversized header.
pub fn checked_archive(file: &Path) -> Result<String> {
    use sha2::Digest;
    let bad = |detail: String| Error::Bootstrap {
        what: format!("read {}", file.display()),
        detail,
    };
    // First pass, on raw entries: bounded headers and entry count, unique names.
    let mut names = std::collections::HashSet::new();
    let mut documents = std::collections::HashMap::new();
    let mut kept: u64 = 0;
    {
        let f = std::fs::File::open(file).at(file)?;
        let mut archive = tar::Archive::new(std::io::BufReader::new(f));
        for (n, entry) in archive.entries().at(file)?.raw(true).enumerate() {
            let e = entry.at(file)?;
            let kind = e.header().entry_type();
            let size = e.header().entry_size().unwrap_or(u64::MAX);
            if (kind.is_gnu_longname()
                || kind.is_gnu_longlink()
                || kind.is_pax_local_extensions()
                || kind.is_pax_global_extensions())
                && size > 64 << 10
            {
                return Err(bad("an extension header of more than 64 KiB".into()));
            }
            if n > 100_000 {
                return Err(bad("more than 100000 entries".into()));
            }
        }
        // Second pass, parsed: unique names, and every small JSON document kept (the
        // manifest and the configuration it names are among them), so the file is read
        // twice in all, not once per document.
        let f = std::fs::File::open(file).at(file)?;
        let mut archive = tar::Archive::new(std::io::BufReader::new(f));
        for entry in archive.entries().at(file)? {
            let mut e = entry.at(file)?;
            let name = e
                .path()
                .at(file)?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            if !names.insert(name.clone()) {
                return Err(bad(format!("{name:?} is in it twice")));
            }
            if name == "repositories" || name == "index.json" {
                return Err(bad(format!(
                    "{name} would tag images on load: export by digest"
                )));
            }
            // Bounded in all (64 MiB), not just each: a file of a thousand big JSON
            // documents must not fill memory.
            if name.ends_with(".json")
                && e.size() <= 16 << 20
                && kept + e.size() <= 64 << 20
                && documents.len() < 1000
            {
                let mut bytes = vec![];
                std::io::Read::read_to_end(&mut e, &mut bytes).at(file)?;
                kept += bytes.len() as u64;
                documents.insert(name, bytes);
            }
        }
    }
    let read_entry = |want: &str| -> Result<&Vec<u8>> {
        documents.get(want).ok_or_else(|| {
            bad(format!(
                "no {want} in it: not an image saved by `docker save` or hermetic"
            ))
        })
    };
    let manifest: serde_json::Value = serde_json::from_slice(read_entry("manifest.json")?)
        .map_err(|e| bad(format!("manifest.json: {e}")))?;
    let images = manifest.as_array().map(Vec::len).unwrap_or(0);
    let config = manifest[0]["Config"]
        .as_str()
        .filter(|_| images == 1)
        .ok_or_else(|| bad("manifest.json must name exactly one image".into()))?
        .to_string();
    if manifest[0]["RepoTags"]
        .as_array()
        .is_some_and(|t| !t.is_empty())
    {
        return Err(bad(
            "it tags the image on load: export it by digest (`hermetic image export sha256:…`)"
                .into(),
        ));
    }
    let bytes = read_entry(config.trim_start_matches("./"))?;
    Ok(format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(bytes))
    ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{LayerWriter, Owner};

    /// A docker-archive with these top-level entries (`name`, bytes), in this order.
    fn archive(dir: &Path, entries: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join(format!("a-{}.tar", fastrand::u32(..)));
        let mut w = LayerWriter::create(&path, 0).expect("create");
        for (name, bytes) in entries {
            w.file(name, bytes, Owner::ROOT_FILE).expect("entry");
        }
        w.finish().expect("finish");
        path
    }

    #[test]
    fn libfaketime_is_the_image_s_own_architecture_s() {
        let tc = Some("rustc 1.95.0\nhost: x86_64-unknown-linux-gnu\nrelease: 1.95.0");
        let own = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
        let i386 = "/usr/lib/i386-linux-gnu/faketime/libfaketime.so.1";
        // Sorted first, another architecture's library is passed over.
        assert_eq!(
            plain_faketime(&format!("{i386}\n{own}\n"), tc).as_deref(),
            Some(own)
        );
        assert_eq!(plain_faketime(i386, tc), None);
        assert_eq!(
            plain_faketime(&format!("warning: x\n{own}"), tc).as_deref(),
            Some(own)
        );
        assert_eq!(plain_faketime(own, None), None, "no toolchain, no clock");
        let odd = Some("host: x86_64-unknown-linux-gnu;rm -rf /\n");
        assert_eq!(plain_faketime(own, odd), None);
    }

    /// An image file is someone else's: what it would do on load beyond adding one image
    /// (tag images, hold two answers to one name) is refused, and its id is derived from
    /// its own configuration.
    #[test]
    fn an_image_file_is_checked_before_it_is_loaded() {
        use sha2::Digest;
        let dir = tempfile::tempdir().expect("tmp");
        let config = br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let id = hex::encode(sha2::Sha256::digest(config));
        let manifest = |tags: &str| {
            format!(r#"[{{"Config":"{id}.json","Layers":[],"RepoTags":{tags}}}]"#).into_bytes()
        };
        let config_name = format!("{id}.json");
        let good = archive(
            dir.path(),
            &[(&config_name, config), ("manifest.json", &manifest("null"))],
        );
        assert_eq!(
            checked_archive(&good).expect("good"),
            format!("sha256:{id}")
        );
        let tagged = archive(
            dir.path(),
            &[
                (&config_name, config),
                ("manifest.json", &manifest(r#"["hermetic/builder:latest"]"#)),
            ],
        );
        assert!(checked_archive(&tagged).is_err());
        let twice = archive(
            dir.path(),
            &[
                ("manifest.json", &manifest("null")),
                (&config_name, config),
                ("manifest.json", &manifest(r#"["x:y"]"#)),
            ],
        );
        assert!(checked_archive(&twice).is_err());
        let legacy_tags = archive(
            dir.path(),
            &[
                (&config_name, config),
                ("manifest.json", &manifest("null")),
                ("repositories", b"{}"),
            ],
        );
        assert!(checked_archive(&legacy_tags).is_err());
    }
}
