//! `hermetic rebuild --emit-attestation` (one independent runner's signed result) and
//! `hermetic gate` (k-of-n agreement of trusted runners).

use crate::cmd::build::{self, build_project};
use crate::exit::{Code, Failure, Output};
use crate::progress::Spinner;
use hermetic_attest::bundle::sign_dsse;
use hermetic_attest::gate::{Release, admit, decide, rebuild_statement};
use hermetic_attest::keys::PublicKey;
use hermetic_attest::statement::PAYLOAD_TYPE;
use hermetic_sandbox::build::BuildEnv;
use hermetic_sandbox::run::RunId;
use serde_json::json;
use std::path::PathBuf;

#[derive(clap::Args)]
#[group(id = "rebuild-options")]
pub struct RebuildArgs {
    /// Write this runner's signed rebuild attestation (a sigstore bundle) here.
    #[arg(long, value_name = "FILE")]
    pub emit_attestation: PathBuf,
    /// Names this runner in the attestation (e.g. the CI job).
    #[arg(long, default_value = "local")]
    pub runner_id: String,
    #[command(flatten)]
    pub build: build::Args,
}

/// Builds like `hermetic build`, then signs a statement of what came out of which inputs.
pub async fn rebuild(args: &RebuildArgs, out: &Output) -> Result<Code, Failure> {
    if args.build.no_sign {
        return Err(Failure::input(
            &args.emit_attestation,
            "a rebuild attestation must be signed",
            "drop --no-sign; pass this runner's key with --key",
        ));
    }
    let spinner = Spinner::new(out.json);
    let vendored = crate::cmd::vendor::vendor_step(
        &args.build.manifest_path,
        args.build.policy.as_deref(),
        &spinner,
    );
    let built = match vendored {
        Ok(v) => {
            build_project(
                &args.build,
                &v,
                &spinner,
                &RunId::new(),
                build::Runner {
                    id: &args.runner_id,
                    endpoint: None,
                    inputs: None,
                    env: BuildEnv::default(),
                    variations: &[],
                    trace: false,
                },
                !out.json,
            )
            .await
        }
        Err(e) => Err(e),
    };
    spinner.finish();
    let built = built?;
    let key = crate::cmd::sign::signing_key(args.build.key.as_deref(), &|n| eprintln!("{n}"))?;
    let statement = rebuild_statement(&built.record);
    let bundle = sign_dsse(PAYLOAD_TYPE, &statement.to_bytes(), &key)?;
    hermetic_attest::documents::write_atomic(&args.emit_attestation, &bundle.to_bytes())?;
    if out.json {
        out.emit(&json!({
            "status": "ok",
            "exit_code": 0,
            "attestation": args.emit_attestation,
            "key_hint": key.hint(),
            "statement": statement,
        }));
    } else {
        eprintln!(
            "rebuild attestation for {} output(s) signed by {} → {}",
            statement.subject.len(),
            key.hint(),
            args.emit_attestation.display()
        );
    }
    Ok(Code::Success)
}

#[derive(clap::Args)]
pub struct GateArgs {
    /// Rebuild attestations (bundles from `hermetic rebuild --emit-attestation`).
    #[arg(required = true)]
    pub attestations: Vec<PathBuf>,
    /// A trusted runner's public key; one vote per key.
    #[arg(long = "trusted-key", required = true)]
    pub trusted_keys: Vec<PathBuf>,
    /// How many trusted runners must agree on every output digest.
    #[arg(long)]
    pub quorum: usize,
    /// Pass with a quorum even if a trusted runner disagrees (the dissent is reported).
    #[arg(long)]
    pub allow_dissent: bool,
    /// Also write gate-report.json and gate-report.md here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The release decided about: its SHA256SUMS, whose digests the trusted runners must
    /// have built.
    #[arg(long, value_name = "FILE")]
    pub sums: Option<PathBuf>,
    /// The release decided about: the rebuild inputs' digest every vote must name.
    #[arg(long, value_name = "SHA256")]
    pub inputs_digest: Option<String>,
    /// The release decided about: the commit every vote must have been built from.
    #[arg(long, value_name = "SHA")]
    pub source_commit: Option<String>,
}

/// What the gate is told it decides about (`Release::named` decides what that may be).
fn release(args: &GateArgs) -> Result<Release, Failure> {
    let sums = match &args.sums {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
            Failure::input(
                path,
                &format!("cannot read: {e}"),
                "pass the release's SHA256SUMS",
            )
        })?),
        None => None,
    };
    Release::named(
        sums.as_deref(),
        args.inputs_digest.as_deref(),
        args.source_commit.as_deref(),
    )
    .map_err(|e| Failure {
        code: Code::Input,
        message: match (&e, &args.sums) {
            (hermetic_attest::gate::ReleaseError::Sums(_), Some(path)) => {
                format!("{}: {e}", path.display())
            }
            _ => e.to_string(),
        },
        causes: vec![],
        fix: Some(e.fix()),
    })
}

pub fn gate(args: &GateArgs, out: &Output) -> Result<Code, Failure> {
    if args.quorum == 0 || args.quorum > args.trusted_keys.len() {
        return Err(Failure {
            code: Code::Input,
            message: format!(
                "--quorum {} with {} trusted key(s): the quorum must be between 1 and the number of trusted keys",
                args.quorum,
                args.trusted_keys.len()
            ),
            causes: vec![],
            fix: Some("pass one --trusted-key per runner and a --quorum no larger".into()),
        });
    }
    let keys: Vec<(String, PublicKey)> = args
        .trusted_keys
        .iter()
        .map(|p| Ok((p.display().to_string(), PublicKey::load(p)?)))
        .collect::<Result<_, hermetic_attest::Error>>()?;
    // One key is one voter, under whatever file names it is given.
    let hints: Vec<&str> = keys.iter().map(|(_, k)| k.hint()).collect();
    if let Some((first, again)) = hermetic_attest::gate::repeated_key(&hints) {
        return Err(Failure::input(
            std::path::Path::new(&keys[again].0),
            &format!("the same key as --trusted-key {}", keys[first].0),
            "name each trusted runner's key once: one key is one vote",
        ));
    }
    let release = release(args)?;
    let mut attestations = vec![];
    for path in &args.attestations {
        let bytes = std::fs::read(path).map_err(|e| {
            Failure::input(
                path,
                &format!("cannot read: {e}"),
                "pass the attestation files",
            )
        })?;
        attestations.push((path.display().to_string(), bytes));
    }
    let ballot = admit(&attestations, &keys, &release);
    let report = decide(ballot, &release, args.quorum, args.allow_dissent);
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|e| Failure::io(&dir.display().to_string(), e))?;
        hermetic_attest::documents::write_atomic(
            &dir.join("gate-report.json"),
            &hermetic_attest::statement::to_pretty(&report),
        )?;
        hermetic_attest::documents::write_atomic(
            &dir.join("gate-report.md"),
            report.markdown().as_bytes(),
        )?;
    }
    let code = if report.passed {
        Code::Success
    } else {
        Code::CheckFailed
    };
    if out.json {
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        v["status"] = json!(if report.passed { "ok" } else { "failed" });
        v["exit_code"] = json!(code as u8);
        out.emit(&v);
    } else {
        for i in &report.ignored {
            eprintln!("warning: {}: ignored: {}", i.file, i.reason);
        }
        eprintln!(
            "gate {}: {} trusted runner(s) agree, {} required",
            if report.passed { "passed" } else { "FAILED" },
            report.agreeing.len(),
            report.quorum
        );
        for r in &report.reasons {
            eprintln!("  {r}");
        }
    }
    Ok(code)
}
