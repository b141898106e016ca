//! Addresses every part agrees on. QEMU `virt` (machine type pinned by `pvmkit`) puts
//! RAM at 0x4000_0000; the guest's RAM is a window of it, identity mapped (IPA = PA)
//! because QEMU's virtio devices use descriptor addresses as physical addresses.
//!
//! ```text
//! 0x4000_0000  QEMU RAM base (QEMU boot stub)
//! 0x4008_0000  hyp image (arm64 Image, text_offset 0x80000), then hyp's data
//!  …           QEMU's DTB and the bundle (-initrd): found through the DTB, never assumed
//! 0x7fc0_0000  pvmfw region, 4 MiB below guest RAM (pvmkit_abi::pvmfw)
//! 0x8000_0000  guest RAM: the guest's device tree at its base …
//! 0x8020_0000  … the payload, linked here by guest-lib's `guest.ld` …
//! 0x8800_0000  … a ramdisk, if any …
//! 0x8fc0_0000  … and the bounce pool at the top
//! ```
//!
//! ```
//! use pvmkit_abi::memory_map::{virtio_mmio_slot, GUEST_DT_BASE, GUEST_RAM_BASE, PAYLOAD_BASE};
//!
//! assert_eq!(GUEST_DT_BASE, GUEST_RAM_BASE); // the DT first, the payload 2 MiB above
//! assert_eq!(PAYLOAD_BASE, 0x8020_0000);
//! assert_eq!(virtio_mmio_slot(31), 0x0a00_3e00);
//! ```

/// Base of QEMU `virt` RAM.
pub const QEMU_RAM_BASE: u64 = 0x4000_0000;
/// Where QEMU loads an arm64 Image with `text_offset` 0x80000: hyp's link address.
pub const HYP_BASE: u64 = 0x4008_0000;
/// Default base of guest RAM (IPA = PA).
pub const GUEST_RAM_BASE: u64 = 0x8000_0000;
/// Default size of guest RAM.
pub const GUEST_RAM_SIZE: u64 = 256 << 20;
/// Where `pvmkit` puts the guest's device tree by default.
pub const GUEST_DT_BASE: u64 = GUEST_RAM_BASE;
/// The most space `pvmkit` gives the guest's device tree.
pub const GUEST_DT_MAX_SIZE: u64 = 2 << 20;
/// Where guest-lib's linker script links a payload by default.
pub const PAYLOAD_BASE: u64 = GUEST_RAM_BASE + GUEST_DT_MAX_SIZE;
/// Where `pvmkit` loads a ramdisk (the host DT's `/chosen` `linux,initrd-start`): half
/// way up guest RAM, so that a payload may take 126 MiB and a ramdisk 124 MiB.
pub const RAMDISK_BASE: u64 = GUEST_RAM_BASE + (128 << 20);
/// Size of the `restricted-dma-pool` the host's DT reserves for the guest's bounce
/// buffers (as crosvm does for pVMs).
pub const BOUNCE_POOL_SIZE: u64 = 4 << 20;
/// Where it lies: the top of guest RAM.
pub const BOUNCE_POOL_BASE: u64 = GUEST_RAM_BASE + GUEST_RAM_SIZE - BOUNCE_POOL_SIZE;
/// The compatible of that reserved-memory node.
pub const BOUNCE_POOL_COMPATIBLE: &str = "restricted-dma-pool";
/// QEMU's `-m`: all of QEMU RAM, so that guest RAM lies inside it.
pub const QEMU_RAM_SIZE: u64 = 2 << 30;
/// QEMU `virt`'s PL011, used by hyp before it has read the DTB (only for errors that
/// stop it from reading the DTB at all).
pub const QEMU_EARLY_UART: u64 = 0x0900_0000;
/// The 4 KiB granule: the unit of stage-2 mapping, page ownership, sharing and the
/// MMIO guard, everywhere in pvmkit.
pub const GRANULE: u64 = 4096;
/// QEMU `virt`'s GICv3 distributor (the pkvm backend's VMM puts its vGIC there too).
pub const GICD_BASE: u64 = 0x0800_0000;
/// Its size.
pub const GICD_SIZE: u64 = 0x1_0000;
/// The first redistributor (vCPU 0's RD and SGI frames); vCPU `i`'s follows at
/// `GICR_BASE + i * GICR_SIZE`.
pub const GICR_BASE: u64 = 0x080a_0000;
/// One redistributor's size.
pub const GICR_SIZE: u64 = 0x2_0000;

