//! The ID registers whose fields the conformance probes print (`pvmkit_abi::profile::cpu`):
//! the only assembly of test-guest's probes, one read each.

use pvmkit_abi::profile::cpu::IdRegister;

/// Reads `register` (always readable at EL1; a hypervisor may trap the read and
/// answer with a sanitized value).
pub fn read(register: IdRegister) -> u64 {
    let value: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe {
        match register {
            IdRegister::Pfr0 => core::arch::asm!("mrs {}, s3_0_c0_c4_0", out(reg) value, options(nomem, nostack)),
            IdRegister::Pfr1 => core::arch::asm!("mrs {}, s3_0_c0_c4_1", out(reg) value, options(nomem, nostack)),
            IdRegister::Dfr0 => core::arch::asm!("mrs {}, s3_0_c0_c5_0", out(reg) value, options(nomem, nostack)),
        }
    }
    value
}
