pub mod build;
pub mod image;
pub mod vendor;
