use crate::policy::{Diagnostic, Severity};

pub fn too_many(name: &str, versions: &[&str], max: usize, line: Option<usize>) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        code: "duplicate-versions",
        rule: "duplicates",
        package: Some(name.to_string()),
        version: None,
        message: format!(
            "{} versions in the graph ({}), more than max-versions = {max}",
            versions.len(),
            versions.join(", ")
        ),
        line,
        fix: Some(format!(
            "`cargo tree -d -i {name}` shows who pulls each in; update them to agree"
        )),
    }
}
