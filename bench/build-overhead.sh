#!/usr/bin/env bash
# Benchmark: `hermetic build` of ripgrep (builder image present, vendor cache warm) against
# `cargo build --release --offline` of the same tree on the host, in the same run.
#
# Target: hermetic's overhead is at most 5% of the host build plus container start.
# Both builds start from an empty target directory and use the same vendored sources.
#
# Usage: bench/build-overhead.sh   (needs crates.io once, for ripgrep's sources)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# Outside the repository: cargo would take the project for a member of this workspace.
work=${BENCH_DIR:-${TMPDIR:-/tmp}/hermetic-bench-build}
mkdir -p "$work"
. "$root/bench/lib.sh"
build_hermetic
fetch_ripgrep "$work"
cd "$project"

docker image inspect hermetic/builder:latest >/dev/null 2>&1 || "$hermetic" image bootstrap
"$hermetic" vendor >/dev/null 2>&1   # warms the vendor cache
deps=$project/target/hermetic/deps

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }

rm -rf "$work/host-target"
t0=$(date +%s%N)
cargo build --release --offline --locked --quiet --config "$deps/config.toml" --target-dir "$work/host-target"
t1=$(date +%s%N)
host=$(secs "$t0" "$t1")

# Container start alone: a probe container that runs `true`.
t0=$(date +%s%N)
docker run --rm --network none hermetic/builder:latest true
t1=$(date +%s%N)
start=$(secs "$t0" "$t1")

rm -rf "$work/dist"
t0=$(date +%s%N)
"$hermetic" build --out "$work/dist" >/dev/null 2>&1
t1=$(date +%s%N)
herm=$(secs "$t0" "$t1")

echo "ripgrep $version release build, $(nproc) CPUs"
echo "host cargo build --release --offline: ${host} s"
echo "hermetic build (vendor warm, image present): ${herm} s (container start alone: ${start} s)"
awk -v h="$host" -v m="$herm" -v s="$start" 'BEGIN {
  limit = h * 1.05 + s
  printf "overhead: %.1f s (%.1f%%); target <= %.1f s: %s\n", m - h, (m - h) / h * 100, limit, (m <= limit ? "met" : "MISSED")
}'
