//! What auditors and release pipelines consume: digests of build outputs, a deterministic
//! release archive, and (later stages) provenance, SBOMs and signatures.
//!
//! - [`digest`]: streamed SHA-256 of every output, in parallel; `SHA256SUMS`;
//! - [`archive`]: a byte-for-byte reproducible `tar.gz` of the outputs.

pub mod archive;
pub mod digest;
mod error;

pub use error::{Error, Result};
