//! The release workflow cannot run here; keep it honest: every `hermetic` command it calls
//! exists, and every option it passes is one that command takes.

mod common;

use common::*;
use std::process::Command;

#[test]
fn release_workflow_calls_only_real_commands_and_options() {
    let workflow = repo_root().join(".github/workflows/release.yml");
    // Parsed as YAML (PyYAML, installed by .ci/run): the run scripts of every step.
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, yaml\n\
             w = yaml.safe_load(open(sys.argv[1]))\n\
             for job in w['jobs'].values():\n\
             \x20   for step in job['steps']:\n\
             \x20       if 'run' in step: print(step['run'].replace('\\\\\\n', ' ').replace('\\n', '\\x00'), end='\\x01')",
        ])
        .arg(&workflow)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scripts = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut calls = vec![];
    for line in scripts.split(['\u{1}', '\u{0}']) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = words.iter().position(|w| *w == "hermetic") else {
            continue;
        };
        let Some(sub) = words.get(at + 1) else {
            continue;
        };
        calls.push(sub.to_string());
        // `hermetic image bootstrap`: the options are the subcommand's.
        let mut command = vec![*sub];
        let mut rest = at + 2;
        if *sub == "image"
            && let Some(inner) = words.get(at + 2).filter(|w| !w.starts_with('-'))
        {
            command.push(inner);
            rest += 1;
        }
        let help = Command::new(env!("CARGO_BIN_EXE_hermetic"))
            .args(&command)
            .arg("--help")
            .output()
            .expect("hermetic");
        assert!(
            help.status.success(),
            "the workflow calls `hermetic {sub}`, which does not exist"
        );
        let help = String::from_utf8_lossy(&help.stdout);
        let sub = command.join(" ");
        for flag in words[rest..].iter().filter(|w| w.starts_with("--")) {
            let flag = flag.split('=').next().unwrap_or(flag);
            assert!(
                help.contains(flag) || flag == "--json",
                "`hermetic {sub}` has no option {flag}"
            );
        }
    }
    for needed in ["rebuild", "gate", "attest", "audit"] {
        assert!(
            calls.iter().any(|c| c == needed),
            "the release workflow never runs `hermetic {needed}` (found {calls:?})"
        );
    }
}
