#!/usr/bin/env bash
# Clippy with warnings denied, on the host and on every firmware target, so that the
# workspace's lints (undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn among them)
# hold on the code that holds the `unsafe`: hyp (aarch64-unknown-none-softfloat), the
# guest crates (aarch64-unknown-none, position-independent as pvmkit builds them) and
# the pKVM host's VMM (aarch64-unknown-linux-musl).
#   scripts/clippy-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add aarch64-unknown-none aarch64-unknown-none-softfloat aarch64-unknown-linux-musl >/dev/null

cargo clippy --workspace --all-targets --quiet -- -D warnings
# The firmware's own target directory, apart from the host's and pvmkit's.
export CARGO_TARGET_DIR="$PWD/target/clippy-firmware"
cargo clippy --release --quiet -p hyp --target aarch64-unknown-none-softfloat -- -D warnings
CARGO_ENCODED_RUSTFLAGS=$(printf -- "-Crelocation-model=pie\x1f-Ctarget-feature=+sha2") \
    cargo clippy --release --quiet -p guest-lib -p mmio-guard -p pvmfw -p test-guest --target aarch64-unknown-none -- -D warnings
cargo clippy --release --quiet -p vmm --target aarch64-unknown-linux-musl -- -D warnings
echo "clippy: no warnings on the host and the firmware targets"
