use super::cfg::Ban;
use crate::manifest::Package;
use crate::policy::{Diagnostic, Severity};

pub fn banned(p: &Package, ban: &Ban, line: Option<usize>) -> Diagnostic {
    let versions = ban
        .versions
        .as_ref()
        .map(|v| format!(" (versions {})", v.get_ref()))
        .unwrap_or_default();
    let reason = ban
        .reason
        .as_ref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    Diagnostic {
        severity: Severity::Error,
        code: "banned",
        rule: "bans",
        package: Some(p.name.clone()),
        version: Some(p.version.clone()),
        message: format!("is banned{versions}{reason}"),
        line,
        fix: Some(format!(
            "remove the dependency on {} (`cargo tree -i {}@{}` shows who pulls it in)",
            p.name, p.name, p.version
        )),
    }
}
