//! `vendor-policy.toml`: which dependencies a project accepts.
//!
//! Each rule is a module with its `cfg` (the TOML shape, with spans so that diagnostics can
//! name the policy line), its `diags` (messages with stable codes) and its check. Rules apply
//! to every locked package that is not a workspace member: that is exactly what is vendored.

pub mod bans;
pub mod build_time;
pub mod duplicates;
pub mod licenses;
pub mod sources;

use crate::error::{Error, Result};
use crate::manifest::DepManifest;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use toml::Spanned;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One policy finding. `code` is stable and documented in the README.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: &'static str,
    /// The rule's table in the policy file, e.g. `licenses`.
    pub rule: &'static str,
    pub package: Option<String>,
    pub version: Option<String>,
    pub message: String,
    /// 1-based line of the policy entry concerned.
    pub line: Option<usize>,
    pub fix: Option<String>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Human form, in the style of rustc's diagnostics.
    pub fn render(&self, policy_path: &Path) -> String {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let subject = match (&self.package, &self.version) {
            (Some(p), Some(v)) => format!("{p} {v}: "),
            (Some(p), None) => format!("{p}: "),
            _ => String::new(),
        };
        let mut s = format!("{level}[{}]: {subject}{}\n", self.code, self.message);
        let location = match self.line {
            Some(l) => format!("{}:{l}", policy_path.display()),
            None => policy_path.display().to_string(),
        };
        s.push_str(&format!("  --> {location} [{}]\n", self.rule));
        if let Some(fix) = &self.fix {
            s.push_str(&format!("  = fix: {fix}\n"));
        }
        s
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPolicy {
    sources: Option<sources::cfg::Config>,
    licenses: Option<licenses::cfg::Config>,
    #[serde(default)]
    bans: Vec<bans::cfg::Ban>,
    build_scripts: Option<build_time::cfg::Config>,
    proc_macros: Option<build_time::cfg::Config>,
    duplicates: Option<duplicates::cfg::Config>,
}

/// A loaded, validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub path: PathBuf,
    text: String,
    sources: sources::cfg::Config,
    licenses: Option<licenses::cfg::Config>,
    bans: Vec<bans::cfg::Ban>,
    build_scripts: Option<build_time::cfg::Config>,
    proc_macros: Option<build_time::cfg::Config>,
    duplicates: Option<duplicates::cfg::Config>,
}

impl Policy {
    /// The policy names `url` (a source string of Cargo.lock, with or without its
    /// `registry+`/`git+` prefix) among its registries or git repositories.
    pub fn lists_source(&self, url: &str) -> bool {
        sources::lists(&self.sources, url)
    }

    pub fn load(path: &Path) -> Result<Policy> {
        let text = crate::host::read_small(path, crate::lockfile::MAX_PROJECT_FILE)
            .and_then(|b| {
                String::from_utf8(b)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            })
            .map_err(|e| Error::Policy {
                path: path.to_path_buf(),
                line: None,
                message: format!("not readable as a UTF-8 file of at most 16 MiB: {e}"),
            })?;
        Policy::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Policy> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            Error::Policy {
                path: path.to_path_buf(),
                line,
                message: match line {
                    Some(l) => format!("line {l}: {}", e.message().trim()),
                    None => e.message().trim().to_string(),
                },
            }
        })?;
        let policy = Policy {
            path: path.to_path_buf(),
            text: text.to_string(),
            sources: raw.sources.unwrap_or_default(),
            licenses: raw.licenses,
            bans: raw.bans,
            build_scripts: raw.build_scripts,
            proc_macros: raw.proc_macros,
            duplicates: raw.duplicates,
        };
        let invalid = |span: std::ops::Range<usize>, message: String| Error::Policy {
            path: path.to_path_buf(),
            line: Some(line_of(text, span.start)),
            message: format!("line {}: {message}", line_of(text, span.start)),
        };
        if let Some(l) = &policy.licenses {
            l.validate().map_err(|(span, m)| invalid(span, m))?;
        }
        for ban in &policy.bans {
            ban.validate().map_err(|(span, m)| invalid(span, m))?;
        }
        Ok(policy)
    }

    /// 1-based line of a span in the policy file.
    pub(crate) fn line<T>(&self, spanned: &Spanned<T>) -> Option<usize> {
        Some(line_of(&self.text, spanned.span().start))
    }

    /// Every finding of every rule, sorted (errors first, then by package).
    pub fn check(&self, manifest: &DepManifest) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        sources::check(self, &self.sources, manifest, &mut out);
        if let Some(cfg) = &self.licenses {
            licenses::check(self, cfg, manifest, &mut out);
        }
        bans::check(self, &self.bans, manifest, &mut out);
        if let Some(cfg) = &self.build_scripts {
            build_time::check(self, build_time::Kind::BuildScript, cfg, manifest, &mut out);
        }
        if let Some(cfg) = &self.proc_macros {
            build_time::check(self, build_time::Kind::ProcMacro, cfg, manifest, &mut out);
        }
        if let Some(cfg) = &self.duplicates {
            duplicates::check(self, cfg, manifest, &mut out);
        }
        out.sort();
        out
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// `path` lies in the project (by real location): in its directory, or in any directory
/// above it that belongs to it (holds a `Cargo.toml`, the workspace's root, or `.git`, the
/// checkout's). A policy there is the project's, whoever names it on the command line.
pub fn belongs_to_project(path: &Path, project: &Path) -> bool {
    let (Ok(p), Ok(d)) = (std::fs::canonicalize(path), std::fs::canonicalize(project)) else {
        // Not resolvable: not the user's to vouch for.
        return true;
    };
    d.ancestors().enumerate().any(|(i, a)| {
        (i == 0 || a.join("Cargo.toml").exists() || a.join(".git").exists()) && p.starts_with(a)
    })
}

#[cfg(test)]
mod tests;
