//! `[licenses]`: every dependency's SPDX expression must be satisfiable by the allowed
//! licenses (plus that crate's exceptions).

pub mod cfg;
pub mod diags;

use super::{Diagnostic, Policy};
use crate::manifest::DepManifest;
use std::collections::BTreeSet;

pub(crate) fn check(
    policy: &Policy,
    cfg: &cfg::Config,
    manifest: &DepManifest,
    out: &mut Vec<Diagnostic>,
) {
    let mut used: BTreeSet<&str> = BTreeSet::new();
    for p in manifest.dependencies() {
        let exception = cfg.exceptions.iter().find(|e| e.krate.get_ref() == &p.name);
        let line = exception
            .and_then(|e| policy.line(&e.krate))
            .or_else(|| policy.line(&cfg.allow));
        let Some(text) = p.license.as_deref() else {
            out.push(diags::missing(p, line));
            continue;
        };
        let expr = match spdx::Expression::parse_mode(text, spdx::ParseMode::LAX) {
            Ok(e) => e,
            Err(e) => {
                out.push(diags::invalid(p, text, &e.reason.to_string(), line));
                continue;
            }
        };
        let allowed = |id: &str| {
            cfg.allow.get_ref().iter().any(|a| a.get_ref() == id)
                || exception.is_some_and(|e| e.allow.iter().any(|a| a.get_ref() == id))
        };
        if expr.evaluate(|req| allowed(&license_name(&req.license))) {
            // Every allowed license the expression mentions counts as needed: with
            // `MIT OR Apache-2.0`, removing either entry still leaves the crate accepted,
            // but removing both does not.
            let mentioned: Vec<String> = expr
                .requirements()
                .map(|r| license_name(&r.req.license))
                .collect();
            used.extend(
                cfg.allow
                    .get_ref()
                    .iter()
                    .map(|a| a.get_ref().as_str())
                    .filter(|a| mentioned.iter().any(|m| m == a)),
            );
        } else {
            let rejected: Vec<String> = expr
                .requirements()
                .map(|r| license_name(&r.req.license))
                .filter(|id| !allowed(id))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            out.push(diags::rejected(p, text, &rejected, line));
        }
    }
    for a in cfg.allow.get_ref() {
        if !used.contains(a.get_ref().as_str()) {
            out.push(diags::unused_allow(a.get_ref(), policy.line(a)));
        }
    }
}

fn license_name(item: &spdx::LicenseItem) -> String {
    match item {
        spdx::LicenseItem::Spdx { id, .. } => id.name.to_string(),
        spdx::LicenseItem::Other(other) => format!("LicenseRef-{}", other.lic_ref),
    }
}
