//! Rebuild attestations and the k-of-n quorum gate: each independent runner signs what it
//! built from which inputs; the gate accepts a release only when enough trusted runners
//! agree on every output digest and none of them disagrees.

use crate::record::BuildRecord;
use crate::statement::{Statement, Subject};
use crate::time::rfc3339;
use hermetic_deps::hash::sha256_hex;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

/// Predicate type of a runner's rebuild attestation.
pub const REBUILD_V1: &str = "https://github.com/hermetic-build/hermetic/rebuild/v1";

/// What a build was made from: two rebuilds are comparable only if these are equal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RebuildInputs {
    pub source_commit: Option<String>,
    pub source_tree_sha256: String,
    pub lockfile_sha256: String,
    pub vendor_tree_sha256: String,
    pub image_digest: String,
    /// The dependency manifest the provenance signs (build scripts, proc macros, sources,
    /// licenses, edges) and the package built: what a release's documents say beyond its
    /// bytes, so that k runners vouch for it, not the one whose directory is released.
    pub dependency_manifest_sha256: String,
    pub package: String,
}

impl RebuildInputs {
    pub fn of(rec: &BuildRecord) -> RebuildInputs {
        RebuildInputs {
            source_commit: rec.source.commit.clone().filter(|_| !rec.source.dirty),
            source_tree_sha256: rec.source.tree_sha256.clone(),
            lockfile_sha256: rec.lockfile_sha256.clone(),
            vendor_tree_sha256: rec.vendor_tree_sha256.clone(),
            image_digest: rec.image.digest.clone(),
            dependency_manifest_sha256: crate::provenance::dependency_manifest_sha256(rec),
            package: format!("{}@{}", rec.package.name, rec.package.version),
        }
    }

    /// SHA-256 of the inputs' JSON (fields in a fixed order).
    pub fn digest(&self) -> String {
        sha256_hex(&serde_json::to_vec(self).unwrap_or_default())
    }
}

/// The statement a runner signs about its rebuild.
pub fn rebuild_statement(rec: &BuildRecord) -> Statement {
    let inputs = RebuildInputs::of(rec);
    let subjects = rec
        .artifacts
        .iter()
        .map(|a| Subject::sha256(&a.name, &a.sha256))
        .collect();
    Statement::new(
        subjects,
        REBUILD_V1,
        json!({
            "inputsDigest": inputs.digest(),
            "inputs": inputs,
            "runner": {
                "id": rec.runner.id,
                "engine": rec.runner.engine,
                "variations": rec.environment.variations,
            },
            "hermeticVersion": rec.hermetic_version,
            "startedOn": rfc3339(rec.run.started_unix as i64),
            "finishedOn": rfc3339(rec.run.finished_unix as i64),
        }),
    )
}

/// One verified vote: a trusted key's statement about its outputs.
#[derive(Debug, Clone, Serialize)]
pub struct Vote {
    pub file: String,
    /// The trusted key that signed it (as given on the command line).
    pub key: String,
    pub runner: String,
    pub inputs_digest: String,
    /// The clean commit it was built from, if any.
    pub source_commit: Option<String>,
    /// Output name → sha256.
    pub subjects: BTreeMap<String, String>,
}

impl Vote {
    /// The vote read from a verified rebuild statement.
    pub fn from_statement(file: &str, key: &str, s: &Statement) -> Result<Vote, String> {
        if s.predicate_type != REBUILD_V1 {
            return Err(format!(
                "predicate type {} is not a rebuild attestation ({REBUILD_V1})",
                s.predicate_type
            ));
        }
        let inputs_digest = s.predicate["inputsDigest"]
            .as_str()
            .ok_or("the predicate has no inputsDigest")?
            .to_string();
        // The digest is re-derived, never taken on the statement's word: a runner cannot
        // give two results two digests to escape being seen equivocating.
        let inputs: RebuildInputs = serde_json::from_value(s.predicate["inputs"].clone())
            .map_err(|e| format!("the predicate's inputs are not rebuild inputs: {e}"))?;
        if inputs.digest() != inputs_digest {
            return Err(format!(
                "its inputsDigest {inputs_digest} is not the digest of its inputs ({})",
                inputs.digest()
            ));
        }
        Ok(Vote {
            file: file.into(),
            key: key.into(),
            runner: s.predicate["runner"]["id"]
                .as_str()
                .unwrap_or("?")
                .to_string(),
            inputs_digest,
            source_commit: s.predicate["inputs"]["sourceCommit"]
                .as_str()
                .map(String::from),
            subjects: s
                .subject
                .iter()
                .map(|x| {
                    (
                        x.name.clone(),
                        x.digest.get("sha256").cloned().unwrap_or_default(),
                    )
                })
                .collect(),
        })
    }
}

