//! `hermetic`: hermetic, reproducible and attested release builds of Rust projects.
//!
//! The binary only wires the pipeline's crates together (deps → sandbox → attest) and turns
//! their typed errors into messages and exit codes (see [`exit`]).

mod cmd;
mod exit;
mod progress;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "hermetic", version, about, long_about = None)]
struct Cli {
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Vendor and verify every locked dependency, and check the vendor policy.
    Vendor(cmd::vendor::Args),
    /// Build the workspace's release binaries in a network-less container.
    Build(cmd::build::Args),
    /// Build on several runners with varied environments, compare, and explain differences.
    Verify(cmd::verify::Args),
    /// Build as one independent runner and sign what came out of which inputs.
    Rebuild(cmd::gate::RebuildArgs),
    /// Pass only if K trusted runners' rebuild attestations agree on every output digest.
    Gate(cmd::gate::GateArgs),
    /// Check a release offline: signatures, digests, provenance ↔ SBOM ↔ lockfile, policy.
    Audit(cmd::audit::Args),
    /// Remove containers and volumes left behind by interrupted runs.
    Gc(cmd::build::GcArgs),
    /// Write a cosign-compatible key pair (cosign.key, cosign.pub).
    Keygen(cmd::sign::KeygenArgs),
    /// Sign a file: FILE.sig (as cosign sign-blob) and FILE.sigstore.json (bundle v0.3).
    Sign(cmd::sign::SignArgs),
    /// Write and sign the provenance, SBOMs and signatures of a build output directory.
    Attest(cmd::sign::AttestArgs),
    /// Verify a sigstore bundle with a public key, and optionally the artifact it covers.
    VerifyAttestation(cmd::sign::VerifyAttestationArgs),
    /// Make, build or inspect the builder image.
    #[command(subcommand)]
    Image(cmd::image::Command),
}

/// Runs an engine command on a multi-threaded runtime.
fn block_on<F: std::future::Future<Output = Result<exit::Code, exit::Failure>>>(
    f: F,
) -> Result<exit::Code, exit::Failure> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| exit::Failure::io("tokio runtime", e))?;
    rt.block_on(f)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = exit::Output::new(cli.json);
    let result = match &cli.command {
        Command::Vendor(args) => cmd::vendor::run(args, &out),
        Command::Image(c) => block_on(cmd::image::run(c, &out)),
        Command::Build(args) => block_on(cmd::build::run(args, &out)),
        Command::Keygen(args) => cmd::sign::keygen(args, &out),
        Command::Sign(args) => cmd::sign::sign(args, &out),
        Command::Attest(args) => cmd::sign::attest(args, &out),
        Command::VerifyAttestation(args) => cmd::sign::verify_attestation(args, &out),
        Command::Verify(args) => block_on(cmd::verify::run(args, &out)),
        Command::Rebuild(args) => block_on(cmd::gate::rebuild(args, &out)),
        Command::Gate(args) => cmd::gate::gate(args, &out),
        Command::Audit(args) => block_on(cmd::audit::run(args, &out)),
        Command::Gc(args) => block_on(cmd::build::gc(args, &out)),
    };
    match result {
        Ok(code) => code.into(),
        Err(failure) => out.fail(&failure).into(),
    }
}
