//! Fuzzing of every reader of hostile bytes: `Cargo.lock`, `vendor-policy.toml`,
//! `hermetic.toml`, `deps.json`, `SHA256SUMS`, sigstore bundles, in-toto statements and the
//! engine's tar stream of an output.
//!
//! A coverage-guided fuzzer needs a nightly toolchain, which these machines cannot fetch; this
//! is a mutation fuzzer that runs on stable, in CI, for a bounded time per target. It starts
//! from the committed corpus (`tests/fuzz/TARGET/`), mutates (bit flips, cuts, repeats,
//! splices with other seeds, hostile tokens) and requires that no reader panics, hangs or
//! grows without bound: every input is an `Ok` or a typed error. A crash prints the seed that
//! reproduces it (`HERMETIC_FUZZ_SEED`) and leaves the input in `target/tmp/fuzz-crash-*`.
//! `HERMETIC_FUZZ_SECS` sets the time per target (default 3 s).

mod common;

use std::path::{Path, PathBuf};

/// A small, fast, reproducible generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Strings that readers of these formats trip on.
const TOKENS: &[&[u8]] = &[
    b"../",
    b"/etc/passwd",
    b"\0",
    b"\xff\xfe",
    b"\"",
    b"'''",
    b"[[package]]\n",
    b"[[runners]]\n",
    b"= ",
    b"99999999999999999999999999",
    b"-1",
    b"sha256:",
    b"\"payload\":",
    b"{}",
    b"[]",
    b"null",
    b"\\u0000",
    b"\n",
    b"0000000",
    b"ustar\0",
];

fn mutate(rng: &mut Rng, seed: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let len = out.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = rng.next() as u8;
            }
            2 => out.truncate(rng.below(len + 1)),
            3 if len > 0 => {
                let (a, b) = (rng.below(len), rng.below(len));
                let (a, b) = (a.min(b), a.max(b));
                let piece = out[a..b].to_vec();
                let at = rng.below(len + 1);
                out.splice(at..at, piece);
            }
            4 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                let at = rng.below(len + 1);
                out.splice(at..at, token.iter().copied());
            }
            5 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                let at = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
            6 if len > 0 => {
                let (a, b) = (rng.below(len), rng.below(len));
                out.drain(a.min(b)..a.max(b));
            }
            _ => {
                // A long run: lengths and counts near their limits.
                let at = rng.below(len + 1);
                let byte = [b'a', b'9', b'/', b'[', 0][rng.below(5)];
                out.splice(at..at, std::iter::repeat_n(byte, 1 << rng.below(14)));
            }
        }
    }
    out
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = common::repo_root().join("tests/fuzz").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_none_or(|e| e != "pub"))
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .map(|p| std::fs::read(p).expect("seed"))
        .collect();
    assert!(!seeds.is_empty(), "no corpus in {}", dir.display());
    seeds
}

/// Runs `check` on every seed, then on mutations for the time budget. `check` gets the bytes
/// and a scratch directory; it must return (any result) without panicking.
fn fuzz(target: &str, check: impl Fn(&[u8], &Path)) {
    let seeds = corpus(target);
    let secs: u64 = std::env::var("HERMETIC_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("HERMETIC_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| common::unix_now() | 1);
    let scratch = tempfile::tempdir().expect("scratch");
    let mut rng = Rng(seed);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut runs = 0u64;
    let mut inputs: Vec<Vec<u8>> = seeds.clone();
    let mut i = 0;
    while i < inputs.len() || std::time::Instant::now() < deadline {
        if i >= inputs.len() {
            let base = &seeds[rng.below(seeds.len())];
            inputs.push(mutate(&mut rng, base, &seeds));
        }
        let input = inputs[i].clone();
        i += 1;
        runs += 1;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check(&input, scratch.path())
        }));
        if outcome.is_err() {
            let crash = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("fuzz-crash-{target}-{seed}"));
            let _ = std::fs::write(&crash, &input);
            panic!(
                "{target}: a reader panicked on input {} of HERMETIC_FUZZ_SEED={seed}; \
                 the input is in {}",
                i - 1,
                crash.display()
            );
        }
        // Keep memory flat: only the seeds and the current input are needed.
        if inputs.len() > seeds.len() {
            inputs.truncate(seeds.len());
            i = seeds.len();
        }
    }
    eprintln!("{target}: {runs} inputs, no crash (HERMETIC_FUZZ_SEED={seed})");
    assert!(runs > seeds.len() as u64, "{target}: no mutation ran");
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write input");
    p
}

