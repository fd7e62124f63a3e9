//! Driver for `bench/attest.sh`: times hermetic's attest stage on its own.
//!
//!   attest-bench hash DIR               digests every file under DIR (as builds do)
//!   attest-bench archive DIR OUT EPOCH  deterministic tar.gz of DIR's files
//!   attest-bench docs CRATES            SBOMs + provenance for a CRATES-package manifest

use hermetic_attest::digest::digest_files;
use hermetic_attest::record::*;
use hermetic_deps::manifest::{Dependency, Package};
use hermetic_deps::{DepManifest, Source};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).expect("prefix").to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn record(crates: usize) -> BuildRecord {
    let hex = |i: usize| format!("{:064x}", i * 7919 + 1);
    let mut packages: Vec<Package> = (0..crates)
        .map(|i| Package {
            id: format!("crate{i:04}@1.{}.0", i % 7),
            name: format!("crate{i:04}"),
            version: format!("1.{}.0", i % 7),
            source: Source::Registry {
                name: "crates-io".into(),
                url: "https://github.com/rust-lang/crates.io-index".into(),
            },
            checksum: Some(hex(i)),
            license: Some("MIT OR Apache-2.0".into()),
            license_file: None,
            build_script: i % 10 == 0,
            proc_macro: i % 25 == 0,
            workspace_member: false,
            bin_targets: vec![],
            bin_required_features: Default::default(),
            features: Default::default(),
            vendor_dir: Some(format!("crate{i:04}-1.{}.0", i % 7)),
            // A few edges to later crates, like a real graph.
            enabled_features: vec![],
            dependencies: (1..=4)
                .map(|k| i + k * 13)
                .filter(|&j| j < crates)
                .map(|j| Dependency {
                    id: format!("crate{j:04}@1.{}.0", j % 7),
                    kinds: vec!["normal".into()],
                })
                .collect(),
        })
        .collect();
    packages.push(Package {
        id: "app@1.0.0".into(),
        name: "app".into(),
        version: "1.0.0".into(),
        source: Source::Path { path: ".".into() },
        checksum: None,
        license: Some("MIT".into()),
        license_file: None,
        build_script: false,
        proc_macro: false,
        workspace_member: true,
        bin_targets: vec!["app".into()],
        bin_required_features: Default::default(),
        features: Default::default(),
        vendor_dir: None,
        enabled_features: vec![],
        dependencies: (0..crates.min(30))
            .map(|j| Dependency {
                id: format!("crate{j:04}@1.{}.0", j % 7),
                kinds: vec!["normal".into()],
            })
            .collect(),
    });
    packages.sort_by(|a, b| a.id.cmp(&b.id));
    BuildRecord {
        format: FORMAT,
        hermetic_version: "bench".into(),
        package: PackageRef {
            name: "app".into(),
            version: "1.0.0".into(),
        },
        target: "x86_64-unknown-linux-gnu".into(),
        archive: "app.tar.gz".into(),
        artifacts: vec![],
        source: SourceRef {
            uri: None,
            commit: None,
            dirty: false,
            tree_sha256: hex(1),
            files: 1,
            manifest_path: "Cargo.toml".into(),
        },
        profile: "release".into(),
        features: vec![],
        source_date_epoch: 1_700_000_000,
        source_date_epoch_origin: "bench".into(),
        lockfile_sha256: hex(2),
        vendor_tree_sha256: hex(3),
        image: ImageRef {
            reference: "b".into(),
            digest: format!("sha256:{}", hex(4)),
            toolchain: None,
            definition: None,
        },
        environment: Environment {
            variables: vec![],
            command: vec![],
            container: serde_json::json!({}),
            variations: vec![],
        },
        runner: Runner {
            id: "local".into(),
            engine: "bench".into(),
        },
        run: RunTimes {
            invocation_id: "bench".into(),
            started_unix: 0,
            finished_unix: 1,
            stages: Default::default(),
        },
        log: None,
        deps: DepManifest {
            format: hermetic_deps::manifest::FORMAT,
            lockfile_sha256: hex(2),
            vendor_key: hex(5),
            workspace_members: vec!["app@1.0.0".into()],
            packages,
            vendored: vec![],
        },
        verified_by: vec![],
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("hash") => {
            let dir = PathBuf::from(&args[2]);
            let list = files(&dir);
            let t = Instant::now();
            let d = digest_files(&dir, &list).expect("digest");
            let bytes: u64 = d.iter().map(|f| f.size).sum();
            let secs = t.elapsed().as_secs_f64();
            println!("{} files, {bytes} bytes, {secs:.3} s", d.len());
        }
        Some("archive") => {
            let dir = PathBuf::from(&args[2]);
            let entries: Vec<_> = files(&dir)
                .into_iter()
                .map(|f| hermetic_attest::archive::Entry {
                    name: f.to_string_lossy().into_owned(),
                    source: dir.join(&f),
                    executable: false,
                })
                .collect();
            let epoch: i64 = args[4].parse().expect("epoch");
            hermetic_attest::archive::write_tar_gz(Path::new(&args[3]), "out", &entries, epoch)
                .expect("archive");
        }
        Some("docs") => {
            let crates: usize = args[2].parse().expect("count");
            let rec = record(crates);
            let t = Instant::now();
            let (spdx, cdx) = hermetic_attest::documents::sboms(&rec);
            let prov = hermetic_attest::provenance::statement(&rec).to_bytes();
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{crates} crates: SPDX {} B, CycloneDX {} B, provenance {} B in {secs:.4} s",
                spdx.len(),
                cdx.len(),
                prov.len()
            );
        }
        _ => eprintln!("usage: attest-bench hash DIR | archive DIR OUT EPOCH | docs CRATES"),
    }
}
