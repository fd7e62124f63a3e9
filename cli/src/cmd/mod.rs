pub mod audit;
pub mod build;
pub mod gate;
pub mod image;
pub mod sign;
pub mod vendor;
pub mod verify;
