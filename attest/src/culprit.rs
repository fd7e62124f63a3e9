//! The crates that cause a mismatch: what two runners made on the way to their outputs
//! (every crate's rlib, rmeta and objects, every build script's output and generated
//! files, hashed inside each container), compared, and ordered by the dependency graph.
//! A crate that differs while none of its dependencies does is a culprit; the crates
//! built on it only inherit the difference.

use hermetic_deps::DepManifest;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Path under `target/release` → SHA-256, from `sha256sum` lines (hostile text: a line
/// that is not `HEX  PATH` is skipped).
pub fn parse_sums(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (sum, path) = l.split_once("  ")?;
            (sum.len() == 64 && sum.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| (path.trim_start_matches("./").to_string(), sum.to_string()))
        })
        .collect()
}

/// Each build script's `output` (cargo's `cargo:` lines), by `build/PKG-HASH` directory.
pub fn parse_build_outputs(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(path) = line.strip_prefix("== ") {
            let dir = path.trim_end_matches("/output").to_string();
            out.entry(dir.clone()).or_default();
            current = Some(dir);
        } else if let Some(dir) = &current
            && !line.is_empty()
        {
            out.entry(dir.clone()).or_default().push(line.to_string());
        }
    }
    out
}

/// One runner's intermediates.
#[derive(Debug, Clone, Default)]
pub struct Made {
    pub sums: BTreeMap<String, String>,
    pub build_outputs: BTreeMap<String, Vec<String>>,
    /// The runner's build path, which build scripts may print (`OUT_DIR`): replaced before
    /// their lines are compared.
    pub build_path: String,
}

/// The most either intermediates file may weigh when read back (the container wrote it).
const MAX_READ: u64 = 16 << 20;

impl Made {
    /// What a runner's build made on the way, from the files its container left
    /// (`sums`, and `build_outputs` if there): read as bounded regular files, parsed
    /// leniently. `None` without the sums.
    pub fn read(
        sums: &std::path::Path,
        build_outputs: &std::path::Path,
        build_path: &str,
    ) -> Option<Made> {
        let read = |p: &std::path::Path| {
            hermetic_deps::host::read_small(p, MAX_READ)
                .ok()
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        };
        Some(Made {
            sums: parse_sums(&read(sums)?),
            build_outputs: parse_build_outputs(&read(build_outputs).unwrap_or_default()),
            build_path: build_path.to_string(),
        })
    }
}

/// A line of a build script's output that differs: the reference's and the other's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineDiff {
    pub reference: Option<String>,
    pub other: Option<String>,
}

/// A crate whose own artifacts differ while those of everything it depends on agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Culprit {
    pub name: String,
    pub version: String,
    pub workspace_member: bool,
    /// Its build script's output or generated files differ: the build script is the cause.
    pub build_script: bool,
    /// The differing files (under `target/release`), at most a few.
    pub artifacts: Vec<String>,
    /// The differing lines of its build script's output.
    pub lines: Vec<LineDiff>,
    /// What in the crate's build is known to differ every time, when the graph tells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspect: Option<Suspect>,
}

/// Why a culprit's own build differs, read off the dependency graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Suspect {
    /// One of its features is known to make every build differ.
    Feature { feature: String, why: String },
    /// It depends on a crate that makes random values at compile time.
    CompileTimeRandomness {
        via: String,
        /// Its features that are on (one of them asks for `via`).
        features: Vec<String>,
    },
    /// It expands proc macros: code that runs anew in every rustc process.
    ProcMacros { names: Vec<String> },
}

/// Features known to change a crate's every build, and how.
const RANDOM_FEATURES: &[(&str, &str, &str)] = &[
    (
        "ahash",
        "compile-time-rng",
        "seeds its hashers with random constants made at compile time (const-random)",
    ),
    (
        "ahash",
        "const-random",
        "seeds its hashers with random constants made at compile time",
    ),
];

/// Crates whose purpose is random values at compile time.
const COMPILE_TIME_RANDOM: &[&str] = &["const-random", "const-random-macro", "compile-time-rng"];

/// What the graph says of why `p`'s build differs: a known feature, a compile-time random
/// dependency, or the proc macros it expands (a crate without a differing build script).
fn suspect(
    p: &hermetic_deps::Package,
    by_id: &BTreeMap<&str, &hermetic_deps::Package>,
    build_script: bool,
) -> Option<Suspect> {
    if let Some((_, feature, why)) = RANDOM_FEATURES
        .iter()
        .find(|(name, f, _)| *name == p.name && p.enabled_features.iter().any(|e| e == f))
    {
        return Some(Suspect::Feature {
            feature: feature.to_string(),
            why: why.to_string(),
        });
    }
    let direct: Vec<&hermetic_deps::Package> = p
        .dependencies
        .iter()
        .filter(|d| d.kinds.iter().any(|k| k != "dev"))
        .filter_map(|d| by_id.get(d.id.as_str()).copied())
        .collect();
    if let Some(dep) = direct
        .iter()
        .find(|d| COMPILE_TIME_RANDOM.contains(&d.name.as_str()))
    {
        return Some(Suspect::CompileTimeRandomness {
            via: dep.name.clone(),
            features: p.enabled_features.clone(),
        });
    }
    let macros: Vec<String> = direct
        .iter()
        .filter(|d| d.proc_macro)
        .map(|d| d.name.clone())
        .collect();
    (!build_script && !macros.is_empty()).then_some(Suspect::ProcMacros { names: macros })
}

