#!/usr/bin/env bash
# Benchmark: `hermetic build` of ripgrep (builder image present, vendor cache warm) against
# `cargo build --release --offline` of the same tree on the host, in the same run.
#
# Target: hermetic's overhead is at most 5% of the host build plus container start.
# Both builds start from an empty target directory and use the same vendored sources.
#
# Usage: [RUNS=3] bench/build-overhead.sh   (needs crates.io once, for ripgrep's sources)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
prepare_ripgrep

runs=${RUNS:-3}
now() { date +%s%N; }
# Median of the arguments.
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# Container start alone: a probe container that runs `true`.
t0=$(now); docker run --rm --network none hermetic/builder:latest true; t1=$(now)
start=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')

# Alternate the two builds, so that drift in the machine's speed hits both alike.
hosts=(); herms=(); inside=(); prep=(); coll=()
for i in $(seq 1 "$runs"); do
  rm -rf "$work/host-target"
  t0=$(now)
  cargo build --release --offline --locked --quiet --config "$deps/config.toml" --target-dir "$work/host-target"
  t1=$(now)
  hosts+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')")
  rm -rf "$work/dist"
  t0=$(now)
  "$hermetic" build --out "$work/dist" >/dev/null 2>&1
  t1=$(now)
  herms+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')")
  # Where hermetic's time went, from the build record: prepare (image check, inputs packed
  # and uploaded), build (container start to exit), collect (outputs downloaded).
  read -r p b c < <(python3 -c "import json,sys; s=json.load(open(sys.argv[1]))['run']['stages']; print(s['prepare_ms']/1e3, s['build_ms']/1e3, s['collect_ms']/1e3)" "$work/dist/hermetic-build.json")
  prep+=("$p"); inside+=("$b"); coll+=("$c")
done
host=$(median "${hosts[@]}"); herm=$(median "${herms[@]}"); box=$(median "${inside[@]}")
pm=$(median "${prep[@]}"); cm=$(median "${coll[@]}")

echo "ripgrep $version release build, $(nproc) CPUs, median of $runs alternated runs"
echo "host cargo build --release --offline: ${host} s   (${hosts[*]})"
echo "hermetic build (vendor warm, image present): ${herm} s   (${herms[*]})"
echo "  of which: prepare ${pm} s, container build ${box} s (${inside[*]}), collect ${cm} s; container start alone: ${start} s"
awk -v h="$host" -v m="$herm" -v s="$start" 'BEGIN {
  limit = h * 1.05 + s
  printf "overhead: %.1f s (%.1f%%); target <= %.1f s: %s\n", m - h, (m - h) / h * 100, limit, (m <= limit ? "met" : "MISSED")
}'
