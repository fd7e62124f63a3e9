//! The dependency manifest (`deps.json`): what later stages know about dependencies.

use crate::error::{Error, IoContext, Result};
pub use crate::lockfile::{GitReference, Source};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Bumped whenever the shape of `deps.json` changes incompatibly.
pub const FORMAT: u32 = 1;

/// Every package of the locked dependency graph, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepManifest {
    pub format: u32,
    /// SHA-256 of the Cargo.lock this was made from.
    pub lockfile_sha256: String,
    /// Digest of the vendored package set (see `Lockfile::vendor_key`).
    pub vendor_key: String,
    /// Ids of the workspace members, sorted.
    pub workspace_members: Vec<String>,
    /// All packages of the resolve, sorted by id: what the build uses.
    pub packages: Vec<Package>,
    /// Every crate in `vendor/`: all external packages of Cargo.lock, which also pins
    /// optional dependencies that the resolve does not use.
    pub vendored: Vec<VendoredCrate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VendoredCrate {
    /// Directory under `vendor/` (`NAME-VERSION`).
    pub dir: String,
    pub name: String,
    pub version: String,
    /// The Cargo.lock source string.
    pub source: String,
    /// Cargo.lock checksum (SHA-256 of the `.crate` archive); none for git packages.
    pub checksum: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// `name@version`, or `name@version+source` when two sources share a name and version.
    pub id: String,
    pub name: String,
    pub version: String,
    pub source: Source,
    /// The Cargo.lock checksum (SHA-256 of the `.crate` archive) for registry packages.
    pub checksum: Option<String>,
    /// The SPDX license expression from the package manifest, as written.
    pub license: Option<String>,
    pub license_file: Option<String>,
    /// Has a build script (runs code at build time).
    pub build_script: bool,
    /// Is a procedural macro (runs code at build time).
    pub proc_macro: bool,
    pub workspace_member: bool,
    /// Binary targets (workspace members only): what a release build produces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bin_targets: Vec<String>,
    /// The `required-features` of binary targets that have some: cargo builds those only
    /// when the features are on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bin_required_features: BTreeMap<String, Vec<String>>,
    /// The `[features]` table (workspace members only), to tell which features are on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub features: BTreeMap<String, Vec<String>>,
    /// The features cargo resolves on for it (the workspace's default features): what a
    /// report names when a crate's feature makes its build differ.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enabled_features: Vec<String>,
    /// Directory under `vendor/`, for vendored packages.
    pub vendor_dir: Option<String>,
    pub dependencies: Vec<Dependency>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub id: String,
    /// `normal`, `build` and/or `dev`, sorted.
    pub kinds: Vec<String>,
}

impl Package {
    /// Purl of the package (`pkg:cargo/NAME@VERSION`), for SBOMs and provenance.
    pub fn purl(&self) -> String {
        format!("pkg:cargo/{}@{}", self.name, self.version)
    }

    /// The package's own features that are on with its default features and `requested`
    /// (as `--features` takes them: `name` or `package/name`).
    pub fn features_on(&self, requested: &[String]) -> BTreeSet<String> {
        let mut on = BTreeSet::new();
        let mut todo: Vec<String> = vec!["default".into()];
        for r in requested {
            match r.split_once('/') {
                Some((package, feature)) if package == self.name => todo.push(feature.into()),
                Some(_) => {}
                None => todo.push(r.clone()),
            }
        }
        while let Some(f) = todo.pop() {
            if !on.insert(f.clone()) {
                continue;
            }
            // `dep:x` and `x/y` enable dependencies' features, not this package's.
            for item in self.features.get(&f).into_iter().flatten() {
                if !item.contains('/') && !item.starts_with("dep:") {
                    todo.push(item.clone());
                }
            }
        }
        on
    }

    /// Binary targets that a build with `requested` features makes: cargo skips those
    /// whose required features are not all on.
    pub fn bins_built(&self, requested: &[String]) -> Vec<String> {
        let on = self.features_on(requested);
        self.bin_targets
            .iter()
            .filter(|b| {
                self.bin_required_features
                    .get(*b)
                    .into_iter()
                    .flatten()
                    // A dependency's feature (`dep/feature`) is taken as on; if it is not,
                    // the output is reported missing.
                    .all(|f| f.contains('/') || on.contains(f))
            })
            .cloned()
            .collect()
    }

    /// True if the package runs code while being built.
    pub fn runs_build_time_code(&self) -> bool {
        self.build_script || self.proc_macro
    }
}

impl DepManifest {
    pub fn package(&self, id: &str) -> Option<&Package> {
        self.packages
            .binary_search_by(|p| p.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.packages[i])
    }

