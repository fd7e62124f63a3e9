#!/usr/bin/env bash
# Benchmark: `hermetic vendor` with a warm cache against `cargo vendor`, on ripgrep's
# published Cargo.lock (a ripgrep-sized graph), in the same run.
#
# Target: the warm re-run of `hermetic vendor` (same lockfile, output already present)
# finishes in <= 0.2 s with no network access. Also reported: a fresh output directory
# filled from the warm cache, and `cargo vendor --locked --versioned-dirs` (warm cargo home).
#
# Usage: bench/vendor-warm.sh [RUNS]   (needs crates.io once, to fetch ripgrep's sources)
set -euo pipefail
runs=${1:-7}
root=$(cd "$(dirname "$0")/.." && pwd)
# Outside the repository: cargo would take the project for a member of this workspace.
work=${BENCH_DIR:-${TMPDIR:-/tmp}/hermetic-bench-vendor}
mkdir -p "$work"
. "$root/bench/lib.sh"
build_hermetic

fetch_ripgrep "$work"
export HERMETIC_CACHE=$work/cache

# Median wall time in seconds of RUNS runs of a command (after one untimed warm-up).
median() {
  "$@" >/dev/null 2>&1
  local times=()
  for _ in $(seq "$runs"); do
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s%N)
    times+=("$(( (t1 - t0) / 1000 ))")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]/1e6}'
}

cd "$project"
"$hermetic" vendor --out "$work/out" >/dev/null 2>&1   # cold: fills the cache
warm=$(median "$hermetic" vendor --out "$work/out")
fresh() { rm -rf "$work/fresh"; "$hermetic" vendor --out "$work/fresh"; }
fresh_out=$(median fresh)
cargo_vendor() { rm -rf "$work/cv"; cargo vendor --locked --versioned-dirs "$work/cv"; }
cv=$(median cargo_vendor)
# The warm re-run must not need the network: run it once more without any.
offline=ok
if command -v unshare >/dev/null && unshare --net true 2>/dev/null; then
  unshare --net -- "$hermetic" vendor --out "$work/out" >/dev/null 2>&1 || offline=FAILED
else
  offline="not checked (unshare --net unavailable)"
fi

crates=$(find "$work/out/vendor" -mindepth 1 -maxdepth 1 -type d | wc -l)
size=$(du -sh "$work/out/vendor" | cut -f1)
echo "ripgrep $version: $crates crates, $size vendored; median of $runs runs"
echo "hermetic vendor, warm re-run:           ${warm} s  (target <= 0.200 s; without network: $offline)"
echo "hermetic vendor, fresh out, warm cache: ${fresh_out} s"
echo "cargo vendor --locked --versioned-dirs: ${cv} s"
awk -v w="$warm" 'BEGIN { if (w <= 0.2) print "target met"; else print "target MISSED" }'
