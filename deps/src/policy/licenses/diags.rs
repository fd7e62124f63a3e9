use crate::manifest::Package;
use crate::policy::{Diagnostic, Severity};

fn error(
    p: &Package,
    code: &'static str,
    message: String,
    line: Option<usize>,
    fix: &str,
) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        code,
        rule: "licenses",
        package: Some(p.name.clone()),
        version: Some(p.version.clone()),
        message,
        line,
        fix: Some(fix.to_string()),
    }
}

pub fn rejected(
    p: &Package,
    expr: &str,
    not_allowed: &[String],
    line: Option<usize>,
) -> Diagnostic {
    error(
        p,
        "license-rejected",
        format!(
            "license `{expr}` cannot be satisfied by the allowed licenses (not allowed: {})",
            not_allowed.join(", ")
        ),
        line,
        &format!(
            "allow one of these licenses in [licenses] allow, or for this crate only: \
             exceptions = [{{ crate = \"{}\", allow = [\"{}\"] }}]",
            p.name,
            not_allowed.first().map(String::as_str).unwrap_or("…")
        ),
    )
}

pub fn missing(p: &Package, line: Option<usize>) -> Diagnostic {
    error(
        p,
        "license-missing",
        match &p.license_file {
            Some(f) => format!("declares no SPDX license expression, only a license file ({f})"),
            None => "declares no license".to_string(),
        },
        line,
        "read its license and ban the crate, or ask its authors to declare an SPDX expression",
    )
}

pub fn invalid(p: &Package, expr: &str, err: &str, line: Option<usize>) -> Diagnostic {
    error(
        p,
        "license-invalid",
        format!("license `{expr}` is not a valid SPDX expression: {err}"),
        line,
        "read its license and decide; an unparseable license is never accepted",
    )
}

pub fn unused_allow(id: &str, line: Option<usize>) -> Diagnostic {
    Diagnostic {
        severity: Severity::Warning,
        code: "license-allow-unused",
        rule: "licenses",
        package: None,
        version: None,
        message: format!("`{id}` is allowed but no dependency needs it"),
        line,
        fix: Some("remove it from [licenses] allow to keep the policy tight".into()),
    }
}
