//! Page tables, both aarch64-paging's: the initial identity map aarch64-rt installs
//! before any Rust runs (1 GiB blocks: devices below 1 GiB, RAM in the next two), and
//! the one this guest then builds from its DT and switches to (RAM from `/memory` as
//! Normal write-back memory, the low devices as Device memory, nothing else mapped).

use aarch64_paging::descriptor::El1Attributes;
use aarch64_paging::idmap::IdMap;
use aarch64_paging::paging::{El1And0, MemoryRegion};
use aarch64_rt::{initial_pagetable, InitialPagetable};

/// MAIR index 0: Device-nGnRE; index 1: Normal write-back (aarch64-rt's default MAIR).
const DEVICE: El1Attributes = El1Attributes::VALID
    .union(El1Attributes::ATTRIBUTE_INDEX_0)
    .union(El1Attributes::ACCESSED)
    .union(El1Attributes::UXN)
    .union(El1Attributes::PXN);
const NORMAL: El1Attributes = El1Attributes::VALID
    .union(El1Attributes::ATTRIBUTE_INDEX_1)
    .union(El1Attributes::INNER_SHAREABLE)
    .union(El1Attributes::ACCESSED)
    .union(El1Attributes::NON_GLOBAL);

initial_pagetable!({
    let mut table = [0; 512];
    table[0] = DEVICE.bits();
    table[1] = NORMAL.bits() | 0x4000_0000;
    table[2] = NORMAL.bits() | 0x8000_0000;
    InitialPagetable(table)
});

/// The devices of QEMU's `virt` a guest may be given: the GICv3, the PL011 and the
/// virtio-mmio transports.
const DEVICES: (usize, usize) = (0x0800_0000, 0x0a00_4000);

/// Builds the identity map of `ram` and the devices and switches to it. The table
/// lives for the rest of the VM's life.
pub fn switch(ram: (u64, u64)) -> Result<(), aarch64_paging::MapError> {
    let mut map = IdMap::with_asid(1, 1, El1And0);
    map.map_range(&MemoryRegion::new(DEVICES.0, DEVICES.1), DEVICE)?;
    let (base, size) = (ram.0 as usize, ram.1 as usize);
    map.map_range(&MemoryRegion::new(base, base + size), NORMAL)?;
    // SAFETY: the new map covers everything this guest touches (its image, stack and
    // heap lie in RAM, as do the DT and the bounce pool; its devices in DEVICES), at the
    // same addresses and with the same attributes as the initial map.
    unsafe { map.activate() };
    core::mem::forget(map);
    Ok(())
}
