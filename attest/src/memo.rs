//! The verify memo: the verdict of a verification, remembered for its exact inputs, so that
//! running `hermetic verify` again on unchanged inputs builds nothing.
//!
//! An entry is believed only when this machine sealed it ([`hermetic_deps::seal`]): anyone
//! who can write the cache could otherwise file a "reproducible" verdict for a project that
//! is not. And it answers only while the output directory is still, file for file, what
//! the remembered run left there: `hermetic verify && publish dist/` must publish what was
//! verified, so a `dist/` that was changed, removed or never written sends the run back to
//! building.

use crate::report::VerifyReport;
use hermetic_deps::cache::Cache;
use hermetic_deps::seal::Seal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The seal's kind of a memo entry.
const KIND: &str = "verify-memo";

/// What a verification left in its output directory: every file's SHA-256 (and every
/// link's target), by path relative to the directory.
pub type Listing = BTreeMap<String, String>;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Remembered {
    pub report: VerifyReport,
    pub out: Listing,
}

/// What looking up the memo found.
#[derive(Debug)]
pub enum Lookup {
    /// The remembered verdict, and the output directory is what that run left.
    Hit(Box<VerifyReport>),
    /// Nothing remembered for these inputs.
    Miss,
    /// Something is remembered but cannot answer: the reason, for a warning; the run
    /// builds.
    Stale(String),
}

pub struct Memo {
    dir: PathBuf,
    seal: Seal,
}

/// The memo's name for a verification: its inputs, and the key its documents are signed
/// with (`None`: unsigned). A release signed with another key is another release.
pub fn key(inputs: &str, signer_hint: Option<&str>) -> String {
    let signer = signer_hint.unwrap_or("unsigned");
    hermetic_deps::hash::sha256_hex(format!("{inputs}\n{signer}").as_bytes())
}

impl Memo {
    pub fn in_cache(cache: &Cache) -> hermetic_deps::Result<Memo> {
        Ok(Memo {
            dir: cache.real_dir("verify")?,
            seal: cache.seal()?.clone(),
        })
    }

    pub fn with(dir: PathBuf, seal: Seal) -> Memo {
        Memo { dir, seal }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The verdict for `key` if it is remembered, sealed here, and `out` is still what the
    /// remembered run left there.
    pub fn lookup(&self, key: &str, out: &Path) -> Lookup {
        let path = self.path(key);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Lookup::Miss;
        };
        let remembered = self
            .seal
            .open(KIND, key, &text)
            .and_then(|data| serde_json::from_str::<Remembered>(&data).ok());
        let Some(remembered) = remembered else {
            let _ = std::fs::remove_file(&path);
            return Lookup::Stale(format!(
                "[memo-not-sealed] {}: a verify memo entry that this machine did not seal \
                 (forged, damaged, or from another machine) was ignored and removed",
                path.display()
            ));
        };
        match listing(out) {
            Ok(now) if now == remembered.out => Lookup::Hit(Box::new(remembered.report)),
            Ok(now) => Lookup::Stale(format!(
                "[memo-output-changed] {} is not what the remembered verification left \
                 there ({}): verifying again",
                out.display(),
                first_difference(&remembered.out, &now)
            )),
            Err(e) => Lookup::Stale(format!(
                "[memo-output-changed] {} cannot be read ({e}): verifying again",
                out.display()
            )),
        }
    }

    /// Remembers `report` for `key`, with what `out` holds now.
    pub fn remember(&self, key: &str, report: &VerifyReport, out: &Path) -> std::io::Result<()> {
        let entry = Remembered {
            report: report.clone(),
            out: listing(out)?,
        };
        std::fs::create_dir_all(&self.dir)?;
        let data = serde_json::to_string(&entry).map_err(std::io::Error::other)?;
        self.seal
            .write(&self.path(key), KIND, key, &data)
            .map_err(std::io::Error::other)
    }
}

/// Every file and link under `dir`, hashed; a missing directory lists as an error.
pub fn listing(dir: &Path) -> std::io::Result<Listing> {
    let mut out = Listing::new();
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(std::io::Error::other)?;
        let rel = entry
            .path()
            .strip_prefix(dir)
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_default();
        let t = entry.file_type();
        if t.is_dir() {
            continue;
        } else if t.is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            out.insert(rel, format!("link:{}", target.display()));
        } else {
            let digest = hermetic_deps::hash::sha256_file(entry.path())?;
            out.insert(rel, digest);
        }
    }
    Ok(out)
}

