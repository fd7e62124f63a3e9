//! The report of `hermetic verify`: typed, written as JSON and as Markdown (fit for a CI
//! step summary).

use crate::compare::{Class, FileDiff, FileVerdict};
use crate::digest::FileDigest;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Reproducible,
    Mismatch,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunnerReport {
    pub runner: String,
    /// Its Docker endpoint (`local` for the local engine).
    pub engine: String,
    /// Content digest of the builder image on that engine.
    pub image: String,
    /// The image was copied to that engine from the reference's for this verification.
    #[serde(default)]
    pub image_transferred: bool,
    /// The engine already held the vendored tree (nothing uploaded).
    #[serde(default)]
    pub deps_reused: bool,
    /// The engine already held its copy of the builder image's toolchain.
    #[serde(default)]
    pub toolchain_reused: bool,
    /// Names of the variations applied (none for the reference).
    pub variations: Vec<String>,
    /// The environment it built in.
    pub environment: serde_json::Value,
    pub artifacts: Vec<FileDigest>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unsupported {
    pub name: String,
    pub why: String,
}

/// A runner that did not answer: its engine was unreachable, or its breaker open.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unavailable {
    pub runner: String,
    pub engine: String,
    pub reason: String,
    /// The endpoint's circuit breaker is open (later runs skip it until the cooldown ends).
    pub breaker_open: bool,
}

/// One single-variation rebuild of the attribution.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Probe {
    pub variation: String,
    pub differs: bool,
    pub files: Vec<String>,
}

/// What rebuilding with one variation at a time found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attribution {
    /// The varied runner whose variations were tried one at a time.
    pub against: String,
    /// The reference rebuilt with no variation already differs.
    pub inherent: bool,
    pub culprits: Vec<String>,
    pub tested: Vec<Probe>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyReport {
    pub verdict: Verdict,
    /// Digest of every input the verdict depends on (the memo key).
    pub inputs_digest: String,
    /// Content digest of the builder image.
    pub image: String,
    pub runners: Vec<RunnerReport>,
    pub unsupported_variations: Vec<Unsupported>,
    pub files: Vec<FileVerdict>,
    pub differences: Vec<FileDiff>,
    /// The crates that differ first (their dependencies agree), from what the runners made
    /// on the way: the root cause, where it could be traced.
    #[serde(default)]
    pub crates: Vec<crate::culprit::Culprit>,
    pub attribution: Option<Attribution>,
    pub build_seconds: f64,
    /// Runners that had to answer and agree.
    pub quorum: usize,
    /// Runners that did not answer.
    #[serde(default)]
    pub unavailable: Vec<Unavailable>,
    /// Answered from the memo, without building.
    pub memo: bool,
}

fn class_name(c: Class) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

impl VerifyReport {
    pub fn reproducible(&self) -> bool {
        self.verdict == Verdict::Reproducible
    }

