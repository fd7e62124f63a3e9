//! Verification of bundles against a public key: what an auditor runs first. Every check
//! that fails says which one, so that a tampered document is never just "invalid".

use crate::bundle::{Bundle, MEDIA_TYPE_V03};
use crate::dsse::pae;
use crate::error::{Error, Result};
use crate::keys::PublicKey;
use crate::statement::{PAYLOAD_TYPE, SLSA_PROVENANCE_V1, STATEMENT_V1, Statement};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hermetic_deps::hash::{is_sha256_hex, sha256_hex};
use serde::Serialize;
use std::path::Path;

/// Why a bundle does not verify. `code()` is stable, for scripts and reports.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    #[error("not a sigstore bundle: {0}")]
    NotABundle(String),
    #[error("media type {0:?} is not {MEDIA_TYPE_V03}")]
    MediaType(String),
    #[error("the bundle names no public key (keyless bundles need a certificate check)")]
    NoKeyHint,
    #[error("the bundle was signed by key {bundle}, not by the given key {key}")]
    HintMismatch { bundle: String, key: String },
    #[error("the bundle holds neither a messageSignature nor a dsseEnvelope")]
    NoContent,
    #[error("the bundle holds both a messageSignature and a dsseEnvelope")]
    BothContents,
    #[error("{0} is not valid base64")]
    Encoding(&'static str),
    #[error("the signature does not verify with the given key")]
    BadSignature,
    #[error("message digest algorithm {0:?} is not SHA2_256")]
    DigestAlgorithm(String),
    #[error("a message signature can only be checked against the artifact")]
    ArtifactNeeded,
    #[error("the artifact's sha256 {actual} is not the signed digest {signed}")]
    ArtifactMismatch { actual: String, signed: String },
    #[error("the envelope has {0} signatures; exactly one is expected")]
    SignatureCount(usize),
    #[error("the envelope signature's keyid {keyid:?} is not the key hint {hint}")]
    KeyId { keyid: String, hint: String },
    #[error("payload type {0:?} is not {PAYLOAD_TYPE}")]
    PayloadType(String),
    #[error("the payload is not an in-toto statement: {0}")]
    Statement(String),
    #[error("the artifact's sha256 {sha256} is not a subject of the statement")]
    NotASubject { sha256: String },
    #[error("the file's sha256 {actual} is not the {recorded} that the build recorded")]
    ChangedSinceBuild { actual: String, recorded: String },
    #[error("the build record is not vouched for: {0}")]
    RecordNotSigned(String),
    #[error("the build record is not the one its signed provenance was made from")]
    RecordChangedSinceSigned,
    #[error("artifact name {0:?} is not one plain file name of its own")]
    ArtifactName(String),
    #[error("it does not list the artifacts that the build record records")]
    SumsNotTheRecords,
    #[error("the build record's inputs digest {record} is not the gated release's {gated}")]
    RecordNotTheGated { record: String, gated: String },
}

