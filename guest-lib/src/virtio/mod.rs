//! virtio for pVMs: the `virtio_drivers::Hal` that bounces every DMA buffer through the
//! pre-shared pool, and device discovery from the device tree.
//!
//! - [`Bouncer`] is the bouncing itself (host-tested); `PvmHal` is the `Hal` every
//!   driver is built with, on top of the pool guest-lib shares at boot. On a VM without
//!   sharing services the same `PvmHal` hands out buffers in place: the baseline.
//! - `discover` registers each `virtio,mmio` node of the DT with the MMIO guard, probes
//!   it, skips empty transports and returns the rest; `drivers` builds the block,
//!   console and entropy drivers from what it finds.
//! - Every address a device could make the driver use through `mmio_phys_to_virt` is
//!   checked against the DT's device ranges ([`within_ranges`]).
//!
//! ```
//! use guest_lib::virtio::within_ranges;
//!
//! let transports = [(0x0a00_3e00, 0x200)];
//! assert!(within_ranges(&transports, 0x0a00_3e00, 0x100));
//! assert!(!within_ranges(&transports, 0x8000_0000, 4));
//! ```
//! ```ignore
//! // In a guest on guest-lib's runtime:
//! let drivers = guest_lib::virtio::drivers(&boot.dt, guest_lib::mmio_guard());
//! // Without it (see examples/aarch64-rt-guest), give PvmHal its pool first:
//! guest_lib::virtio::set_dma(DmaSetup { pool: Some(pool), device_ranges: dt.virtio_mmio().collect() })?;
//! let mut block = guest_lib::virtio::drivers(&dt, &guard).block.unwrap();
//! block.read_blocks(0, &mut buffer)?; // bounced through the shared pool
//! ```

mod bouncer;

pub use bouncer::{Bouncer, BOUNCE_ALIGN};

/// Whether `[addr, addr + size)` lies inside one of `ranges` (base, size).
pub fn within_ranges(ranges: &[(u64, u64)], addr: u64, size: u64) -> bool {
    let Some(end) = addr.checked_add(size) else {
        return false;
    };
    ranges.iter().any(|&(base, len)| addr >= base && base.checked_add(len).is_some_and(|e| end <= e))
}

#[cfg(any(target_os = "none", doc))]
mod pvm;

/// The shared region every bounce buffer comes from: (base, size), or `None` when the VM
/// is not protected (nothing is bounced).
#[cfg(any(target_os = "none", doc))]
pub fn bounce_pool_region() -> Option<(u64, usize)> {
    pvm::bounce_pool().map(|pool| pool.region())
}

#[cfg(any(target_os = "none", doc))]
pub use pvm::{bounce_pool, discover, drivers, set_dma, set_dma_on_first_use, DmaSetup, Drivers, PvmHal, VirtioDevice};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_addresses_are_checked_against_the_dt() {
        let ranges = [(0x0a00_3e00, 0x200), (0x1000_0000, 0x1000)];
        assert!(within_ranges(&ranges, 0x0a00_3e00, 0x200));
        assert!(within_ranges(&ranges, 0x1000_0ff0, 0x10));
        assert!(!within_ranges(&ranges, 0x1000_0ff0, 0x11));
        assert!(!within_ranges(&ranges, 0x8000_0000, 4));
        assert!(!within_ranges(&ranges, u64::MAX, 2));
        assert!(!within_ranges(&[], 0, 0));
    }
}
