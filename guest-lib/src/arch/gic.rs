//! The GICv3 frames guest-lib sets up, below both the timer (whose interrupt wakes a
//! WFI) and the interrupts API (device interrupts, SGIs): register access, the frames'
//! bases once set up, one INTID's configuration, and a redistributor woken.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use pvmkit_abi::gic::{
    GICD_IGROUPR, GICD_IPRIORITYR, GICD_IROUTER, GICD_ISENABLER, GICR_SGI_FRAME, GICR_WAKER, WAKER_CHILDREN_ASLEEP,
    WAKER_PROCESSOR_SLEEP,
};

/// The priority device interrupts get (above the CPU interface's mask of 0xff).
const PRIORITY: u32 = 0xa0;

/// The distributor's and the first redistributor's bases once the GIC is set up (0
/// before).
static DISTRIBUTOR: AtomicU64 = AtomicU64::new(0);
static REDISTRIBUTOR: AtomicU64 = AtomicU64::new(0);

// GIC registers are accessed with one plain `ldr`/`str` each (no writeback, no pair),
// so that the hypervisor gets a full syndrome: a protected VM's access without one is
// answered with an external abort.
pub(crate) fn read32(addr: u64) -> u32 {
    let value: u32;
    // SAFETY: a GIC register, registered with the MMIO guard when the GIC was set up
    // (and probed first).
    unsafe { asm!("ldr {0:w}, [{1}]", out(reg) value, in(reg) addr, options(nostack, readonly)) };
    value
}

pub(crate) fn write32(addr: u64, value: u32) {
    // SAFETY: as above.
    unsafe { asm!("str {0:w}, [{1}]", in(reg) value, in(reg) addr, options(nostack)) };
}

/// Records the frames of a GIC that is set up.
pub(crate) fn set_frames(gicd: u64, gicr: u64) {
    DISTRIBUTOR.store(gicd, Ordering::Relaxed);
    REDISTRIBUTOR.store(gicr, Ordering::Relaxed);
}

/// The distributor's and the first redistributor's bases, once set up.
pub(crate) fn frames() -> Option<(u64, u64)> {
    let frames = (DISTRIBUTOR.load(Ordering::Relaxed), REDISTRIBUTOR.load(Ordering::Relaxed));
    (frames.0 != 0).then_some(frames)
}

/// The frame whose registers configure `intid`: the redistributor's SGI/PPI frame for
/// the first 32, the distributor for SPIs.
pub(crate) fn frame_of(gicd: u64, gicr: u64, intid: u32) -> u64 {
    if intid < 32 {
        gicr + GICR_SGI_FRAME
    } else {
        gicd
    }
}

/// Enables `intid` on the GIC at `gicd`/`gicr`: group 1, a priority above the mask,
/// and (an SPI) routed to affinity 0.
pub(crate) fn configure(gicd: u64, gicr: u64, intid: u32) {
    let base = frame_of(gicd, gicr, intid);
    let (word, bit) = (4 * u64::from(intid / 32), 1 << (intid % 32));
    write32(base + GICD_IGROUPR + word, read32(base + GICD_IGROUPR + word) | bit);
    let priority = base + GICD_IPRIORITYR + u64::from(intid & !3);
    let shift = 8 * (intid % 4);
    write32(priority, (read32(priority) & !(0xff << shift)) | (PRIORITY << shift));
    if intid >= 32 {
        let route = base + GICD_IROUTER + 8 * u64::from(intid);
        write32(route, 0);
        write32(route + 4, 0);
    }
    write32(base + GICD_ISENABLER + word, bit);
}

/// Wakes the redistributor at `gicr` (its processor no longer asleep), waiting a
/// bounded while for its children to wake.
pub(crate) fn wake_redistributor(gicr: u64) {
    write32(gicr + GICR_WAKER, read32(gicr + GICR_WAKER) & !WAKER_PROCESSOR_SLEEP);
    for _ in 0..1_000_000 {
        if read32(gicr + GICR_WAKER) & WAKER_CHILDREN_ASLEEP == 0 {
            break;
        }
    }
}
