#!/usr/bin/env bash
# Benchmark of the attest stage against the reference tools, in the same run:
#   - hashing a 2 GiB output tree: hermetic (parallel, streamed) vs `sha256sum` and
#     `openssl dgst -sha256` (targets: >= 1.5 GB/s per core, peak memory <= 64 MiB);
#   - the deterministic archive vs `tar --sort=name --mtime=@N --owner=0 --group=0
#     --numeric-owner | gzip -n` (same files);
#   - SBOMs + provenance for a 500-crate dependency manifest (target <= 0.2 s).
#
# Usage: bench/attest.sh   (needs ~2.5 GiB free under $BENCH_DIR or /tmp)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${BENCH_DIR:-${TMPDIR:-/tmp}/hermetic-bench-attest}
mkdir -p "$work"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p hermetic-attest --example attest-bench
bench=$root/target/release/examples/attest-bench
cores=$(nproc)

tree=$work/tree
if [ "$(du -sm "$tree" 2>/dev/null | cut -f1)" != "2049" ]; then
  rm -rf "$tree" && mkdir -p "$tree/bin"
  # Incompressible data, in files the size of large release binaries.
  for i in $(seq 1 16); do head -c $((128 << 20)) /dev/urandom > "$tree/bin/out$i"; done
fi
cat "$tree"/bin/* > /dev/null   # page cache warm for every contender

measure() { # label, command...: prints wall seconds and peak RSS
  local out
  out=$( { /usr/bin/time -f "%e %M" "${@:2}" > /dev/null; } 2>&1 | tail -1 )
  local secs=${out% *} kib=${out#* }
  awk -v l="$1" -v s="$secs" -v k="$kib" -v c="$cores" 'BEGIN {
    gb = 2147483648 / 1e9
    printf "%-34s %6.2f s  %5.2f GB/s  %5.2f GB/s/core  peak %4d MiB\n", l, s, gb / s, gb / s / c, k / 1024
  }'
}
echo "hashing 2 GiB in 16 files, $cores CPUs (sha2 backend picked at run time)"
measure "hermetic (parallel)" "$bench" hash "$tree"
measure "sha256sum" sh -c "sha256sum '$tree'/bin/*"
measure "openssl dgst -sha256" sh -c "openssl dgst -sha256 '$tree'/bin/*"
grep -q -m1 sha_ni /proc/cpuinfo && echo "(CPU has SHA-NI)" || echo "(CPU has no SHA-NI)"

echo
small=$work/small
rm -rf "$small" && mkdir -p "$small"
# Release binaries compress: use real ones (this machine's) rather than random bytes.
for b in cargo rustc rustdoc; do cp "$(rustup which "$b" 2>/dev/null || command -v "$b")" "$small/$b" 2>/dev/null || true; done
cp "$tree/bin/out1" "$small/random.bin"
size=$(du -sb "$small" | cut -f1)
secs() { local t0 t1; t0=$(date +%s%N); "$@" > /dev/null; t1=$(date +%s%N); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }
h=$(secs "$bench" archive "$small" "$work/h.tar.gz" 1700000000)
t=$(secs sh -c "tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -C '$small' -cf - . | gzip -n > '$work/t.tar.gz'")
t9=$(secs sh -c "tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -C '$small' -cf - . | gzip -n -9 > '$work/t9.tar.gz'")
echo "archive of $((size >> 20)) MiB ($(ls "$small" | tr '\n' ' '))"
echo "  hermetic (level 6, parallel):   ${h} s, $(( $(stat -c %s "$work/h.tar.gz") >> 20 )) MiB"
echo "  tar | gzip -n (level 6):        ${t} s, $(( $(stat -c %s "$work/t.tar.gz") >> 20 )) MiB"
echo "  tar | gzip -n -9:               ${t9} s, $(( $(stat -c %s "$work/t9.tar.gz") >> 20 )) MiB"

echo
"$bench" docs 500 | sed 's/^/SBOMs + provenance: /'
