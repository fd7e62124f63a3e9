#!/usr/bin/env bash
# Where a container build's extra time comes from: ripgrep's release build on the host and in
# the builder image with hermetic's settings added one group at a time, alternated, median of
# RUNS. Every container build uses the same vendored sources (bind-mounted read-only; fine
# for a local measurement) and a fresh volume for target/, as hermetic does.
#
#   host       cargo on the host
#   plain      docker run as root, default seccomp, no limits
#   hardened   + read-only root, no capabilities, no-new-privileges, uid 10001, pids and
#                memory limits, tmpfs /tmp, network none, hermetic's environment and RUSTFLAGS
#   unconfined hardened, but without the engine's default seccomp filter
#
# Usage: [RUNS=3] bench/build-ablation.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
prepare_ripgrep
image=hermetic/builder:latest
sysroot=$(docker run --rm --network none "$image" rustc --print sysroot)

runs=${RUNS:-3}
now() { date +%s%N; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }

# The command hermetic runs, with its remapping and linker flags.
rustflags="--remap-path-prefix=/hermetic/src=/hermetic/src --remap-path-prefix=/hermetic/deps/vendor=/hermetic/vendor --remap-path-prefix=/hermetic/work/target=/hermetic/target --remap-path-prefix=$sysroot=/hermetic/rust -Clink-arg=-Wl,--build-id=none"
cargo_cmd="cargo build --release --locked --offline --quiet --config /hermetic/deps/config.toml --target-dir /hermetic/work/target"

container() {
  local mode=$1 vol
  vol=hermetic-ablation-$$
  docker volume create "$vol" >/dev/null
  # The volume's root must be writable by the build user.
  docker run --rm --user 0:0 -v "$vol":/w "$image" chown 10001:10001 /w >&2
  local args=(--rm --network none --user 0:0 -v "$project":/hermetic/src:ro -v "$deps":/hermetic/deps:ro
    -v "$vol":/hermetic/work -w /hermetic/src
    -e CARGO_HOME=/hermetic/work/cargo-home -e HOME=/hermetic/work/home)
  case $mode in
    plain) ;;
    hardened | unconfined)
      args+=(--read-only --cap-drop ALL --security-opt no-new-privileges --user 10001:10001
        --pids-limit 4096 --memory 8g --memory-swap 8g --tmpfs /tmp:rw,exec,nosuid,size=1g
        --hostname hermetic -e TZ=UTC -e LANG=C.UTF-8 -e LC_ALL=C.UTF-8 -e CARGO_INCREMENTAL=0
        -e SOURCE_DATE_EPOCH=1700000000 -e CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
        -e "RUSTFLAGS=$rustflags")
      [ "$mode" = unconfined ] && args+=(--security-opt seccomp=unconfined)
      ;;
  esac
  local t0 t1
  t0=$(now)
  # A failed build is a failed benchmark, not a fast one.
  docker run "${args[@]}" "$image" sh -c "umask 022 && $cargo_cmd" >&2 || { echo "error: $mode build failed" >&2; exit 1; }
  t1=$(now)
  docker volume rm "$vol" >/dev/null
  elapsed "$t0" "$t1"
}

declare -A times
modes=(host plain hardened unconfined)
for i in $(seq 1 "$runs"); do
  for m in "${modes[@]}"; do
    if [ "$m" = host ]; then
      rm -rf "$work/host-target"
      t0=$(now)
      cargo build --release --offline --locked --quiet --config "$deps/config.toml" --target-dir "$work/host-target"
      t1=$(now)
      t=$(elapsed "$t0" "$t1")
    else
      t=$(container "$m") || exit 1
    fi
    times[$m]="${times[$m]:-} $t"
  done
done
echo "ripgrep $version release build, $(nproc) CPUs, median of $runs alternated runs"
host=$(median ${times[host]})
for m in "${modes[@]}"; do
  med=$(median ${times[$m]})
  awk -v m="$m" -v t="$med" -v h="$host" -v all="${times[$m]}" 'BEGIN {
    printf "%-11s %6.1f s  %+6.1f%%   (%s)\n", m, t, (t - h) / h * 100, all }'
done
