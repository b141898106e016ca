//! A periodic tick for hyp: the EL2 physical timer (PPI 26) through the GICv3, so that
//! hyp gets control back from a guest that only spins (virtio drivers poll their used
//! rings without ever trapping) and can deliver the device's completions.
//!
//! Physical IRQs are routed to EL2 (HCR_EL2.IMO) and taken there whatever the guest's
//! own PSTATE.I; hyp itself runs with interrupts masked.

use core::arch::asm;

/// INTID of the EL2 physical timer.
pub const HYP_TIMER_INTID: u32 = 26;

const GICD_CTLR: u64 = 0x0000;
/// GICD_CTLR: ARE (affinity routing) and EnableGrp1 (single security state).
const GICD_CTLR_ARE_GRP1: u32 = (1 << 4) | (1 << 1);
const GICR_WAKER: u64 = 0x0014;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// The SGI/PPI frame follows the redistributor's control frame.
const GICR_SGI_BASE: u64 = 0x1_0000;
const GICR_IGROUPR0: u64 = 0x0080;
const GICR_ISENABLER0: u64 = 0x0100;
const GICR_IPRIORITYR: u64 = 0x0400;

fn read32(addr: u64) -> u32 {
    // SAFETY: GIC registers of the platform's GICv3 (from its DTB).
    unsafe { (addr as *const u32).read_volatile() }
}

fn write32(addr: u64, value: u32) {
    // SAFETY: as above.
    unsafe { (addr as *mut u32).write_volatile(value) }
}

/// Sets up the GIC for the timer PPI and starts the timer with `period` counter ticks.
pub fn start(gicd: u64, gicr: u64, period: u64) {
    write32(gicd + GICD_CTLR, read32(gicd + GICD_CTLR) | GICD_CTLR_ARE_GRP1);
    write32(gicr + GICR_WAKER, read32(gicr + GICR_WAKER) & !WAKER_PROCESSOR_SLEEP);
    while read32(gicr + GICR_WAKER) & WAKER_CHILDREN_ASLEEP != 0 {}
    let sgi = gicr + GICR_SGI_BASE;
    write32(sgi + GICR_IGROUPR0, read32(sgi + GICR_IGROUPR0) | (1 << HYP_TIMER_INTID));
    let prio = sgi + GICR_IPRIORITYR + (HYP_TIMER_INTID as u64 & !3);
    let shift = (HYP_TIMER_INTID % 4) * 8;
    write32(prio, (read32(prio) & !(0xff << shift)) | (0x80 << shift));
    write32(sgi + GICR_ISENABLER0, 1 << HYP_TIMER_INTID);
    // SAFETY: the CPU interface is enabled through system registers (ICC_SRE_EL2.SRE
    // is set at reset on QEMU); these only change interrupt delivery.
    unsafe {
        asm!(
            "msr icc_pmr_el1, {pmr}",
            "msr icc_bpr1_el1, xzr",
            "msr icc_igrpen1_el1, {one}",
            "isb",
            pmr = in(reg) 0xf0u64,
            one = in(reg) 1u64,
            options(nostack),
        );
    }
    rearm(period);
}

/// Programs the next tick.
pub fn rearm(period: u64) {
    // SAFETY: the EL2 physical timer belongs to hyp alone.
    unsafe {
        asm!("msr cnthp_tval_el2, {}", "msr cnthp_ctl_el2, {}", "isb", in(reg) period, in(reg) 1u64, options(nostack))
    };
}
