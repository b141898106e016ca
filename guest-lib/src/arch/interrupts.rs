//! The GIC side of [`crate::interrupts`]: the distributor's registers for an SPI, and
//! the CPU interface's acknowledge and end registers.

use core::arch::asm;

use crate::interrupts::{check_spi, InterruptError};

use abi::gic::{GICD_ICENABLER, GICD_IGROUPR, GICD_IPRIORITYR, GICD_IROUTER, GICD_ISENABLER};
/// The priority device interrupts get (above the CPU interface's mask of 0xff).
const PRIORITY: u32 = 0xa0;
/// INTIDs from 1020 are special: 1023 says nothing is pending.
const SPECIAL: u32 = 1020;

// One plain `ldr`/`str` each, so that a hypervisor gets a full syndrome.
fn read32(addr: u64) -> u32 {
    let value: u32;
    // SAFETY: a GIC distributor register, registered with the MMIO guard when the GIC
    // was set up.
    unsafe { asm!("ldr {0:w}, [{1}]", out(reg) value, in(reg) addr, options(nostack, readonly)) };
    value
}

fn write32(addr: u64, value: u32) {
    // SAFETY: as above.
    unsafe { asm!("str {0:w}, [{1}]", in(reg) value, in(reg) addr, options(nostack)) };
}

fn distributor(intid: u32) -> Result<u64, InterruptError> {
    check_spi(intid)?;
    super::timer::distributor().ok_or(InterruptError::NoGic)
}

/// Enables the SPI `intid` for this CPU: group 1, a priority above the mask, routed to
/// affinity 0.
pub fn enable(intid: u32) -> Result<(), InterruptError> {
    let gicd = distributor(intid)?;
    let (word, bit) = (4 * u64::from(intid / 32), 1 << (intid % 32));
    write32(gicd + GICD_IGROUPR + word, read32(gicd + GICD_IGROUPR + word) | bit);
    let priority = gicd + GICD_IPRIORITYR + u64::from(intid & !3);
    let shift = 8 * (intid % 4);
    write32(priority, (read32(priority) & !(0xff << shift)) | (PRIORITY << shift));
    let route = gicd + GICD_IROUTER + 8 * u64::from(intid);
    write32(route, 0);
    write32(route + 4, 0);
    write32(gicd + GICD_ISENABLER + word, bit);
    Ok(())
}

/// Disables the SPI `intid`.
pub fn disable(intid: u32) -> Result<(), InterruptError> {
    let gicd = distributor(intid)?;
    write32(gicd + GICD_ICENABLER + 4 * u64::from(intid / 32), 1 << (intid % 32));
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
