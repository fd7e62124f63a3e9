pub mod vendor;
