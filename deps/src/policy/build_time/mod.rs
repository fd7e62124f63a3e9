//! `[build-scripts]` and `[proc-macros]`: crates allowed to run code at build time. Both
//! rules share one shape; a crate that runs code and is not listed is a violation.

pub mod cfg;
pub mod diags;

use super::{Diagnostic, Policy};
use crate::manifest::DepManifest;
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    BuildScript,
    ProcMacro,
}

pub(crate) fn check(
    policy: &Policy,
    kind: Kind,
    cfg: &cfg::Config,
    manifest: &DepManifest,
    out: &mut Vec<Diagnostic>,
) {
    let mut used = BTreeSet::new();
    for p in manifest.dependencies() {
        let runs = match kind {
            Kind::BuildScript => p.build_script,
            Kind::ProcMacro => p.proc_macro,
        };
        if !runs {
            continue;
        }
        match cfg.allow.get_ref().iter().find(|a| a.get_ref() == &p.name) {
            Some(a) => {
                used.insert(a.get_ref().as_str());
            }
            None => out.push(diags::not_allowed(kind, p, policy.line(&cfg.allow))),
        }
    }
    for a in cfg.allow.get_ref() {
        if !used.contains(a.get_ref().as_str()) {
            out.push(diags::unused_allow(kind, a.get_ref(), policy.line(a)));
        }
    }
}
