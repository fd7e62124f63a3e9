//! `hermetic build` and `hermetic gc`

use crate::exit::{Code, Failure, Output};
use crate::progress::Spinner;
use hermetic_attest::archive;
use hermetic_attest::digest::{FileDigest, digest_files};
use hermetic_attest::documents;
use hermetic_attest::record::{
    BuildRecord, Environment, ImageRef, PackageRef, RunTimes, SourceRef,
};
use hermetic_sandbox::build::{
    BuildEnv, BuildResult, BuildSpec, Timeouts, source_date_epoch, source_files, source_identity,
};
use hermetic_sandbox::container::Limits;
use hermetic_sandbox::engine::Engine;
use hermetic_sandbox::image::DEFAULT_BUILDER;
use hermetic_sandbox::run::{RunId, Scope, collect};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use hermetic_attest::record::RECORD;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// The project's Cargo.toml.
    #[arg(long, default_value = "Cargo.toml")]
    pub manifest_path: PathBuf,
    /// Output directory: binaries, SHA256SUMS, the archive and the build record.
    #[arg(long, default_value = "dist")]
    pub out: PathBuf,
    /// Builder image (reference or sha256 digest).
    #[arg(long, default_value = DEFAULT_BUILDER)]
    pub image: String,
    /// Vendor policy [default: vendor-policy.toml beside the manifest, if present].
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Parallel jobs inside the build (outputs do not depend on it).
    #[arg(long)]
    pub jobs: Option<u32>,
    /// Cargo features to enable (passed to `cargo build --features`).
    #[arg(long)]
    pub features: Option<String>,
    /// Seconds allowed to create containers and send inputs.
    #[arg(long, default_value_t = 300)]
    pub prepare_timeout: u64,
    /// Seconds allowed for `cargo build`; then it is killed and reported.
    #[arg(long, default_value_t = 3600)]
    pub build_timeout: u64,
    /// Seconds allowed to download outputs.
    #[arg(long, default_value_t = 300)]
    pub collect_timeout: u64,
    /// Memory limit of the build container, in MiB.
    #[arg(long, default_value_t = 8192)]
    pub memory_mib: i64,
    /// Largest output binary (and largest file the build may write), in MiB: a bigger one
    /// fails the build (exit 3).
    #[arg(long, default_value_t = 4096)]
    pub max_output_mib: u64,
    /// Largest size of all output binaries together, in MiB.
    #[arg(long, default_value_t = 16384)]
    pub max_outputs_total_mib: u64,
    /// Largest build log kept, in MiB: the rest is dropped and the log says so.
    #[arg(long, default_value_t = 256)]
    pub max_log_mib: u64,
    /// cosign private key to sign the outputs with [default: the local key, made on first
    /// use; see `hermetic keygen`].
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Write provenance and SBOMs but no signatures (sign later with `hermetic attest`).
    #[arg(long, conflicts_with = "key")]
    pub no_sign: bool,
    /// Keep nothing in the engine for later builds: upload the vendored tree for this build
    /// alone and read the toolchain from the image, instead of reusing (and keeping) the
    /// engine's copies (see `hermetic gc --cache`).
    #[arg(
        long,
        alias = "no-deps-cache",
        env = "HERMETIC_NO_ENGINE_CACHE",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub no_engine_cache: bool,
}

impl Args {
    /// Every option at its default, for commands that build on their own terms (audit).
    pub fn defaults() -> Result<Args, Failure> {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            args: Args,
        }
        <Only as clap::Parser>::try_parse_from(["hermetic"])
            .map(|o| o.args)
            .map_err(|e| {
                Failure::io(
                    "default build options",
                    std::io::Error::other(e.to_string()),
                )
            })
    }
}

/// Refuses to replace a directory that is not a previous hermetic output.
pub(crate) fn guard_out(out: &Path) -> Result<(), Failure> {
    if !out.exists() {
        return Ok(());
    }
    let empty = std::fs::read_dir(out)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    let ours = out.join(RECORD).is_file() || out.join("verify-report.json").is_file();
    if out.is_dir() && (empty || ours) {
        return Ok(());
    }
    Err(Failure {
        code: Code::Input,
        message: format!(
            "{}: exists and is not a hermetic output directory",
            out.display()
        ),
        causes: vec![],
        fix: Some("choose another --out, or remove it".into()),
    })
}

