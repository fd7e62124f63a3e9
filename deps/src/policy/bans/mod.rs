//! `[[bans]]`: crates (optionally only some versions) that must not be in the graph.

pub mod cfg;
pub mod diags;

use super::{Diagnostic, Policy};
use crate::manifest::DepManifest;

pub(crate) fn check(
    policy: &Policy,
    bans: &[cfg::Ban],
    manifest: &DepManifest,
    out: &mut Vec<Diagnostic>,
) {
    for p in manifest.dependencies() {
        for ban in bans.iter().filter(|b| b.krate.get_ref() == &p.name) {
            let hit = match ban.version_req() {
                None => true,
                Some(req) => semver::Version::parse(&p.version).is_ok_and(|v| req.matches(&v)),
            };
            if hit {
                out.push(diags::banned(p, ban, policy.line(&ban.krate)));
            }
        }
    }
}
