//! Accesses that report an external abort instead of stopping the VM. Each does
//! exactly one access of the named width (single-register, so a hypervisor gets a
//! full syndrome), except [`read_pair`], which is a load pair (no syndrome).
//!
//! guest-lib's runtime catches the aborts itself. A guest OS with its own vectors calls
//! [`fixup`] from its synchronous exception handler and, when it returns a
//! [`ProbeFixup`](super::ProbeFixup), sets ELR and x1 from it and returns from the exception:
//!
//! ```ignore
//! fn synchronous_current(&self, regs: &mut RegisterState) {
//!     let (esr, far) = (read_esr_el1(), read_far_el1());
//!     match guest_lib::exceptions::probe::fixup(esr, regs.elr as u64, far) {
//!         Some(fix) => { regs.elr = fix.resume_at as usize; regs.registers[1] = fix.x1; }
//!         None => report_and_reset(esr, far),
//!     }
//! }
//! ```

pub use crate::arch::probe::{
    fixup, hvc, read_pair, read_register, read_u32, read_u64, read_u8, write_register, write_u32, write_u8,
};