/// Everything about one finished build that later stages need.
pub struct Built {
    pub result: BuildResult,
    pub out: PathBuf,
    pub artifacts: Vec<FileDigest>,
    pub archive: String,
    pub record: BuildRecord,
    /// Documents and signatures written beside the artifacts.
    pub documents: Vec<String>,
    /// Where the build's time went, stage by stage.
    pub timings: Timings,
}

/// Milliseconds per stage of one `hermetic build`, from start to the output directory in
/// place: the sandbox's own stages (also in the build record) and those around them.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Timings {
    /// Lockfile read, vendored tree checked (or fetched) against the policy.
    pub vendor_ms: u64,
    /// Engine connection, signing key loaded, leftovers of interrupted runs removed.
    pub setup_ms: u64,
    /// Workspace files read and the input archives made (shared by verify's runners).
    pub inputs_ms: u64,
    /// The sandbox's stages: prepare (of which upload), build, collect, cleanup.
    #[serde(flatten)]
    pub sandbox: hermetic_sandbox::build::StageTimes,
    /// Archive, digests, record, provenance, SBOMs, signatures, output directory in place.
    pub attest_ms: u64,
}

fn ms(since: std::time::Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The packages a `hermetic.toml` (`config`, else the project's own, beside its manifest)
/// adds to the builder image.
pub fn project_packages(
    manifest_path: &Path,
    config: Option<&Path>,
) -> Result<Vec<String>, Failure> {
    let path = config.map(Path::to_path_buf).unwrap_or_else(|| {
        manifest_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(hermetic_sandbox::config::FILE)
    });
    hermetic_sandbox::config::Config::packages_in(&path).map_err(|e| Failure {
        code: Code::Input,
        message: e.to_string(),
        causes: vec![],
        fix: Some("fix the file (see the README's hermetic.toml section)".into()),
    })
}

/// `args` with the builder image the project's build uses: unless `--image` names one, the
/// image made for the packages its `hermetic.toml` declares (`hermetic image bootstrap` in
/// the project makes and tags it).
pub fn with_project_image(args: &Args, config: Option<&Path>) -> Result<Args, Failure> {
    let mut args = args.clone();
    if args.image == DEFAULT_BUILDER {
        args.image = hermetic_sandbox::image::builder_reference(&project_packages(
            &args.manifest_path,
            config,
        )?);
    }
    Ok(args)
}

pub async fn run(args: &Args, out: &Output) -> Result<Code, Failure> {
    let args = &with_project_image(args, None)?;
    let spinner = Spinner::new(out.json);
    let clock = std::time::Instant::now();
    let vendored =
        crate::cmd::vendor::vendor_step(&args.manifest_path, args.policy.as_deref(), &spinner);
    let vendor_ms = ms(clock);
    let vendored = match vendored {
        Ok(v) => v,
        Err(e) => {
            spinner.finish();
            return Err(e);
        }
    };
    let built = build_project(
        args,
        &vendored,
        &spinner,
        &RunId::new(),
        Runner::local(),
        !out.json,
    )
    .await;
    spinner.finish();
    let mut built = built?;
    built.timings.vendor_ms = vendor_ms;
    if out.json {
        out.emit(&json!({
            "status": "ok",
            "exit_code": 0,
            "out": built.out,
            "artifacts": built.artifacts,
            "archive": built.archive,
            "documents": built.documents,
            "log": built.result.log_path,
            "record": built.record,
            "timings": built.timings,
            "deps_reused": built.result.deps_reused,
            "toolchain_reused": built.result.toolchain_reused,
        }));
    } else {
        for a in &built.artifacts {
            println!("{}  {}", a.sha256, a.name);
        }
        eprintln!(
            "built in {} s with image {} → {}",
            built
                .result
                .finished_unix
                .saturating_sub(built.result.started_unix),
            built.result.image.digest,
            built.out.display()
        );
    }
    Ok(Code::Success)
}

/// Who builds: on which engine, in which environment, under which name.
pub struct Runner<'a> {
    /// Names the runner in reports and provenance (`local` for a plain build).
    pub id: &'a str,
    /// Docker endpoint; `None`: `DOCKER_HOST` or the local socket.
    pub endpoint: Option<&'a hermetic_sandbox::endpoint::Endpoint>,
    pub env: BuildEnv,
    /// Names of the variations in `env` (empty for the fixed environment).
    pub variations: &'a [String],
    /// Inputs already read (shared by the runners of a verification); `None`: read them.
    pub inputs: Option<&'a Inputs>,
    /// Hash what the build made on the way, to trace a mismatch to a crate (verify).
    pub trace: bool,
}

impl Runner<'static> {
    pub fn local() -> Self {
        Runner {
            id: "local",
            endpoint: None,
            env: BuildEnv::default(),
            variations: &[],
            inputs: None,
            trace: false,
        }
    }
}

