pub mod image;
pub mod vendor;
