#![no_main]
// SHA256SUMS of a release.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = hermetic_attest::digest::parse_sha256sums(&String::from_utf8_lossy(data));
});
