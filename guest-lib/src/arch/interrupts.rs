//! The GIC side of [`crate::interrupts`]: the distributor's registers for an SPI, the
//! redistributor's for an SGI or PPI, and the CPU interface's acknowledge, end and SGI
//! registers.

use core::arch::asm;

use aarch64_cpu::registers::{Readable, MPIDR_EL1};

use super::gic::{configure, frame_of, write32};
use crate::interrupts::intid::{check_intid, sgi_to, InterruptError};

use pvmkit_abi::gic::GICD_ICENABLER;
/// INTIDs from 1020 are special: 1023 says nothing is pending.
const SPECIAL: u32 = 1020;

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
    Ok(first + crate::smp::this_cpu() as u64 * pvmkit_abi::memory_map::GICR_SIZE)
}

/// Sets up a secondary CPU's part of the GIC once the boot CPU set the GIC up (the
/// runtime does on first use of the timer or interrupts): its redistributor awake and
/// its CPU interface on. In a protected VM, register [`redistributor`]'s 128 KiB with
/// the MMIO guard first.
pub fn init_this_cpu() -> Result<(), InterruptError> {
    super::gic::wake_redistributor(redistributor()?);
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

/// Enables `intid` for this CPU: group 1, a priority above the mask, and (an SPI)
/// routed to affinity 0.
pub fn enable(intid: u32) -> Result<(), InterruptError> {
    let (gicd, _) = super::timer::gic_frames().ok_or(InterruptError::NoGic)?;
    configure(gicd, redistributor()?, check_intid(intid)?);
    Ok(())
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
