//! The builder image as a pure function of its definition: a Debian rootfs made by
//! `mmdebstrap` with a fixed `SOURCE_DATE_EPOCH` (bit-identical for the same package
//! versions), the toolchain's own files as its component manifests list them, and the build
//! user, each a deterministic layer; the configuration has fixed times. The same definition
//! gives the same image id on any machine, any day the mirror serves the same versions.
//!
//! The definition and what it gave are written to `hermetic-image.lock`, which a project
//! commits; every later bootstrap checks its result against it and names what differs.

use crate::error::{Error, IoContext, Result};
use crate::layers::{self, LayerWriter, Owner};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The lock file's name, in the directory bootstrap runs in unless `--lock` says otherwise.
pub const LOCK_FILE: &str = "hermetic-image.lock";

/// The packages every builder image has: a C compiler and libc headers for linking, and
/// libfaketime, which the `clock` variation preloads.
pub const BASE_PACKAGES: &[&str] = &["gcc", "libc6-dev", "libfaketime"];

/// The toolchain components an image carries (for the host target).
pub const COMPONENTS: &[&str] = &["rustc", "cargo", "rust-std"];

/// The layers, in order (their names sort in that order).
pub const LAYERS: [&str; 3] = ["1-rootfs", "2-toolchain", "3-builder"];

/// The uid and gid builds run as.
pub const BUILD_UID: u64 = 10001;

/// What defines an image: change any of it and the image changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Definition {
    /// Debian suite (`bookworm`).
    pub suite: String,
    /// Debian mirror, or a snapshot URL (`https://snapshot.debian.org/archive/debian/…`),
    /// which pins the package versions for good.
    pub mirror: String,
    /// Packages asked for, the base ones and the project's.
    pub packages: Vec<String>,
    /// The toolchain's version (`rustc -V`), e.g. `1.95.0`.
    pub rust: String,
    /// The host target the toolchain is for.
    pub target: String,
    /// Every file's time, and the image's.
    pub epoch: u64,
}

/// The lock: the definition, and what it gave, component by component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImageLock {
    pub format: u32,
    pub definition: Definition,
    /// The image id (`sha256:` of its configuration).
    pub image: String,
    /// Each layer's diff id: `rootfs`, `toolchain`, `builder`.
    pub layers: BTreeMap<String, String>,
    /// Each toolchain component's digest (of its files' names and contents).
    pub components: BTreeMap<String, String>,
    /// Every installed Debian package and its version.
    pub installed: BTreeMap<String, String>,
}

