//! DSSE envelopes (Dead Simple Signing Envelope): signatures over the pre-authentication
//! encoding, so the payload type is signed too.

use crate::error::Result;
use crate::keys::SigningKey;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

/// PAE(type, body) = "DSSEv1" SP len(type) SP type SP len(body) SP body.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// base64 of the payload bytes.
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// base64 of the DER signature over the PAE.
    pub sig: String,
    /// The key hint; securesystemslib requires it, sigstore ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
}

impl Envelope {
    /// Signs `payload` as `payload_type` with one signature.
    pub fn sign(payload_type: &str, payload: &[u8], key: &SigningKey) -> Result<Envelope> {
        let sig = key.sign(&pae(payload_type, payload))?;
        Ok(Envelope {
            payload: B64.encode(payload),
            payload_type: payload_type.into(),
            signatures: vec![EnvelopeSignature {
                sig: B64.encode(sig),
                keyid: Some(key.hint().into()),
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }
}
