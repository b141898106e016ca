//! The VM's virtio transports, wired to the hardware: QEMU's device registers by
//! volatile access, guest RAM through the identity map, shadow rings in hyp's memory.

use hyp::device::devices::DeviceList;
use hyp::device::virtio::{
    find_transport, regs, AccessError, DeviceRegs, GuestRam, ShadowQueue, VirtioDevice, MAX_QUEUES, NOTIFY_WAIT_POLLS,
};
use hyp::pkvm::memory_calls::{DeviceHolds, Holder};
use hyp::pkvm::ownership::Ownership;
use hyp::trap::mmio::{DeviceKind, DeviceWindow};
use pvmkit_abi::address::{Ipa, Page};

use crate::arch;
use crate::work_meter;
use hyp::exclusive::{Borrowed, Exclusive};

/// The most virtio transports hyp gives one VM.
pub const MAX_TRANSPORTS: usize = 8;

/// virtio-mmio MagicValue.
const MAGIC: u64 = 0x7472_6976;

/// The transports and their shadow rings (which stay where they are: QEMU's devices
/// hold their addresses).
struct DeviceSide {
    transports: [Option<VirtioDevice>; MAX_TRANSPORTS],
    shadows: [[ShadowQueue; MAX_QUEUES]; MAX_TRANSPORTS],
}

static DEVICE_SIDE: Exclusive<DeviceSide> = Exclusive::new(DeviceSide {
    transports: [const { None }; MAX_TRANSPORTS],
    shadows: [const { [const { ShadowQueue::EMPTY }; MAX_QUEUES] }; MAX_TRANSPORTS],
});

fn device_side() -> Result<Borrowed<'static, DeviceSide>, AccessError> {
    DEVICE_SIDE.borrow().ok_or(AccessError::HypBug { ipa: Ipa(0), what: "the device side was borrowed twice" })
}

/// QEMU's registers of one transport.
struct RealDevice {
    base: u64,
}

impl DeviceRegs for RealDevice {
    fn read(&mut self, offset: u64, width: u8) -> u64 {
        // SAFETY: `base` is a transport hyp gives this VM (checked against QEMU's DTB);
        // offsets come from accesses `mmio::decide` placed inside its window.
        unsafe { arch::device_read(self.base + offset, width) }
    }

    fn write(&mut self, offset: u64, width: u8, value: u64) {
        // SAFETY: as above.
        unsafe { arch::device_write(self.base + offset, width, value) }
    }
}

/// Guest RAM through the identity map (EL2's MMU is off).
struct IdentityRam;

impl GuestRam for IdentityRam {
    fn read(&self, ipa: Ipa, buf: &mut [u8]) {
        // SAFETY: `SharedAccess` checked that the range is shared guest RAM.
        unsafe { core::ptr::copy_nonoverlapping(ipa.get() as *const u8, buf.as_mut_ptr(), buf.len()) }
    }

    fn write(&mut self, ipa: Ipa, buf: &[u8]) {
        // SAFETY: as above.
        unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), ipa.get() as *mut u8, buf.len()) }
    }
}

/// Sets up a transport for every virtio window, checking that QEMU's device is there
/// and modern (hyp shadows only version-2 split rings).
pub fn setup(devices: &DeviceList, protected: bool, access_platform: bool) -> Result<(), (u32, &'static str)> {
    let Ok(mut side) = device_side() else { return Err((0, "the device side was borrowed twice")) };
    let transports = &mut side.transports;
    let mut used = 0;
    for window in devices.windows() {
        let DeviceKind::Virtio { slot } = window.kind else {
            continue;
        };
        if used == MAX_TRANSPORTS {
            return Err((slot, "more virtio transports than hyp serves"));
        }
        let mut dev = RealDevice { base: window.base };
        if dev.read(regs::MAGIC, 4) != MAGIC {
            return Err((slot, "no virtio-mmio transport answers there"));
        }
        if dev.read(regs::VERSION, 4) != 2 {
            return Err((slot, "legacy virtio-mmio transport: run QEMU with -global virtio-mmio.force-legacy=false"));
        }
        let transport = VirtioDevice::new(slot, protected);
        transports[used] = Some(if access_platform { transport } else { transport.withholding_access_platform() });
        used += 1;
    }
    Ok(())
}

