# Shared by the bench scripts: source it after setting `root` (the repository).

# Builds the release binary and sets `hermetic` to its path.
build_hermetic() {
  cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin hermetic
  hermetic=$root/target/release/hermetic
}

# Unpacks ripgrep 14.1.1 (a ripgrep-sized lockfile and build) into DIR once (needs
# crates.io the first time) and sets `project` and `version`.
fetch_ripgrep() {
  local dir=$1
  version=14.1.1
  mkdir -p "$dir"
  if [ ! -f "$dir/ripgrep-$version/Cargo.lock" ]; then
    curl -sSfL -o "$dir/ripgrep.crate" "https://static.crates.io/crates/ripgrep/ripgrep-$version.crate"
    tar -xzf "$dir/ripgrep.crate" -C "$dir"
  fi
  project=$dir/ripgrep-$version
}

# Everything the ripgrep benches start from: hermetic built, ripgrep unpacked in
# BENCH_DIR (default $TMPDIR/hermetic-bench-build, outside the repository, where cargo would
# take it for a workspace member), the builder image present and the vendor cache warm.
# Sets `work`, `project`, `version`, `hermetic` and `deps`, and enters the project.
prepare_ripgrep() {
  work=${BENCH_DIR:-${TMPDIR:-/tmp}/hermetic-bench-build}
  build_hermetic
  fetch_ripgrep "$work"
  cd "$project"
  docker image inspect hermetic/builder:latest >/dev/null 2>&1 || "$hermetic" image bootstrap
  "$hermetic" vendor >/dev/null 2>&1
  deps=$project/target/hermetic/deps
}
