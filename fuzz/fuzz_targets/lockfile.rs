#![no_main]
// Cargo.lock: every input is a lockfile or a typed error, never a panic or a hang.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = hermetic_fuzz::scratch_file("Cargo.lock", data);
    let _ = hermetic_deps::lockfile::Lockfile::read(&path);
});