/// What the gate decides about: one release, named by what its votes must be about. A
/// vote about anything else (an older release, other source) is not a vote here.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Release {
    /// The rebuild inputs' digest every vote must name.
    pub inputs_digest: Option<String>,
    /// The source commit every vote must have been built from.
    pub source_commit: Option<String>,
    /// The release's outputs (name → sha256, from its `SHA256SUMS`): what the trusted
    /// runners must agree on, not merely with each other.
    pub subjects: Option<BTreeMap<String, String>>,
}

/// Why what the gate was told is not a release it can decide about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error("not a SHA256SUMS file: {0}")]
    Sums(String),
    #[error("{flag} {value:?} is not a full hexadecimal digest ({lengths} characters)")]
    Digest {
        flag: &'static str,
        value: String,
        lengths: &'static str,
    },
    #[error("the gate was not told which release it decides about")]
    Unbound,
}

impl ReleaseError {
    pub fn fix(&self) -> String {
        match self {
            ReleaseError::Sums(_) => {
                "pass the SHA256SUMS of the release the gate decides about".into()
            }
            ReleaseError::Digest { flag, .. } => {
                format!("pass the full {flag} the release was built from")
            }
            ReleaseError::Unbound => "pass the release's --sums SHA256SUMS, --source-commit SHA \
                 or --inputs-digest: otherwise any trusted runner's valid attestations, of any \
                 release, would vote"
                .into(),
        }
    }
}

impl Release {
    /// The release named by a `SHA256SUMS` text, an inputs digest and a commit; at least
    /// one. Digests must be full (votes are compared with them exactly) and are compared
    /// in lower case.
    pub fn named(
        sums: Option<&str>,
        inputs_digest: Option<&str>,
        source_commit: Option<&str>,
    ) -> Result<Release, ReleaseError> {
        let hex =
            |flag: &'static str, v: Option<&str>, lens: &[usize], lengths: &'static str| match v {
                Some(v)
                    if !lens.contains(&v.len()) || !v.bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    Err(ReleaseError::Digest {
                        flag,
                        value: v.to_string(),
                        lengths,
                    })
                }
                v => Ok(v.map(|v| v.to_ascii_lowercase())),
            };
        let release = Release {
            inputs_digest: hex("--inputs-digest", inputs_digest, &[64], "64")?,
            source_commit: hex("--source-commit", source_commit, &[40, 64], "40 or 64")?,
            subjects: sums
                .map(Release::subjects_of_sums)
                .transpose()
                .map_err(ReleaseError::Sums)?,
        };
        if release.is_unbound() {
            return Err(ReleaseError::Unbound);
        }
        Ok(release)
    }

    /// Nothing named: such a gate would compare votes only with each other.
    pub fn is_unbound(&self) -> bool {
        self.inputs_digest.is_none() && self.source_commit.is_none() && self.subjects.is_none()
    }

    /// The subjects of a `SHA256SUMS` text; every line must be `HEX  NAME` or `HEX *NAME`.
    pub fn subjects_of_sums(text: &str) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let parsed = line.split_once(' ').and_then(|(digest, rest)| {
                let name = rest.strip_prefix('*').or_else(|| rest.strip_prefix(' '))?;
                let hex = digest.len() == 64
                    && digest
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                (hex && crate::record::is_plain_name(name))
                    .then(|| (name.to_string(), digest.to_string()))
            });
            let Some((name, digest)) = parsed else {
                return Err(format!("line {} is not `SHA256  NAME`: {line:?}", i + 1));
            };
            if out.insert(name.clone(), digest).is_some() {
                return Err(format!("line {}: {name} is listed twice", i + 1));
            }
        }
        if out.is_empty() {
            return Err("it lists no file".into());
        }
        Ok(out)
    }

    /// Why a vote is not about this release, if it is not.
    fn mismatch(&self, v: &Vote) -> Option<String> {
        if let Some(want) = &self.inputs_digest
            && &v.inputs_digest != want
        {
            return Some(format!(
                "about other inputs ({}), not this release's ({want})",
                v.inputs_digest
            ));
        }
        if let Some(want) = &self.source_commit
            && v.source_commit.as_deref() != Some(want.as_str())
        {
            return Some(format!(
                "built from {}, not this release's commit {want}",
                v.source_commit.as_deref().unwrap_or("no clean commit")
            ));
        }
        None
    }
}

