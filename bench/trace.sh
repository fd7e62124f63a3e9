#!/usr/bin/env bash
# Benchmark: what tracing a mismatch to its crate costs `hermetic verify` on ripgrep. Each
# runner's container hashes target/release/{build,deps} after its build and keeps the build
# scripts' output files; `--no-trace` skips that. Measured on a reproducible verification
# and on a mismatching one (a copy of ripgrep whose build script stamps the time into
# `rg --version`, which also costs the explanation's rebuild of the reference), with and
# without tracing, rounds alternated. Target: near zero (hashes only).
#
# Usage: [RUNS=2] bench/trace.sh   (needs crates.io once, for ripgrep's sources)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
prepare_ripgrep
runs=${RUNS:-2}
# The mismatching copy: ripgrep's build script reports the build's nanoseconds as its git
# hash, which `rg --version` prints.
stamped=$work/ripgrep-stamped
if [ ! -f "$stamped/build.rs" ]; then
  rm -rf "$stamped" && cp -r "$project" "$stamped" && rm -rf "$stamped/target" "$stamped/dist"
  python3 - "$stamped/build.rs" <<'EOF'
import sys
p = sys.argv[1]
s = open(p).read()
old = "fn main() {"
assert old in s
s = s.replace(old, old + '\n    println!("cargo:rustc-env=RIPGREP_BUILD_GIT_HASH={}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());', 1)
open(p, "w").write(s)
EOF
  (cd "$stamped" && "$hermetic" vendor >/dev/null 2>&1)
fi
secs() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s%N); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
verify() { (cd "$1" && shift && "$hermetic" verify --runners 2 --vary none --no-sign --no-cache "$@"); }
rt=(); rn=(); mt=(); mn=()
for i in $(seq 1 "$runs"); do
  rt+=("$(secs verify "$project" --out "$work/v-rt")")
  rn+=("$(secs verify "$project" --no-trace --out "$work/v-rn")")
  mt+=("$(secs verify "$stamped" --out "$work/v-mt")")
  mn+=("$(secs verify "$stamped" --no-trace --out "$work/v-mn")")
done
# The mismatch must have been traced to ripgrep's own build script.
(cd "$stamped" && "$hermetic" --json verify --runners 2 --vary none --no-sign --no-explain \
  --out "$work/v-check" || true) | python3 -c '
import json, sys
v = json.load(sys.stdin)
assert v["verdict"] == "mismatch", v.get("verdict")
assert v["crates"][0]["name"] == "ripgrep" and v["crates"][0]["build_script"], v["crates"]
print("traced to:", v["cause"][:160])'
a=$(median "${rt[@]}"); b=$(median "${rn[@]}"); c=$(median "${mt[@]}"); d=$(median "${mn[@]}")
echo "ripgrep $version, $(nproc) CPUs, verify --runners 2 --vary none, median of $runs alternated rounds"
echo "reproducible, traced:      ${a} s   (${rt[*]})"
echo "reproducible, --no-trace:  ${b} s   (${rn[*]})"
echo "mismatching, traced:       ${c} s   (${mt[*]})"
echo "mismatching, --no-trace:   ${d} s   (${mn[*]})"
awk -v a="$a" -v b="$b" -v c="$c" -v d="$d" 'BEGIN {
  printf "tracing costs: reproducible %+.2f s (%+.1f%%), mismatching %+.2f s (%+.1f%%)\n",
    a - b, (a - b) / b * 100, c - d, (c - d) / d * 100
}'
