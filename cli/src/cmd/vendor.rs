//! `hermetic vendor`

use crate::exit::{Code, Failure, Output};
use crate::progress::Spinner;
use hermetic_deps::cache::Cache;
use hermetic_deps::check::check_dir;
use hermetic_deps::policy::Policy;
use hermetic_deps::{VendorOptions, vendor};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// The project's Cargo.toml.
    #[arg(long, default_value = "Cargo.toml")]
    manifest_path: PathBuf,
    /// Vendor policy [default: vendor-policy.toml beside the manifest, if present].
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Output directory [default: target/hermetic/deps beside the manifest].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Re-verify an existing output directory instead of vendoring, against the project's
    /// Cargo.lock (found from --manifest-path).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "policy"])]
    check: Option<PathBuf>,
}

pub fn project_dir(manifest: &Path) -> PathBuf {
    match manifest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    }
}

/// Vendors for another command (build, verify): prints policy findings, fails on violations.
/// Where a build keeps its copy of the vendored tree: in hermetic's cache, one per
/// workspace, not in the project's own `target/` (whose files the project controls and
/// hermetic must not believe).
fn build_vendor_dir(cache: &Cache, project: &Path) -> PathBuf {
    let canonical = std::fs::canonicalize(project).unwrap_or_else(|_| project.to_path_buf());
    let key = hermetic_deps::hash::sha256_hex(canonical.to_string_lossy().as_bytes());
    cache
        .root()
        .join("workspaces")
        .join(&key[..32])
        .join("deps")
}

pub fn vendor_step(
    manifest_path: &Path,
    policy: Option<&Path>,
    spinner: &Spinner,
) -> Result<hermetic_deps::VendorOutcome, Failure> {
    let dir = project_dir(manifest_path);
    let policy_path = policy
        .map(Path::to_path_buf)
        .or_else(|| Some(dir.join("vendor-policy.toml")).filter(|p| p.is_file()));
    let policy_is_users =
        policy.is_some_and(|p| !hermetic_deps::policy::belongs_to_project(p, &dir));
    let policy = match &policy_path {
        Some(p) => Some(Policy::load(p)?),
        None => None,
    };
    let cache = Cache::from_env();
    let opts = VendorOptions {
        manifest_path: manifest_path.to_path_buf(),
        out: build_vendor_dir(&cache, &dir),
        cache,
        policy,
        policy_is_users,
    };
    let outcome = vendor(&opts, &|msg| spinner.stage(msg))?;
    for w in &outcome.warnings {
        spinner.println(&format!("warning: {w}"));
    }
    let shown = policy_path.clone().unwrap_or_default();
    for d in &outcome.diagnostics {
        spinner.println(d.render(&shown).trim_end());
    }
    for line in hermetic_sandbox::needs::proposal_lines(&image_proposals(&outcome, manifest_path)) {
        spinner.println(&line);
    }
    if !outcome.written {
        return Err(Failure {
            code: Code::CheckFailed,
            message: format!(
                "{} policy violation(s) in {}",
                outcome.diagnostics.iter().filter(|d| d.is_error()).count(),
                shown.display()
            ),
            causes: vec![],
            fix: Some(
                "fix the dependencies or the policy; `hermetic vendor` lists each violation".into(),
            ),
        });
    }
    Ok(outcome)
}