/// The votes that count, and the attestations that do not, with the reason for each.
#[derive(Debug, Default)]
pub struct Ballot {
    pub votes: Vec<Vote>,
    pub ignored: Vec<Ignored>,
    pub rejected: Vec<Ignored>,
}

/// Admits attestations (file name, bytes) as votes of the trusted keys (name, key), for
/// `release`: an attestation of an unknown key, about another release, or a copy of a
/// vote already counted is ignored; one that claims a trusted key and does not verify,
/// or a trusted key's second, different result for this release, is rejected (and fails
/// the gate: a runner that equivocates cannot be counted either way).
pub fn admit(
    attestations: &[(String, Vec<u8>)],
    keys: &[(String, crate::keys::PublicKey)],
    release: &Release,
) -> Ballot {
    let mut ballot = Ballot::default();
    for (file, bytes) in attestations {
        let file = file.clone();
        let hint = serde_json::from_slice::<crate::bundle::Bundle>(bytes)
            .ok()
            .and_then(|b| b.verification_material.public_key.map(|k| k.hint));
        // The hint says which key verifies it. A bundle whose hint was altered is not
        // counted (as if it were removed): it can take a vote away, never add one.
        let Some((name, key)) = hint
            .as_deref()
            .and_then(|h| keys.iter().find(|(_, k)| k.hint() == h))
        else {
            ballot.ignored.push(Ignored {
                file,
                reason: format!(
                    "not signed by a trusted key (key hint {})",
                    hint.as_deref().unwrap_or("none")
                ),
            });
            continue;
        };
        let statement = match crate::verify::verify_bundle(bytes, key, None) {
            Ok(v) => v.statement,
            Err(f) => {
                ballot.rejected.push(Ignored {
                    file,
                    reason: format!("claims trusted key {name} but {f} [{}]", f.code()),
                });
                continue;
            }
        };
        let Some(statement) = statement else {
            ballot.rejected.push(Ignored {
                file,
                reason: "not a DSSE attestation".into(),
            });
            continue;
        };
        let vote = match Vote::from_statement(&file, name, &statement) {
            Ok(v) => v,
            Err(reason) => {
                ballot.rejected.push(Ignored { file, reason });
                continue;
            }
        };
        if let Some(why) = release.mismatch(&vote) {
            ballot.ignored.push(Ignored { file, reason: why });
            continue;
        }
        // Equivocation is two results from the same inputs; a key's vote about other
        // inputs is about another release (and fails the gate as such when it is not
        // bound to inputs).
        match ballot
            .votes
            .iter()
            .find(|v| v.key == vote.key && v.inputs_digest == vote.inputs_digest)
        {
            Some(first) if first.subjects == vote.subjects => ballot.ignored.push(Ignored {
                file,
                reason: format!(
                    "a copy of {name}'s vote in {}: one vote per key",
                    first.file
                ),
            }),
            Some(first) => {
                let reason = format!(
                    "{name} signed two different results for this release ({} and {file}): \
                     a runner that equivocates is not counted",
                    first.file
                );
                ballot.rejected.push(Ignored { file, reason });
            }
            // One vote per key, whatever it is about.
            None if ballot.votes.iter().any(|v| v.key == vote.key) => {
                ballot.ignored.push(Ignored {
                    file,
                    reason: format!(
                        "a second vote of {name}, about other inputs: one vote per key"
                    ),
                })
            }
            None => ballot.votes.push(vote),
        }
    }
    ballot
}