impl ImageLock {
    pub fn read(path: &Path) -> Result<Option<ImageLock>> {
        let bytes = match hermetic_deps::host::read_small(path, 1 << 20) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Io {
                    path: path.into(),
                    source: e,
                });
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        let lock: ImageLock = toml::from_str(&text).map_err(|e| Error::BadImageLock {
            path: path.into(),
            detail: e.message().to_string(),
        })?;
        let bad = |detail: String| Error::BadImageLock {
            path: path.into(),
            detail,
        };
        if lock.format != 1 {
            return Err(bad(format!(
                "format {} (this hermetic writes and reads format 1)",
                lock.format
            )));
        }
        lock.definition.validate().map_err(bad)?;
        let digest = |s: &str| {
            s.strip_prefix("sha256:")
                .is_some_and(hermetic_deps::hash::is_sha256_hex)
        };
        if !digest(&lock.image)
            || !lock.layers.values().all(|d| digest(d))
            || !lock.components.values().all(|d| digest(d))
        {
            return Err(bad("every digest must be sha256: and 64 hex digits".into()));
        }
        if lock.layers.keys().map(String::as_str).ne(LAYERS) {
            return Err(bad(format!("the layers must be {}", LAYERS.join(", "))));
        }
        let plain = |s: &str| {
            s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.:~_".contains(&b))
        };
        if !lock.installed.iter().all(|(k, v)| plain(k) && plain(v))
            || !lock.components.keys().all(|k| plain(k))
        {
            return Err(bad(
                "a package or component entry holds characters no Debian \
                 package or version has"
                    .into(),
            ));
        }
        Ok(Some(lock))
    }

    /// True if the lock's image id is what its layers and definition give: the id is the
    /// SHA-256 of a configuration made from nothing else.
    pub fn image_follows(&self) -> bool {
        let diff_ids: Vec<String> = self.layers.values().cloned().collect();
        let config = layers::config_json(&diff_ids, &settings(&self.definition));
        format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&config))
        ) == self.image
    }

    /// Written whole to a temporary file and renamed: a reader never sees half of it.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = format!(
            "# The builder image's definition and what it gave: written by `hermetic image \
             bootstrap`,\n# checked by every later one. Commit it.\n{}",
            toml::to_string(self).map_err(|e| Error::BadImageLock {
                path: path.into(),
                detail: e.to_string(),
            })?
        );
        // A new file of a random name (never a link the project planted), renamed over the
        // lock: the rename replaces a link at the lock's name, it does not follow it.
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile::Builder::new()
            .prefix(".hermetic-image.lock.")
            .tempfile_in(dir)
            .at(dir)?;
        std::io::Write::write_all(&mut tmp, text.as_bytes()).at(tmp.path())?;
        tmp.persist(path).map_err(|e| e.error).at(path)?;
        Ok(())
    }

    /// What differs between this machine's result (`self`) and the lock, one line each,
    /// the first causes first: the definition, the components, the packages, the layers.
    pub fn differences(&self, locked: &ImageLock) -> Vec<String> {
        let mut out = vec![];
        let (d, l) = (&self.definition, &locked.definition);
        let mut field = |name: &str, here: String, there: String| {
            if here != there {
                out.push(format!("{name}: {here:?} here, {there:?} in the lock"));
            }
        };
        field("suite", d.suite.clone(), l.suite.clone());
        field("mirror", d.mirror.clone(), l.mirror.clone());
        field("packages", d.packages.join(","), l.packages.join(","));
        field("rust", d.rust.clone(), l.rust.clone());
        field("target", d.target.clone(), l.target.clone());
        field("epoch", d.epoch.to_string(), l.epoch.to_string());
        let pairs = |a: &BTreeMap<String, String>, b: &BTreeMap<String, String>, what: &str| {
            let mut lines = vec![];
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) if x == y => {}
                    (Some(x), Some(y)) => {
                        lines.push(format!("{what} {k:?}: {x:?} here, {y:?} in the lock"))
                    }
                    (Some(x), None) => {
                        lines.push(format!("{what} {k:?}: {x:?} here, not in the lock"))
                    }
                    (None, Some(y)) => {
                        lines.push(format!("{what} {k:?}: not here, {y:?} in the lock"))
                    }
                    (None, None) => {}
                }
            }
            lines
        };
        out.extend(pairs(
            &self.components,
            &locked.components,
            "toolchain component",
        ));
        out.extend(pairs(&self.installed, &locked.installed, "package"));
        out.extend(pairs(&self.layers, &locked.layers, "layer"));
        if self.image != locked.image {
            out.push(format!(
                "image: {:?} here, {:?} in the lock",
                self.image, locked.image
            ));
        }
        out
    }
}

impl Definition {
    /// Every field becomes an argument of `mmdebstrap`, which runs as root: the lock is a
    /// project file, so nothing in it may be read as an option, a sources.list line
    /// (`[trusted=yes]`), a file or a hook.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let name = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.starts_with(|c: char| c.is_ascii_lowercase())
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if !name(&self.suite) {
            return Err(format!("suite {:?} is not a Debian suite name", self.suite));
        }
        if !is_mirror_url(&self.mirror) {
            return Err(format!(
                "mirror {:?} is not an http:// or https:// URL (nothing else: no options, \
                 sources lines or files)",
                self.mirror
            ));
        }
        let version = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        if !version(&self.rust) || !version(&self.target) {
            return Err(format!(
                "rust {:?} or target {:?} is not a toolchain version and target",
                self.rust, self.target
            ));
        }
        if self.packages.len() > 256 {
            return Err(format!("{} packages: at most 256", self.packages.len()));
        }
        if let Some(p) = self.packages.iter().find(|p| !is_debian_package(p)) {
            return Err(format!(
                "package {p:?} is not a Debian package name (lowercase letters, digits, `+`, \
                 `-`, `.`)"
            ));
        }
        Ok(())
    }
}

/// An `http://` or `https://` URL of plain characters: what a Debian mirror's address is.
pub fn is_mirror_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    rest.is_some_and(|r| {
        !r.is_empty()
            && url.len() <= 256
            && !r.starts_with('/')
            && r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~:/%+@".contains(&b))
    })
}

