//! Sigstore bundles v0.3 for key-based signing (no certificate, no transparency-log entry):
//! either a `messageSignature` over an artifact or a `dsseEnvelope` around a statement.
//! Written by hand: the sigstore crate's bundle module is for keyless signing only.
//! Parsing is strict (unknown fields are refused), as protobuf JSON parsers are: a bundle
//! that carries more than it should is not silently accepted.

use crate::dsse::Envelope;
use crate::error::Result;
use crate::keys::SigningKey;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MEDIA_TYPE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bundle {
    pub media_type: String,
    pub verification_material: VerificationMaterial,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_signature: Option<MessageSignature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsse_envelope: Option<Envelope>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerificationMaterial {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PublicKeyIdentifier>,
    /// Always empty here: nothing is uploaded to a transparency log offline.
    #[serde(default)]
    pub tlog_entries: Vec<serde_json::Value>,
    /// Keyless bundles carry a certificate instead of a key hint; kept to report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509_certificate_chain: Option<serde_json::Value>,
    /// RFC 3161 timestamps; none offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_verification_data: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyIdentifier {
    pub hint: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessageSignature {
    pub message_digest: MessageDigest,
    /// base64 of the DER signature.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageDigest {
    /// `SHA2_256`.
    pub algorithm: String,
    /// base64 of the digest.
    pub digest: String,
}

fn material(key: &SigningKey) -> VerificationMaterial {
    VerificationMaterial {
        public_key: Some(PublicKeyIdentifier {
            hint: key.hint().into(),
        }),
        tlog_entries: vec![],
        certificate: None,
        x509_certificate_chain: None,
        timestamp_verification_data: None,
    }
}

/// A signed blob: its `.sig` text (base64 DER, what `cosign sign-blob` writes) and bundle.
pub struct SignedBlob {
    pub sig_base64: String,
    pub bundle: Bundle,
}

/// Signs the bytes of an artifact.
pub fn sign_blob(data: &[u8], key: &SigningKey) -> Result<SignedBlob> {
    let sig = key.sign(data)?;
    let sig_base64 = B64.encode(&sig);
    Ok(SignedBlob {
        bundle: Bundle {
            media_type: MEDIA_TYPE_V03.into(),
            verification_material: material(key),
            message_signature: Some(MessageSignature {
                message_digest: MessageDigest {
                    algorithm: "SHA2_256".into(),
                    digest: B64.encode(Sha256::digest(data)),
                },
                signature: sig_base64.clone(),
            }),
            dsse_envelope: None,
        },
        sig_base64,
    })
}

/// Signs a statement (or any payload) as a DSSE envelope inside a bundle.
pub fn sign_dsse(payload_type: &str, payload: &[u8], key: &SigningKey) -> Result<Bundle> {
    Ok(Bundle {
        media_type: MEDIA_TYPE_V03.into(),
        verification_material: material(key),
        message_signature: None,
        dsse_envelope: Some(Envelope::sign(payload_type, payload, key)?),
    })
}

impl Bundle {
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::statement::to_pretty(self)
    }
}
