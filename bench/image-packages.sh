#!/usr/bin/env bash
# Benchmark: the cost of a per-project builder image (hermetic.toml `[image] packages`)
# against the default image, in the same run, on the same engine.
#
#   default, first   `hermetic image bootstrap` with the default definition, the engine
#                    holding no builder image (the rootfs, toolchain and builder layers made
#                    and loaded)
#   project, first   the same for tests/fixtures/jemalloc, whose hermetic.toml adds `make`:
#                    another rootfs (mmdebstrap with one more package), so another image
#   project, warm    again, the image present: the lock is checked and the image tagged
#   build            `hermetic build` of the jemalloc fixture on its image (its build
#                    script runs jemalloc's configure and make)
#
# Also printed: each image's size, and what the engine stores for both. A project image
# shares no stored layer with the default one: its rootfs (the first layer) differs, and
# the engine keys a layer by the chain below it, so even the toolchain layer, the same
# bytes in both, is stored twice.
#
# Targets: a project image's first bootstrap costs at most 1.5 times the default's; warm, at
# most 3 s. Needs root, mmdebstrap and Debian's mirror (as bootstrap always does).
#
# Usage: bench/image-packages.sh   (removes hermetic/builder:* images from the engine first)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build_hermetic

work=${BENCH_DIR:-${TMPDIR:-/tmp}/hermetic-bench-image}
rm -rf "$work" && mkdir -p "$work"
cp -r "$root/tests/fixtures/jemalloc" "$work/project"
cp -r "$root/tests/fixtures/hello" "$work/default"
export HERMETIC_CACHE=$work/cache
export COSIGN_PASSWORD=bench HERMETIC_KEY=$work/key/cosign.key

now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }

docker images --format '{{.Repository}}:{{.Tag}}' | grep '^hermetic/builder:' | xargs -r docker rmi -f >/dev/null

t0=$(now); (cd "$work/default" && "$hermetic" image bootstrap --json > "$work/default.json"); t1=$(now)
default_first=$(secs "$t0" "$t1")
t0=$(now); (cd "$work/project" && "$hermetic" image bootstrap --json > "$work/project.json"); t1=$(now)
project_first=$(secs "$t0" "$t1")
t0=$(now); (cd "$work/project" && "$hermetic" image bootstrap --json > "$work/project-warm.json"); t1=$(now)
project_warm=$(secs "$t0" "$t1")
t0=$(now); (cd "$work/project" && "$hermetic" build --json > "$work/build.json" 2>/dev/null); t1=$(now)
build=$(secs "$t0" "$t1")

size() { python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['image']['size_bytes']/1e6))" "$1"; }
tag=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['image']['tags'][0])" "$work/project.json")
echo "== per-project builder image (make) against the default one, same engine =="
printf '%-18s %8s s   image %s MB\n' "default, first" "$default_first" "$(size "$work/default.json")"
printf '%-18s %8s s   image %s MB (%s)\n' "project, first" "$project_first" "$(size "$work/project.json")" "$tag"
printf '%-18s %8s s\n' "project, warm" "$project_warm"
printf '%-18s %8s s   (jemalloc: configure and make in the build)\n' "build" "$build"
docker system df --format '{{.Type}}: {{.Size}} ({{.Reclaimable}} reclaimable)' | grep -i '^images'
verdict=$(awk -v d="$default_first" -v p="$project_first" -v w="$project_warm" \
  'BEGIN { ok = (p <= 1.5 * d && w <= 3); printf "%s: first %.2fx the default (target <= 1.5x), warm %.1f s (target <= 3 s)", ok ? "PASS" : "FAIL", p / d, w }')
echo "$verdict"
case $verdict in PASS*) ;; *) exit 1 ;; esac