    /// The cause in one sentence, evidence first: what the first differing file embeds
    /// (the differing string, where it sits), whether identical builds differ too or which
    /// variation alone causes it, and the fix. `None` when nothing differs.
    pub fn cause(&self) -> Option<String> {
        let d = self.differences.first()?;
        // The most specific class the file shows (the order of `Class`), and the string
        // that shows it.
        let class = d.classes.iter().copied().min().unwrap_or(Class::Unknown);
        // A string shows the cause when it is what the class was read from, or is long
        // enough not to be random bytes that happen to be printable.
        let telling = |st: &&crate::compare::DifferingString| {
            st.class == class && (class != Class::RandomOrHashOrder || st.differing_chars >= 4)
        };
        let shown = d
            .strings
            .iter()
            .find(telling)
            .and_then(|st| st.other.as_deref().or(st.reference.as_deref()));
        let what = match class {
            Class::BuildPath => "embeds the build path",
            Class::Timestamp if shown.is_some_and(crate::compare::is_date_only) => {
                "embeds the build date"
            }
            Class::Timestamp => "embeds the build time",
            Class::Hostname => "embeds the build machine's name",
            Class::EnvironmentString => "embeds a value of the build environment",
            Class::RandomOrHashOrder => {
                "differs between identical builds (hash order or randomness)"
            }
            Class::Unknown => "differs",
        };
        let evidence = d
            .strings
            .iter()
            .find(telling)
            .and_then(|st| {
                let text = st.other.as_deref().or(st.reference.as_deref())?;
                let place = match (&st.symbol, &st.section) {
                    (Some(sym), _) => format!(" in `{sym}`"),
                    (None, Some(sec)) => format!(" in `{sec}`"),
                    _ => String::new(),
                };
                Some(format!(" (`{}`{place})", text.trim()))
            })
            .unwrap_or_default();
        // The crate, first: what made the bytes differ before any output did.
        let origin = self
            .crates
            .first()
            .map(|c| {
                let kind = if c.workspace_member {
                    "workspace member"
                } else {
                    "dependency"
                };
                let how = if c.build_script {
                    match c.lines.iter().find_map(|l| l.other.as_deref()) {
                        Some(line) => format!("'s build script emits `{line}`"),
                        None => match c
                            .artifacts
                            .iter()
                            .find_map(|a| a.strip_prefix("build/")?.split_once('/'))
                        {
                            Some((_, file)) => {
                                format!("'s build script writes `{file}` differently")
                            }
                            None => "'s build script writes differing files".to_string(),
                        },
                    }
                } else {
                    " compiles differently".to_string()
                };
                let more = match self.crates.len() {
                    1 => String::new(),
                    n => format!(" (and {} more crate(s))", n - 1),
                };
                format!("crate `{}` {} ({kind}){how}{more}; ", c.name, c.version)
            })
            .unwrap_or_default();
        let by = match &self.attribution {
            Some(a) if a.inherent => "; two builds with no variation at all differ too".to_string(),
            Some(a) if !a.culprits.is_empty() => {
                format!("; the {} variation alone causes it", a.culprits.join(" + "))
            }
            _ => String::new(),
        };
        Some(format!(
            "{origin}`{}` {what}{evidence}{by}: {}",
            d.name,
            fix(class, self.crates.first())
        ))
    }