/// A guest read of a transport register, `offset` into its window.
pub fn read(window: &DeviceWindow, slot: u32, offset: u64, width: u8) -> Result<u64, AccessError> {
    let mut side = device_side()?;
    let (_, transport) = find_transport(&mut side.transports, slot)?;
    transport.read(&mut RealDevice { base: window.base }, offset, width)
}

/// A guest write of a transport register, `offset` into its window. After a notify in a protected VM whose
/// driver polls (`interrupt_driven` false), waits a little for the device so that
/// short requests complete before the guest resumes; a driver that takes the device's
/// interrupt is told of completions by it instead.
pub fn write(
    window: &DeviceWindow,
    slot: u32,
    offset: u64,
    width: u8,
    value: u64,
    ownership: &mut Ownership<'_>,
    interrupt_driven: bool,
) -> Result<(), AccessError> {
    let mut side = device_side()?;
    let DeviceSide { transports, shadows } = &mut *side;
    let (i, transport) = find_transport(transports, slot)?;
    let shadows = shadows.get_mut(i).ok_or(AccessError::NoTransport)?;
    transport.write(
        &mut RealDevice { base: window.base },
        offset,
        width,
        value,
        ownership,
        &mut IdentityRam,
        shadows,
    )?;
    if transport.waits_after(offset, interrupt_driven) {
        // Bounded by polls rather than by the counter: under -icount every counter
        // read is an I/O instruction, far dearer to QEMU than a memory poll.
        // Only the polls that deliver are hyp's work; the rest is waiting.
        let (wait, mut delivering) = (work_meter::now(), 0);
        for _ in 0..NOTIFY_WAIT_POLLS {
            if transport.in_flight() == 0 {
                break;
            }
            let from = work_meter::now();
            let delivered = transport.collect(ownership, &mut IdentityRam, shadows)?;
            if let (Some(from), Some(to), true) = (from, work_meter::now(), delivered > 0) {
                delivering += u64::from(to.wrapping_sub(from));
            }
            arch::yield_cpu();
        }
        work_meter::waited(wait, delivering);
    }
    Ok(())
}

/// Copies completions of every transport back to the guest and returns how many
/// reached it. On an error returns the transport's base with it.
pub fn collect_all(ownership: &mut Ownership<'_>, devices: &DeviceList) -> Result<u16, (u64, AccessError)> {
    let mut side = device_side().map_err(|e| (0, e))?;
    let DeviceSide { transports, shadows } = &mut *side;
    let mut delivered = 0u16;
    for (transport, shadows) in transports.iter_mut().zip(shadows.iter()) {
        let Some(transport) = transport else { continue };
        match transport.collect(ownership, &mut IdentityRam, shadows) {
            Ok(n) => delivered = delivered.saturating_add(n),
            Err(v) => {
                let base = devices
                    .windows()
                    .iter()
                    .find(|w| w.kind == DeviceKind::Virtio { slot: transport.slot })
                    .map_or(0, |w| w.base);
                return Err((base, v));
            }
        }
    }
    Ok(delivered)
}

/// The transports as MEM_UNSHARE asks them: which device holds a guest page.
pub struct Holders;

impl DeviceHolds for Holders {
    fn holder(&mut self, ownership: &Ownership<'_>, page: Page) -> Option<Holder> {
        let Ok(side) = device_side() else { crate::exit_path::fail("the device side was borrowed twice") };
        side.transports.iter().flatten().find_map(|transport| {
            let (queue, descriptor) = transport.holds(page, ownership, &mut IdentityRam)?;
            Some(Holder { device: pvmkit_abi::memory_map::virtio_mmio_slot(transport.slot), queue, descriptor })
        })
    }
}
