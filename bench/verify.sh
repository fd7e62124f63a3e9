#!/usr/bin/env bash
# Benchmark: `hermetic verify --runners 2` against two `hermetic build`s back to back on the
# same inputs (vendor cache warm, image present), and the memo hit of an unchanged re-verify.
# Target: verify is no slower than the two builds; the memo answers in under a second.
#
# Usage: [VARY=LIST] [RUNS=3] bench/verify.sh [PROJECT_DIR]   (default: tests/fixtures/mixed, copied;
# VARY defaults to all. The cpus and jobs variations deliberately restrict the varied
# runner to one CPU / one job, so with them verify is compared with builds that have more.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build_hermetic
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src=${1:-$root/tests/fixtures/mixed}
cp -r "$src" "$work/p" && rm -rf "$work/p/target" "$work/p/dist"
cd "$work/p"
docker image inspect hermetic/builder:latest >/dev/null 2>&1 || "$hermetic" image bootstrap
"$hermetic" vendor >/dev/null 2>&1
secs() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
vary=${VARY:-all}
runs=${RUNS:-3}
# Rounds alternate the three ways, so that drift in the machine's speed hits all alike.
pairs=(); vs=(); us=()
for i in $(seq 1 "$runs"); do
  b1=$(secs "$hermetic" build --no-sign --out "$work/d1")
  b2=$(secs "$hermetic" build --no-sign --out "$work/d2")
  pairs+=("$(awk -v a="$b1" -v b="$b2" 'BEGIN { printf "%.2f", a + b }')")
  vs+=("$(secs "$hermetic" verify --runners 2 --vary "$vary" --no-sign --no-cache --out "$work/v")")
  # Without the CPU budget: every concurrent build starts one job per CPU.
  us+=("$(secs "$hermetic" verify --runners 2 --vary "$vary" --jobs "$(nproc)" --no-sign --no-cache --out "$work/u")")
done
m=$(secs "$hermetic" verify --runners 2 --vary "$vary" --no-sign --out "$work/v")
p=$(median "${pairs[@]}"); v=$(median "${vs[@]}"); u=$(median "${us[@]}")
echo "project: $(basename "$src"), $(nproc) CPUs, --vary $vary, median of $runs alternated rounds"
echo "two hermetic builds back to back:   ${p} s   (${pairs[*]})"
echo "hermetic verify --runners 2:        ${v} s   (${vs[*]})"
echo "  without the CPU budget (--jobs $(nproc)): ${u} s   (${us[*]})"
echo "memo hit (unchanged inputs):        ${m} s"
awk -v p="$p" -v v="$v" -v m="$m" 'BEGIN {
  printf "verify vs two builds: %+.1f%% (%s); memo: %s\n", (v - p) / p * 100,
    (v <= p ? "no slower" : "SLOWER"), (m < 1 ? "under 1 s" : "OVER 1 s")
}'