/// The packages a bootstrap asks for: those given on the command line, then those the
/// project's hermetic.toml declares, each once.
pub fn asked_packages(given: &[String], declared: &[String]) -> Vec<String> {
    let mut all = given.to_vec();
    for p in declared {
        if !all.contains(p) {
            all.push(p.clone());
        }
    }
    all
}

/// A Debian package name (Debian policy 5.6.1): at least two of lowercase letters, digits,
/// `+`, `-`, `.`, starting with a letter or digit, so it can never be read as an option.
pub fn is_debian_package(name: &str) -> bool {
    name.len() >= 2
        && name.len() <= 128
        // apt reads `name-` as "remove name".
        && !name.ends_with('-')
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}

/// Midnight UTC of a `YYYY-MM-DD` date, as seconds since the epoch.
pub fn epoch_of_date(date: &str) -> Option<u64> {
    let mut parts = date.trim().split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era.checked_mul(146_097)?.checked_add(doe - 719_468)?;
    u64::try_from(days.checked_mul(86_400)?).ok()
}

/// The host toolchain: its sysroot, version, target and commit date (`rustc -vV`).
#[derive(Debug, Clone)]
pub struct HostToolchain {
    pub sysroot: PathBuf,
    pub version: String,
    pub target: String,
    pub commit_date: String,
}

