//! What auditors and release pipelines consume, made from a build's record and checkable
//! offline with the field's own tools:
//!
//! - [`digest`]: streamed SHA-256 of every output, in parallel; `SHA256SUMS`;
//! - [`archive`]: a byte-for-byte reproducible `tar.gz` of the outputs;
//! - [`record`]: the build record that every document below is made from;
//! - [`provenance`]: SLSA Provenance v1 in an in-toto statement;
//! - [`sbom`]: reproducible SPDX 2.3 and CycloneDX 1.6 documents;
//! - [`keys`], [`dsse`], [`bundle`]: cosign-compatible keys, DSSE envelopes and sigstore
//!   bundles v0.3 (key-based, offline);
//! - [`verify`]: checks a bundle against a public key and an artifact;
//! - [`compare`], [`report`]: outputs of several runners compared, differences explained,
//!   and the report of `hermetic verify`;
//! - [`culprit`]: the crates that cause a mismatch, from what the runners made on the way;
//! - [`documents`]: writes (and signs) the whole set into an output directory;
//! - [`memo`]: verdicts remembered for their exact inputs, sealed, and only while the output
//!   directory is what they left.

pub mod archive;
pub mod audit;
pub mod bundle;
pub mod compare;
pub mod culprit;
pub mod digest;
pub mod documents;
pub mod dsse;
mod error;
pub mod gate;
pub mod keys;
pub mod memo;
pub mod provenance;
pub mod record;
pub mod report;
pub mod sbom;
pub mod statement;
pub use hermetic_deps::time;
pub mod verify;

pub use error::{Error, ErrorKind, Result};

#[cfg(test)]
mod tests;
