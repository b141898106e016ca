//! The GIC side of [`crate::interrupts`]: the distributor's registers for an SPI, the
//! redistributor's for an SGI or PPI, and the CPU interface's acknowledge, end and SGI
//! registers.

use core::arch::asm;

use aarch64_cpu::registers::{Readable, MPIDR_EL1};

use crate::interrupts::{check_intid, sgi_to, InterruptError};

use abi::gic::{
    GICD_ICENABLER, GICD_IGROUPR, GICD_IPRIORITYR, GICD_IROUTER, GICD_ISENABLER, GICR_SGI_FRAME, GICR_WAKER,
    WAKER_CHILDREN_ASLEEP, WAKER_PROCESSOR_SLEEP,
};
/// The priority device interrupts get (above the CPU interface's mask of 0xff).
const PRIORITY: u32 = 0xa0;
/// INTIDs from 1020 are special: 1023 says nothing is pending.
const SPECIAL: u32 = 1020;

// GIC registers are accessed with one plain `ldr`/`str` each (no writeback, no pair),
// so that the hypervisor gets a full syndrome: a protected VM's access without one is
// answered with an external abort.
pub(super) fn read32(addr: u64) -> u32 {
    let value: u32;
    // SAFETY: a GIC register, registered with the MMIO guard when the GIC was set up
    // (and probed first).
    unsafe { asm!("ldr {0:w}, [{1}]", out(reg) value, in(reg) addr, options(nostack, readonly)) };
    value
}

pub(super) fn write32(addr: u64, value: u32) {
    // SAFETY: as above.
    unsafe { asm!("str {0:w}, [{1}]", in(reg) value, in(reg) addr, options(nostack)) };
}

/// The frame whose registers configure `intid`: the redistributor's SGI/PPI frame for
/// the first 32, the distributor for SPIs.
fn frame(intid: u32) -> Result<u64, InterruptError> {
    check_intid(intid)?;
    let (gicd, _) = super::timer::gic_frames().ok_or(InterruptError::NoGic)?;
    Ok(frame_of(gicd, redistributor()?, intid))
}

/// This CPU's redistributor: the first one's frames, then one per CPU index (as QEMU
/// `virt` and KVM lay them out), once the GIC is set up.
pub fn redistributor() -> Result<u64, InterruptError> {
    let (_, first) = super::timer::gic_frames().ok_or(InterruptError::NoGic)?;
    Ok(first + crate::smp::this_cpu() as u64 * abi::memory_map::GICR_SIZE)
}

/// Sets up a secondary CPU's part of the GIC once the boot CPU set the GIC up (the
/// runtime does on first use of the timer or interrupts): its redistributor awake and
/// its CPU interface on. In a protected VM, register [`redistributor`]'s 128 KiB with
/// the MMIO guard first.
pub fn init_this_cpu() -> Result<(), InterruptError> {
    let gicr = redistributor()?;
    write32(gicr + GICR_WAKER, read32(gicr + GICR_WAKER) & !WAKER_PROCESSOR_SLEEP);
    for _ in 0..1_000_000 {
        if read32(gicr + GICR_WAKER) & WAKER_CHILDREN_ASLEEP == 0 {
            break;
        }
    }
    crate::register_gaps::enable_gic_cpu_interface();
    Ok(())
}

/// Sends SGI `intid` (0..16) to the CPU whose MPIDR affinity is `mpidr`.
pub fn send_sgi(mpidr: u64, intid: u32) -> Result<(), InterruptError> {
    frame(intid)?;
    let value = sgi_to(mpidr, intid)?;
    // SAFETY: generating an SGI has no memory effect.
    unsafe { asm!("msr S3_0_C12_C11_5, {}", "isb", in(reg) value, options(nomem, nostack)) };
    Ok(())
}

fn frame_of(gicd: u64, gicr: u64, intid: u32) -> u64 {
    if intid < 32 {
        gicr + GICR_SGI_FRAME
    } else {
        gicd
    }
}

/// Enables `intid` for this CPU: group 1, a priority above the mask, and (an SPI)
/// routed to affinity 0.
pub fn enable(intid: u32) -> Result<(), InterruptError> {
    let (gicd, _) = super::timer::gic_frames().ok_or(InterruptError::NoGic)?;
    configure(gicd, redistributor()?, check_intid(intid)?);
    Ok(())
}

/// [`enable`] on the GIC at `gicd`/`gicr` (the timer's set-up uses it before the GIC
/// counts as set up).
pub(super) fn configure(gicd: u64, gicr: u64, intid: u32) {
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

/// Disables `intid`.
pub fn disable(intid: u32) -> Result<(), InterruptError> {
    let base = frame(intid)?;
    write32(base + GICD_ICENABLER + 4 * u64::from(intid / 32), 1 << (intid % 32));
    Ok(())
}

/// Sends SGI `intid` (0..16) to this CPU through ICC_SGI1R_EL1.
pub fn send_sgi_to_self(intid: u32) -> Result<(), InterruptError> {
    frame(intid)?;
    let value = sgi_to(MPIDR_EL1.get(), intid)?;
    // SAFETY: generating an SGI has no memory effect.
    unsafe { asm!("msr S3_0_C12_C11_5, {}", "isb", in(reg) value, options(nomem, nostack)) };
    Ok(())
}

fn acknowledge() -> u32 {
    let intid: u64;
    // SAFETY: reading IAR acknowledges the highest-priority pending interrupt.
    unsafe { asm!("mrs {}, S3_0_C12_C12_0", out(reg) intid, options(nomem, nostack)) };
    intid as u32
}

/// Ends `intid` (ICC_EOIR1_EL1: priority drop and deactivation).
pub fn end(intid: u32) {
    // SAFETY: ends an interrupt this CPU acknowledged.
    unsafe { asm!("msr S3_0_C12_C12_1, {}", "isb", in(reg) u64::from(intid), options(nomem, nostack)) };
}

/// Waits in WFI until `intid` is pending and acknowledges it: it stays active until
/// [`end`], after the driver has quieted its device. Any other interrupt acknowledged
/// on the way is ended at once.
pub fn wait(intid: u32) {
    loop {
        match acknowledge() {
            got if got == intid => return,
            got if got < SPECIAL => end(got),
            // SAFETY: waiting has no memory effect; a pending interrupt wakes it even
            // while masked at the CPU.
            _ => unsafe { asm!("wfi", options(nomem, nostack)) },
        }
    }
}
