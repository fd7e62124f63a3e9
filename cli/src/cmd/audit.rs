//! `hermetic audit`: checks a release directory offline, one line per check.

use crate::cmd::build::{self, build_project};
use crate::exit::{Code, Failure, Output};
use crate::progress::Spinner;
use hermetic_attest::audit::{Audit, audit};
use hermetic_attest::keys::PublicKey;
use hermetic_sandbox::run::RunId;
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// The release directory (the --out of `hermetic build` or `verify`).
    pub dist: PathBuf,
    /// Public key(s) the release may be signed with.
    #[arg(long = "key", required = true)]
    pub keys: Vec<PathBuf>,
    /// Check the recorded dependencies against this vendor policy.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Check the crates and checksums against this Cargo.lock.
    #[arg(long)]
    pub lockfile: Option<PathBuf>,
    /// Rebuild from --source with the recorded image and compare the outputs.
    #[arg(long, requires = "source")]
    pub rebuild: bool,
    /// The source checkout to rebuild (at the recorded commit).
    #[arg(long)]
    pub source: Option<PathBuf>,
}

fn push(a: &mut Audit, name: &str, ok: bool, detail: impl Into<String>) {
    a.checks.push(hermetic_attest::audit::Check {
        name: name.into(),
        ok,
        detail: detail.into(),
    });
}