fn first_difference(then: &Listing, now: &Listing) -> String {
    for (path, digest) in then {
        match now.get(path) {
            None => return format!("{path} is missing"),
            Some(d) if d != digest => return format!("{path} changed"),
            Some(_) => {}
        }
    }
    match now.keys().find(|p| !then.contains_key(*p)) {
        Some(p) => format!("{p} was added"),
        None => "it changed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> VerifyReport {
        VerifyReport {
            verdict: crate::report::Verdict::Reproducible,
            inputs_digest: "k".into(),
            image: "sha256:0".into(),
            runners: vec![],
            unsupported_variations: vec![],
            files: vec![],
            differences: vec![],
            crates: vec![],
            attribution: None,
            build_seconds: 1.0,
            quorum: 2,
            unavailable: vec![],
            memo: false,
        }
    }

    fn setup() -> (tempfile::TempDir, Memo, PathBuf) {
        let dir = tempfile::tempdir().expect("test");
        let memo = Memo::with(dir.path().join("verify"), Seal::from_key([1; 32]));
        let out = dir.path().join("dist");
        std::fs::create_dir_all(out.join("bin")).expect("test");
        std::fs::write(out.join("bin/app"), b"binary").expect("test");
        std::fs::write(out.join("SHA256SUMS"), b"sums").expect("test");
        (dir, memo, out)
    }

    #[test]
    fn a_verdict_is_remembered_per_inputs_and_signer() {
        let k = key("inputs", None);
        assert_eq!(k, key("inputs", None));
        assert_ne!(k, key("inputs", Some("keyhint")));
        assert_ne!(key("inputs", Some("a")), key("inputs", Some("b")));
        assert_ne!(k, key("other", None));
        assert_eq!(k.len(), 64);
    }

    #[test]
    fn a_remembered_verdict_answers_while_the_output_is_what_it_left() {
        let (_d, memo, out) = setup();
        memo.remember("k", &report(), &out).expect("test");
        assert!(matches!(memo.lookup("k", &out), Lookup::Hit(_)));
        assert!(matches!(memo.lookup("other", &out), Lookup::Miss));
        // The published binary swapped: the memo must not vouch for it.
        std::fs::write(out.join("bin/app"), b"other").expect("test");
        match memo.lookup("k", &out) {
            Lookup::Stale(why) => assert!(why.contains("bin/app changed"), "{why}"),
            other => panic!("{other:?}"),
        }
        std::fs::write(out.join("bin/app"), b"binary").expect("test");
        std::fs::write(out.join("extra"), b"x").expect("test");
        assert!(
            matches!(memo.lookup("k", &out), Lookup::Stale(w) if w.contains("extra was added"))
        );
        std::fs::remove_dir_all(&out).expect("test");
        assert!(matches!(memo.lookup("k", &out), Lookup::Stale(_)));
    }

    #[test]
    fn an_entry_this_machine_did_not_seal_is_ignored_and_removed() {
        let (d, memo, out) = setup();
        // A cache writer's entry: right shape, the old `{checksum, report}` format.
        std::fs::create_dir_all(d.path().join("verify")).expect("test");
        let forged = d.path().join("verify/k.json");
        std::fs::write(&forged, r#"{"checksum":"00","report":"{}"}"#).expect("test");
        assert!(matches!(memo.lookup("k", &out), Lookup::Stale(w) if w.contains("did not seal")));
        assert!(!forged.exists(), "removed");
        // Another machine's seal is no better.
        let theirs = Memo::with(d.path().join("verify"), Seal::from_key([2; 32]));
        theirs.remember("k", &report(), &out).expect("test");
        assert!(matches!(memo.lookup("k", &out), Lookup::Stale(_)));
        // Nor is an entry moved to another key.
        memo.remember("a", &report(), &out).expect("test");
        std::fs::rename(
            d.path().join("verify/a.json"),
            d.path().join("verify/b.json"),
        )
        .expect("test");
        assert!(matches!(memo.lookup("b", &out), Lookup::Stale(_)));
    }
}
