//! Checks for strings that come from the project (or from anything else hermetic does not
//! trust) and later become a path, a file name or a command-line argument. Each returns
//! why the string is refused; the reader turns that into an error naming its file and field.
//!
//! They are strict on purpose: cargo writes nothing that fails them, so a value that does
//! was not written by cargo.

/// A package name as cargo writes it into Cargo.lock: ASCII letters, digits, `-` and `_`,
/// at most 64 characters, not starting with `-` (it would read as an option). Never a path.
pub fn package_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("a package name has 1 to 64 characters".into());
    }
    if name.starts_with('-') {
        return Err("a package name cannot start with `-`".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "{c:?} is not allowed in a package name (letters, digits, `-`, `_`)"
        ));
    }
    Ok(())
}

/// A semantic version (`1.2.3`, `1.0.0-rc.1+build.5`). Semver's grammar has no `/` and no
/// empty identifier, so a valid version can never be `..` or contain a path separator.
pub fn version(v: &str) -> Result<(), String> {
    semver::Version::parse(v)
        .map(|_| ())
        .map_err(|e| format!("not a semantic version: {e}"))
}

/// A SHA-256 digest in lowercase hex, as Cargo.lock records archive checksums.
pub fn sha256_hex(s: &str) -> Result<(), String> {
    if crate::hash::is_sha256_hex(s) {
        Ok(())
    } else {
        Err("a checksum is 64 lowercase hexadecimal digits".into())
    }
}

/// A full git commit id: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
pub fn git_commit(s: &str) -> Result<(), String> {
    if crate::hash::is_sha1_hex(s) || crate::hash::is_sha256_hex(s) {
        Ok(())
    } else {
        Err("a locked git commit is a full 40- or 64-digit lowercase hex id".into())
    }
}

/// A source URL (registry index or git repository): an absolute URL of a scheme cargo
/// fetches from, with no whitespace or control characters. Never starts with `-`, so it
/// cannot become an option of the program that is handed it.
pub fn source_url(url: &str) -> Result<(), String> {
    const SCHEMES: &[&str] = &["https://", "http://", "ssh://", "git://", "file://"];
    if !SCHEMES.iter().any(|s| url.starts_with(s)) {
        return Err(format!(
            "a source URL starts with one of {}",
            SCHEMES.join(", ")
        ));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a source URL has no whitespace or control characters".into());
    }
    Ok(())
}

/// A name that becomes one path component (a runner's directory, a file name): letters,
/// digits, `-`, `_` and `.`, at most 64 characters, not `.`/`..`, not starting with `-` or `.`.
pub fn path_component(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("a name has 1 to 64 characters".into());
    }
    if name.starts_with('-') || name.starts_with('.') {
        return Err("a name cannot start with `-` or `.`".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "{c:?} is not allowed in a name (letters, digits, `-`, `_`, `.`)"
        ));
    }
    Ok(())
}

/// A path relative to a root that stays under it: not absolute, no `..`, no empty or `.`
/// components beyond a leading `./`, no backslashes or control characters.
pub fn relative_path(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("the path is empty".into());
    }
    if p.starts_with('/') {
        return Err("the path must be relative to the workspace, not absolute".into());
    }
    if p.chars().any(|c| c == '\\' || c.is_control()) {
        return Err("the path has a backslash or a control character".into());
    }
    let p = p.strip_prefix("./").unwrap_or(p);
    for component in p.split('/') {
        match component {
            ".." => return Err("the path leaves the workspace (`..`)".into()),
            "" | "." => return Err("the path has an empty or `.` component".into()),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_cargo_writes_passes() {
        for n in ["serde", "aws-lc-sys", "hermetic_deps", "r2d2", "_private"] {
            assert_eq!(package_name(n), Ok(()), "{n}");
        }
        for v in ["1.0.0", "0.8.23", "1.2.2+spec-1.1.0", "1.0.0-rc.1"] {
            assert_eq!(version(v), Ok(()), "{v}");
        }
        assert_eq!(sha256_hex(&"ab".repeat(32)), Ok(()));
        assert_eq!(git_commit(&"0f".repeat(20)), Ok(()));
        assert_eq!(
            source_url("https://github.com/rust-lang/crates.io-index"),
            Ok(())
        );
        assert_eq!(source_url("file:///tmp/repo"), Ok(()));
        assert_eq!(path_component("runner-2"), Ok(()));
        assert_eq!(relative_path("cli/Cargo.toml"), Ok(()));
        assert_eq!(relative_path("./Cargo.toml"), Ok(()));
    }

    #[test]
    fn what_would_become_a_path_or_an_option_is_refused() {
        for n in [
            "",
            "../x",
            "a/b",
            "-p",
            "a b",
            "é",
            ".",
            "x\n",
            &"a".repeat(65),
        ] {
            assert!(package_name(n).is_err(), "{n:?}");
        }
        for v in ["../../../etc", "1.0", "1.0.0/..", "1.0.0+..", " 1.0.0", ""] {
            assert!(version(v).is_err(), "{v:?}");
        }
        for c in [
            "/etc/passwd",
            "../x",
            &"AB".repeat(32),
            &"ab".repeat(31),
            &format!("{}/", "a".repeat(63)),
        ] {
            assert!(sha256_hex(c).is_err(), "{c:?}");
        }
        for c in ["", "abc", "HEAD", "--upload-pack=x", &"0F".repeat(20)] {
            assert!(git_commit(c).is_err(), "{c:?}");
        }
        for u in [
            "--upload-pack=touch /tmp/x",
            "ext::sh -c touch% /tmp/x",
            "https://a b",
            "https://a\n",
            "/tmp/repo",
        ] {
            assert!(source_url(u).is_err(), "{u:?}");
        }
        for n in ["", "/some/dir", "..", ".", ".hidden", "a/b", "-x", "a\\b"] {
            assert!(path_component(n).is_err(), "{n:?}");
        }
        for p in [
            "",
            "/etc/Cargo.toml",
            "../Cargo.toml",
            "a/../../b",
            "a//b",
            "a\\b",
        ] {
            assert!(relative_path(p).is_err(), "{p:?}");
        }
    }
}
