//! cosign-compatible keys: `cosign.key` (PEM `ENCRYPTED SIGSTORE PRIVATE KEY`: scrypt
//! N=32768 r=8 p=1, nacl/secretbox around PKCS#8) and `cosign.pub` (PEM SPKI), both with LF
//! line endings. Only ECDSA P-256 with SHA-256 (cosign's default) is accepted, so that every
//! signature can be checked with `openssl dgst -sha256 -verify`.

use crate::error::{Error, IoContext, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};
use sigstore::crypto::signing_key::{
    COSIGN_PRIVATE_KEY_PEM_LABEL, SIGSTORE_PRIVATE_KEY_PEM_LABEL, SigStoreKeyPair, kdf,
};
use sigstore::crypto::{CosignVerificationKey, Signature, SigningScheme};
use std::path::Path;
use zeroize::Zeroizing;

const SCHEME: SigningScheme = SigningScheme::ECDSA_P256_SHA256_ASN1;

/// The key hint of sigstore bundles and the DSSE `keyid`: base64(SHA-256(SPKI DER)).
pub fn hint(spki_der: &[u8]) -> String {
    B64.encode(Sha256::digest(spki_der))
}

/// The DER of a P-256 SubjectPublicKeyInfo up to its point: the algorithm
/// (id-ecPublicKey, prime256v1) and a 66-byte bit string.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// `der` is the one encoding cosign writes for a P-256 key: the fixed prefix and an
/// uncompressed point (`04 || X || Y`), nothing after it.
pub fn is_canonical_p256_spki(der: &[u8]) -> bool {
    der.len() == P256_SPKI_PREFIX.len() + 65
        && der.starts_with(&P256_SPKI_PREFIX)
        && der[P256_SPKI_PREFIX.len()] == 0x04
}

/// sigstore writes PEM with CRLF; cosign and openssl users expect LF.
fn lf(pem: &str) -> String {
    pem.replace("\r\n", "\n")
}

/// A private key, ready to sign.
pub struct SigningKey {
    signer: sigstore::crypto::SigStoreSigner,
    spki_der: Vec<u8>,
    hint: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("hint", &self.hint)
            .finish()
    }
}

/// A new key pair as PEM text: (encrypted private key, public key).
pub fn generate(password: &[u8]) -> Result<(Zeroizing<String>, String)> {
    let fail = |detail: String| Error::Key {
        path: "cosign.key".into(),
        detail,
        fix: "report this: generating an ECDSA P-256 key failed".into(),
    };
    let signer = SCHEME.create_signer().map_err(|e| fail(e.to_string()))?;
    let pair = signer
        .to_sigstore_keypair()
        .map_err(|e| fail(e.to_string()))?;
    let private = pair
        .private_key_to_encrypted_pem(password)
        .map_err(|e| fail(e.to_string()))?;
    let public = pair.public_key_to_pem().map_err(|e| fail(e.to_string()))?;
    Ok((Zeroizing::new(lf(&private)), lf(&public)))
}

impl SigningKey {
    /// Reads and decrypts a cosign private key.
    pub fn load(path: &Path, password: &[u8]) -> Result<SigningKey> {
        let pem = std::fs::read(path).at(path)?;
        Self::from_pem(path, &pem, password)
    }

    pub fn from_pem(path: &Path, pem: &[u8], password: &[u8]) -> Result<SigningKey> {
        let text = String::from_utf8_lossy(pem);
        if text.contains("PUBLIC KEY") && !text.contains("PRIVATE KEY") {
            return Err(Error::Key {
                path: path.into(),
                detail: "this is a public key; signing needs the private key".into(),
                fix: "pass the .key file made by `hermetic keygen` or `cosign generate-key-pair`"
                    .into(),
            });
        }
        let parsed = pem::parse(pem).map_err(|e| Error::Key {
            path: path.into(),
            detail: format!("not a PEM file: {e}"),
            fix: "pass a key made by `hermetic keygen` or `cosign generate-key-pair`".into(),
        })?;
        let der = match parsed.tag() {
            COSIGN_PRIVATE_KEY_PEM_LABEL | SIGSTORE_PRIVATE_KEY_PEM_LABEL => {
                // Decrypt first, so that a wrong password is told apart from a bad key.
                Zeroizing::new(kdf::decrypt(parsed.contents(), password).map_err(|e| {
                    Error::Key {
                        path: path.into(),
                        detail: format!("cannot decrypt the private key (wrong password?): {e}"),
                        fix: format!("set {} to the key's password", "COSIGN_PASSWORD"),
                    }
                })?)
            }
            tag => {
                return Err(Error::Key {
                    path: path.into(),
                    detail: format!("PEM label {tag:?} is not {SIGSTORE_PRIVATE_KEY_PEM_LABEL:?}"),
                    fix: "pass an encrypted key made by `hermetic keygen` or `cosign generate-key-pair`"
                        .into(),
                });
            }
        };
        let pair = SigStoreKeyPair::from_der(&der).map_err(|e| Error::Key {
            path: path.into(),
            detail: format!("the decrypted key is not usable: {e}"),
            fix: "use an ECDSA P-256 key (cosign's default)".into(),
        })?;
        let signer = pair.to_sigstore_signer(&SCHEME).map_err(|e| Error::Key {
            path: path.into(),
            detail: format!("unsupported key type: {e}"),
            fix: "use an ECDSA P-256 key (cosign's default)".into(),
        })?;
        let spki_der = pair.public_key_to_der().map_err(|e| Error::Key {
            path: path.into(),
            detail: e.to_string(),
            fix: "use an ECDSA P-256 key (cosign's default)".into(),
        })?;
        Ok(SigningKey {
            hint: hint(&spki_der),
            signer,
            spki_der,
        })
    }

