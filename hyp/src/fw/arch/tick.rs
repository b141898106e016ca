//! A periodic tick for hyp: the EL2 physical timer (PPI 26) through the GICv3, so that
//! hyp gets control back from a guest that only spins (virtio drivers poll their used
//! rings without ever trapping) and can deliver the device's completions.

use core::arch::asm;

use super::gic;

/// INTID of the EL2 physical timer.
pub const HYP_TIMER_INTID: u32 = 26;

/// Starts the timer with `period` counter ticks, its interrupt enabled at the GIC
/// (which [`gic::init`] brought up).
pub fn start(period: u64) {
    gic::set_enabled(HYP_TIMER_INTID, true);
    rearm(period);
}

/// Programs the next tick.
pub fn rearm(period: u64) {
    // SAFETY: the EL2 physical timer belongs to hyp alone.
    unsafe {
        asm!("msr cnthp_tval_el2, {}", "msr cnthp_ctl_el2, {}", "isb", in(reg) period, in(reg) 1u64, options(nostack))
    };
}
