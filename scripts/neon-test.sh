#!/usr/bin/env bash
# Builds the densevec-kernels tests for aarch64-unknown-linux-gnu with Debian's toolchain
# (rustc 1.63, /usr/bin/cargo) and runs them under qemu-aarch64, so that the NEON kernels are
# checked against the scalar ones on an x86-64 machine.
#
# Needs: rustc + cargo (Debian), libstd-rust-dev:arm64, gcc-aarch64-linux-gnu, qemu-user.
# The crate has no dependencies, so the build is --offline and works with an empty CARGO_HOME.
#
# Usage: scripts/neon-test.sh [extra test-harness args, e.g. a test name filter]
# Env:   NEON_CARGO / NEON_RUSTC override the toolchain (default /usr/bin/cargo, /usr/bin/rustc).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CARGO="${NEON_CARGO:-/usr/bin/cargo}"
RUSTC_BIN="${NEON_RUSTC:-/usr/bin/rustc}"
TARGET=aarch64-unknown-linux-gnu
SYSROOT=/usr/aarch64-linux-gnu
WORK="$ROOT/target/neon"

for tool in "$CARGO" "$RUSTC_BIN" aarch64-linux-gnu-gcc qemu-aarch64; do
  command -v "$tool" >/dev/null || { echo "neon-test: missing $tool" >&2; exit 2; }
done
echo "neon-test: $("$RUSTC_BIN" --version), $("$CARGO" --version)"

# Build from a copy of the crate that is its own workspace: the repository's workspace
# manifest, lockfile and profiles are for the current stable toolchain, not for 1.63.
# (Examples are not copied: they may use newer std APIs; the library and tests may not.)
SRC="$WORK/crate"
rm -rf "$SRC"
mkdir -p "$SRC"
cp -R "$ROOT/crates/densevec-kernels/src" "$ROOT/crates/densevec-kernels/tests" "$SRC/"
# rust-version states the x86-64 minimum (AVX-512 intrinsics); the aarch64 build needs 1.63.
sed '/^rust-version/d' "$ROOT/crates/densevec-kernels/Cargo.toml" >"$SRC/Cargo.toml"
printf '\n[workspace]\n' >>"$SRC/Cargo.toml"

export RUSTC="$RUSTC_BIN"
unset RUSTC_WRAPPER RUSTUP_TOOLCHAIN || true
export CARGO_TARGET_DIR="$WORK/target"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# Without -E LD_LIBRARY_PATH threaded programs hang under qemu-user.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $SYSROOT -E LD_LIBRARY_PATH=$SYSROOT/lib"

cd "$SRC"
LOG="$WORK/test.log"
set +e
"$CARGO" test --offline --release --target "$TARGET" --manifest-path "$SRC/Cargo.toml" \
  -- --test-threads=1 "$@" 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  echo "neon-test: FAILED (exit $status)" >&2
  exit "$status"
fi
# The parity tests assert that NEON is among isa::available() on aarch64; make sure they ran.
if [ $# -eq 0 ] && ! grep -q '^test detection_is_consistent \.\.\. ok' "$LOG"; then
  echo "neon-test: the ISA detection test did not run" >&2
  exit 1
fi
echo "neon-test: all aarch64 tests passed (NEON vs scalar)"