/// What a build reads from the project, read once: the files sent in, the vendored tree's
/// archive, `SOURCE_DATE_EPOCH` and where the source comes from.
pub struct Inputs {
    pub snapshot: std::sync::Arc<hermetic_sandbox::build::Snapshot>,
    pub epoch_origin: String,
    pub identity: hermetic_sandbox::build::SourceIdentity,
}

impl Inputs {
    /// Reads the project's inputs; `out` (the output directory) is never one of them.
    pub fn take(
        vendored: &hermetic_deps::VendorOutcome,
        out: &std::path::Path,
    ) -> Result<Inputs, Failure> {
        let workspace = &vendored.workspace_root;
        let files = source_files(workspace, &[out.to_path_buf()])?;
        let (epoch, epoch_origin) = source_date_epoch(workspace, &files);
        let identity = source_identity(workspace)?;
        let snapshot =
            hermetic_sandbox::build::Snapshot::take(workspace, &vendored.out, files, epoch)?;
        Ok(Inputs {
            snapshot: std::sync::Arc::new(snapshot),
            epoch_origin,
            identity,
        })
    }
}

/// Builds vendored sources in the sandbox, and writes the output directory atomically.
pub async fn build_project(
    args: &Args,
    vendored: &hermetic_deps::VendorOutcome,
    spinner: &Spinner,
    run: &RunId,
    runner: Runner<'_>,
    show_log: bool,
) -> Result<Built, Failure> {
    let Runner {
        id: runner_id,
        endpoint,
        mut env,
        variations,
        inputs,
        trace,
    } = runner;
    // --jobs applies unless the runner's own variation sets it.
    if env.jobs.is_none() {
        env.jobs = args.jobs;
    }
    let manifest = &vendored.manifest;
    let workspace = vendored.workspace_root.clone();
    let features: Vec<String> = args
        .features
        .iter()
        .flat_map(|f| f.split([',', ' ']))
        .filter(|f| !f.is_empty())
        .map(String::from)
        .collect();
    // What cargo will make: binaries whose required features are off are skipped.
    let binaries = manifest.binaries_built(&features);
    if binaries.is_empty() {
        let gated = manifest.binaries();
        return Err(Failure {
            code: Code::Input,
            message: if gated.is_empty() {
                format!(
                    "{}: the workspace has no binary targets to release",
                    workspace.display()
                )
            } else {
                format!(
                    "{}: every binary target ({}) needs features that are off (required-features)",
                    workspace.display(),
                    gated.join(", ")
                )
            },
            causes: vec![],
            fix: Some(if gated.is_empty() {
                "hermetic builds release binaries; add a [[bin]] target".into()
            } else {
                "turn the binaries' required features on with --features".into()
            }),
        });
    }
    let out = if args.out.is_absolute() {
        args.out.clone()
    } else {
        std::env::current_dir()
            .map_err(|e| Failure::io("current directory", e))?
            .join(&args.out)
    };
    guard_out(&out)?;
    let clock = std::time::Instant::now();

    // Fail on a bad key or password before spending a build on it.
    let key = if args.no_sign {
        None
    } else {
        Some(crate::cmd::sign::signing_key(args.key.as_deref(), &|n| {
            spinner.println(n)
        })?)
    };
    let engine = match endpoint {
        Some(e) => Engine::connect_endpoint(e).await?,
        None => Engine::connect().await?,
    };
    spinner.stage("removing what interrupted runs left behind");
    let (stale, abandoned) = tokio::join!(
        collect(&engine, Scope::Stale),
        hermetic_sandbox::cache::prune(&engine, None)
    );
    let (stale, abandoned) = (stale?, abandoned?);
    if !stale.containers.is_empty() || !stale.volumes.is_empty() || !abandoned.is_empty() {
        spinner.println(&format!(
            "note: removed {} container(s) and {} volume(s) left by interrupted runs",
            stale.containers.len(),
            stale.volumes.len() + abandoned.len()
        ));
    }

    let setup_ms = ms(clock);
    let clock = std::time::Instant::now();
    // Before anything is read or written in the workspace.
    writable_dirs(
        &workspace,
        &[
            workspace.join("target/hermetic/logs"),
            workspace.join("target/hermetic/diagnostics"),
        ],
        &out,
    )?;
    let taken;
    let inputs = match inputs {
        Some(i) => i,
        None => {
            spinner.stage("reading inputs");
            taken = Inputs::take(vendored, &out)?;
            &taken
        }
    };
    let inputs_ms = ms(clock);
    let epoch = inputs.snapshot.source_date_epoch;
    let hermetic_dir = workspace.join("target").join("hermetic");
    let staging = staging_for(&out, run);
    let cpuset = env.cpuset.clone();
    let mut cargo_args = Vec::new();
    if let Some(f) = &args.features {
        cargo_args.push("--features".into());
        cargo_args.push(f.clone());
    }
    let spec = BuildSpec {
        image: args.image.clone(),
        workspace: workspace.clone(),
        vendor_dir: vendored.out.clone(),
        binaries: binaries.clone(),
        snapshot: inputs.snapshot.clone(),
        env,
        limits: Limits {
            memory_bytes: args.memory_mib << 20,
            cpuset: cpuset.clone(),
            output_bytes: args.max_output_mib.saturating_mul(1 << 20),
            outputs_total_bytes: args.max_outputs_total_mib.saturating_mul(1 << 20),
            log_bytes: args.max_log_mib.saturating_mul(1 << 20),
            ..Limits::default()
        },
        timeouts: Timeouts {
            prepare: Duration::from_secs(args.prepare_timeout),
            build: Duration::from_secs(args.build_timeout),
            collect: Duration::from_secs(args.collect_timeout),
        },
        out_dir: staging.clone(),
        log_path: hermetic_dir.join("logs").join(format!("{}.log", run.0)),
        diagnostics_dir: hermetic_dir.join("diagnostics").join(&run.0),
        cargo_args,
        engine_cache: !args.no_engine_cache,
        packages: project_packages(&args.manifest_path, None).unwrap_or_default(),
        trace,
    };
    let stage = |m: &str| spinner.stage(m);
    let log_line = |l: &str| {
        if show_log {
            spinner.println(l)
        }
    };
    let root = manifest
        .packages
        .iter()
        .find(|p| p.workspace_member && !p.bins_built(&features).is_empty())
        .ok_or_else(|| Failure::io("workspace", std::io::Error::other("no binary package")))?;
    // The release archive is made while the binaries download.
    let mut archive = ArchiveSink {
        package: format!("{}-{}", root.name, root.version),
        names: binaries.clone(),
        mtime: epoch,
        stream: None,
    };
    let building =
        hermetic_sandbox::build::build(&engine, run, &spec, &stage, &log_line, &mut archive);
    let result = tokio::select! {
        r = building => r,
        _ = interrupted() => {
            // The build future is dropped here; remove what it left.
            let _ = collect(&engine, Scope::Run(run.0.clone())).await;
            let _ = std::fs::remove_dir_all(&staging);
            return Err(hermetic_sandbox::Error::Interrupted.into());
        }
    };
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e.into());
        }
    };

    let clock = std::time::Instant::now();
    let finish = || -> Result<Built, Failure> {
        let target = target_of(&result.image);
        let archive_name = format!("{}-{}-{target}.tar.gz", root.name, root.version);
        let archive_path = staging.join(&archive_name);
        let stream = archive.stream.ok_or_else(|| {
            Failure::io(
                &archive_path.display().to_string(),
                std::io::Error::other("no binary was collected"),
            )
        })?;
        let gz = stream
            .finish()
            .map_err(|e| Failure::io(&archive_path.display().to_string(), e))?;
        documents::write_atomic(&archive_path, &gz)?;
        let mut names: Vec<PathBuf> = binaries.iter().map(PathBuf::from).collect();
        names.push(PathBuf::from(&archive_name));
        let artifacts = digest_files(&staging, &names)?;
        let log = result
            .log_path
            .is_file()
            .then(|| hermetic_attest::digest::sha256_file(&result.log_path))
            .transpose()?
            .map(|(sha256, size)| FileDigest {
                name: "build.log".into(),
                sha256,
                size,
            });
        let identity = inputs.identity.clone();
        let manifest_path = std::fs::canonicalize(&args.manifest_path)
            .ok()
            .and_then(|m| m.strip_prefix(&workspace).ok().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("Cargo.toml"));
        let record = BuildRecord {
            format: hermetic_attest::record::FORMAT,
            hermetic_version: env!("CARGO_PKG_VERSION").into(),
            package: PackageRef {
                name: root.name.clone(),
                version: root.version.clone(),
            },
            target: target.clone(),
            archive: archive_name.clone(),
            artifacts: artifacts.clone(),
            source: SourceRef {
                uri: identity.uri,
                commit: identity.commit,
                dirty: identity.dirty,
                tree_sha256: result.source_tree_sha256.clone(),
                files: result.source_files,
                manifest_path: manifest_path.to_string_lossy().replace('\\', "/"),
            },
            profile: "release".into(),
            features: features.clone(),
            source_date_epoch: epoch,
            source_date_epoch_origin: inputs.epoch_origin.clone(),
            lockfile_sha256: manifest.lockfile_sha256.clone(),
            vendor_tree_sha256: result.vendor_tree_sha256.clone(),
            image: ImageRef {
                reference: result.image.reference.clone(),
                digest: result.image.digest.clone(),
                toolchain: result.image.toolchain.clone(),
                definition: result.image.definition.clone(),
            },
            environment: Environment {
                variables: result.environment.clone(),
                command: result.command.clone(),
                container: serde_json::to_value(&result.env).unwrap_or_default(),
                variations: variations.to_vec(),
            },
            runner: hermetic_attest::record::Runner {
                id: runner_id.to_string(),
                engine: engine.host.clone(),
            },
            run: RunTimes {
                invocation_id: run.0.clone(),
                started_unix: result.started_unix,
                finished_unix: result.finished_unix,
                stages: hermetic_attest::record::StageTimes {
                    prepare_ms: result.stages.prepare_ms,
                    build_ms: result.stages.build_ms,
                    collect_ms: result.stages.collect_ms,
                },
            },
            log,
            deps: manifest.clone(),
            verified_by: vec![],
        };
        documents::write_atomic(&staging.join(RECORD), &record.to_bytes())?;
        spinner.stage("writing provenance, SBOMs and signatures");
        let documents = crate::cmd::sign::attest_dir(&staging, &record, key.as_ref())?;
        Ok(Built {
            result: result.clone(),
            out: out.clone(),
            artifacts,
            archive: archive_name,
            record,
            documents,
            timings: Timings {
                vendor_ms: 0,
                setup_ms,
                inputs_ms,
                sandbox: result.stages,
                attest_ms: 0,
            },
        })
    };
    let mut built = match finish() {
        Ok(b) => b,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    replace_dir(&staging, &out)?;
    built.timings.attest_ms = ms(clock);
    Ok(built)
}

