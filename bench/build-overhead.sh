#!/usr/bin/env bash
# Benchmark: `hermetic build` of ripgrep (builder image present, vendor cache warm) against
# `cargo build --release --offline` of the same tree on the host, in the same run.
#
# Target: hermetic's overhead is at most 5% of the host build plus container start.
# Both builds start from an empty target directory and use the same vendored sources.
# One untimed build of each comes first: it warms the page cache for both, and puts the
# vendored tree into the engine's cache as any earlier build of this lockfile would have
# (the engine's cache is emptied first, so that first build's `upload` is a cold engine's).
#
# The machine's speed drifts by several seconds within minutes, so the builds alternate (the
# first of each pair swapping every time) and the verdict uses the median of the per-pair
# differences; the medians of each series are printed too.
#
# Usage: [RUNS=8] bench/build-overhead.sh   (needs crates.io once, for ripgrep's sources)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
prepare_ripgrep

runs=${RUNS:-8}
now() { date +%s%N; }
# Median of the arguments.
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# Container start alone: a probe container that runs `true` (created, started, removed);
# median of three.
starts=()
for _ in 1 2 3; do
  t0=$(now); docker run --rm --network none hermetic/builder:latest true; t1=$(now)
  starts+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')")
done

rm -rf "$work/host-target" "$work/dist"
"$hermetic" gc --cache >/dev/null 2>&1
cargo build --release --offline --locked --quiet --config "$deps/config.toml" --target-dir "$work/host-target"
"$hermetic" build --out "$work/dist" --json 2>/dev/null > "$work/warmup.json"
cold=$(python3 -c "import json,sys; t=json.load(open(sys.argv[1]))['timings']; print(t['upload_ms']/1e3)" "$work/warmup.json")

# Alternate the two builds, so that drift in the machine's speed hits both alike, and swap
# which goes first in every other pair, so that any cost of following another build is not
# always charged to the same one.
host_build() {
  rm -rf "$work/host-target"
  local t0 t1
  t0=$(now)
  cargo build --release --offline --locked --quiet --config "$deps/config.toml" --target-dir "$work/host-target"
  t1=$(now)
  hosts+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')")
}
hermetic_build() {
  rm -rf "$work/dist"
  local t0 t1
  t0=$(now)
  "$hermetic" build --out "$work/dist" --json 2>/dev/null > "$work/run.json"
  t1=$(now)
  herms+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')")
  # Where hermetic's time went (its --json `timings`): the container build, and each
  # stage around it.
  inside+=("$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['timings']['build_ms']/1e3)" "$work/run.json")")
  rest+=("$(python3 -c "import json,sys; t=json.load(open(sys.argv[1]))['timings']; print(' '.join(f'{k[:-3]} {v/1e3:.2f}' for k, v in t.items() if k != 'build_ms'))" "$work/run.json")")
}
hosts=(); herms=(); inside=(); rest=()
for i in $(seq 1 "$runs"); do
  if [ $((i % 2)) -eq 1 ]; then host_build; hermetic_build; else hermetic_build; host_build; fi
done
host=$(median "${hosts[@]}"); herm=$(median "${herms[@]}"); box=$(median "${inside[@]}")
start=$(median "${starts[@]}")
pairs=(); boxes=()
for i in "${!hosts[@]}"; do
  pairs+=("$(awk -v h="${hosts[$i]}" -v m="${herms[$i]}" 'BEGIN { printf "%.1f", m - h }')")
  boxes+=("$(awk -v h="${hosts[$i]}" -v m="${inside[$i]}" 'BEGIN { printf "%.1f", m - h }')")
done
pair=$(median "${pairs[@]}")

echo "ripgrep $version release build, $(nproc) CPUs, median of $runs alternated runs"
echo "host cargo build --release --offline: ${host} s   (${hosts[*]})"
echo "hermetic build (vendor warm, image present): ${herm} s   (${herms[*]})"
echo "  container build: ${box} s (${inside[*]}); container start alone: ${start} s (${starts[*]})"
echo "  per pair, hermetic - host: ${pairs[*]} s; container build - host: ${boxes[*]} s"
for i in "${!rest[@]}"; do echo "  run $((i + 1)) stages (s): ${rest[$i]}"; done
echo "  first (untimed) build's upload of the vendored tree to the engine: ${cold} s"
awk -v h="$host" -v m="$herm" -v s="$start" -v p="$pair" 'BEGIN {
  allowed = h * 0.05 + s
  printf "overhead, median of pairs: %.1f s (%.1f%%); allowed (5%% of host + container start): %.1f s: %s\n", p, p / h * 100, allowed, (p <= allowed ? "met" : "MISSED")
  printf "overhead, difference of medians: %.1f s (%.1f%%): %s\n", m - h, (m - h) / h * 100, (m - h <= allowed ? "met" : "MISSED")
}'
