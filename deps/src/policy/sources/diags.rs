use crate::lockfile::GitReference;
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
        rule: "sources",
        package: Some(p.name.clone()),
        version: Some(p.version.clone()),
        message,
        line,
        fix: Some(fix.to_string()),
    }
}

pub fn registry_not_allowed(p: &Package, registry: &str, line: Option<usize>) -> Diagnostic {
    error(
        p,
        "source-not-allowed",
        format!("comes from registry `{registry}`, which is not in [sources] registries"),
        line,
        "add the registry to [sources] registries, or depend on the crate from an allowed one",
    )
}

pub fn git_not_allowed(p: &Package, url: &str, line: Option<usize>) -> Diagnostic {
    error(
        p,
        "git-not-allowed",
        format!("comes from git repository {url}, which is not in [sources] git"),
        line,
        "add the repository to [sources] git, or use a published version",
    )
}

pub fn git_not_pinned(
    p: &Package,
    reference: Option<&GitReference>,
    commit: &str,
    line: Option<usize>,
) -> Diagnostic {
    let asked = match reference {
        Some(GitReference::Branch(b)) => format!("branch `{b}`"),
        Some(GitReference::Tag(t)) => format!("tag `{t}`"),
        Some(GitReference::Rev(r)) => format!("rev `{r}` (not a full commit id)"),
        None => "the default branch".to_string(),
    };
    error(
        p,
        "git-not-pinned",
        format!("git dependency follows {asked}, not a pinned commit"),
        line,
        &format!("in Cargo.toml, replace the branch/tag with rev = \"{commit}\""),
    )
}
