//! The firmware half: the global `Hal` and discovery over real MMIO.

use crate::address::Ipa;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use mmio_guard::MmioGuarded;
use virtio_drivers::transport::mmio::{MmioError, MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

use super::{within_ranges, Bouncer};
use crate::bounce_pool::BouncePool;
use crate::set_once::SetOnce;
use crate::GuestDt;

/// What [`PvmHal`] works with, given once: the shared pool every DMA buffer bounces
/// through (`None` in a VM that shares nothing: buffers are used in place), and the
/// MMIO ranges of the VM's virtio devices (a device's `mmio_phys_to_virt` answer must
/// lie inside one).
pub struct DmaSetup {
    /// The bounce pool.
    pub pool: Option<&'static BouncePool>,
    /// (base, size) of each virtio-mmio transport.
    pub device_ranges: Vec<(u64, u64)>,
}

static DMA: SetOnce<DmaSetup> = SetOnce::new();
/// What sets [`DMA`] up on first use, when something registered it (guest-lib's
/// runtime does).
static ON_FIRST_USE: SetOnce<fn()> = SetOnce::new();
/// Set by the one CPU that runs [`ON_FIRST_USE`].
static SETTING_UP: AtomicBool = AtomicBool::new(false);

/// Gives [`PvmHal`] its pool and device ranges, once, before the first driver is built.
/// A guest OS without guest-lib's runtime calls it; the runtime registers its own
/// set-up ([`set_dma_on_first_use`]: from the DT, its `restricted-dma-pool`, shared).
/// A second call is refused and hands the setup back.
pub fn set_dma(setup: DmaSetup) -> Result<(), DmaSetup> {
    DMA.set(setup).map(|_| ())
}

/// Registers `set_up`, which calls [`set_dma`], to run when [`PvmHal`] is first used
/// without a set-up: so a guest without devices shares nothing. Once only; a second
/// registration is refused.
pub fn set_dma_on_first_use(set_up: fn()) -> Result<(), fn()> {
    ON_FIRST_USE.set(set_up).map(|_| ())
}

fn dma() -> &'static DmaSetup {
    if let Some(dma) = DMA.get() {
        return dma;
    }
    if let Some(set_up) = ON_FIRST_USE.get() {
        // One CPU sets up; another that comes first-use at the same time waits for it.
        if !SETTING_UP.swap(true, Ordering::AcqRel) {
            set_up();
        } else {
            while DMA.get().is_none() {
                core::hint::spin_loop();
            }
        }
    }
    DMA.get().unwrap_or_else(|| panic!("guest_lib::virtio::PvmHal used before guest_lib::virtio::set_dma"))
}

/// The pool [`PvmHal`] bounces through (`None`: buffers are used in place).
pub fn bounce_pool() -> Option<&'static BouncePool> {
    dma().pool
}

/// The `Hal` for guests on guest-lib: bounces through the shared pool in a protected
/// VM, uses buffers in place otherwise.
pub struct PvmHal;

fn bouncer() -> Bouncer<'static> {
    Bouncer { pool: bounce_pool() }
}

// SAFETY: `dma_alloc` returns zeroed, page-aligned memory that nothing else uses until
// `dma_dealloc` (the pool or the heap hands each block out once); `share` returns an
// address valid for the buffer's length until `unshare`.
unsafe impl Hal for PvmHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match bouncer().dma_alloc(pages) {
            Ok(ok) => ok,
            // virtio-drivers turns a zero address into an error.
            Err(_) => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        // SAFETY: virtio-drivers passes back what `dma_alloc` returned.
        unsafe { bouncer().dma_dealloc(vaddr, pages) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        match NonNull::new(paddr as *mut u8) {
            Some(ptr) if within_ranges(&dma().device_ranges, paddr, size as u64) => ptr,
            _ => panic!("device reported MMIO at {paddr:#x}+{size:#x}, outside the DT's devices"),
        }
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        // SAFETY: virtio-drivers keeps the buffer valid for the call.
        match unsafe { bouncer().share(buffer, direction) } {
            Ok(addr) => addr,
            // Handing the device anything but a bounce buffer would expose private memory.
            Err(e) => panic!("cannot bounce a {}-byte buffer: {e}", buffer.len()),
        }
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        // SAFETY: virtio-drivers pairs this with its `share`.
        unsafe { bouncer().unshare(paddr, buffer, direction) }
    }
}