/// An attestation that was not counted, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Ignored {
    pub file: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct GateReport {
    pub passed: bool,
    /// What the gate decided about.
    pub release: Release,
    pub quorum: usize,
    /// Trusted votes that agree with the majority on every subject digest.
    pub agreeing: Vec<String>,
    /// Trusted votes that disagree with it.
    pub dissenting: Vec<String>,
    pub votes: Vec<Vote>,
    /// Not counted: unknown keys, second votes of a key (warnings).
    pub ignored: Vec<Ignored>,
    /// Attestations that claim a trusted key but do not verify (each fails the gate).
    pub rejected: Vec<Ignored>,
    /// The outputs the majority agrees on.
    pub subjects: BTreeMap<String, String>,
    /// Why it failed, one line each (empty when it passed).
    pub reasons: Vec<String>,
}

/// Decides the gate about `release` from its ballot.
pub fn decide(ballot: Ballot, release: &Release, quorum: usize, allow_dissent: bool) -> GateReport {
    let Ballot {
        votes,
        ignored,
        rejected,
    } = ballot;
    let mut reasons: Vec<String> = rejected
        .iter()
        .map(|r| format!("{}: {}", r.file, r.reason))
        .collect();
    let mut inputs: Vec<&str> = votes.iter().map(|v| v.inputs_digest.as_str()).collect();
    inputs.sort();
    inputs.dedup();
    if inputs.len() > 1 {
        reasons.push(format!(
            "the attestations are about different inputs ({} input digests): compare rebuilds of the same source, lockfile, vendored tree and image",
            inputs.len()
        ));
    }
    // Group the votes by their complete subject set.
    let mut groups: BTreeMap<&BTreeMap<String, String>, Vec<&Vote>> = BTreeMap::new();
    for v in &votes {
        groups.entry(&v.subjects).or_default().push(v);
    }
    let largest = groups.values().map(Vec::len).max().unwrap_or(0);
    let subjects = match &release.subjects {
        // The release's outputs are what must be agreed on.
        Some(s) => s.clone(),
        None => {
            let mut tops = groups.iter().filter(|(_, g)| g.len() == largest);
            let first = tops.next().map(|(s, _)| (*s).clone()).unwrap_or_default();
            if tops.next().is_some() {
                reasons.push(format!(
                    "a tie: {} groups of {largest} trusted runner(s) each agree on different \
                     outputs, so no result has a majority",
                    groups.values().filter(|g| g.len() == largest).count()
                ));
            }
            first
        }
    };
    let agreeing: Vec<String> = votes
        .iter()
        .filter(|v| v.subjects == subjects)
        .map(|v| v.key.clone())
        .collect();
    // Bound to the release's outputs, a group of other outputs as large as the agreeing
    // one is a tie too: no majority for what is released.
    if release.subjects.is_some()
        && !agreeing.is_empty()
        && groups
            .iter()
            .any(|(s, g)| **s != subjects && g.len() >= agreeing.len())
    {
        reasons.push(format!(
            "a tie: as many trusted runners built other outputs as built the release's \
             ({})",
            agreeing.len()
        ));
    }
    let dissenting: Vec<String> = votes
        .iter()
        .filter(|v| v.subjects != subjects)
        .map(|v| v.key.clone())
        .collect();
    if agreeing.len() < quorum {
        reasons.push(format!(
            "only {} trusted runner(s) agree on every output digest{}; the quorum is {quorum}",
            agreeing.len(),
            if release.subjects.is_some() {
                " of the release's SHA256SUMS"
            } else {
                ""
            }
        ));
    }
    if !dissenting.is_empty() && !allow_dissent {
        reasons.push(format!(
            "{} trusted runner(s) disagree: {} (pass --allow-dissent to accept a quorum anyway)",
            dissenting.len(),
            dissenting.join(", ")
        ));
    }
    GateReport {
        passed: reasons.is_empty(),
        release: release.clone(),
        quorum,
        agreeing,
        dissenting,
        votes,
        ignored,
        rejected,
        subjects,
        reasons,
    }
}

