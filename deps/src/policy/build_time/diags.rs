use super::Kind;
use crate::manifest::Package;
use crate::policy::{Diagnostic, Severity};

fn names(kind: Kind) -> (&'static str, &'static str, &'static str) {
    match kind {
        Kind::BuildScript => ("build-scripts", "has a build script", "build-script"),
        Kind::ProcMacro => ("proc-macros", "is a procedural macro", "proc-macro"),
    }
}

pub fn not_allowed(kind: Kind, p: &Package, line: Option<usize>) -> Diagnostic {
    let (rule, what, _) = names(kind);
    Diagnostic {
        severity: Severity::Error,
        code: match kind {
            Kind::BuildScript => "build-script-not-allowed",
            Kind::ProcMacro => "proc-macro-not-allowed",
        },
        rule,
        package: Some(p.name.clone()),
        version: Some(p.version.clone()),
        message: format!("{what} (runs code at build time) and is not in [{rule}] allow"),
        line,
        fix: Some(format!(
            "review vendor/{}-{}, then add \"{}\" to [{rule}] allow",
            p.name, p.version, p.name
        )),
    }
}

pub fn unused_allow(kind: Kind, name: &str, line: Option<usize>) -> Diagnostic {
    let (rule, _, code) = names(kind);
    Diagnostic {
        severity: Severity::Warning,
        code: match code {
            "build-script" => "build-script-allow-unused",
            _ => "proc-macro-allow-unused",
        },
        rule,
        package: Some(name.to_string()),
        version: None,
        message: format!("is allowed in [{rule}] but no such dependency runs code at build time"),
        line,
        fix: Some(format!("remove it from [{rule}] allow")),
    }
}