/// The target triple the image's toolchain builds for (its `rustc -vV` host).
fn target_of(image: &hermetic_sandbox::image::ImageInfo) -> String {
    image
        .toolchain
        .as_deref()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("host: ")))
        .unwrap_or("unknown")
        .to_string()
}

/// Makes the release archive `PACKAGE-TARGET.tar.gz` from the binaries as they download,
/// so that compressing it overlaps with the transfer.
struct ArchiveSink {
    /// `NAME-VERSION` of the package released.
    package: String,
    names: Vec<String>,
    mtime: i64,
    /// Started by the first binary, which brings the image (and so the target).
    stream: Option<archive::ArchiveStream>,
}

impl hermetic_sandbox::build::OutputSink for ArchiveSink {
    fn begin(
        &mut self,
        image: &hermetic_sandbox::image::ImageInfo,
        name: &str,
        size: u64,
    ) -> std::io::Result<()> {
        let stream = match self.stream.take() {
            Some(s) => s,
            None => {
                let prefix = format!("{}-{}", self.package, target_of(image));
                let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
                archive::ArchiveStream::new(&prefix, &names, self.mtime)?
            }
        };
        let stream = self.stream.insert(stream);
        stream.begin(name, size, true)
    }

    fn data(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        // The sandbox calls `begin` before any data.
        self.stream
            .as_mut()
            .ok_or_else(|| std::io::Error::other("output data before its header"))?
            .write(bytes)
    }
}