impl Failure {
    pub fn code(&self) -> &'static str {
        match self {
            Failure::NotABundle(_) => "bundle-unreadable",
            Failure::MediaType(_) => "bundle-media-type",
            Failure::NoKeyHint => "bundle-no-key",
            Failure::HintMismatch { .. } => "key-hint-mismatch",
            Failure::NoContent | Failure::BothContents => "bundle-content",
            Failure::Encoding(_) => "bundle-encoding",
            Failure::BadSignature => "signature-invalid",
            Failure::DigestAlgorithm(_) => "digest-algorithm",
            Failure::ArtifactNeeded => "artifact-needed",
            Failure::ArtifactMismatch { .. } => "artifact-digest-mismatch",
            Failure::SignatureCount(_) => "signature-count",
            Failure::KeyId { .. } => "keyid-mismatch",
            Failure::PayloadType(_) => "payload-type",
            Failure::Statement(_) => "statement-shape",
            Failure::NotASubject { .. } => "artifact-not-a-subject",
            Failure::ChangedSinceBuild { .. } => "artifact-changed-since-build",
            Failure::RecordNotSigned(_) => "record-not-signed",
            Failure::RecordChangedSinceSigned => "record-changed-since-signed",
            Failure::ArtifactName(_) => "artifact-name",
            Failure::SumsNotTheRecords => "sums-not-the-records",
            Failure::RecordNotTheGated { .. } => "record-not-the-gated-inputs",
        }
    }

    pub fn fix(&self) -> &'static str {
        match self {
            Failure::HintMismatch { .. } | Failure::KeyId { .. } => {
                "verify with the public key of the key that signed it (its cosign.pub)"
            }
            Failure::ArtifactNeeded => "pass the signed file with --artifact",
            Failure::ArtifactMismatch { .. } | Failure::NotASubject { .. } => {
                "this artifact is not the one that was signed: do not trust it"
            }
            Failure::NoKeyHint => "keyless bundles are verified with cosign and a trust root",
            Failure::ChangedSinceBuild { .. } => {
                "the file was changed after the build: rebuild, or restore the file it produced"
            }
            Failure::RecordNotSigned(_) => {
                "pass --trusted-key with the public key of the runner that built it (its \
                 provenance must verify with it), or build it again with a key"
            }
            Failure::RecordChangedSinceSigned => {
                "hermetic-build.json was changed after the build signed it: do not sign it; \
                 rebuild"
            }
            Failure::ArtifactName(_) => {
                "the record was not written by hermetic: do not trust the directory"
            }
            Failure::SumsNotTheRecords => {
                "SHA256SUMS was changed after the build: do not sign the directory; rebuild"
            }
            Failure::RecordNotTheGated { .. } => {
                "this directory was built from other inputs than the ones the gate's quorum \
                 agreed on: sign a directory of an agreeing runner"
            }
            _ => "the document was altered or damaged after signing: do not trust it",
        }
    }
}

/// What a verified bundle vouches for.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    /// `dsse` or `message`.
    pub kind: &'static str,
    pub key_hint: String,
    /// For DSSE bundles: the statement's predicate type and subjects.
    pub predicate_type: Option<String>,
    pub subjects: Vec<crate::statement::Subject>,
    /// For DSSE bundles: the statement itself.
    #[serde(skip)]
    pub statement: Option<Statement>,
    /// The artifact checked against it, if any: its sha256.
    pub artifact_sha256: Option<String>,
}

fn fail(path: &Path, failure: Failure) -> Error {
    Error::Verification {
        path: path.into(),
        failure,
    }
}

/// Verifies the bundle at `path` with `key`, and that `artifact` (if given) is what it
/// signs or a subject of the statement it signs.
pub fn verify_bundle_file(
    path: &Path,
    key: &PublicKey,
    artifact: Option<&Path>,
) -> Result<Verified> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })?;
    let artifact = match artifact {
        Some(a) => Some(std::fs::read(a).map_err(|source| Error::Io {
            path: a.into(),
            source,
        })?),
        None => None,
    };
    verify_bundle(&bytes, key, artifact.as_deref()).map_err(|f| fail(path, f))
}

