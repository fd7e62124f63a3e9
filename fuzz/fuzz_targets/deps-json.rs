#![no_main]
// deps.json, the dependency manifest later stages read.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = hermetic_fuzz::scratch_file("deps.json", data);
    let _ = hermetic_deps::manifest::DepManifest::read(&path);
});
