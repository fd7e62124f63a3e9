#![no_main]
// Sigstore bundles (DSSE and message signature), against the corpus's key.
use std::sync::OnceLock;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    static KEY: OnceLock<hermetic_attest::keys::PublicKey> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz/bundle/key.pub");
        hermetic_attest::keys::PublicKey::load(&path).expect("the corpus's key")
    });
    let _ = hermetic_attest::verify::verify_bundle(data, key, None);
    let _ = hermetic_attest::verify::verify_bundle(data, key, Some(b"artifact"));
});