/// A virtio-mmio transport found in the DT, registered with the MMIO guard for the
/// VM's life, with a device behind it.
pub struct VirtioDevice {
    /// Register base.
    pub base: u64,
    /// The device's type.
    pub device_type: DeviceType,
    /// The transport, for a `virtio_drivers` driver.
    pub transport: MmioTransport<'static>,
}

/// Registers every `virtio,mmio` node of `dt` with `guard` and probes it; empty
/// transports are unregistered and skipped, and so (with a log line) are ones that fail
/// to probe.
pub fn discover(dt: &GuestDt<'_>, guard: &(impl MmioGuarded + ?Sized)) -> Vec<VirtioDevice> {
    let mut found = Vec::new();
    for (base, size) in dt.virtio_mmio() {
        if let Err(e) = guard.map(Ipa(base), size) {
            log::warn!("virtio-mmio at {base:#x}: {e}");
            continue;
        }
        let Some(header) = NonNull::new(base as *mut VirtIOHeader) else {
            continue;
        };
        // SAFETY: the DT names this window as a virtio-mmio transport, it is registered
        // with the MMIO guard, and guest-lib hands each transport out once.
        match unsafe { MmioTransport::new(header, size as usize) } {
            Ok(transport) => found.push(VirtioDevice { base, device_type: transport.device_type(), transport }),
            Err(e) => {
                if !matches!(e, MmioError::InvalidDeviceID(_)) {
                    log::warn!("virtio-mmio at {base:#x}: {e}");
                }
                let _ = guard.unmap(Ipa(base), size);
            }
        }
    }
    found
}

/// The drivers guest-lib builds for the devices pvmkit supports.
pub struct Drivers {
    /// The first block device.
    pub block: Option<virtio_drivers::device::blk::VirtIOBlk<PvmHal, MmioTransport<'static>>>,
    /// The first console.
    pub console: Option<virtio_drivers::device::console::VirtIOConsole<PvmHal, MmioTransport<'static>>>,
    /// The first entropy source.
    pub entropy: Option<virtio_drivers::device::rng::VirtIORng<PvmHal, MmioTransport<'static>>>,
    /// Devices of other types, or further ones, untouched.
    pub others: Vec<VirtioDevice>,
}

/// Discovers the DT's devices and builds a block, console and entropy driver from the
/// first of each (a device whose driver fails to start is logged and dropped).
pub fn drivers(dt: &GuestDt<'_>, guard: &(impl MmioGuarded + ?Sized)) -> Drivers {
    use virtio_drivers::device::{blk::VirtIOBlk, console::VirtIOConsole, rng::VirtIORng};
    let mut out = Drivers { block: None, console: None, entropy: None, others: Vec::new() };
    for device in discover(dt, guard) {
        let base = device.base;
        let warn = |e: virtio_drivers::Error| log::warn!("virtio device at {base:#x}: {e}");
        match device.device_type {
            DeviceType::Block if out.block.is_none() => out.block = VirtIOBlk::new(device.transport).map_err(warn).ok(),
            DeviceType::Console if out.console.is_none() => {
                out.console = VirtIOConsole::new(device.transport).map_err(warn).ok()
            }
            DeviceType::EntropySource if out.entropy.is_none() => {
                out.entropy = VirtIORng::new(device.transport).map_err(warn).ok()
            }
            _ => out.others.push(device),
        }
    }
    out
}