    /// ASN.1 DER ECDSA P-256 signature over SHA-256(`msg`): what `cosign sign-blob` makes.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        self.signer.sign(msg).map_err(|e| Error::Key {
            path: "signing key".into(),
            detail: format!("signing failed: {e}"),
            fix: "report this".into(),
        })
    }

    pub fn hint(&self) -> &str {
        &self.hint
    }

    pub fn public_key(&self) -> Result<PublicKey> {
        PublicKey::from_der(Path::new("signing key"), &self.spki_der)
    }
}

/// A public key, to verify with.
pub struct PublicKey {
    key: CosignVerificationKey,
    spki_der: Vec<u8>,
    hint: String,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("hint", &self.hint)
            .finish()
    }
}

impl PublicKey {
    pub fn load(path: &Path) -> Result<PublicKey> {
        let pem = std::fs::read(path).at(path)?;
        let text = String::from_utf8_lossy(&pem);
        if text.contains("PRIVATE KEY") {
            return Err(Error::Key {
                path: path.into(),
                detail: "this is a private key; verification takes the public key".into(),
                fix: "pass the .pub file (cosign.pub)".into(),
            });
        }
        let parsed = pem::parse(&pem[..]).map_err(|e| Error::Key {
            path: path.into(),
            detail: format!("not a PEM public key: {e}"),
            fix: "pass the cosign.pub made with the signing key".into(),
        })?;
        Self::from_der(path, parsed.contents())
    }

    pub fn from_der(path: &Path, der: &[u8]) -> Result<PublicKey> {
        let key = CosignVerificationKey::try_from_der(der).map_err(|e| Error::Key {
            path: path.into(),
            detail: format!("not a usable public key: {e}"),
            fix: "pass the cosign.pub made with the signing key".into(),
        })?;
        if !matches!(key, CosignVerificationKey::ECDSA_P256_SHA256_ASN1(_)) {
            return Err(Error::Key {
                path: path.into(),
                detail: "only ECDSA P-256 keys are supported".into(),
                fix: "use an ECDSA P-256 key (cosign's default)".into(),
            });
        }
        // A key is known by its hint, the digest of these bytes: one key must have one
        // encoding, or the same key given compressed and uncompressed would be two voters.
        if !is_canonical_p256_spki(der) {
            return Err(Error::Key {
                path: path.into(),
                detail: "not the canonical encoding of a P-256 public key (an uncompressed \
                         point on the named curve, as cosign writes it)"
                    .into(),
                fix: "re-encode it: `openssl ec -pubin -in KEY -conv_form uncompressed \
                      -out KEY.pub`"
                    .into(),
            });
        }
        Ok(PublicKey {
            hint: hint(der),
            key,
            spki_der: der.to_vec(),
        })
    }

    pub fn hint(&self) -> &str {
        &self.hint
    }

    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// True if `sig` (DER) is this key's signature over `msg`.
    pub fn verify(&self, sig: &[u8], msg: &[u8]) -> bool {
        self.key.verify_signature(Signature::Raw(sig), msg).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_has_one_encoding_so_it_is_one_voter() {
        let (_, public) = generate(b"password").expect("key");
        let der = pem::parse(public.as_bytes())
            .expect("pem")
            .contents()
            .to_vec();
        let key = PublicKey::from_der(Path::new("k.pub"), &der).expect("canonical");
        assert_eq!(key.hint(), hint(&der));
        // The same point, compressed: another DER, another hint; refused.
        let x = &der[27..59];
        let mut compressed = vec![0x30, 0x39];
        compressed.extend_from_slice(&P256_SPKI_PREFIX[2..23]);
        compressed.extend_from_slice(&[0x03, 0x22, 0x00, 0x02 | (der[90] & 1)]);
        compressed.extend_from_slice(x);
        assert_eq!(compressed.len(), 59);
        let e = PublicKey::from_der(Path::new("k.pub"), &compressed).expect_err("compressed");
        assert!(e.to_string().contains("k.pub"), "{e}");
        // Nor with bytes after it.
        let mut longer = der.clone();
        longer.push(0);
        assert!(PublicKey::from_der(Path::new("k.pub"), &longer).is_err());
    }
}
