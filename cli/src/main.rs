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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = exit::Output::new(cli.json);
    let result = match &cli.command {
        Command::Vendor(args) => cmd::vendor::run(args, &out),
    };
    match result {
        Ok(code) => code.into(),
        Err(failure) => out.fail(&failure).into(),
    }
}