/// The crate a target-directory path belongs to, by name as cargo writes it (`-` and `_`
/// alike): `build/PKG-HASH/…` or `deps/[lib]NAME-HASH[.ext]`.
fn crate_of(path: &str) -> Option<(String, bool)> {
    let norm = |s: &str| s.replace('-', "_");
    if let Some(rest) = path.strip_prefix("build/") {
        let dir = rest.split('/').next()?;
        let (name, _hash) = dir.rsplit_once('-')?;
        return Some((norm(name), true));
    }
    let file = path.strip_prefix("deps/")?;
    let stem = file.split('.').next()?;
    let (name, _hash) = stem.rsplit_once('-')?;
    let lib = file.ends_with(".rlib")
        || file.ends_with(".rmeta")
        || file.ends_with(".so")
        || file.ends_with(".a");
    let name = if lib {
        name.strip_prefix("lib").unwrap_or(name)
    } else {
        name
    };
    Some((norm(name), false))
}

/// The culprit crates of two runners' intermediates, dependencies first.
pub fn culprits(reference: &Made, other: &Made, deps: &DepManifest) -> Vec<Culprit> {
    // Differing files, by crate.
    let mut differing: BTreeMap<String, (bool, Vec<String>)> = BTreeMap::new();
    let paths: BTreeSet<&String> = reference.sums.keys().chain(other.sums.keys()).collect();
    for path in paths {
        if reference.sums.get(path) == other.sums.get(path) {
            continue;
        }
        // A build script's `output` is compared by its lines, paths replaced.
        if path.ends_with("/output") {
            continue;
        }
        if let Some((name, build)) = crate_of(path) {
            let e = differing.entry(name).or_default();
            e.0 |= build;
            e.1.push(path.clone());
        }
    }
    let mut lines_of: BTreeMap<String, Vec<LineDiff>> = BTreeMap::new();
    let dirs: BTreeSet<&String> = reference
        .build_outputs
        .keys()
        .chain(other.build_outputs.keys())
        .collect();
    for dir in dirs {
        let norm = |m: &Made| -> Vec<String> {
            m.build_outputs
                .get(dir)
                .map(|ls| {
                    ls.iter()
                        .map(|l| {
                            if m.build_path.is_empty() {
                                l.clone()
                            } else {
                                l.replace(&m.build_path, "$BUILD")
                            }
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let (a, b) = (norm(reference), norm(other));
        // Hostile text, shown in a report: each line cut to a report line.
        let short = |l: &String| crate::compare::clip(l);
        if a == b {
            continue;
        }
        let diff: Vec<LineDiff> = a
            .iter()
            .filter(|l| !b.contains(l))
            .map(|l| LineDiff {
                reference: Some(short(l)),
                other: None,
            })
            .chain(b.iter().filter(|l| !a.contains(l)).map(|l| LineDiff {
                reference: None,
                other: Some(short(l)),
            }))
            .collect();
        let Some((name, _)) = crate_of(dir) else {
            continue;
        };
        let e = differing.entry(name.clone()).or_default();
        e.0 = true;
        e.1.push(format!("{dir}/output"));
        lines_of.entry(name).or_default().extend(diff);
    }
    // The packages that differ, and the culprits among them: none of whose dependencies
    // (by the graph, transitively) differs.
    let norm = |s: &str| s.replace('-', "_");
    let differs = |p: &hermetic_deps::Package| differing.contains_key(&norm(&p.name));
    let by_id: BTreeMap<&str, &hermetic_deps::Package> =
        deps.packages.iter().map(|p| (p.id.as_str(), p)).collect();
    let depends_on_differing = |p: &hermetic_deps::Package| {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> = p.dependencies.iter().map(|d| d.id.as_str()).collect();
        while let Some(id) = todo.pop() {
            if !seen.insert(id) {
                continue;
            }
            let Some(dep) = by_id.get(id) else { continue };
            if differs(dep) {
                return true;
            }
            todo.extend(dep.dependencies.iter().map(|d| d.id.as_str()));
        }
        false
    };
    let mut out: Vec<Culprit> = deps
        .packages
        .iter()
        .filter(|p| differs(p) && !depends_on_differing(p))
        .map(|p| {
            let (build, files) = differing.get(&norm(&p.name)).cloned().unwrap_or_default();
            Culprit {
                suspect: suspect(p, &by_id, build),
                name: p.name.clone(),
                version: p.version.clone(),
                workspace_member: p.workspace_member,
                build_script: build,
                artifacts: files.into_iter().take(4).collect(),
                lines: lines_of
                    .get(&norm(&p.name))
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .take(8)
                    .collect(),
            }
        })
        .collect();
    out.sort_by(|a, b| (a.workspace_member, &a.name).cmp(&(b.workspace_member, &b.name)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A graph: app (member) → stamper (member, build script) → itoa.
    fn graph() -> DepManifest {
        serde_json::from_value(serde_json::json!({
            "format": 1, "lockfile_sha256": "l", "vendor_key": "k",
            "workspace_members": ["app@0.1.0", "stamper@0.1.0"],
            "packages": [
                {"id": "app@0.1.0", "name": "app", "version": "0.1.0",
                 "source": {"kind": "path", "path": "."}, "checksum": null, "license": null,
                 "license_file": null, "build_script": false, "proc_macro": false,
                 "workspace_member": true, "bin_targets": ["app"], "vendor_dir": null,
                 "dependencies": [{"id": "stamper@0.1.0", "kinds": ["normal"]}]},
                {"id": "stamper@0.1.0", "name": "stamper", "version": "0.1.0",
                 "source": {"kind": "path", "path": "stamper"}, "checksum": null,
                 "license": null, "license_file": null, "build_script": true,
                 "proc_macro": false, "workspace_member": true, "bin_targets": [],
                 "vendor_dir": null,
                 "dependencies": [{"id": "itoa@1.0.19", "kinds": ["normal"]}]},
                {"id": "itoa@1.0.19", "name": "itoa", "version": "1.0.19",
                 "source": {"kind": "registry", "name": "crates-io",
                            "url": "https://github.com/rust-lang/crates.io-index"},
                 "checksum": "3b", "license": "MIT", "license_file": null,
                 "build_script": false, "proc_macro": false, "workspace_member": false,
                 "bin_targets": [], "vendor_dir": "itoa-1.0.19", "dependencies": []}
            ],
            "vendored": []
        }))
        .expect("manifest")
    }

    fn made(stamp: &str, path: &str, rlib: &str) -> Made {
        let sums = format!(
            "{a}  deps/libitoa-0a1b.rlib\n{b}  deps/libstamper-9f8e.rlib\n{c}  deps/app-77aa\n\
             {d}  build/stamper-1234/output\nnot a line\n",
            a = "1".repeat(64),
            b = rlib.repeat(64),
            c = rlib.repeat(64),
            d = "4".repeat(64)
        );
        Made {
            sums: parse_sums(&sums),
            build_outputs: parse_build_outputs(&format!(
                "== build/stamper-1234/output\ncargo:rustc-env=STAMP={stamp}\n\
                 cargo:rustc-link-search={path}/work/target/release/build/stamper-1234/out\n"
            )),
            build_path: path.into(),
        }
    }

    #[test]
    fn the_first_crate_that_differs_is_the_culprit_and_its_lines_are_shown() {
        let a = made("1796151783", "/hermetic", "2");
        let b = made("1796151790", "/srv/build2", "3");
        let c = culprits(&a, &b, &graph());
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].name, "stamper");
        assert!(c[0].build_script && c[0].workspace_member);
        // Only the stamp differs: the search path names each runner's build path.
        assert_eq!(
            c[0].lines,
            vec![
                LineDiff {
                    reference: Some("cargo:rustc-env=STAMP=1796151783".into()),
                    other: None
                },
                LineDiff {
                    reference: None,
                    other: Some("cargo:rustc-env=STAMP=1796151790".into())
                },
            ]
        );
        assert!(
            c[0].artifacts
                .iter()
                .any(|p| p == "deps/libstamper-9f8e.rlib")
        );
    }

    #[test]
    fn a_dependency_that_differs_is_blamed_not_what_is_built_on_it() {
        let mut a = made("1", "/hermetic", "2");
        let mut b = made("1", "/hermetic", "3");
        a.sums
            .insert("deps/libitoa-0a1b.rlib".into(), "5".repeat(64));
        b.sums
            .insert("deps/libitoa-0a1b.rlib".into(), "6".repeat(64));
        let c = culprits(&a, &b, &graph());
        assert_eq!(
            c.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["itoa"]
        );
        assert!(!c[0].workspace_member && !c[0].build_script);
        // Nothing differs: no culprit.
        assert!(culprits(&a, &a, &graph()).is_empty());
    }

    /// A package of a test graph.
    fn package(id: &str, features: &[&str], proc_macro: bool, deps: &[&str]) -> serde_json::Value {
        let (name, version) = id.split_once('@').expect("name@version");
        serde_json::json!({
            "id": id, "name": name, "version": version,
            "source": {"kind": "registry", "name": "crates-io",
                       "url": "https://github.com/rust-lang/crates.io-index"},
            "checksum": "00", "license": null, "license_file": null, "build_script": false,
            "proc_macro": proc_macro, "workspace_member": name == "app", "bin_targets": [],
            "enabled_features": features, "vendor_dir": null,
            "dependencies": deps.iter()
                .map(|d| serde_json::json!({"id": d, "kinds": ["normal"]}))
                .collect::<Vec<_>>()
        })
    }

    fn manifest(packages: Vec<serde_json::Value>) -> DepManifest {
        serde_json::from_value(serde_json::json!({
            "format": 1, "lockfile_sha256": "l", "vendor_key": "k",
            "workspace_members": ["app@0.1.0"], "packages": packages, "vendored": []
        }))
        .expect("manifest")
    }

    fn differing(name: &str) -> (Made, Made) {
        let sum = |c: &str| format!("{}  deps/lib{name}-0a1b.rlib\n", c.repeat(64));
        let made = |c: &str| Made {
            sums: parse_sums(&sum(c)),
            ..Made::default()
        };
        (made("1"), made("2"))
    }

    #[test]
    fn a_known_random_feature_is_named() {
        let deps = manifest(vec![
            package("app@0.1.0", &[], false, &["ahash@0.8.12"]),
            package(
                "ahash@0.8.12",
                &["compile-time-rng", "const-random", "std"],
                false,
                &["const-random@0.1.18"],
            ),
            package("const-random@0.1.18", &[], false, &[]),
        ]);
        let (a, b) = differing("ahash");
        let c = culprits(&a, &b, &deps);
        assert_eq!(c[0].name, "ahash");
        assert!(
            matches!(&c[0].suspect, Some(Suspect::Feature { feature, .. }) if feature == "compile-time-rng"),
            "{c:?}"
        );
        // Without that feature on, the dependency on const-random still tells.
        let deps = manifest(vec![
            package("app@0.1.0", &[], false, &["hasher@1.0.0"]),
            package("hasher@1.0.0", &["seeded"], false, &["const-random@0.1.18"]),
            package("const-random@0.1.18", &[], false, &[]),
        ]);
        let (a, b) = differing("hasher");
        assert_eq!(
            culprits(&a, &b, &deps)[0].suspect,
            Some(Suspect::CompileTimeRandomness {
                via: "const-random".into(),
                features: vec!["seeded".into()]
            })
        );
    }

    #[test]
    fn a_crate_that_differs_alone_names_the_proc_macros_it_expands() {
        let deps = manifest(vec![
            package("app@0.1.0", &[], false, &["tabler@0.1.0", "itoa@1.0.0"]),
            package("tabler@0.1.0", &[], true, &[]),
            package("itoa@1.0.0", &[], false, &[]),
        ]);
        let (a, b) = differing("app");
        assert_eq!(
            culprits(&a, &b, &deps)[0].suspect,
            Some(Suspect::ProcMacros {
                names: vec!["tabler".into()]
            })
        );
        // A crate with none is suspected of nothing.
        let (a, b) = differing("itoa");
        assert_eq!(culprits(&a, &b, &deps)[0].suspect, None);
    }

    #[test]
    fn intermediates_are_read_back_bounded_and_without_links() {
        let dir = tempfile::tempdir().expect("tmp");
        let (sums, outs) = (dir.path().join("s"), dir.path().join("o"));
        std::fs::write(&sums, format!("{}  deps/libx-1.rlib\n", "a".repeat(64))).expect("w");
        let m = Made::read(&sums, &outs, "/hermetic").expect("read");
        assert_eq!(m.sums.len(), 1);
        assert!(m.build_outputs.is_empty(), "no outputs file: none");
        // A link the container left is not followed.
        std::fs::remove_file(&sums).expect("rm");
        std::os::unix::fs::symlink("/etc/hostname", &sums).expect("ln");
        assert!(Made::read(&sums, &outs, "/hermetic").is_none());
    }

    #[test]
    fn paths_name_their_crates() {
        assert_eq!(
            crate_of("deps/libfoo_bar-0a.rlib"),
            Some(("foo_bar".into(), false))
        );
        assert_eq!(
            crate_of("deps/foo-bar-0a.o"),
            Some(("foo_bar".into(), false))
        );
        assert_eq!(
            crate_of("build/foo-bar-0a/out/x.rs"),
            Some(("foo_bar".into(), true))
        );
        assert_eq!(crate_of("deps/app-77aa"), Some(("app".into(), false)));
        assert_eq!(crate_of("elsewhere"), None);
    }
}
