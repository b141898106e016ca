#!/usr/bin/env bash
# Runs every cargo-fuzz target of pvmkit for a bounded time (default 30 s each), from
# the committed seeds (fuzz/seeds/<target>) plus what earlier runs found
# (fuzz/corpus/<target>, not committed):
#   scripts/fuzz-smoke.sh [SECONDS]
# Runs on the pinned stable toolchain without a sanitizer (`-s none`): the targets are
# safe Rust, and their own assertions are the invariants. Installs cargo-fuzz if missing.
# A crash or a broken invariant leaves its input under fuzz/artifacts/<target>/ and makes
# the script fail. Prints each target's executions.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2
cd fuzz
for target in hypercalls virtio_transport vgic vmm_virtio bundle host_dt kernel_image avb avf_config dice_handover instance_record; do
    mkdir -p "corpus/$target"
    log=$(mktemp)
    if ! cargo fuzz run -s none "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -max_len=65536 >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "fuzz: $target FAILED (input under fuzz/artifacts/$target/)"
        exit 1
    fi
    echo "fuzz: $target: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log")"
    rm -f "$log"
done
echo "fuzz: no crash, no broken invariant"
