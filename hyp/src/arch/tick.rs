//! A periodic tick for hyp: the EL2 physical timer (PPI 26) through the GICv3, so that
//! hyp gets control back from a guest that only spins (virtio drivers poll their used
//! rings without ever trapping) and can deliver the device's completions.
//!
//! Physical IRQs are routed to EL2 (HCR_EL2.IMO) and taken there whatever the guest's
//! own PSTATE.I; hyp itself runs with interrupts masked.

use core::arch::asm;

/// INTID of the EL2 physical timer.
pub const HYP_TIMER_INTID: u32 = 26;

use abi::gic::{
    CTLR_ARE, CTLR_ENABLE_GRP1, GICD_CTLR, GICD_IGROUPR, GICD_IPRIORITYR, GICD_ISENABLER, GICR_SGI_FRAME, GICR_WAKER,
    WAKER_CHILDREN_ASLEEP, WAKER_PROCESSOR_SLEEP,
};

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
    write32(gicd + GICD_CTLR, read32(gicd + GICD_CTLR) | (CTLR_ARE | CTLR_ENABLE_GRP1));
    write32(gicr + GICR_WAKER, read32(gicr + GICR_WAKER) & !WAKER_PROCESSOR_SLEEP);
    while read32(gicr + GICR_WAKER) & WAKER_CHILDREN_ASLEEP != 0 {}
    let sgi = gicr + GICR_SGI_FRAME;
    write32(sgi + GICD_IGROUPR, read32(sgi + GICD_IGROUPR) | (1 << HYP_TIMER_INTID));
    let prio = sgi + GICD_IPRIORITYR + (HYP_TIMER_INTID as u64 & !3);
    let shift = (HYP_TIMER_INTID % 4) * 8;
    write32(prio, (read32(prio) & !(0xff << shift)) | (0x80 << shift));
    write32(sgi + GICD_ISENABLER, 1 << HYP_TIMER_INTID);
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
