#![no_main]
// vendor-policy.toml, parsed with spans for its diagnostics.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = hermetic_fuzz::scratch_file("vendor-policy.toml", data);
    let _ = hermetic_deps::policy::Policy::load(&path);
});