/// Reads `rustc -vV` of the toolchain in `sysroot`.
pub fn host_toolchain(sysroot: &Path) -> Result<HostToolchain> {
    let rustc = sysroot.join("bin/rustc");
    let mut cmd = std::process::Command::new(&rustc);
    cmd.arg("-vV").current_dir(hermetic_deps::host::NEUTRAL_DIR);
    hermetic_deps::host::scrub(&mut cmd);
    let out = cmd.output().map_err(|e| Error::Bootstrap {
        what: "read the toolchain version".into(),
        detail: format!("{}: {e}", rustc.display()),
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
    };
    match (field("release:"), field("host:"), field("commit-date:")) {
        (Some(version), Some(target), Some(commit_date)) => Ok(HostToolchain {
            sysroot: sysroot.into(),
            version,
            target,
            commit_date,
        }),
        _ => Err(Error::Bootstrap {
            what: "read the toolchain version".into(),
            detail: format!("{} -vV said: {text}", rustc.display()),
        }),
    }
}

/// The files of one toolchain component, as its rustup manifest lists them (`file:` and
/// `dir:` lines, relative to the sysroot), sorted.
fn component_files(sysroot: &Path, component: &str, target: &str) -> Result<Vec<String>> {
    let manifest = sysroot
        .join("lib/rustlib")
        .join(format!("manifest-{component}-{target}"));
    let text = std::fs::read_to_string(&manifest).map_err(|e| Error::Bootstrap {
        what: format!("list the toolchain's {component} files"),
        detail: format!(
            "{}: {e} (hermetic copies a rustup toolchain, whose components list their files)",
            manifest.display()
        ),
    })?;
    let mut files = vec![];
    for line in text.lines() {
        if let Some(rel) = line.strip_prefix("file:") {
            files.push(rel.to_string());
        } else if let Some(rel) = line.strip_prefix("dir:") {
            let root = sysroot.join(rel);
            for e in walkdir::WalkDir::new(&root).sort_by_file_name() {
                let e = e.map_err(|e| Error::Bootstrap {
                    what: format!("list the toolchain's {component} files"),
                    detail: e.to_string(),
                })?;
                if !e.file_type().is_dir()
                    && let Ok(r) = e.path().strip_prefix(sysroot)
                {
                    files.push(r.to_string_lossy().into_owned());
                }
            }
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// The toolchain layer (`opt/rust/…`) and each component's digest.
pub fn toolchain_layer(
    tc: &HostToolchain,
    epoch: u64,
    out: &Path,
) -> Result<(String, BTreeMap<String, String>)> {
    use sha2::Digest;
    let mut all: BTreeMap<String, &str> = BTreeMap::new();
    let mut lists = BTreeMap::new();
    for c in COMPONENTS {
        let files = component_files(&tc.sysroot, c, &tc.target)?;
        lists.insert(c.to_string(), files);
    }
    for (c, files) in &lists {
        for f in files {
            all.insert(f.clone(), c.as_str());
        }
    }
    let mut digests: BTreeMap<String, sha2::Sha256> = COMPONENTS
        .iter()
        .map(|c| (c.to_string(), sha2::Sha256::new()))
        .collect();
    let mut w = LayerWriter::create(out, epoch)?;
    let mut dirs = std::collections::BTreeSet::new();
    for rel in all.keys() {
        let mut p = Path::new(rel).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(d.to_string_lossy().into_owned());
            p = d.parent();
        }
    }
    // Entries in name order, each directory before what it holds.
    let mut entries: Vec<(String, bool)> = dirs.into_iter().map(|d| (d, true)).collect();
    entries.extend(all.keys().map(|f| (f.clone(), false)));
    entries.sort();
    w.dir("opt", Owner::ROOT_DIR)?;
    w.dir("opt/rust", Owner::ROOT_DIR)?;
    for (rel, is_dir) in entries {
        let name = format!("opt/rust/{rel}");
        if is_dir {
            w.dir(&name, Owner::ROOT_DIR)?;
            continue;
        }
        let src = tc.sysroot.join(&rel);
        let meta = std::fs::symlink_metadata(&src).at(&src)?;
        let component = all.get(&rel).copied().unwrap_or("rustc");
        let hash = digests.get_mut(component);
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&src).at(&src)?;
            let target = target.to_string_lossy();
            w.link(&name, &target)?;
            if let Some(h) = hash {
                h.update(format!("{rel} -> {target}\n"));
            }
            continue;
        }
        use std::os::unix::fs::PermissionsExt;
        let exec = meta.permissions().mode() & 0o111 != 0;
        w.file_from(
            &name,
            &src,
            if exec {
                Owner::ROOT_EXEC
            } else {
                Owner::ROOT_FILE
            },
        )?;
        if let Some(h) = hash {
            h.update(format!(
                "{rel} {} {}\n",
                if exec { "x" } else { "-" },
                layers::file_digest(&src)?
            ));
        }
    }
    let diff_id = w.finish()?;
    let components = digests
        .into_iter()
        .map(|(c, h)| (c, format!("sha256:{}", hex::encode(h.finalize()))))
        .collect();
    Ok((diff_id, components))
}

/// `etc/passwd`, `etc/group` and the installed packages, read from the rootfs tar.
pub struct RootfsFacts {
    pub passwd: Vec<u8>,
    pub group: Vec<u8>,
    pub installed: BTreeMap<String, String>,
}

pub fn rootfs_facts(rootfs_tar: &Path) -> Result<RootfsFacts> {
    let f = std::fs::File::open(rootfs_tar).at(rootfs_tar)?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(f));
    let (mut passwd, mut group, mut status) = (None, None, None);
    for entry in archive.entries().at(rootfs_tar)? {
        let mut e = entry.at(rootfs_tar)?;
        let path = e.path().at(rootfs_tar)?.to_string_lossy().into_owned();
        let slot = match path.trim_start_matches("./") {
            "etc/passwd" => &mut passwd,
            "etc/group" => &mut group,
            "var/lib/dpkg/status" => &mut status,
            _ => continue,
        };
        let mut bytes = vec![];
        e.by_ref()
            .take(16 << 20)
            .read_to_end(&mut bytes)
            .at(rootfs_tar)?;
        *slot = Some(bytes);
    }
    let missing = |what: &str| Error::Bootstrap {
        what: "read the rootfs".into(),
        detail: format!("{} has no {what}", rootfs_tar.display()),
    };
    let status = status.ok_or_else(|| missing("var/lib/dpkg/status"))?;
    Ok(RootfsFacts {
        passwd: passwd.ok_or_else(|| missing("etc/passwd"))?,
        group: group.ok_or_else(|| missing("etc/group"))?,
        installed: installed_packages(&String::from_utf8_lossy(&status)),
    })
}

/// Package → version of every installed package in a dpkg status file.
pub fn installed_packages(status: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for stanza in status.split("\n\n") {
        let field = |k: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
        };
        if let (Some(p), Some(v), Some(s)) =
            (field("Package:"), field("Version:"), field("Status:"))
            && s.ends_with(" installed")
        {
            let arch = field("Architecture:").unwrap_or_default();
            let name = if arch.is_empty() || arch == "all" || arch == "amd64" {
                p
            } else {
                format!("{p}:{arch}")
            };
            out.insert(name, v);
        }
    }
    out
}

