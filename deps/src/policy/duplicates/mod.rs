//! `[duplicates]`: a limit on how many versions of one crate the graph may hold.

pub mod cfg;
pub mod diags;

use super::{Diagnostic, Policy};
use crate::manifest::DepManifest;
use std::collections::BTreeMap;

pub(crate) fn check(
    policy: &Policy,
    cfg: &cfg::Config,
    manifest: &DepManifest,
    out: &mut Vec<Diagnostic>,
) {
    let mut versions: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in manifest.dependencies() {
        versions.entry(&p.name).or_default().push(&p.version);
    }
    let max = *cfg.max_versions.get_ref();
    for (name, mut vs) in versions {
        vs.sort();
        vs.dedup();
        if vs.len() > max {
            out.push(diags::too_many(
                name,
                &vs,
                max,
                policy.line(&cfg.max_versions),
            ));
        }
    }
}
