//! Exit codes shared by every command, and how failures are reported.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | a check failed: policy violation, verification or reproducibility failure |
//! | 2 | usage or input error |
//! | 3 | the build itself failed |
//! | 4 | infrastructure failure: engine, registry, disk |

use serde_json::json;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Success = 0,
    CheckFailed = 1,
    Input = 2,
    BuildFailed = 3,
    Infrastructure = 4,
}

impl From<Code> for ExitCode {
    fn from(c: Code) -> ExitCode {
        ExitCode::from(c as u8)
    }
}

/// A failure as the user sees it: what happened, why, and how to fix it.
pub struct Failure {
    pub code: Code,
    pub message: String,
    pub causes: Vec<String>,
    pub fix: Option<String>,
}

impl From<hermetic_deps::Error> for Failure {
    fn from(e: hermetic_deps::Error) -> Failure {
        use hermetic_deps::ErrorKind;
        let code = match e.kind() {
            ErrorKind::Input => Code::Input,
            ErrorKind::Infrastructure => Code::Infrastructure,
            ErrorKind::Check => Code::CheckFailed,
        };
        Failure {
            code,
            fix: e.fix(),
            causes: causes(&e),
            message: e.to_string(),
        }
    }
}

impl From<hermetic_sandbox::Error> for Failure {
    fn from(e: hermetic_sandbox::Error) -> Failure {
        use hermetic_sandbox::ErrorKind;
        let code = match e.kind() {
            ErrorKind::Input => Code::Input,
            ErrorKind::Infrastructure => Code::Infrastructure,
            ErrorKind::BuildFailed => Code::BuildFailed,
            ErrorKind::Check => Code::CheckFailed,
        };
        Failure {
            code,
            fix: e.fix(),
            causes: causes(&e),
            message: e.to_string(),
        }
    }
}

impl From<hermetic_attest::Error> for Failure {
    fn from(e: hermetic_attest::Error) -> Failure {
        use hermetic_attest::ErrorKind;
        let code = match e.kind() {
            ErrorKind::Input => Code::Input,
            ErrorKind::Check => Code::CheckFailed,
            ErrorKind::Infrastructure => Code::Infrastructure,
        };
        Failure {
            code,
            causes: causes(&e),
            fix: e.fix(),
            message: e.to_string(),
        }
    }
}

impl Failure {
    /// Bad input: names the file, what is wrong and what to do.
    pub fn input(path: &std::path::Path, what: &str, fix: &str) -> Failure {
        Failure {
            code: Code::Input,
            message: format!("{}: {what}", path.display()),
            causes: vec![],
            fix: Some(fix.into()),
        }
    }

    pub fn io(what: &str, e: std::io::Error) -> Failure {
        Failure {
            code: Code::Infrastructure,
            message: format!("{what}: {e}"),
            causes: vec![],
            fix: None,
        }
    }
}

fn causes(e: &dyn std::error::Error) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push(c.to_string());
        cur = c.source();
    }
    out
}

/// Where results go: text on stderr/stdout, or one JSON document on stdout.
pub struct Output {
    pub json: bool,
}

impl Output {
    pub fn new(json: bool) -> Output {
        Output { json }
    }

    /// Reports a failure and returns its exit code.
    pub fn fail(&self, f: &Failure) -> Code {
        if self.json {
            self.emit(&json!({
                "status": "error",
                "exit_code": f.code as u8,
                "error": { "message": f.message, "causes": f.causes, "fix": f.fix },
            }));
        } else {
            eprintln!("error: {}", f.message);
            for c in &f.causes {
                eprintln!("  caused by: {c}");
            }
            if let Some(fix) = &f.fix {
                eprintln!("  fix: {fix}");
            }
        }
        f.code
    }

    pub fn emit(&self, value: &serde_json::Value) {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    }
}