/// The build user and its directories, over the rootfs's own passwd and group files.
pub fn builder_layer(facts: &RootfsFacts, epoch: u64, out: &Path) -> Result<String> {
    let mut passwd = facts.passwd.clone();
    let mut group = facts.group.clone();
    for f in [&mut passwd, &mut group] {
        if !f.is_empty() && !f.ends_with(b"\n") {
            f.push(b'\n');
        }
    }
    passwd.extend_from_slice(
        format!("builder:x:{BUILD_UID}:{BUILD_UID}::/home/builder:/bin/sh\n").as_bytes(),
    );
    group.extend_from_slice(format!("builder:x:{BUILD_UID}:\n").as_bytes());
    let user = Owner {
        uid: BUILD_UID,
        gid: BUILD_UID,
        mode: 0o755,
    };
    let mut w = LayerWriter::create(out, epoch)?;
    w.dir("etc", Owner::ROOT_DIR)?;
    w.file("etc/group", &group, Owner::ROOT_FILE)?;
    w.file("etc/passwd", &passwd, Owner::ROOT_FILE)?;
    w.dir("hermetic", user)?;
    w.dir("home", Owner::ROOT_DIR)?;
    w.dir("home/builder", user)?;
    w.finish()
}

/// `mmdebstrap` of the definition into `out` (a tar), with the machine's identity
/// (`/etc/hostname`, `/etc/resolv.conf`, which it copies from the host) replaced.
pub fn make_rootfs(def: &Definition, out: &Path) -> Result<()> {
    let mut cmd = std::process::Command::new("mmdebstrap");
    hermetic_deps::host::scrub(&mut cmd);
    cmd.current_dir(hermetic_deps::host::NEUTRAL_DIR)
        .env("SOURCE_DATE_EPOCH", def.epoch.to_string())
        .args([
            "--mode=root",
            "--variant=minbase",
            "--skip=output/dev",
            "--quiet",
        ])
        .arg(format!("--include={}", def.packages.join(",")))
        // Removed first: a package's link there would be followed out of the rootfs.
        .arg("--customize-hook=rm -f \"$1/etc/hostname\" && printf 'hermetic\\n' > \"$1/etc/hostname\"")
        .arg("--customize-hook=rm -f \"$1/etc/resolv.conf\" && : > \"$1/etc/resolv.conf\"")
        // Validated already; and after `--` nothing is an option.
        .arg("--")
        .arg(&def.suite)
        .arg(out)
        .arg(&def.mirror);
    let status = cmd.output().map_err(|e| Error::Bootstrap {
        what: "make the Debian rootfs".into(),
        detail: format!("cannot run mmdebstrap: {e} (apt-get install mmdebstrap)"),
    })?;
    if !status.status.success() {
        let _ = std::fs::remove_file(out);
        return Err(Error::Bootstrap {
            what: format!("mmdebstrap {} from {}", def.suite, def.mirror),
            detail: String::from_utf8_lossy(&status.stderr)
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n"),
        });
    }
    Ok(())
}

/// The image's settings: its environment, user and labels, the definition among them.
pub fn settings(def: &Definition) -> layers::ImageSettings {
    layers::ImageSettings {
        env: vec![
            "PATH=/opt/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                .into(),
            "LANG=C.UTF-8".into(),
            "LC_ALL=C.UTF-8".into(),
            "TZ=UTC".into(),
        ],
        user: format!("{BUILD_UID}:{BUILD_UID}"),
        working_dir: "/hermetic".into(),
        labels: BTreeMap::from([
            ("dev.hermetic.builder".to_string(), "1".to_string()),
            (
                "dev.hermetic.definition".to_string(),
                serde_json::to_string(def).unwrap_or_default(),
            ),
        ]),
        epoch: def.epoch,
        history: vec![
            format!(
                "mmdebstrap --variant=minbase --include={} {} {}",
                def.packages.join(","),
                def.suite,
                def.mirror
            ),
            format!("rust {} ({}) in /opt/rust", def.rust, def.target),
            format!("build user {BUILD_UID}, /hermetic"),
        ],
    }
}

/// Everything bootstrap made, in `dir`: the layers and the docker-archive.
pub struct Made {
    pub lock: ImageLock,
    pub archive: PathBuf,
}

