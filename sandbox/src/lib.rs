//! The Docker engine side of hermetic: builder images, hardened network-less containers,
//! moving inputs in and outputs out through the API, and cleaning up after every run.
//!
//! - [`config`]: `hermetic.toml`, the runners a project verifies on;
//! - [`endpoint`]: the forms an engine's address takes (unix, tcp with TLS, ssh);
//! - [`engine`]: connecting (like the docker CLI) and retrying transient failures with
//!   backoff and jitter, at every call;
//! - [`fault`]: which engine failures are transient and which are permanent;
//! - [`image`]: making the builder image offline (`debootstrap` + the host toolchain,
//!   imported through the API) and building `Dockerfile.hermetic` on top;
//! - [`base`]: the builder image on a registry base pinned by digest, assembled here so
//!   that its digest follows from the base's;
//! - [`recipe`]: the builder image as a function of its definition (`hermetic-image.lock`);
//! - [`layers`]: deterministic layers, image configurations and docker-archives;
//! - [`needs`]: what a build needs from its image, proposed before it and read from its
//!   log after a failure;
//! - [`container`]: the isolation every container gets;
//! - [`cache`]: the engine's copy of a vendored tree, kept between builds;
//! - [`build`]: one hermetic `cargo build` in a container, with its fixed environment;
//! - [`quorum`]: how many runners must answer, and what a failure costs;
//! - [`run`]: labels, and collection of what interrupted runs left behind.

pub mod base;
pub mod breaker;
pub mod build;
pub mod cache;
pub mod config;
pub mod container;
pub mod endpoint;
pub mod engine;
mod error;
pub mod fault;
pub mod image;
pub mod layers;
pub mod needs;
pub mod quorum;
pub mod recipe;
pub mod run;
mod ssh;
pub mod vary;

pub use error::{Error, ErrorKind, Result};
