#!/usr/bin/env bash
# Where a container build's extra time comes from: ripgrep's release build on the host and in
# the builder image with hermetic's settings added one group at a time, alternated, median of
# RUNS. Every container build uses the same vendored sources (bind-mounted read-only; fine
# for a local measurement) and a fresh volume for target/, as hermetic does.
#
#   host       cargo on the host
#   plain      docker run as root, default seccomp, no limits
#   limits     plain + pids and memory limits
#   security   plain + read-only root (with the tmpfs /tmp it needs: the linker writes
#                there), no capabilities, no-new-privileges, uid 10001
#   env        plain + hermetic's environment and RUSTFLAGS (remapping, build-id)
#   rustflags  plain + RUSTFLAGS alone
#   cgu        plain + CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 alone
#   hardened   all three groups: what hermetic runs with --no-engine-cache
#   toolchain  hardened, with the image's sysroot read from a volume copy of it (what
#              hermetic runs by default: the engine's toolchain cache)
#   unconfined hardened, but without the engine's default seccomp filter
#
# Besides wall time, each build reports the CPU time of cargo and everything it ran (the
# shell's `times`): the machine's speed drifts, and kernel (sys) time shows what a setting
# costs inside the build even when wall times overlap.
#
# Usage: [RUNS=3] [MODES="host hardened toolchain"] bench/build-ablation.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
prepare_ripgrep
image=hermetic/builder:latest
sysroot=$(docker run --rm --network none "$image" rustc --print sysroot)

runs=${RUNS:-3}
read -r -a modes <<< "${MODES:-host plain limits security env hardened toolchain unconfined}"
# The toolchain mode's copy of the sysroot: the engine fills an empty volume from the image
# when a container first mounts it there.
toolchain_vol=hermetic-ablation-toolchain-$$
docker volume create "$toolchain_vol" >/dev/null
docker run --rm --network none -v "$toolchain_vol:$sysroot" "$image" true
trap 'docker volume rm "$toolchain_vol" >/dev/null' EXIT
now() { date +%s%N; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }
# `times` prints the shell's, then its children's, user and system time (`1m2.5s 0m4.1s`).
seconds() { awk '{ split($0, p, "m"); sub("s", "", p[2]); printf "%.1f", p[1] * 60 + p[2] }' <<< "$1"; }

# The command hermetic runs, with its remapping and linker flags.
rustflags="--remap-path-prefix=/hermetic/src=/hermetic/src --remap-path-prefix=/hermetic/deps/vendor=/hermetic/vendor --remap-path-prefix=/hermetic/work/target=/hermetic/target --remap-path-prefix=$sysroot=/hermetic/rust -Clink-arg=-Wl,--build-id=none"
cargo_cmd="cargo build --release --locked --offline --quiet --config /hermetic/deps/config.toml --target-dir /hermetic/work/target"
limits=(--pids-limit 4096 --memory 8g --memory-swap 8g)
security=(--read-only --tmpfs /tmp:rw,exec,nosuid,size=1g --cap-drop ALL
  --security-opt no-new-privileges --user 10001:10001)
envs=(--hostname hermetic -e TZ=UTC -e LANG=C.UTF-8 -e LC_ALL=C.UTF-8 -e CARGO_INCREMENTAL=0
  -e SOURCE_DATE_EPOCH=1700000000 -e CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 -e "RUSTFLAGS=$rustflags")

# Prints "WALL USER SYS" for one build.
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
    limits) args+=("${limits[@]}") ;;
    security) args+=("${security[@]}") ;;
    env) args+=("${envs[@]}") ;;
    rustflags) args+=(-e "RUSTFLAGS=$rustflags") ;;
    cgu) args+=(-e CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16) ;;
    hardened) args+=("${limits[@]}" "${security[@]}" "${envs[@]}") ;;
    toolchain) args+=("${limits[@]}" "${security[@]}" "${envs[@]}" -v "$toolchain_vol:$sysroot:ro") ;;
    unconfined) args+=("${limits[@]}" "${security[@]}" "${envs[@]}" --security-opt seccomp=unconfined) ;;
    *) echo "error: unknown mode $mode" >&2; exit 2 ;;
  esac
  local t0 t1 out
  t0=$(now)
  # A failed build is a failed benchmark, not a fast one.
  out=$(docker run "${args[@]}" "$image" sh -c "umask 022 && $cargo_cmd && times") || {
    docker volume rm "$vol" >/dev/null
    echo "error: $mode build failed" >&2
    exit 1
  }
  t1=$(now)
  docker volume rm "$vol" >/dev/null
  local cpu
  cpu=$(tail -1 <<< "$out")
  echo "$(elapsed "$t0" "$t1") $(seconds "${cpu% *}") $(seconds "${cpu#* }")"
}

host() {
  rm -rf "$work/host-target"
  local t0 t1 out cpu
  t0=$(now)
  out=$(bash -c "cargo build --release --offline --locked --quiet --config '$deps/config.toml' --target-dir '$work/host-target' && times")
  t1=$(now)
  cpu=$(tail -1 <<< "$out")
  echo "$(elapsed "$t0" "$t1") $(seconds "${cpu% *}") $(seconds "${cpu#* }")"
}

# Odd rounds run the modes in order, even rounds in reverse: with a fixed order, wall times
# grew with a mode's place in the round, whatever its settings.
declare -A wall user sys
for i in $(seq 1 "$runs"); do
  order=("${modes[@]}")
  if [ $((i % 2)) -eq 0 ]; then
    order=(); for ((k = ${#modes[@]} - 1; k >= 0; k--)); do order+=("${modes[$k]}"); done
  fi
  for m in "${order[@]}"; do
    if [ "$m" = host ]; then r=$(host); else r=$(container "$m") || exit 1; fi
    read -r w u s <<< "$r"
    wall[$m]="${wall[$m]:-} $w"; user[$m]="${user[$m]:-} $u"; sys[$m]="${sys[$m]:-} $s"
  done
done
echo "ripgrep $version release build, $(nproc) CPUs, median of $runs alternated runs"
echo "mode        wall     vs ${modes[0]}   cpu user  cpu sys   (walls)"
base=$(median ${wall[${modes[0]}]})
for m in "${modes[@]}"; do
  awk -v m="$m" -v t="$(median ${wall[$m]})" -v h="$base" -v u="$(median ${user[$m]})" \
    -v s="$(median ${sys[$m]})" -v all="${wall[$m]}" 'BEGIN {
    printf "%-11s %6.1f s  %+6.1f%%   %6.1f s  %6.1f s   (%s)\n", m, t, (t - h) / h * 100, u, s, all }'
done