/// Makes the image of `def` with the toolchain `tc` in `dir`, up to its docker-archive.
/// With a lock, the toolchain (the cheap part) is compared first, so that another toolchain
/// is named before the rootfs is made.
pub fn make(
    def: &Definition,
    tc: &HostToolchain,
    dir: &Path,
    tag: &str,
    locked: Option<(&Path, &ImageLock)>,
    stage: &(dyn Fn(&str) + Sync),
) -> Result<Made> {
    std::fs::create_dir_all(dir).at(dir)?;
    stage(&format!("the toolchain layer (rust {})", tc.version));
    let toolchain = dir.join("toolchain.tar");
    let (toolchain_id, components) = toolchain_layer(tc, def.epoch, &toolchain)?;
    if let Some((path, lock)) = locked {
        let probe = ImageLock {
            components: components.clone(),
            ..lock.clone()
        };
        let differences = probe.differences(lock);
        if !differences.is_empty() {
            return Err(Error::ImageDiffers {
                lock: path.into(),
                differences,
            });
        }
    }
    let rootfs = dir.join("rootfs.tar");
    stage(&format!(
        "mmdebstrap {} from {} with {} (about 30 s)",
        def.suite,
        def.mirror,
        def.packages.join(", ")
    ));
    make_rootfs(def, &rootfs)?;
    let rootfs_id = layers::file_digest(&rootfs)?;
    let facts = rootfs_facts(&rootfs)?;
    // apt reads a name that no package has as a pattern (`x.y` is a regular expression):
    // each package asked for must be installed under its own name.
    if let Some(p) = def
        .packages
        .iter()
        .find(|p| !facts.installed.contains_key(p.as_str()))
    {
        return Err(Error::Bootstrap {
            what: "make the rootfs".into(),
            detail: format!(
                "the package {p:?} is not installed in it: {} has no package of that name \
                 (check its spelling with `apt-cache policy {p}`)",
                def.suite
            ),
        });
    }
    let builder = dir.join("builder.tar");
    let builder_id = builder_layer(&facts, def.epoch, &builder)?;
    let diff_ids = vec![rootfs_id.clone(), toolchain_id.clone(), builder_id.clone()];
    let config = layers::config_json(&diff_ids, &settings(def));
    stage("assembling the image");
    let archive = dir.join("image.tar");
    let image = layers::write_archive(&archive, &config, &[rootfs, toolchain, builder], tag)?;
    for layer in ["rootfs.tar", "toolchain.tar", "builder.tar"] {
        let _ = std::fs::remove_file(dir.join(layer));
    }
    Ok(Made {
        lock: ImageLock {
            format: 1,
            definition: def.clone(),
            image,
            layers: BTreeMap::from([
                ("1-rootfs".to_string(), rootfs_id),
                ("2-toolchain".to_string(), toolchain_id),
                ("3-builder".to_string(), builder_id),
            ]),
            components,
            installed: facts.installed,
        },
        archive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bootstrap_asks_for_each_package_once() {
        let given = vec!["cmake".to_string(), "make".to_string()];
        let declared = vec!["make".to_string(), "perl".to_string()];
        assert_eq!(asked_packages(&given, &declared), ["cmake", "make", "perl"]);
    }

    #[test]
    fn a_definition_cannot_smuggle_arguments() {
        let good = lock().definition;
        assert_eq!(good.validate(), Ok(()));
        let bad = |f: &dyn Fn(&mut Definition)| {
            let mut d = good.clone();
            f(&mut d);
            d.validate().is_err()
        };
        assert!(bad(&|d| d.suite = "--customize-hook=touch /x".into()));
        assert!(bad(&|d| d.suite = "bookworm main".into()));
        assert!(bad(
            &|d| d.mirror = "deb [trusted=yes] http://evil/ bookworm main".into()
        ));
        assert!(bad(&|d| d.mirror = "/etc/apt/sources.list".into()));
        assert!(bad(&|d| d.mirror = "-".into()));
        assert!(bad(&|d| d.mirror = "file:///srv/mirror".into()));
        assert!(bad(&|d| d.mirror = "http://h/x y".into()));
        assert!(bad(&|d| d.packages.push("--hook-dir=/tmp".into())));
        assert!(is_mirror_url(
            "https://snapshot.debian.org/archive/debian/20261201T000000Z"
        ));
    }

    #[test]
    fn package_names() {
        for ok in ["gcc", "libc6-dev", "g++", "libstdc++-12-dev", "make"] {
            assert!(is_debian_package(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "-oops",
            "Make",
            "gcc,make",
            "x y",
            "../x",
            "--include=x",
        ] {
            assert!(!is_debian_package(bad), "{bad}");
        }
    }

    #[test]
    fn dates_become_epochs() {
        assert_eq!(epoch_of_date("1970-01-01"), Some(0));
        assert_eq!(epoch_of_date("2026-04-14"), Some(1_776_124_800));
        assert_eq!(epoch_of_date("2000-02-29"), Some(951_782_400));
        assert_eq!(epoch_of_date("2026-13-01"), None);
        assert_eq!(epoch_of_date("soon"), None);
    }

    #[test]
    fn installed_packages_come_from_dpkg_status() {
        let status = "Package: gcc-12\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.2.0-14\n\n\
                      Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n\
                      Package: libc6\nStatus: install ok installed\nArchitecture: i386\nVersion: 2.36\n";
        let got = installed_packages(status);
        assert_eq!(got.get("gcc-12").map(String::as_str), Some("12.2.0-14"));
        assert_eq!(got.get("libc6:i386").map(String::as_str), Some("2.36"));
        assert!(!got.contains_key("gone"));
    }

    fn h(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn lock() -> ImageLock {
        ImageLock {
            format: 1,
            definition: Definition {
                suite: "bookworm".into(),
                mirror: "http://deb.debian.org/debian".into(),
                packages: vec!["gcc".into(), "libc6-dev".into()],
                rust: "1.95.0".into(),
                target: "x86_64-unknown-linux-gnu".into(),
                epoch: 1_776_124_800,
            },
            image: h('a'),
            layers: LAYERS.iter().map(|l| (l.to_string(), h('1'))).collect(),
            components: BTreeMap::from([("rust-std".into(), h('5'))]),
            installed: BTreeMap::from([("gcc-12".into(), "12.2.0-14".into())]),
        }
    }

    /// A machine whose result differs is told what: the component, the package, the layer.
    #[test]
    fn differences_name_the_component() {
        let locked = lock();
        assert!(locked.differences(&locked).is_empty());
        let mut here = lock();
        here.components.insert("rust-std".into(), h('6'));
        here.installed
            .insert("gcc-12".into(), "12.2.0-14+deb12u1".into());
        here.image = h('b');
        let d = here.differences(&locked);
        assert_eq!(
            d[0],
            format!(
                r#"toolchain component "rust-std": "{}" here, "{}" in the lock"#,
                h('6'),
                h('5')
            )
        );
        assert_eq!(
            d[1],
            r#"package "gcc-12": "12.2.0-14+deb12u1" here, "12.2.0-14" in the lock"#
        );
        assert_eq!(
            d.last(),
            Some(&format!(
                r#"image: "{}" here, "{}" in the lock"#,
                h('b'),
                h('a')
            ))
        );
    }

    #[test]
    fn the_lock_reads_back_what_was_written() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join(LOCK_FILE);
        lock().write(&path).expect("write");
        assert_eq!(ImageLock::read(&path).expect("read"), Some(lock()));
        std::fs::write(&path, "format = 1\nsurprise = 2\n").expect("write");
        assert!(matches!(
            ImageLock::read(&path),
            Err(Error::BadImageLock { .. })
        ));
        // What a lock holds is checked, not just its shape.
        for bad in [
            ImageLock {
                format: 2,
                ..lock()
            },
            ImageLock {
                image: "sha256:../../x".into(),
                ..lock()
            },
            ImageLock {
                layers: BTreeMap::new(),
                ..lock()
            },
            ImageLock {
                installed: BTreeMap::from([("gcc".into(), "1\u{1b}[2J".into())]),
                ..lock()
            },
        ] {
            bad.write(&path).expect("write");
            assert!(
                matches!(ImageLock::read(&path), Err(Error::BadImageLock { .. })),
                "{bad:?}"
            );
        }
        // A link planted at a temporary name is not followed: the lock replaces nothing else.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").expect("victim");
        std::os::unix::fs::symlink(&victim, dir.path().join("hermetic-image.lock.partial"))
            .expect("ln");
        lock().write(&path).expect("write");
        assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "keep");
    }
}