fn check_policy(a: &mut Audit, path: &Path) -> Result<(), Failure> {
    let policy = hermetic_deps::policy::Policy::load(path)?;
    let Some(rec) = &a.record else {
        push(
            a,
            "vendor policy",
            false,
            "no dependency manifest that matches the signed provenance",
        );
        return Ok(());
    };
    let errors: Vec<String> = policy
        .check(&rec.deps)
        .into_iter()
        .filter(|d| d.is_error())
        .map(|d| {
            d.render(path)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let detail = if errors.is_empty() {
        format!("{} holds", path.display())
    } else {
        errors.join("; ")
    };
    push(a, "vendor policy", errors.is_empty(), detail);
    Ok(())
}

async fn check_rebuild(
    a: &mut Audit,
    dist: &Path,
    source: &Path,
    json_out: bool,
) -> Result<(), Failure> {
    let Some(p) = a.provenance.clone() else {
        push(
            a,
            "rebuild",
            false,
            "no verified provenance to rebuild from",
        );
        return Ok(());
    };
    let deps = p.predicate["buildDefinition"]["resolvedDependencies"].clone();
    let find = |name: &str| {
        deps.as_array()
            .into_iter()
            .flatten()
            .find(|d| d["name"] == name)
            .cloned()
    };
    let recorded_tree =
        find("source").and_then(|s| s["digest"]["sha256"].as_str().map(String::from));
    if let Some(commit) =
        find("source").and_then(|s| s["digest"]["gitCommit"].as_str().map(String::from))
    {
        let head = hermetic_deps::host::git_output(source, ["rev-parse", "HEAD"])
            .map(|o| String::from_utf8_lossy(&o).trim().to_string());
        push(
            a,
            "rebuild: source at the recorded commit",
            head.as_deref() == Some(commit.as_str()),
            format!(
                "recorded {commit}, checkout {}",
                head.unwrap_or_else(|| "not a git checkout".into())
            ),
        );
    }
    let Some(image) = find("builder-image").and_then(|i| {
        i["digest"]["sha256"]
            .as_str()
            .map(|d| format!("sha256:{d}"))
    }) else {
        push(a, "rebuild", false, "the provenance names no builder image");
        return Ok(());
    };
    // The recorded manifest path is the document's, not the auditor's: it must name a
    // Cargo.toml inside the checkout, by a relative path that stays there.
    let recorded = p.predicate["buildDefinition"]["externalParameters"]["manifestPath"]
        .as_str()
        .unwrap_or("Cargo.toml");
    if let Err(why) = hermetic_deps::validate::relative_path(recorded).and_then(|()| {
        (Path::new(recorded).file_name() == Some(std::ffi::OsStr::new("Cargo.toml")))
            .then_some(())
            .ok_or_else(|| "the path does not name a Cargo.toml".to_string())
    }) {
        push(
            a,
            "rebuild: the recorded manifest path",
            false,
            format!("manifestPath {recorded:?} is refused: {why}"),
        );
        return Ok(());
    }
    // Inside the checkout by its real location too: no directory on the way may be a link
    // (to another project of the auditor's machine, say).
    let mut at = source.to_path_buf();
    for c in Path::new(recorded.strip_prefix("./").unwrap_or(recorded)).components() {
        at.push(c);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            push(
                a,
                "rebuild: the recorded manifest path",
                false,
                format!(
                    "manifestPath {recorded:?} passes through the link {}",
                    at.display()
                ),
            );
            return Ok(());
        }
    }
    let manifest = source.join(recorded);
    let out = tempfile::tempdir().map_err(|e| Failure::io("temporary directory", e))?;
    let args = build::Args {
        manifest_path: manifest,
        out: out.path().join("dist"),
        image,
        no_sign: true,
        ..build::Args::defaults()?
    };
    let spinner = Spinner::new(json_out);
    let vendored = crate::cmd::vendor::vendor_step(&args.manifest_path, None, &spinner)?;
    let built = build_project(
        &args,
        &vendored,
        &spinner,
        &RunId::new(),
        build::Runner::local(),
        false,
    )
    .await;
    spinner.finish();
    let built = match built {
        Ok(b) => b,
        Err(e) => {
            push(a, "rebuild", false, e.message);
            return Ok(());
        }
    };
    push(
        a,
        "rebuild: source tree = the recorded one",
        recorded_tree.as_deref() == Some(built.record.source.tree_sha256.as_str()),
        format!(
            "recorded {}, rebuilt from {}",
            recorded_tree.as_deref().unwrap_or("none"),
            built.record.source.tree_sha256
        ),
    );
    // The files as released (what a user downloads), named by SHA256SUMS.
    let names: Vec<PathBuf> = hermetic_attest::digest::parse_sha256sums(
        &std::fs::read_to_string(dist.join(hermetic_attest::documents::SUMS)).unwrap_or_default(),
    )
    .into_iter()
    .map(|(name, _)| PathBuf::from(name))
    .collect();
    let released: std::collections::BTreeMap<String, String> =
        hermetic_attest::digest::digest_files(dist, &names)
            .unwrap_or_default()
            .into_iter()
            .map(|d| (d.name, d.sha256))
            .collect();
    let rebuilt: std::collections::BTreeMap<String, String> = built
        .artifacts
        .iter()
        .map(|d| (d.name.clone(), d.sha256.clone()))
        .collect();
    let differing: Vec<&String> = released
        .keys()
        .filter(|n| rebuilt.get(*n) != released.get(*n))
        .collect();
    push(
        a,
        "rebuild: outputs match the release",
        differing.is_empty() && !released.is_empty(),
        if differing.is_empty() {
            format!("{} file(s) identical", released.len())
        } else {
            format!("differ: {differing:?}")
        },
    );
    Ok(())
}

pub async fn run(args: &Args, out: &Output) -> Result<Code, Failure> {
    if !args.dist.is_dir() {
        return Err(Failure::input(
            &args.dist,
            "not a directory",
            "pass the release directory (dist/)",
        ));
    }
    let keys: Vec<PublicKey> = args
        .keys
        .iter()
        .map(|k| PublicKey::load(k))
        .collect::<Result<_, _>>()?;
    let mut a = audit(&args.dist, &keys, args.lockfile.as_deref());
    if let Some(p) = &args.policy {
        check_policy(&mut a, p)?;
    }
    if args.rebuild
        && let Some(src) = &args.source
    {
        check_rebuild(&mut a, &args.dist, src, out.json).await?;
    }
    let code = if a.passed() {
        Code::Success
    } else {
        Code::CheckFailed
    };
    if out.json {
        out.emit(&json!({
            "status": if a.passed() { "ok" } else { "failed" },
            "exit_code": code as u8,
            "checks": a.checks,
        }));
    } else {
        for c in &a.checks {
            println!(
                "{} {}: {}",
                if c.ok { "PASS" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        let failed = a.checks.iter().filter(|c| !c.ok).count();
        eprintln!("{} check(s), {failed} failed", a.checks.len());
    }
    Ok(code)
}