    /// One line per differing file and the cause, for the terminal.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .cause()
            .map(|c| format!("cause: {c}"))
            .into_iter()
            .collect();
        out.extend(self.unavailable.iter().map(|u| {
            format!(
                "{} ({}) did not answer: {}{}",
                u.runner,
                u.engine,
                u.reason,
                if u.breaker_open {
                    " [breaker open]"
                } else {
                    ""
                }
            )
        }));
        for d in &self.differences {
            let classes: Vec<String> = d.classes.iter().map(|c| class_name(*c)).collect();
            out.push(format!(
                "{} differs ({} vs {}): {} bytes, first at offset {}; {}",
                d.name,
                d.reference_runner,
                d.other_runner,
                d.differing_bytes,
                d.first_offsets.first().copied().unwrap_or(0),
                classes.join(", ")
            ));
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut s = format!(
            "# hermetic verify: {}\n\nInputs digest `{}`, builder image `{}`.\n\n",
            if self.reproducible() {
                "✅ reproducible"
            } else {
                "❌ mismatch"
            },
            self.inputs_digest,
            self.image
        );
        // The cause leads; the evidence follows.
        if let Some(cause) = self.cause() {
            s.push_str(&format!("**Cause:** {cause}\n\n"));
        }
        if !self.crates.is_empty() {
            s.push_str("Crates that differ first (everything they depend on agrees):\n\n");
            for c in &self.crates {
                s.push_str(&format!(
                    "- `{}` {}{}{}: {}\n",
                    c.name,
                    c.version,
                    if c.workspace_member {
                        " (workspace member)"
                    } else {
                        ""
                    },
                    if c.build_script {
                        ", its build script"
                    } else {
                        ""
                    },
                    c.artifacts
                        .iter()
                        .map(|a| format!("`{a}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                for l in &c.lines {
                    if let Some(r) = &l.reference {
                        s.push_str(&format!("  - `- {r}`\n"));
                    }
                    if let Some(o) = &l.other {
                        s.push_str(&format!("  - `+ {o}`\n"));
                    }
                }
            }
            s.push('\n');
        }
        s.push_str("| runner | engine | variations |\n|---|---|---|\n");
        for r in &self.runners {
            let vars = if r.variations.is_empty() {
                "none (reference)".to_string()
            } else {
                r.variations.join(", ")
            };
            let engine = if r.image_transferred {
                format!("`{}` (builder image copied there)", r.engine)
            } else {
                format!("`{}`", r.engine)
            };
            s.push_str(&format!("| {} | {engine} | {vars} |\n", r.runner));
        }
        for u in &self.unavailable {
            s.push_str(&format!(
                "| {} | `{}` | **did not answer**: {}{} |\n",
                u.runner,
                u.engine,
                u.reason,
                if u.breaker_open {
                    " (breaker open)"
                } else {
                    ""
                }
            ));
        }
        s.push_str(&format!(
            "\n{} of {} runners answered; {} had to agree.\n",
            self.runners.len(),
            self.runners.len() + self.unavailable.len(),
            self.quorum
        ));
        s.push_str("\n| file | result |\n|---|---|\n");
        for f in &self.files {
            let result = if f.same {
                let sha = f.sha256.first().cloned().flatten().unwrap_or_default();
                format!("same `{}`", sha.get(..16).unwrap_or(""))
            } else {
                "**differs**".into()
            };
            s.push_str(&format!("| `{}` | {result} |\n", f.name));
        }
        for d in &self.differences {
            s.push_str(&format!(
                "\n## `{}`: {} vs {}\n\n{} bytes vs {} bytes, {} differing bytes, first at offsets {:?}{}.\n\n",
                d.name,
                d.reference_runner,
                d.other_runner,
                d.reference_size,
                d.other_size,
                d.differing_bytes,
                d.first_offsets.iter().take(4).collect::<Vec<_>>(),
                if d.elf { " (ELF)" } else { "" }
            ));
            for c in &d.classes {
                s.push_str(&format!("- **{}**: {}\n", class_name(*c), c.hint()));
            }
            // What differs, in words, before where.
            if !d.strings.is_empty() {
                s.push_str("\nDiffering strings:\n");
            }
            for st in d.strings.iter().take(6) {
                let place = match (&st.section, &st.symbol) {
                    (Some(sec), Some(sym)) => format!(" (in `{sec}`, `{sym}`)"),
                    (Some(sec), None) => format!(" (in `{sec}`)"),
                    _ => String::new(),
                };
                s.push_str(&format!(
                    "\n- {}{place}:\n  ```text\n",
                    class_name(st.class)
                ));
                if let Some(r) = &st.reference {
                    s.push_str(&format!("  - {r}\n"));
                }
                if let Some(o) = &st.other {
                    s.push_str(&format!("  + {o}\n"));
                }
                s.push_str("  ```\n");
            }
            for run in d.runs.iter().take(5) {
                let section = run
                    .section
                    .as_deref()
                    .map(|x| format!(" in section `{x}`"))
                    .unwrap_or_default();
                s.push_str(&format!(
                    "\n- offset {} ({} bytes){section}:\n",
                    run.offset, run.len
                ));
                match (&run.reference_text, &run.other_text) {
                    (Some(a), Some(b)) => {
                        s.push_str(&format!("  ```text\n  - {a}\n  + {b}\n  ```\n"))
                    }
                    (None, Some(b)) => s.push_str(&format!("  ```text\n  + {b}\n  ```\n")),
                    _ => s.push_str(&format!(
                        "  `{}` vs `{}`\n",
                        run.reference_hex, run.other_hex
                    )),
                }
            }
        }
        if let Some(a) = &self.attribution {
            s.push_str("\n## Cause\n\n");
            if a.inherent {
                s.push_str(
                    "The outputs differ between two builds with **no variation at all**: the \
                     nondeterminism is inherent (time, randomness or hash order), not caused by \
                     the environment.\n",
                );
            } else if a.culprits.is_empty() {
                s.push_str(
                    "No single variation reproduces the difference alone: a combination causes it.\n",
                );
            } else {
                s.push_str(&format!(
                    "Rebuilt with one variation at a time: **{}** alone changes the outputs.\n",
                    a.culprits.join(", ")
                ));
            }
        }
        if self.memo {
            s.push_str("\n_Answered from the memo: no build ran._\n");
        }
        s
    }
}

/// Names as code, at most eight of them (a crate may have hundreds of features).
fn code_list(names: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut out = names
        .iter()
        .take(SHOWN)
        .map(|n| format!("`{}`", crate::compare::clip(n)))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        out.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    out
}

/// The fix for a class of difference, made specific by the crate that causes it and what
/// the graph suspects of it.
fn fix(class: Class, culprit: Option<&crate::culprit::Culprit>) -> String {
    use crate::culprit::Suspect;
    let Some(c) = culprit else {
        return class.hint().to_string();
    };
    let name = &c.name;
    let random = matches!(class, Class::RandomOrHashOrder | Class::Unknown);
    match &c.suspect {
        Some(Suspect::Feature { feature, why }) => format!(
            "`{name}`'s `{feature}` feature {why}: turn it off (`cargo tree -e features -i \
             {name}` shows which crate asks for it)"
        ),
        Some(Suspect::CompileTimeRandomness { via, features }) if features.is_empty() => {
            format!(
                "`{name}` uses `{via}`, which makes random values at compile time, with no \
                 feature of its own asking for it: replace `{name}`, or ask its authors for a \
                 fixed seed"
            )
        }
        Some(Suspect::CompileTimeRandomness { via, features }) => format!(
            "`{name}` uses `{via}`, which makes random values at compile time: turn off the \
             feature of `{name}` that asks for it (cargo's resolve has on: {})",
            code_list(features)
        ),
        Some(Suspect::ProcMacros { names }) if random => format!(
            "`{name}` differs while nothing it depends on does, and expands the proc macro{} \
             {}, which run{} anew in every rustc process: a macro that iterates a HashMap or \
             HashSet emits code in a different order each time; sort, or use a BTreeMap, in \
             the macro",
            if names.len() == 1 { "" } else { "s" },
            code_list(names),
            if names.len() == 1 { "s" } else { "" },
        ),
        _ if c.build_script && class == Class::Timestamp => format!(
            "`{name}`'s build script reads the clock: take the time from SOURCE_DATE_EPOCH in \
             it (or drop the stamp)"
        ),
        _ if c.build_script && random => format!(
            "`{name}`'s build script writes in hash order or at random: sort what it writes, \
             or use a BTreeMap"
        ),
        _ if class == Class::BuildPath => format!(
            "`{name}` compiles a path of the build into itself: {}",
            class.hint()
        ),
        _ => class.hint().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::DiffRun;

    #[test]
    fn markdown_names_file_section_class_and_cause() {
        let report = VerifyReport {
            verdict: Verdict::Mismatch,
            inputs_digest: "ab".into(),
            image: "sha256:cd".into(),
            runners: vec![],
            unsupported_variations: vec![],
            files: vec![FileVerdict {
                name: "app".into(),
                sha256: vec![Some("1".into()), Some("2".into())],
                same: false,
            }],
            differences: vec![FileDiff {
                name: "app".into(),
                reference_runner: "runner-1".into(),
                other_runner: "runner-2".into(),
                reference_size: 10,
                other_size: 12,
                differing_bytes: 5,
                first_offsets: vec![3],
                elf: true,
                strings: vec![],
                runs: vec![DiffRun {
                    offset: 3,
                    len: 2,
                    section: Some(".rodata".into()),
                    reference_text: None,
                    other_text: Some("dir /srv/build2/hermetic/src".into()),
                    reference_hex: String::new(),
                    other_hex: "2f73".into(),
                    class: Class::BuildPath,
                }],
                classes: vec![Class::BuildPath],
            }],
            crates: vec![],
            attribution: Some(Attribution {
                against: "runner-2".into(),
                inherent: false,
                culprits: vec!["build-path".into()],
                tested: vec![],
            }),
            build_seconds: 1.0,
            quorum: 2,
            unavailable: vec![],
            memo: false,
        };
        let md = report.markdown();
        for want in [
            "❌ mismatch",
            "| `app` | **differs** |",
            "in section `.rodata`",
            "+ dir /srv/build2/hermetic/src",
            "**build-path**",
            "**build-path** alone changes the outputs",
        ] {
            assert!(md.contains(want), "{want:?} missing from:\n{md}");
        }
        // The cause leads the report, before any table.
        let cause = md
            .find("**Cause:** `app` embeds the build path")
            .expect("cause");
        assert!(cause < md.find("| runner").expect("table"), "{md}");
        assert!(
            md.contains("the build-path variation alone causes it"),
            "{md}"
        );
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["verdict"], "mismatch");
        assert_eq!(json["differences"][0]["classes"][0], "build-path");
    }

    /// A report of one differing file, whose difference identical builds show too.
    fn inherent_mismatch(name: &str, classes: &[&str]) -> VerifyReport {
        serde_json::from_value(serde_json::json!({
            "verdict": "mismatch", "inputs_digest": "ab", "image": "sha256:cd",
            "runners": [], "unsupported_variations": [], "files": [],
            "differences": [{
                "name": name, "reference_runner": "runner-1", "other_runner": "runner-2",
                "reference_size": 1, "other_size": 1, "differing_bytes": 8,
                "first_offsets": [1], "elf": true, "runs": [], "classes": classes
            }],
            "attribution": {"against": "runner-2", "inherent": true, "culprits": [], "tested": []},
            "build_seconds": 1.0, "quorum": 2, "memo": false
        }))
        .expect("report")
    }

    #[test]
    fn the_cause_names_the_differing_string_and_where_it_sits() {
        use crate::compare::DifferingString;
        let mut report = inherent_mismatch("stamped", &["timestamp", "random-or-hash-order"]);
        report.differences[0].strings = vec![DifferingString {
            reference: Some("built at 1796151783.82".into()),
            other: Some("built at 1796151783.89".into()),
            section: Some(".rodata".into()),
            symbol: None,
            class: Class::Timestamp,
            differing_chars: 10,
        }];
        let cause = report.cause().expect("cause");
        assert_eq!(
            cause,
            format!(
                "`stamped` embeds the build time (`built at 1796151783.89` in `.rodata`); two \
                 builds with no variation at all differ too: {}",
                Class::Timestamp.hint()
            )
        );
        assert!(report.summary_lines()[0].starts_with("cause: `stamped` embeds the build time"));
        // A date alone is a date, and the fix names the crate whose build script wrote it.
        report.differences[0].strings[0].other = Some("built on 2028-04-14".into());
        report.crates = vec![crate::culprit::Culprit {
            name: "stamper".into(),
            version: "0.1.0".into(),
            workspace_member: true,
            build_script: true,
            artifacts: vec!["build/stamper-1a/out/stamp.rs".into()],
            lines: vec![],
            suspect: None,
        }];
        let cause = report.cause().expect("cause");
        assert!(
            cause.starts_with(
                "crate `stamper` 0.1.0 (workspace member)'s build script writes `out/stamp.rs` \
                 differently; `stamped` embeds the build date (`built on 2028-04-14`"
            ) && cause.ends_with(
                "`stamper`'s build script reads the clock: take the time from \
                 SOURCE_DATE_EPOCH in it (or drop the stamp)"
            ),
            "{cause}"
        );
        report.differences.clear();
        assert_eq!(report.cause(), None);
    }

    #[test]
    fn random_bytes_are_no_evidence_and_a_suspect_names_the_fix() {
        use crate::compare::DifferingString;
        use crate::culprit::{Culprit, Suspect};
        let mut report = inherent_mismatch("app", &["random-or-hash-order"]);
        report.differences[0].strings = vec![DifferingString {
            reference: Some("x/rustc/5980".into()),
            other: Some("4/rustc/5980".into()),
            section: Some(".rodata".into()),
            symbol: None,
            class: Class::RandomOrHashOrder,
            differing_chars: 1,
        }];
        let culprit = |suspect| Culprit {
            name: "ahash".into(),
            version: "0.8.12".into(),
            workspace_member: false,
            build_script: false,
            artifacts: vec![],
            lines: vec![],
            suspect,
        };
        report.crates = vec![culprit(Some(Suspect::Feature {
            feature: "compile-time-rng".into(),
            why: "seeds its hashers at compile time".into(),
        }))];
        let cause = report.cause().expect("cause");
        assert!(!cause.contains("rustc/5980"), "{cause}");
        assert!(
            cause.ends_with(
                "`ahash`'s `compile-time-rng` feature seeds its hashers at compile time: turn \
                 it off (`cargo tree -e features -i ahash` shows which crate asks for it)"
            ),
            "{cause}"
        );
        report.crates = vec![culprit(Some(Suspect::ProcMacros {
            names: vec!["tabler".into()],
        }))];
        let cause = report.cause().expect("cause");
        assert!(
            cause.contains("expands the proc macro `tabler`, which runs anew"),
            "{cause}"
        );
        // Many features: a few are named.
        report.crates = vec![culprit(Some(Suspect::CompileTimeRandomness {
            via: "const-random".into(),
            features: (0..100).map(|i| format!("f{i}")).collect(),
        }))];
        let cause = report.cause().expect("cause");
        assert!(
            cause.ends_with("(cargo's resolve has on: `f0`, `f1`, `f2`, `f3`, `f4`, `f5`, `f6`, `f7` and 92 more)"),
            "{cause}"
        );
        // Long enough, a random string is shown.
        report.differences[0].strings[0].differing_chars = 40;
        assert!(report.cause().is_some_and(|c| c.contains("4/rustc/5980")));
    }
}
