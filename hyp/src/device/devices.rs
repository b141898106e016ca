//! The devices a VM is given: the console, and the virtio-mmio transports its VM config
//! names, each checked to exist in QEMU's device tree.

use core::fmt;

use pvmkit_abi::memory_map::Region;
use pvmkit_abi::memory_map::{
    virtio_mmio_slot, virtio_mmio_spi, GICD_BASE, GICD_SIZE, GICR_BASE, GICR_SIZE, PL011_SPI, TIMER_PPIS,
    VIRTIO_MMIO_SLOTS, VIRTIO_MMIO_STRIDE,
};

use crate::trap::mmio::{DeviceKind, DeviceWindow};
use crate::vgic::Frame;
use pvmkit_abi::gic::{ppi_intid, spi_intid};

/// The most devices a VM has: the console, every virtio-mmio transport and the two
/// frames of its GIC.
pub const MAX_DEVICES: usize = 3 + VIRTIO_MMIO_SLOTS as usize;

/// The virtual timer's INTID (its PPI, as the guest's DT names it, from 16).
pub const VIRTUAL_TIMER_INTID: u32 = ppi_intid(TIMER_PPIS[2]);

/// The INTID of virtio-mmio transport `slot`'s interrupt.
pub const fn virtio_intid(slot: u32) -> u32 {
    spi_intid(virtio_mmio_spi(slot))
}

/// A VM's devices.
#[derive(Clone, Copy, Debug)]
pub struct DeviceList {
    windows: [DeviceWindow; MAX_DEVICES],
    len: usize,
}

/// Why the VM's devices cannot be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingTransport {
    /// The transport asked for.
    pub slot: u32,
}

impl fmt::Display for MissingTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VM config asks for virtio-mmio transport {} at {:#x}, which QEMU does not have",
            self.slot,
            virtio_mmio_slot(self.slot)
        )
    }
}

impl DeviceList {
    /// The console at `uart`, transport `i` for every bit `i` of `virtio_slots`, each of
    /// which must be among `platform_virtio` (QEMU's transports), and the GIC (at
    /// QEMU's addresses, which the guest's DT names: the distributor and the
    /// redistributors of `vcpus` vCPUs).
    pub fn new(
        uart: Region,
        platform_virtio: &[Region],
        virtio_slots: u32,
        vcpus: u32,
    ) -> Result<Self, MissingTransport> {
        let console = DeviceWindow { base: uart.start, size: uart.size(), kind: DeviceKind::Console };
        let mut list = Self { windows: [console; MAX_DEVICES], len: 1 };
        for slot in (0..VIRTIO_MMIO_SLOTS).filter(|i| virtio_slots & (1 << i) != 0) {
            let base = virtio_mmio_slot(slot);
            if !platform_virtio.iter().any(|r| r.start == base && r.size() >= VIRTIO_MMIO_STRIDE) {
                return Err(MissingTransport { slot });
            }
            list.windows[list.len] = DeviceWindow { base, size: VIRTIO_MMIO_STRIDE, kind: DeviceKind::Virtio { slot } };
            list.len += 1;
        }
        for (base, size, frame) in
            [(GICD_BASE, GICD_SIZE, Frame::Distributor), (GICR_BASE, GICR_SIZE * vcpus as u64, Frame::Redistributor)]
        {
            list.windows[list.len] = DeviceWindow { base, size, kind: DeviceKind::Gic(frame) };
            list.len += 1;
        }
        Ok(list)
    }

    /// The interrupts of real sources hyp forwards to the guest, by INTID (the same
    /// physically and virtually): the virtual timer, the console and each transport.
    pub fn forwarded_interrupts(&self) -> impl Iterator<Item = u32> + '_ {
        let devices = self.windows().iter().filter_map(|w| match w.kind {
            DeviceKind::Console => Some(spi_intid(PL011_SPI)),
            DeviceKind::Virtio { slot } => Some(virtio_intid(slot)),
            DeviceKind::Gic(_) => None,
        });
        core::iter::once(VIRTUAL_TIMER_INTID).chain(devices)
    }

    /// The windows.
    pub fn windows(&self) -> &[DeviceWindow] {
        &self.windows[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UART: Region = Region { start: 0x0900_0000, end: 0x0900_1000 };

    fn qemu_transports() -> Vec<Region> {
        (0..32).map(|i| Region { start: 0x0a00_0000 + i * 0x200, end: 0x0a00_0200 + i * 0x200 }).collect()
    }

    #[test]
    fn console_plus_the_configured_transports() {
        let list = DeviceList::new(UART, &qemu_transports(), (1 << 31) | 1, 4).unwrap();
        let w = list.windows();
        assert_eq!(w.len(), 5);
        assert_eq!(w[0].kind, DeviceKind::Console);
        assert_eq!((w[1].base, w[1].kind), (0x0a00_0000, DeviceKind::Virtio { slot: 0 }));
        assert_eq!((w[2].base, w[2].size), (0x0a00_3e00, 0x200));
        assert_eq!((w[3].base, w[3].kind), (0x0800_0000, DeviceKind::Gic(Frame::Distributor)));
        // Four vCPUs: four redistributors of 128 KiB.
        assert_eq!((w[4].base, w[4].size), (0x080a_0000, 0x8_0000));
        assert_eq!(DeviceList::new(UART, &qemu_transports(), 0, 1).unwrap().windows().len(), 3);
        assert_eq!(DeviceList::new(UART, &qemu_transports(), u32::MAX, 1).unwrap().windows().len(), 35);
        // The timer's PPI, the console's SPI 1 and the transports' SPIs 16 and 47.
        assert_eq!(list.forwarded_interrupts().collect::<Vec<_>>(), [27, 33, 48, 79]);
    }

    #[test]
    fn a_transport_qemu_lacks_is_refused() {
        let some = &qemu_transports()[..4];
        assert_eq!(DeviceList::new(UART, some, 1 << 31, 1).unwrap_err(), MissingTransport { slot: 31 });
    }
}