/// The first trusted key given twice (by its hint, the same in any file): the indexes of
/// its first and second place. One key is one voter.
pub fn repeated_key(hints: &[&str]) -> Option<(usize, usize)> {
    hints
        .iter()
        .enumerate()
        .find_map(|(i, h)| hints[..i].iter().position(|x| x == h).map(|j| (j, i)))
}

impl GateReport {
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "# hermetic gate: {}\n\n{} trusted runner(s) agree, {} required.\n\n",
            if self.passed {
                "✅ passed"
            } else {
                "❌ failed"
            },
            self.agreeing.len(),
            self.quorum
        );
        s.push_str("| attestation | key | runner | agrees |\n|---|---|---|---|\n");
        for v in &self.votes {
            s.push_str(&format!(
                "| `{}` | `{}` | {} | {} |\n",
                v.file,
                v.key,
                v.runner,
                if v.subjects == self.subjects {
                    "yes"
                } else {
                    "**no**"
                }
            ));
        }
        for i in &self.ignored {
            s.push_str(&format!("\n- ignored `{}`: {}", i.file, i.reason));
        }
        for r in &self.reasons {
            s.push_str(&format!("\n- **{r}**"));
        }
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_named_twice_is_found() {
        assert_eq!(repeated_key(&["a", "b", "c"]), None);
        assert_eq!(repeated_key(&["a", "b", "a", "b"]), Some((0, 2)));
    }

    fn vote(key: &str, inputs: &str, sha: &str) -> Vote {
        Vote {
            file: format!("{key}.json"),
            key: key.into(),
            runner: key.into(),
            inputs_digest: inputs.into(),
            source_commit: None,
            subjects: BTreeMap::from([("app".to_string(), sha.to_string())]),
        }
    }

    fn ballot(votes: Vec<Vote>) -> Ballot {
        Ballot {
            votes,
            ..Ballot::default()
        }
    }

    fn any() -> Release {
        Release::default()
    }

    #[test]
    fn quorum_dissent_inputs_and_ties() {
        let agree = || {
            vec![
                vote("a", "i", "1"),
                vote("b", "i", "1"),
                vote("c", "i", "1"),
            ]
        };
        assert!(decide(ballot(agree()), &any(), 3, false).passed);
        assert!(!decide(ballot(agree()), &any(), 4, false).passed);
        let dissent = vec![
            vote("a", "i", "1"),
            vote("b", "i", "1"),
            vote("c", "i", "2"),
        ];
        let r = decide(ballot(dissent.clone()), &any(), 2, false);
        assert!(!r.passed && r.dissenting == ["c"], "{r:?}");
        assert!(decide(ballot(dissent), &any(), 2, true).passed);
        let other_inputs = vec![vote("a", "i", "1"), vote("b", "j", "1")];
        let r = decide(ballot(other_inputs), &any(), 2, false);
        assert!(
            !r.passed && r.reasons[0].contains("different inputs"),
            "{r:?}"
        );
        let rejected = Ballot {
            votes: agree(),
            rejected: vec![Ignored {
                file: "x".into(),
                reason: "signature-invalid".into(),
            }],
            ..Ballot::default()
        };
        assert!(!decide(rejected, &any(), 2, false).passed);
        // Two against two: no majority, whatever --allow-dissent says.
        let tie = vec![
            vote("a", "i", "1"),
            vote("b", "i", "1"),
            vote("c", "i", "2"),
            vote("d", "i", "2"),
        ];
        let r = decide(ballot(tie), &any(), 2, true);
        assert!(!r.passed && r.reasons[0].contains("a tie"), "{r:?}");
    }

    #[test]
    fn the_release_s_outputs_are_what_must_be_agreed_on() {
        let release = Release {
            subjects: Some(BTreeMap::from([("app".to_string(), "1".to_string())])),
            ..Release::default()
        };
        // Two runners agree with each other on other bytes than the release's.
        let r = decide(
            ballot(vec![
                vote("a", "i", "2"),
                vote("b", "i", "2"),
                vote("c", "i", "1"),
            ]),
            &release,
            2,
            true,
        );
        assert!(!r.passed && r.agreeing == ["c"], "{r:?}");
        assert!(r.reasons.iter().any(|x| x.contains("SHA256SUMS")), "{r:?}");
        // As many for other outputs as for the release's: a tie, even with dissent allowed.
        let r = decide(
            ballot(vec![
                vote("a", "i", "1"),
                vote("b", "i", "1"),
                vote("c", "i", "2"),
                vote("d", "i", "2"),
            ]),
            &release,
            2,
            true,
        );
        assert!(!r.passed && r.reasons[0].contains("a tie"), "{r:?}");
    }

    #[test]
    fn a_release_must_be_named_with_full_digests() {
        assert!(matches!(
            Release::named(None, None, None),
            Err(ReleaseError::Unbound)
        ));
        let short = Release::named(None, None, Some("c0ffee1")).expect_err("short");
        assert!(matches!(
            short,
            ReleaseError::Digest {
                flag: "--source-commit",
                ..
            }
        ));
        assert!(short.fix().contains("full --source-commit"));
        assert!(matches!(
            Release::named(None, Some(&"g".repeat(64)), None),
            Err(ReleaseError::Digest { .. })
        ));
        assert!(matches!(
            Release::named(Some("x"), None, None),
            Err(ReleaseError::Sums(_))
        ));
        let r = Release::named(None, Some(&"A".repeat(64)), Some(&"b".repeat(40))).expect("ok");
        assert_eq!(
            r.inputs_digest,
            Some("a".repeat(64)),
            "compared in lower case"
        );
        assert!(r.subjects.is_none());
        assert!(
            Release::named(Some(&format!("{} *app\n", "1".repeat(64))), None, None)
                .expect("sums")
                .subjects
                .is_some()
        );
    }

    #[test]
    fn sums_are_read_strictly() {
        let sha = "a".repeat(64);
        let ok = Release::subjects_of_sums(&format!("{sha} *app\n{sha}  lib.so\n")).expect("test");
        assert_eq!(ok.len(), 2);
        for bad in [
            "",
            "zz *app\n",
            &format!("{sha} *app\n{sha} *app\n"),
            &format!("{sha}\n"),
        ] {
            assert!(Release::subjects_of_sums(bad).is_err(), "{bad:?}");
        }
    }

    /// Rebuild inputs told apart by `label`.
    fn rebuild_inputs(label: &str) -> RebuildInputs {
        RebuildInputs {
            source_commit: Some("c0ffee".into()),
            source_tree_sha256: label.into(),
            lockfile_sha256: "l".into(),
            vendor_tree_sha256: "v".into(),
            image_digest: "i".into(),
            dependency_manifest_sha256: "d".into(),
            package: "app@1.0.0".into(),
        }
    }

    /// A signed rebuild statement about `sha` from `inputs`, as a runner's key makes it.
    fn attestation(key: &crate::keys::SigningKey, inputs: &str, sha: &str) -> Vec<u8> {
        let inputs = rebuild_inputs(inputs);
        let statement = Statement::new(
            vec![Subject::sha256("app", sha)],
            REBUILD_V1,
            json!({"inputsDigest": inputs.digest(), "inputs": inputs, "runner": {"id": "r"}}),
        );
        crate::bundle::sign_dsse(crate::statement::PAYLOAD_TYPE, &statement.to_bytes(), key)
            .expect("test")
            .to_bytes()
    }

    fn keypair() -> (crate::keys::SigningKey, crate::keys::PublicKey) {
        let (private, public) = crate::keys::generate(b"pw").expect("test");
        let path = std::path::Path::new("k");
        let signing =
            crate::keys::SigningKey::from_pem(path, private.as_bytes(), b"pw").expect("test");
        let der = pem::parse(public.as_bytes()).expect("test");
        let public = crate::keys::PublicKey::from_der(path, der.contents()).expect("test");
        (signing, public)
    }

    #[test]
    fn admission_counts_one_vote_per_key_for_this_release_only() {
        let (k1, p1) = keypair();
        let (k2, p2) = keypair();
        let (stranger, _) = keypair();
        let sha = "1".repeat(64);
        let keys = vec![("one".to_string(), p1), ("two".to_string(), p2)];
        let release = Release {
            inputs_digest: Some(rebuild_inputs("now").digest()),
            source_commit: Some("c0ffee".into()),
            subjects: None,
        };
        let atts = vec![
            // An older release's valid vote, shipped first: not a vote about this one.
            ("old.json".to_string(), attestation(&k1, "before", &sha)),
            ("one.json".to_string(), attestation(&k1, "now", &sha)),
            ("copy.json".to_string(), attestation(&k1, "now", &sha)),
            ("two.json".to_string(), attestation(&k2, "now", &sha)),
            (
                "stranger.json".to_string(),
                attestation(&stranger, "now", &sha),
            ),
        ];
        let b = admit(&atts, &keys, &release);
        let counted: Vec<&str> = b.votes.iter().map(|v| v.file.as_str()).collect();
        assert_eq!(counted, ["one.json", "two.json"], "{b:?}");
        assert!(b.rejected.is_empty(), "{b:?}");
        let why = |file: &str| {
            b.ignored
                .iter()
                .find(|i| i.file == file)
                .map(|i| i.reason.clone())
                .unwrap_or_default()
        };
        assert!(why("old.json").contains("about other inputs"));
        assert!(why("copy.json").contains("a copy of one's vote"));
        assert!(why("stranger.json").contains("not signed by a trusted key"));
        assert!(decide(b, &release, 2, false).passed);

        // The same key, two different results for this release: the gate fails.
        let atts = vec![
            ("one.json".to_string(), attestation(&k1, "now", &sha)),
            (
                "one-b.json".to_string(),
                attestation(&k1, "now", &"2".repeat(64)),
            ),
            ("two.json".to_string(), attestation(&k2, "now", &sha)),
        ];
        let b = admit(&atts, &keys, &release);
        assert!(
            b.rejected[0].reason.contains("two different results"),
            "{b:?}"
        );
        assert!(!decide(b, &release, 2, true).passed);

        // A digest that is not its inputs' is not a vote.
        let forged = Statement::new(
            vec![Subject::sha256("app", &sha)],
            REBUILD_V1,
            json!({"inputsDigest": "0".repeat(64), "inputs": rebuild_inputs("now"), "runner": {"id": "r"}}),
        );
        let bundle =
            crate::bundle::sign_dsse(crate::statement::PAYLOAD_TYPE, &forged.to_bytes(), &k1)
                .expect("test")
                .to_bytes();
        let b = admit(
            &[("forged.json".into(), bundle)],
            &keys,
            &Release::default(),
        );
        assert!(
            b.rejected[0]
                .reason
                .contains("not the digest of its inputs"),
            "{b:?}"
        );

        // Another commit is another release.
        let other = Release {
            source_commit: Some("beef".into()),
            ..release.clone()
        };
        let b = admit(&atts[..1], &keys, &other);
        assert!(b.votes.is_empty() && b.ignored[0].reason.contains("not this release's commit"));
    }
}