    /// Binary targets of workspace members that a build with `requested` features (as
    /// `--features` takes them) makes, sorted.
    pub fn binaries_built(&self, requested: &[String]) -> Vec<String> {
        let mut bins: Vec<String> = self
            .packages
            .iter()
            .filter(|p| p.workspace_member)
            .flat_map(|p| p.bins_built(requested))
            .collect();
        bins.sort();
        bins.dedup();
        bins
    }

    /// Binary targets of all workspace members, sorted.
    pub fn binaries(&self) -> Vec<String> {
        let mut bins: Vec<String> = self
            .packages
            .iter()
            .filter(|p| p.workspace_member)
            .flat_map(|p| p.bin_targets.iter().cloned())
            .collect();
        bins.sort();
        bins.dedup();
        bins
    }

    /// Packages that are not workspace members.
    pub fn dependencies(&self) -> impl Iterator<Item = &Package> {
        self.packages.iter().filter(|p| !p.workspace_member)
    }

    pub fn to_json(&self) -> String {
        // Serialising plain structs with string keys cannot fail.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    pub fn read(path: &Path) -> Result<DepManifest> {
        let text = std::fs::read_to_string(path).at(path)?;
        let m: DepManifest = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        if m.format != FORMAT {
            return Err(Error::BadVendorDir {
                path: path.to_path_buf(),
                detail: format!("deps.json format {} is not {FORMAT}", m.format),
            });
        }
        m.validate().map_err(|detail| Error::BadVendorDir {
            path: path.to_path_buf(),
            detail,
        })?;
        Ok(m)
    }

    /// Refuses names that would become paths outside their place: vendored directories,
    /// names, versions and checksums, and the binaries a build will copy out.
    pub fn validate(&self) -> std::result::Result<(), String> {
        use crate::validate;
        let field = |what: &str, value: &str, why: String| format!("{what} {value:?}: {why}");
        for v in &self.vendored {
            validate::package_name(&v.name).map_err(|w| field("vendored name", &v.name, w))?;
            validate::version(&v.version).map_err(|w| field("vendored version", &v.version, w))?;
            if v.dir != format!("{}-{}", v.name, v.version) {
                return Err(field(
                    "vendored dir",
                    &v.dir,
                    "must be NAME-VERSION of its own entry".into(),
                ));
            }
            if let Some(sum) = &v.checksum {
                validate::sha256_hex(sum).map_err(|w| field("checksum", sum, w))?;
            }
        }
        for p in &self.packages {
            validate::package_name(&p.name).map_err(|w| field("package name", &p.name, w))?;
            validate::version(&p.version).map_err(|w| field("package version", &p.version, w))?;
            if let Some(dir) = &p.vendor_dir
                && *dir != format!("{}-{}", p.name, p.version)
            {
                return Err(field("vendor_dir", dir, "must be NAME-VERSION".into()));
            }
            for bin in p.bin_targets.iter().chain(p.bin_required_features.keys()) {
                validate::path_component(bin).map_err(|w| field("binary", bin, w))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(features: &[(&str, &[&str])], bins: &[(&str, &[&str])]) -> Package {
        let owned = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Package {
            id: "app@1.0.0".into(),
            name: "app".into(),
            version: "1.0.0".into(),
            source: Source::Path { path: ".".into() },
            checksum: None,
            license: None,
            license_file: None,
            build_script: false,
            proc_macro: false,
            workspace_member: true,
            bin_targets: bins.iter().map(|(b, _)| b.to_string()).collect(),
            bin_required_features: bins
                .iter()
                .filter(|(_, r)| !r.is_empty())
                .map(|(b, r)| (b.to_string(), owned(r)))
                .collect(),
            features: features
                .iter()
                .map(|(f, l)| (f.to_string(), owned(l)))
                .collect(),
            vendor_dir: None,
            enabled_features: vec![],
            dependencies: vec![],
        }
    }

    #[test]
    fn binaries_whose_required_features_are_off_are_not_built() {
        let p = member(
            &[
                ("default", &["std"]),
                ("std", &[]),
                ("cli", &["dep:clap", "serde/derive", "color"]),
                ("color", &[]),
                ("clap", &["dep:clap"]),
            ],
            &[
                ("app", &[]),
                ("app-std", &["std"]),
                ("app-cli", &["cli"]),
                ("app-color", &["color"]),
                ("app-dep", &["serde/derive"]),
            ],
        );
        assert_eq!(p.bins_built(&[]), ["app", "app-std", "app-dep"]);
        // `cli` turns `color` on through the table; a dependency's feature is no feature of
        // the package's own.
        assert_eq!(
            p.bins_built(&["cli".into()]),
            ["app", "app-std", "app-cli", "app-color", "app-dep"]
        );
        assert_eq!(p.bins_built(&["app/color".into()]).len(), 4);
        assert_eq!(p.bins_built(&["other/color".into()]).len(), 3);
        assert!(p.features_on(&["cli".into()]).contains("color"));
        assert!(!p.features_on(&["cli".into()]).contains("serde"));
    }
}
