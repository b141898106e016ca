//! The registers [`crate::smp::start`] hands a secondary CPU: this CPU's EL1 state, read
//! here, and its data cache cleaned over the start block, which the new CPU reads with
//! its MMU and caches still off.

use core::arch::asm;

/// This CPU's CPACR, VBAR, MAIR, TCR, TTBR0 and SCTLR (EL1), in that order.
pub fn el1_state() -> [u64; 6] {
    let (cpacr, vbar, mair, tcr, ttbr0, sctlr): (u64, u64, u64, u64, u64, u64);
    // SAFETY: reading EL1 system registers at EL1 has no side effect.
    unsafe {
        asm!(
            "mrs {0}, cpacr_el1",
            "mrs {1}, vbar_el1",
            "mrs {2}, mair_el1",
            "mrs {3}, tcr_el1",
            "mrs {4}, ttbr0_el1",
            "mrs {5}, sctlr_el1",
            out(reg) cpacr, out(reg) vbar, out(reg) mair, out(reg) tcr, out(reg) ttbr0, out(reg) sctlr,
            options(nomem, nostack, preserves_flags),
        );
    }
    [cpacr, vbar, mair, tcr, ttbr0, sctlr]
}

/// Cleans `[start, start + len)` to the point of coherency, so that a CPU reading it
/// with its caches off sees what this one wrote.
pub fn clean_to_poc(start: u64, len: u64) {
    const LINE: u64 = 64;
    let mut line = start & !(LINE - 1);
    while line < start + len {
        // SAFETY: cleaning a line of memory this CPU may read has no effect on its
        // contents.
        unsafe { asm!("dc cvac, {0}", in(reg) line, options(nostack, preserves_flags)) };
        line += LINE;
    }
    // SAFETY: a barrier.
    unsafe { asm!("dsb ish", options(nostack, preserves_flags)) };
}

/// The address of `pvmkit_secondary_entry` (`secondary.S`).
pub fn entry_address() -> u64 {
    unsafe extern "C" {
        fn pvmkit_secondary_entry();
    }
    pvmkit_secondary_entry as *const () as u64
}