#[test]
fn fuzz_cargo_lock() {
    fuzz("lockfile", |bytes, dir| {
        let _ = hermetic_deps::lockfile::Lockfile::read(&write(dir, "Cargo.lock", bytes));
    });
}

#[test]
fn fuzz_vendor_policy() {
    fuzz("policy", |bytes, dir| {
        let _ = hermetic_deps::policy::Policy::load(&write(dir, "vendor-policy.toml", bytes));
    });
}

#[test]
fn fuzz_hermetic_toml() {
    fuzz("config", |bytes, dir| {
        let path = dir.join("hermetic.toml");
        let _ = hermetic_sandbox::config::Config::parse(
            &path,
            &String::from_utf8_lossy(bytes),
            hermetic_sandbox::config::Origin::User,
        );
    });
}

#[test]
fn fuzz_deps_json() {
    fuzz("deps-json", |bytes, dir| {
        let _ = hermetic_deps::manifest::DepManifest::read(&write(dir, "deps.json", bytes));
    });
}

#[test]
fn fuzz_sha256sums() {
    fuzz("sums", |bytes, _| {
        let _ = hermetic_attest::digest::parse_sha256sums(&String::from_utf8_lossy(bytes));
    });
}

#[test]
fn fuzz_sigstore_bundle() {
    let key_path = common::repo_root().join("tests/fuzz/bundle/key.pub");
    let key = hermetic_attest::keys::PublicKey::load(&key_path).expect("fuzz key");
    // The DSSE seed is real and verifies, so mutations start from the accepting path (the
    // message-signature seed needs its artifact, which is not committed).
    let provenance =
        std::fs::read(common::repo_root().join("tests/fuzz/bundle/provenance.json")).expect("seed");
    assert!(hermetic_attest::verify::verify_bundle(&provenance, &key, None).is_ok());
    fuzz("bundle", |bytes, _| {
        let _ = hermetic_attest::verify::verify_bundle(bytes, &key, None);
        let _ = hermetic_attest::verify::verify_bundle(bytes, &key, Some(b"artifact"));
    });
}

#[test]
fn fuzz_in_toto_statement() {
    fuzz("statement", |bytes, _| {
        let _ = hermetic_attest::verify::check_statement(bytes);
    });
}

/// What the stream hands its sink, bounded as the build's receiver bounds it.
struct Collect {
    cap: u64,
    got: u64,
}

impl hermetic_sandbox::container::FileSink for Collect {
    fn begin(&mut self, size: u64) -> std::io::Result<()> {
        if size > self.cap {
            return Err(std::io::Error::other("too large"));
        }
        Ok(())
    }

    fn data(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.got += bytes.len() as u64;
        if self.got > self.cap {
            return Err(std::io::Error::other("too large"));
        }
        Ok(())
    }
}

#[test]
fn fuzz_output_tar_stream() {
    // The seeds are real single-file archives: the whole file comes out.
    for seed in corpus("tar") {
        let mut parser = hermetic_sandbox::container::SingleFileTar::default();
        let mut sink = Collect {
            cap: 1 << 20,
            got: 0,
        };
        let started = std::cell::Cell::new(false);
        assert_eq!(parser.feed(&seed, &mut sink, &started).ok(), Some(true));
        assert_eq!(sink.got, 12);
    }
    let rng = std::cell::RefCell::new(Rng(7));
    fuzz("tar", |bytes, _| {
        // In pieces of every size, as the engine's chunks arrive.
        let mut parser = hermetic_sandbox::container::SingleFileTar::default();
        let mut sink = Collect {
            cap: 1 << 20,
            got: 0,
        };
        let started = std::cell::Cell::new(false);
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = 1 + rng.borrow_mut().below(rest.len().min(4096));
            let (piece, after) = rest.split_at(n);
            match parser.feed(piece, &mut sink, &started) {
                Ok(false) => rest = after,
                Ok(true) | Err(_) => return,
            }
        }
        let _ = parser.end();
    });
}
