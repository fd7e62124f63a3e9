//! `hermetic image`: the builder image.

use crate::exit::{Code, Failure, Output};
use crate::progress::Spinner;
use hermetic_sandbox::engine::Engine;
use hermetic_sandbox::image::{self, BootstrapOptions, DEFAULT_BUILDER, ImageInfo};
use serde_json::json;
use std::path::PathBuf;

/// The real-world definition, built into the binary so that bootstrap works anywhere.
pub const DOCKERFILE: &str = include_str!("../../../Dockerfile.hermetic");

#[derive(clap::Subcommand)]
pub enum Command {
    /// Make the builder image offline, the same on every machine: a Debian rootfs
    /// (mmdebstrap), the host's toolchain and the build user, each a deterministic layer,
    /// loaded through the API. Its definition and result are checked against
    /// hermetic-image.lock, or written there.
    Bootstrap {
        /// Debian suite [default: the lock's, else the host's].
        #[arg(long)]
        suite: Option<String>,
        /// Debian mirror, or a snapshot URL that pins package versions [default: the
        /// lock's, else the first Debian URI in the host's apt sources].
        #[arg(long)]
        mirror: Option<String>,
        /// A Debian package the project's build needs, beyond gcc and libc6-dev
        /// (repeatable).
        #[arg(long = "package", value_name = "NAME")]
        packages: Vec<String>,
        /// The image's lock file.
        #[arg(long, default_value = hermetic_sandbox::recipe::LOCK_FILE)]
        lock: PathBuf,
        /// Define the image anew from the options and this machine, and rewrite the lock.
        #[arg(long)]
        update_lock: bool,
        /// Make the image even if the engine has the locked one.
        #[arg(long)]
        force: bool,
        /// Tag of the resulting builder image [default: hermetic/builder:latest, or, for
        /// a project whose hermetic.toml adds packages, the tag its builds look for].
        #[arg(long)]
        tag: Option<String>,
    },
    /// Write an image to a file (`docker save` format), to pass it to another machine.
    Export {
        /// The image, by digest (`sha256:…`).
        digest: String,
        file: PathBuf,
    },
    /// Load an image file written by `image export` (or `docker save`); its digest is
    /// computed from the file and checked in the engine.
    Import {
        file: PathBuf,
        /// The digest the file must have.
        #[arg(long)]
        expect: Option<String>,
    },
    /// Add hermetic's layer (the build user and /hermetic, as Dockerfile.hermetic) to a
    /// base image pinned by digest and present in the engine; the result's digest follows
    /// from the base's, the same on every machine.
    Build {
        /// Base image, pinned: REF@sha256:… (as `docker pull` records it) or sha256:… (an
        /// image id).
        #[arg(long)]
        base: String,
        #[arg(long, default_value = DEFAULT_BUILDER)]
        tag: String,
        /// A Dockerfile of your own instead of hermetic's layer (run by the engine's
        /// builder, so its digest is not the same on every machine).
        #[arg(long)]
        dockerfile: Option<PathBuf>,
    },
    /// Show an image's digest, toolchain and size.
    Show {
        #[arg(default_value = DEFAULT_BUILDER)]
        reference: String,
    },
}

fn dockerfile_path(
    given: &Option<PathBuf>,
) -> Result<(PathBuf, Option<tempfile::TempDir>), Failure> {
    if let Some(p) = given {
        return Ok((p.clone(), None));
    }
    let dir = tempfile::tempdir().map_err(|e| Failure::io("temporary directory", e))?;
    let path = dir.path().join("Dockerfile.hermetic");
    std::fs::write(&path, DOCKERFILE).map_err(|e| Failure::io(&path.display().to_string(), e))?;
    Ok((path, Some(dir)))
}

