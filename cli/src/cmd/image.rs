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
    /// Make the builder image offline: Debian rootfs (debootstrap) + the host's toolchain,
    /// imported through the API, then Dockerfile.hermetic built on top.
    Bootstrap {
        /// Debian suite [default: the host's].
        #[arg(long)]
        suite: Option<String>,
        /// Debian mirror [default: the first Debian URI in the host's apt sources].
        #[arg(long)]
        mirror: Option<String>,
        /// Remake the base even if it exists.
        #[arg(long)]
        force: bool,
        /// Tag of the resulting builder image.
        #[arg(long, default_value = DEFAULT_BUILDER)]
        tag: String,
        /// Dockerfile to build on the base [default: the built-in Dockerfile.hermetic].
        #[arg(long)]
        dockerfile: Option<PathBuf>,
    },
    /// Build Dockerfile.hermetic through the API on a base image present in the engine.
    Build {
        /// Base image (e.g. a registry image pinned by digest, or hermetic/base:…).
        #[arg(long)]
        base: String,
        #[arg(long, default_value = DEFAULT_BUILDER)]
        tag: String,
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
            force,
            tag,
            dockerfile,
        } => {
            let (dockerfile, _keep) = dockerfile_path(dockerfile)?;
            let opts = BootstrapOptions {
                suite: suite.clone(),
                mirror: mirror.clone(),
                sysroot: None,
                scratch: hermetic_deps::cache::Cache::from_env()
                    .root()
                    .join("scratch"),
                dockerfile,
                force: *force,
                tag: tag.clone(),
            };
            let r = image::bootstrap(&engine, &opts, &stage).await;
            spinner.finish();
            r?
        }
        Command::Build {
            base,
            tag,
            dockerfile,
        } => {
            let (dockerfile, _keep) = dockerfile_path(dockerfile)?;
            image::inspect(&engine, base).await?;
            stage("building Dockerfile.hermetic");
            let r = image::build_dockerfile(&engine, &dockerfile, base, tag).await;
            spinner.finish();
            r?;
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