/// Verifies bundle bytes, and the artifact's bytes against it if given.
pub fn verify_bundle(
    bytes: &[u8],
    key: &PublicKey,
    artifact: Option<&[u8]>,
) -> std::result::Result<Verified, Failure> {
    let artifact_sha256 = artifact.map(sha256_hex);
    let artifact_sha256 = artifact_sha256.as_deref();
    let bundle: Bundle =
        serde_json::from_slice(bytes).map_err(|e| Failure::NotABundle(e.to_string()))?;
    if bundle.media_type != MEDIA_TYPE_V03 {
        return Err(Failure::MediaType(bundle.media_type));
    }
    let hint = bundle
        .verification_material
        .public_key
        .as_ref()
        .map(|p| p.hint.clone())
        .ok_or(Failure::NoKeyHint)?;
    if hint != key.hint() {
        return Err(Failure::HintMismatch {
            bundle: hint,
            key: key.hint().into(),
        });
    }
    match (&bundle.message_signature, &bundle.dsse_envelope) {
        (None, None) => Err(Failure::NoContent),
        (Some(_), Some(_)) => Err(Failure::BothContents),
        (Some(ms), None) => {
            if ms.message_digest.algorithm != "SHA2_256" {
                return Err(Failure::DigestAlgorithm(
                    ms.message_digest.algorithm.clone(),
                ));
            }
            let signed = B64
                .decode(&ms.message_digest.digest)
                .map_err(|_| Failure::Encoding("messageDigest.digest"))?;
            let sig = B64
                .decode(&ms.signature)
                .map_err(|_| Failure::Encoding("messageSignature.signature"))?;
            let actual = artifact_sha256.ok_or(Failure::ArtifactNeeded)?;
            let signed_hex = hex::encode(&signed);
            if signed_hex != actual {
                return Err(Failure::ArtifactMismatch {
                    actual: actual.into(),
                    signed: signed_hex,
                });
            }
            let data = artifact.ok_or(Failure::ArtifactNeeded)?;
            if !key.verify(&sig, data) {
                return Err(Failure::BadSignature);
            }
            Ok(Verified {
                kind: "message",
                key_hint: hint,
                predicate_type: None,
                subjects: vec![],
                statement: None,
                artifact_sha256: Some(actual.into()),
            })
        }
        (None, Some(env)) => {
            if env.signatures.len() != 1 {
                return Err(Failure::SignatureCount(env.signatures.len()));
            }
            let s = &env.signatures[0];
            if let Some(keyid) = &s.keyid
                && keyid != &hint
            {
                return Err(Failure::KeyId {
                    keyid: keyid.clone(),
                    hint,
                });
            }
            let payload = B64
                .decode(&env.payload)
                .map_err(|_| Failure::Encoding("dsseEnvelope.payload"))?;
            let sig = B64
                .decode(&s.sig)
                .map_err(|_| Failure::Encoding("dsseEnvelope.signatures[0].sig"))?;
            if !key.verify(&sig, &pae(&env.payload_type, &payload)) {
                return Err(Failure::BadSignature);
            }
            if env.payload_type != PAYLOAD_TYPE {
                return Err(Failure::PayloadType(env.payload_type.clone()));
            }
            let statement = check_statement(&payload)?;
            if let Some(sha) = artifact_sha256
                && !statement
                    .subject
                    .iter()
                    .any(|s| s.digest.get("sha256").map(String::as_str) == Some(sha))
            {
                return Err(Failure::NotASubject { sha256: sha.into() });
            }
            Ok(Verified {
                kind: "dsse",
                key_hint: hint,
                predicate_type: Some(statement.predicate_type.clone()),
                subjects: statement.subject.clone(),
                statement: Some(statement),
                artifact_sha256: artifact_sha256.map(String::from),
            })
        }
    }
}

/// Checks the statement's shape: type, subjects with well-formed digests, a predicate type
/// and an object predicate; for SLSA provenance, its required fields.
pub fn check_statement(payload: &[u8]) -> std::result::Result<Statement, Failure> {
    let bad = |m: String| Failure::Statement(m);
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| bad(format!("not JSON: {e}")))?;
    let statement: Statement = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
    if statement.type_ != STATEMENT_V1 {
        return Err(bad(format!(
            "_type {:?} is not {STATEMENT_V1}",
            statement.type_
        )));
    }
    if statement.subject.is_empty() {
        return Err(bad("no subject".into()));
    }
    for s in &statement.subject {
        if s.name.is_empty() {
            return Err(bad("a subject has an empty name".into()));
        }
        let Some(sha) = s.digest.get("sha256") else {
            return Err(bad(format!("subject {:?} has no sha256 digest", s.name)));
        };
        if !is_sha256_hex(sha) {
            return Err(bad(format!(
                "subject {:?}: {sha:?} is not a sha256 digest",
                s.name
            )));
        }
    }
    if statement.predicate_type.is_empty() {
        return Err(bad("empty predicateType".into()));
    }
    if !statement.predicate.is_object() {
        return Err(bad("the predicate is not an object".into()));
    }
    if statement.predicate_type == SLSA_PROVENANCE_V1 {
        let p = &statement.predicate;
        let need = [
            (
                "/buildDefinition/buildType",
                p.pointer("/buildDefinition/buildType")
                    .is_some_and(|v| v.is_string()),
            ),
            (
                "/buildDefinition/externalParameters",
                p.pointer("/buildDefinition/externalParameters")
                    .is_some_and(|v| v.is_object()),
            ),
            (
                "/runDetails/builder/id",
                p.pointer("/runDetails/builder/id")
                    .is_some_and(|v| v.is_string()),
            ),
        ];
        if let Some((field, _)) = need.iter().find(|(_, ok)| !ok) {
            return Err(bad(format!("SLSA provenance without {field}")));
        }
    }
    Ok(statement)
}
