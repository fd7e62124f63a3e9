#![no_main]
// in-toto statements.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = hermetic_attest::verify::check_statement(data);
});
