#![no_main]
// The engine's tar stream of one output, fed in pieces as the engine's chunks arrive: the
// first byte of the input chooses the piece size.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&size, mut rest)) = data.split_first() else {
        return;
    };
    let piece = 1 + usize::from(size) * 16;
    let mut parser = hermetic_sandbox::container::SingleFileTar::default();
    let mut sink = hermetic_fuzz::Collect {
        cap: 1 << 20,
        got: 0,
    };
    let started = std::cell::Cell::new(false);
    while !rest.is_empty() {
        let (now, after) = rest.split_at(piece.min(rest.len()));
        match parser.feed(now, &mut sink, &started) {
            Ok(false) => rest = after,
            Ok(true) | Err(_) => return,
        }
    }
    let _ = parser.end();
});