pub fn run(args: &Args, out: &Output) -> Result<Code, Failure> {
    let cache = Cache::from_env();
    if let Some(dir) = &args.check {
        return check(dir, &args.manifest_path, &cache, out);
    }
    let dir = project_dir(&args.manifest_path);
    let policy_path = args
        .policy
        .clone()
        .or_else(|| Some(dir.join("vendor-policy.toml")).filter(|p| p.is_file()));
    let policy = match &policy_path {
        Some(p) => Some(Policy::load(p)?),
        None => None,
    };
    let spinner = Spinner::new(out.json);
    let opts = VendorOptions {
        manifest_path: args.manifest_path.clone(),
        out: args
            .out
            .clone()
            .unwrap_or_else(|| dir.join("target").join("hermetic").join("deps")),
        cache,
        policy,
        policy_is_users: args
            .policy
            .as_deref()
            .is_some_and(|p| !hermetic_deps::policy::belongs_to_project(p, &dir)),
    };
    let result = vendor(&opts, &|msg| spinner.stage(msg));
    spinner.finish();
    let outcome = result?;
    let errors = outcome.diagnostics.iter().filter(|d| d.is_error()).count();
    let code = if errors > 0 {
        Code::CheckFailed
    } else {
        Code::Success
    };
    if out.json {
        out.emit(&json!({
            "status": if errors > 0 { "policy-violation" } else { "ok" },
            "exit_code": code as u8,
            "out": outcome.written.then(|| outcome.out.display().to_string()),
            "cache_hit": outcome.cache_hit,
            "packages": outcome.manifest.packages.len(),
            "vendored": outcome.manifest.packages.iter().filter(|p| p.vendor_dir.is_some()).count(),
            "policy": policy_path.as_ref().map(|p| p.display().to_string()),
            "diagnostics": outcome.diagnostics,
            "warnings": outcome.warnings,
            "image_proposals": image_proposals(&outcome, &args.manifest_path),
        }));
        return Ok(code);
    }
    for w in &outcome.warnings {
        eprintln!("warning: {w}");
    }
    let shown_policy = policy_path.clone().unwrap_or_default();
    for d in &outcome.diagnostics {
        eprint!("{}", d.render(&shown_policy));
    }
    if errors > 0 {
        eprintln!(
            "error: {errors} policy violation(s) in {}; nothing was written",
            shown_policy.display()
        );
        return Ok(code);
    }
    if policy_path.is_none() {
        eprintln!(
            "note: no vendor-policy.toml beside the manifest and no --policy: policy not checked"
        );
    }
    let vendored = outcome
        .manifest
        .packages
        .iter()
        .filter(|p| p.vendor_dir.is_some())
        .count();
    eprintln!(
        "vendored {vendored} crates{} into {}",
        if outcome.cache_hit {
            " (from the verified cache, no network)"
        } else {
            ""
        },
        outcome.out.display()
    );
    eprintln!(
        "build offline with: cargo build --offline --frozen --config {}",
        outcome.out.join("config.toml").display()
    );
    for line in
        hermetic_sandbox::needs::proposal_lines(&image_proposals(&outcome, &args.manifest_path))
    {
        eprintln!("{line}");
    }
    Ok(code)
}

/// What the builder image lacks for dependencies known to need more than the compiler,
/// given the packages the project's hermetic.toml declares (an unreadable file declares
/// none: the build reports it).
fn image_proposals(
    outcome: &hermetic_deps::VendorOutcome,
    manifest_path: &Path,
) -> Vec<hermetic_sandbox::needs::Proposal> {
    let declared = crate::cmd::build::project_packages(manifest_path, None).unwrap_or_default();
    hermetic_sandbox::needs::proposals(
        outcome.manifest.packages.iter().map(|p| p.name.as_str()),
        &declared,
    )
}

fn check(dir: &Path, manifest_path: &Path, cache: &Cache, out: &Output) -> Result<Code, Failure> {
    // The truth is the project's Cargo.lock, beside its manifest (or above it, at the
    // workspace's root), never what the checked directory says of itself.
    let lockfile = hermetic_deps::lockfile::nearest(&project_dir(manifest_path));
    let report = check_dir(dir, cache, &lockfile)?;
    let code = if report.findings.is_empty() {
        Code::Success
    } else {
        Code::CheckFailed
    };
    if out.json {
        out.emit(&json!({
            "status": if report.findings.is_empty() { "ok" } else { "verification-failed" },
            "exit_code": code as u8,
            "report": report,
            "lockfile": lockfile.display().to_string(),
        }));
        return Ok(code);
    }
    for f in &report.findings {
        eprintln!(
            "error[{}]: {}{}: {}",
            f.code,
            f.package,
            f.path
                .as_deref()
                .map(|p| format!("/{p}"))
                .unwrap_or_default(),
            f.message
        );
    }
    if report.findings.is_empty() {
        eprintln!(
            "ok: {} vendored crates match {}, their .cargo-checksum.json and their original archives",
            report.packages_checked,
            lockfile.display()
        );
    } else {
        eprintln!(
            "error: {} problem(s) in {}",
            report.findings.len(),
            dir.join("vendor").display()
        );
    }
    Ok(code)
}
