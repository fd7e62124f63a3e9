//! `[sources]`: where packages may come from; git packages must be pinned to a commit.

pub mod cfg;
pub mod diags;

use super::{Diagnostic, Policy};
use crate::lockfile::{GitReference, Source};
use crate::manifest::DepManifest;

pub(crate) fn check(
    policy: &Policy,
    cfg: &cfg::Config,
    manifest: &DepManifest,
    out: &mut Vec<Diagnostic>,
) {
    for p in manifest.dependencies() {
        match &p.source {
            Source::Registry { name, url } => {
                let allowed = cfg.registries.get_ref().iter().any(|r| {
                    let r = r.get_ref();
                    r == name || normalize(r) == normalize(url)
                });
                if !allowed {
                    out.push(diags::registry_not_allowed(
                        p,
                        name,
                        policy.line(&cfg.registries),
                    ));
                }
            }
            Source::Git {
                url,
                reference,
                commit,
            } => {
                let entry = cfg
                    .git
                    .get_ref()
                    .iter()
                    .find(|g| normalize(g.get_ref()) == normalize(url));
                if entry.is_none() {
                    out.push(diags::git_not_allowed(p, url, policy.line(&cfg.git)));
                }
                let pinned = matches!(reference, Some(GitReference::Rev(r))
                    if r == commit && crate::hash::is_sha1_hex(r));
                if !pinned {
                    out.push(diags::git_not_pinned(
                        p,
                        reference.as_ref(),
                        commit,
                        entry.and_then(|e| policy.line(e)),
                    ));
                }
            }
            Source::Path { .. } => {}
        }
    }
}

/// `url` (a registry index or git repository, as Cargo.lock writes it) is named in `cfg`.
pub(crate) fn lists(cfg: &cfg::Config, url: &str) -> bool {
    let url = normalize(url.split(['?', '#']).next().unwrap_or_default());
    cfg.registries
        .get_ref()
        .iter()
        .chain(cfg.git.get_ref().iter())
        .any(|r| normalize(r.get_ref()) == url)
}

/// Compares URLs without the scheme prefix cargo adds, trailing slashes and `.git`.
fn normalize(url: &str) -> String {
    let url = url
        .strip_prefix("registry+")
        .or_else(|| url.strip_prefix("sparse+"))
        .or_else(|| url.strip_prefix("git+"))
        .unwrap_or(url);
    url.trim_end_matches('/')
        .trim_end_matches(".git")
        .to_ascii_lowercase()
}
