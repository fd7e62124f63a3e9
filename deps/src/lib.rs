//! Lockfile, vendoring and vendor policy: the first stage of hermetic.
//!
//! Turns a Rust workspace's `Cargo.lock` into a complete, verified, policy-checked offline
//! source tree, and describes it in a [`DepManifest`] (`deps.json`). Every later stage
//! (container builds, SBOMs, provenance, audits) consumes that manifest instead of asking
//! cargo again, so what was verified here is exactly what is built and attested.
//!
//! - [`lockfile`]: reads `Cargo.lock` and classifies package sources;
//! - [`vendor()`]: vendors every locked package from original `.crate` archives kept in a
//!   content-addressed [`cache`];
//! - [`check`]: re-verifies a vendored tree against `Cargo.lock` checksums, the
//!   `.cargo-checksum.json` files and the archives themselves;
//! - [`policy`]: `vendor-policy.toml` rules (sources, licenses, bans, build scripts,
//!   proc macros, duplicates).
//! - [`seal`]: cache entries only this machine's hermetic can have written;
//! - [`durable`]: files and trees published by rename only once they are on disk;
//! - [`time`]: RFC 3339 timestamps, shared by the layers, documents and reports of the later
//!   stages.

pub mod archive;
pub mod cache;
pub mod check;
pub mod durable;
mod error;
pub mod hash;
pub mod host;
mod index;
pub mod lockfile;
pub mod manifest;
mod metadata;
pub mod policy;
pub mod seal;
pub mod time;
pub mod validate;
mod vendor;

pub use error::{Error, ErrorKind, Result};
pub use manifest::{DepManifest, Package, Source};
pub use vendor::{
    VendorOptions, VendorOutcome, record_tree_index, tree_unchanged, vendor, write_source_config,
};
