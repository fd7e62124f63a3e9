//! in-toto Statement v1: the subjects (artifacts by digest) and a typed predicate.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
pub const SPDX_DOCUMENT: &str = "https://spdx.dev/Document/v2.3";
pub const CYCLONEDX_BOM: &str = "https://cyclonedx.org/bom";
/// The DSSE payload type of in-toto statements.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    pub fn sha256(name: &str, hex: &str) -> Subject {
        Subject {
            name: name.into(),
            digest: BTreeMap::from([("sha256".to_string(), hex.to_string())]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: serde_json::Value,
}

impl Statement {
    pub fn new(subject: Vec<Subject>, predicate_type: &str, predicate: serde_json::Value) -> Self {
        Statement {
            type_: STATEMENT_V1.into(),
            subject,
            predicate_type: predicate_type.into(),
            predicate,
        }
    }

    /// The bytes written to disk and signed: pretty JSON with a final newline, so that the
    /// DSSE payload decodes to exactly the file next to it.
    pub fn to_bytes(&self) -> Vec<u8> {
        to_pretty(self)
    }
}

/// Pretty JSON with a trailing newline. Serialising these plain types cannot fail.
pub fn to_pretty<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}
