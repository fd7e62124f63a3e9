#![no_main]
// hermetic.toml, as a user's file (the more permissive reading: every field is parsed).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("/nonexistent/hermetic.toml");
    let _ = hermetic_sandbox::config::Config::parse(
        path,
        &String::from_utf8_lossy(data),
        hermetic_sandbox::config::Origin::User,
    );
});
