//! Which device an MMIO exit reaches. On real upstream pKVM the hypervisor forwards
//! every access with a syndrome to the VMM, at any address: keeping a guest from
//! touching what it has no device for is this VMM's job, and it answers with an
//! external abort, as hyp does.

use pvmkit_abi::memory_map::{virtio_mmio_slot, QEMU_EARLY_UART, VIRTIO_MMIO_SLOTS, VIRTIO_MMIO_STRIDE};

/// The console's register window.
pub const CONSOLE: (u64, u64) = (QEMU_EARLY_UART, 0x1000);

/// Where an access goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The PL011, at this offset.
    Console(u64),
    /// Virtio transport `index` (of the VM's, in [`transports`] order), at this offset.
    Virtio(usize, u64),
    /// Nothing: the guest gets an external abort.
    Abort,
}

/// The guest addresses of the VM's virtio transports, highest slot first: block,
/// entropy, console, as QEMU gives them under hyp (its first device takes the last slot).
pub fn transports(slots: u32) -> Vec<u64> {
    (0..VIRTIO_MMIO_SLOTS).rev().filter(|i| slots & (1 << i) != 0).map(virtio_mmio_slot).collect()
}

/// Routes an access of `len` bytes at `ipa`, given the VM's `virtio` transports.
pub fn route(ipa: u64, len: usize, virtio: &[u64]) -> Route {
    let inside = |base: u64, size: u64| ipa.checked_sub(base).filter(|o| o + len as u64 <= size);
    let (base, size) = CONSOLE;
    if let Some(offset) = inside(base, size).filter(|_| len <= 4) {
        return Route::Console(offset);
    }
    for (i, &base) in virtio.iter().enumerate() {
        if let Some(offset) = inside(base, VIRTIO_MMIO_STRIDE) {
            return Route::Virtio(i, offset);
        }
    }
    Route::Abort
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_and_the_given_transports_answer() {
        let virtio = transports(0xe000_0000);
        assert_eq!(virtio, [0xa00_3e00, 0xa00_3c00, 0xa00_3a00]);
        assert_eq!(route(0x0900_0000, 4, &virtio), Route::Console(0));
        assert_eq!(route(0x0900_0ffc, 4, &virtio), Route::Console(0xffc));
        assert_eq!(route(0x0900_0ffe, 4, &virtio), Route::Abort, "crosses the window's end");
        assert_eq!(route(0x0900_0000, 8, &virtio), Route::Abort, "the PL011 has no 64-bit registers");
        assert_eq!(route(0x0a00_3e00, 4, &virtio), Route::Virtio(0, 0));
        assert_eq!(route(0x0a00_3a70, 4, &virtio), Route::Virtio(2, 0x70));
        assert_eq!(route(0x0a00_3800, 4, &virtio), Route::Abort, "a slot the VM is not given");
        assert_eq!(route(1 << 47, 4, &virtio), Route::Abort);
    }
}