/// Where an output directory is assembled before it is renamed into place: a hidden
/// sibling named after the run, so that nothing half-written looks like an output.
/// Makes `dirs` and the parent of `out` as real directories of `workspace`, and refuses an
/// `out` that is a link: the project may have committed any of them (`target/hermetic`,
/// `dist`) as a link to anywhere on the host.
pub(crate) fn writable_dirs(workspace: &Path, dirs: &[PathBuf], out: &Path) -> Result<(), Failure> {
    let parent = out.parent().map(Path::to_path_buf).unwrap_or_default();
    for dir in dirs.iter().chain(std::iter::once(&parent)) {
        hermetic_deps::host::real_dir(workspace, dir).map_err(|e| {
            Failure::input(
                dir,
                &e.to_string(),
                "remove the link: hermetic writes only into real directories of the workspace",
            )
        })?;
    }
    if std::fs::symlink_metadata(out).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Failure::input(
            out,
            "is a symbolic link: hermetic does not write through it",
            "remove the link, or choose another --out",
        ));
    }
    Ok(())
}

pub(crate) fn staging_for(out: &Path, run: &RunId) -> PathBuf {
    out.with_file_name(format!(
        ".{}.partial-{}",
        out.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        run.0
    ))
}

/// Publishes the complete `staging` as `out`: synced, then one rename, so that a crash
/// leaves the old output or the new one, never a mix or a half.
pub(crate) fn replace_dir(staging: &Path, out: &Path) -> Result<(), Failure> {
    if let Some(parent) = out.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| Failure::io(&parent.display().to_string(), e))?;
    }
    hermetic_deps::durable::publish_dir(staging, out)?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[derive(clap::Args)]