/// The redistributors of `cpus` vCPUs, one after another from [`GICR_BASE`] (QEMU `virt`
/// and KVM's vGICv3 lay them out so).
pub const fn redistributors(cpus: u32) -> Region {
    Region { start: GICR_BASE, end: GICR_BASE + cpus as u64 * GICR_SIZE }
}

/// QEMU `virt`'s first virtio-mmio transport.
pub const VIRTIO_MMIO_BASE: u64 = 0x0a00_0000;
/// Distance between QEMU `virt`'s virtio-mmio transports, and the size of each.
pub const VIRTIO_MMIO_STRIDE: u64 = 0x200;
/// How many virtio-mmio transports QEMU `virt` has. The first `-device virtio-*-device`
/// on QEMU's command line takes the last one.
pub const VIRTIO_MMIO_SLOTS: u32 = 32;

/// QEMU `virt`'s PL011 interrupt: SPI 1.
pub const PL011_SPI: u32 = 1;
/// The PL011's reference clock on QEMU `virt`: 24 MHz.
pub const PL011_CLOCK_HZ: u32 = 24_000_000;
/// QEMU `virt`'s first virtio-mmio transport's interrupt: SPI 16 (transport `slot` has
/// SPI 16 + `slot`).
pub const VIRTIO_MMIO_FIRST_SPI: u32 = 16;
/// The architected timer's PPIs: secure physical, non-secure physical, virtual, hyp.
pub const TIMER_PPIS: [u32; 4] = [13, 14, 11, 10];

/// The interrupt (SPI) of QEMU `virt`'s virtio-mmio transport `slot`.
pub const fn virtio_mmio_spi(slot: u32) -> u32 {
    VIRTIO_MMIO_FIRST_SPI + slot
}

/// The slot of the virtio-mmio transport at `base`, if it is one of QEMU `virt`'s.
pub const fn virtio_mmio_slot_at(base: u64) -> Option<u32> {
    if base < VIRTIO_MMIO_BASE || !(base - VIRTIO_MMIO_BASE).is_multiple_of(VIRTIO_MMIO_STRIDE) {
        return None;
    }
    let slot = (base - VIRTIO_MMIO_BASE) / VIRTIO_MMIO_STRIDE;
    if slot < VIRTIO_MMIO_SLOTS as u64 {
        Some(slot as u32)
    } else {
        None
    }
}

/// The address of QEMU `virt`'s virtio-mmio transport `slot`.
pub const fn virtio_mmio_slot(slot: u32) -> u64 {
    VIRTIO_MMIO_BASE + slot as u64 * VIRTIO_MMIO_STRIDE
}

/// A half-open address range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
}

impl Region {
    /// `[start, start + size)`, or `None` if it wraps.
    pub const fn new(start: u64, size: u64) -> Option<Self> {
        match start.checked_add(size) {
            Some(end) => Some(Self { start, end }),
            None => None,
        }
    }

    /// Its size in bytes.
    pub const fn size(&self) -> u64 {
        self.end - self.start
    }

    /// Whether `other` lies entirely inside this region.
    pub const fn contains(&self, other: &Region) -> bool {
        other.start >= self.start && other.end <= self.end && other.start <= other.end
    }

    /// Whether the two regions share at least one byte.
    pub const fn overlaps(&self, other: &Region) -> bool {
        self.start < other.end && other.start < self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transports_slot_and_interrupt_follow_qemu_virt() {
        for slot in [0, 1, 31] {
            assert_eq!(virtio_mmio_slot_at(virtio_mmio_slot(slot)), Some(slot));
        }
        assert_eq!(virtio_mmio_spi(31), 47);
        for not_one in [VIRTIO_MMIO_BASE - 0x200, VIRTIO_MMIO_BASE + 0x100, virtio_mmio_slot(32), u64::MAX] {
            assert_eq!(virtio_mmio_slot_at(not_one), None, "{not_one:#x}");
        }
    }
}
