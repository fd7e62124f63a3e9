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
}

impl RebuildInputs {
    pub fn of(rec: &BuildRecord) -> RebuildInputs {
        RebuildInputs {
            source_commit: rec.source.commit.clone().filter(|_| !rec.source.dirty),
            source_tree_sha256: rec.source.tree_sha256.clone(),
            lockfile_sha256: rec.lockfile_sha256.clone(),
            vendor_tree_sha256: rec.vendor_tree_sha256.clone(),
            image_digest: rec.image.digest.clone(),
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
        Ok(Vote {
            file: file.into(),
            key: key.into(),
            runner: s.predicate["runner"]["id"]
                .as_str()
                .unwrap_or("?")
                .to_string(),
            inputs_digest,
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

/// An attestation that was not counted, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Ignored {
    pub file: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct GateReport {
    pub passed: bool,
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

/// Decides the gate from verified votes and rejected attestations.
pub fn decide(
    votes: Vec<Vote>,
    ignored: Vec<Ignored>,
    rejected: Vec<Ignored>,
    quorum: usize,
    allow_dissent: bool,
) -> GateReport {
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
    let majority = groups
        .values()
        .max_by_key(|g| g.len())
        .cloned()
        .unwrap_or_default();
    let subjects = majority
        .first()
        .map(|v| v.subjects.clone())
        .unwrap_or_default();
    let agreeing: Vec<String> = majority.iter().map(|v| v.key.clone()).collect();
    let dissenting: Vec<String> = votes
        .iter()
        .filter(|v| v.subjects != subjects)
        .map(|v| v.key.clone())
        .collect();
    if agreeing.len() < quorum {
        reasons.push(format!(
            "only {} trusted runner(s) agree on every output digest; the quorum is {quorum}",
            agreeing.len()
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
            subjects: BTreeMap::from([("app".to_string(), sha.to_string())]),
        }
    }

    #[test]
    fn quorum_dissent_and_inputs() {
        let agree = || {
            vec![
                vote("a", "i", "1"),
                vote("b", "i", "1"),
                vote("c", "i", "1"),
            ]
        };
        assert!(decide(agree(), vec![], vec![], 3, false).passed);
        assert!(!decide(agree(), vec![], vec![], 4, false).passed);
        let dissent = vec![
            vote("a", "i", "1"),
            vote("b", "i", "1"),
            vote("c", "i", "2"),
        ];
        let r = decide(dissent.clone(), vec![], vec![], 2, false);
        assert!(!r.passed && r.dissenting == ["c"], "{r:?}");
        assert!(decide(dissent, vec![], vec![], 2, true).passed);
        let other_inputs = vec![vote("a", "i", "1"), vote("b", "j", "1")];
        let r = decide(other_inputs, vec![], vec![], 2, false);
        assert!(
            !r.passed && r.reasons[0].contains("different inputs"),
            "{r:?}"
        );
        let rejected = vec![Ignored {
            file: "x".into(),
            reason: "signature-invalid".into(),
        }];
        assert!(!decide(agree(), vec![], rejected, 2, false).passed);
    }
}
