#!/usr/bin/env bash
# Miri over the host tests of the code that holds `unsafe`: guest-lib's bounce pool,
# bouncer, sharing, set-once cells, copy loops, console and CPU start blocks; hyp's
# exclusive cells and its device side's guest-memory accessor; the VMM's guest-memory
# access (vm-memory) and its fault watch. Stress tests size themselves down under
# cfg(miri). Undefined behaviour or a leak fails the run.
#   scripts/miri.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# A nightly the rustup mirror serves with Miri (not every nightly has it).
NIGHTLY=nightly-2026-05-20
if ! cargo "+$NIGHTLY" miri --version >/dev/null 2>&1; then
    echo "miri: installing $NIGHTLY with miri"
    rustup toolchain install "$NIGHTLY" --profile minimal --component miri,rust-src
fi
# Addresses handed to devices are integers (identity-mapped DMA, virtio-drivers' Hal):
# turning them back into pointers is by design, so provenance is permissive.
export MIRIFLAGS="${MIRIFLAGS:-} -Zmiri-permissive-provenance"
miri() { cargo "+$NIGHTLY" miri test "$@"; }

miri -p guest-lib --lib -- bounce_pool virtio::bouncer sharing set_once memops console smp
miri -p hyp --lib -- exclusive device::virtio
miri -p vmm --lib -- virtio watch
echo "miri: no undefined behaviour and no leak in the unsafe code's host tests"