pub struct GcArgs {
    /// Also remove the engine's copies of vendored trees and toolchains kept between builds
    /// (a build still running keeps its own).
    #[arg(long)]
    pub cache: bool,
    /// The engine to clean, written as a verify runner (tcp://HOST:PORT, ssh://USER@HOST,
    /// unix:///path) [default: DOCKER_HOST, else the local engine].
    #[arg(long)]
    pub engine: Option<String>,
}

/// `hermetic gc`: removes containers and volumes whose hermetic process is gone, and with
/// `--cache` the engine's cache (vendored trees, toolchains).
pub async fn gc(args: &GcArgs, out: &Output) -> Result<Code, Failure> {
    let engine = match args.engine.as_deref() {
        None | Some("local") => Engine::connect().await?,
        Some(e) => {
            let endpoint =
                hermetic_sandbox::endpoint::Endpoint::parse(e, None).map_err(|m| Failure {
                    code: Code::Input,
                    message: format!("--engine {e}: {m}"),
                    causes: vec![],
                    fix: Some(
                        "write unix:///path/to/docker.sock, tcp://HOST:PORT or ssh://USER@HOST"
                            .into(),
                    ),
                })?;
            Engine::connect_endpoint(&endpoint).await?
        }
    };
    let removed = collect(&engine, Scope::Stale).await?;
    let cache = if args.cache {
        hermetic_sandbox::cache::clear(&engine).await?
    } else {
        hermetic_sandbox::cache::prune(&engine, None).await?
    };
    if out.json {
        out.emit(&json!({
            "status": "ok",
            "exit_code": 0,
            "engine": engine.host,
            "removed": removed,
            "cache_volumes_removed": cache,
        }));
    } else {
        eprintln!(
            "removed {} container(s) and {} volume(s) left by interrupted runs",
            removed.containers.len(),
            removed.volumes.len()
        );
        if args.cache || !cache.is_empty() {
            eprintln!(
                "removed {} cache volume(s) (vendored trees, toolchains)",
                cache.len()
            );
        }
    }
    Ok(Code::Success)
}
