#!/usr/bin/env bash
# Runs each cargo-fuzz target of pvmkit for a bounded time (default 30 s each):
#   scripts/fuzz-smoke.sh [SECONDS]
# Needs a nightly toolchain (cargo-fuzz's sanitizers); installs cargo-fuzz if missing.
# A crash leaves its input under fuzz/artifacts/<target>/ and makes the script fail.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for target in host_dt payload_header; do
    echo "fuzz: $target for ${seconds}s"
    cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -max_len=65536
done
echo "fuzz: no crash"