pub async fn run(cmd: &Command, out: &Output) -> Result<Code, Failure> {
    let engine = Engine::connect().await?;
    let spinner = Spinner::new(out.json);
    let stage = |m: &str| spinner.stage(m);
    let info = match cmd {
        Command::Bootstrap {
            suite,
            mirror,
            packages,
            lock,
            update_lock,
            force,
            tag,
        } => {
            // The project's hermetic.toml, beside the lock, adds the packages its build
            // scripts need; they are part of the definition, and name the image's tag.
            let config_path = lock
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."))
                .join("hermetic.toml");
            let declared =
                hermetic_sandbox::config::Config::packages_in(&config_path).map_err(|e| {
                    Failure {
                        code: Code::Input,
                        message: e.to_string(),
                        causes: vec![],
                        fix: Some("fix the file (see the README's hermetic.toml section)".into()),
                    }
                })?;
            let all_packages = hermetic_sandbox::recipe::asked_packages(packages, &declared);
            let tag = tag
                .clone()
                .unwrap_or_else(|| image::builder_reference(&all_packages));
            let opts = BootstrapOptions {
                suite: suite.clone(),
                mirror: mirror.clone(),
                packages: all_packages,
                sysroot: None,
                scratch: hermetic_deps::cache::Cache::from_env()
                    .root()
                    .join("scratch"),
                force: *force,
                tag,
                lock: lock.clone(),
                update_lock: *update_lock,
            };
            let r = image::bootstrap(&engine, &opts, &stage).await;
            spinner.finish();
            let done = r?;
            if out.json {
                out.emit(&json!({
                    "status": "ok",
                    "exit_code": 0,
                    "image": done.image,
                    "lock": done.lock,
                    "lock_path": done.lock_path,
                    "lock_written": done.lock_written,
                    "made": done.made,
                }));
            } else {
                report(&done.image, out);
                println!(
                    "lock:      {} ({})",
                    done.lock_path.display(),
                    if done.lock_written {
                        "written: commit it"
                    } else {
                        "matches"
                    }
                );
            }
            return Ok(Code::Success);
        }
        Command::Export { digest, file } => {
            stage(&format!("writing {digest} to {}", file.display()));
            let r = image::export(&engine, digest, file).await;
            spinner.finish();
            r?;
            if out.json {
                out.emit(&json!({"status": "ok", "exit_code": 0, "digest": digest, "file": file}));
            } else {
                println!("{digest} written to {}", file.display());
            }
            return Ok(Code::Success);
        }
        Command::Import { file, expect } => {
            stage(&format!("loading {}", file.display()));
            let scratch = hermetic_deps::cache::Cache::from_env()
                .root()
                .join("scratch");
            let r = image::import(&engine, file, &scratch, expect.as_deref()).await;
            spinner.finish();
            let id = r?;
            image::show(&engine, &id).await?
        }
        Command::Build {
            base,
            tag,
            dockerfile,
        } => {
            match dockerfile {
                // A Dockerfile of the user's: the engine's builder runs it (its result is
                // not the same on every machine).
                Some(_) => {
                    let (dockerfile, _keep) = dockerfile_path(dockerfile)?;
                    image::inspect(&engine, base).await?;
                    stage("building the Dockerfile");
                    let r = image::build_dockerfile(&engine, &dockerfile, base, tag).await;
                    spinner.finish();
                    r?;
                }
                None => {
                    let scratch = hermetic_deps::cache::Cache::from_env()
                        .root()
                        .join("scratch");
                    let r =
                        hermetic_sandbox::base::build(&engine, base, tag, &scratch, &stage).await;
                    spinner.finish();
                    r?;
                }
            }
            image::show(&engine, tag).await?
        }
        Command::Show { reference } => {
            let r = image::show(&engine, reference).await;
            spinner.finish();
            r?
        }
    };
    report(&info, out);
    Ok(Code::Success)
}

fn report(info: &ImageInfo, out: &Output) {
    if out.json {
        out.emit(&json!({ "status": "ok", "exit_code": 0, "image": info }));
        return;
    }
    println!("image:     {}", info.reference);
    println!("digest:    {}", info.digest);
    println!("tags:      {}", info.tags.join(", "));
    println!("size:      {:.0} MB", info.size_bytes as f64 / 1e6);
    match &info.toolchain {
        Some(t) => {
            for (i, line) in t.lines().enumerate() {
                println!(
                    "{}{line}",
                    if i == 0 { "toolchain: " } else { "           " }
                );
            }
        }
        None => println!("toolchain: (rustc -vV failed in the image)"),
    }
}
