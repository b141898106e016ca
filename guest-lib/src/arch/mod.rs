//! guest-lib's assembly and system registers: boot, vectors, probes.

pub mod probe;

use core::arch::global_asm;

global_asm!(include_str!("boot.S"));
global_asm!(include_str!("vectors.S"));
global_asm!(include_str!("probe.S"));

/// Reads an EL1 system register.
macro_rules! read_sysreg {
    ($name:literal) => {{
        let value: u64;
        // SAFETY: reading an EL1 system register has no memory-safety effect.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) value, options(nomem, nostack, preserves_flags)) };
        value
    }};
}

/// Writes an EL1 system register.
macro_rules! write_sysreg {
    ($name:literal, $value:expr) => {{
        let value: u64 = $value;
        // SAFETY: callers write only ELR_EL1, to resume after a caught probe abort.
        unsafe { core::arch::asm!(concat!("msr ", $name, ", {}"), in(reg) value, options(nomem, nostack, preserves_flags)) };
    }};
}

pub(crate) use {read_sysreg, write_sysreg};

/// x0..x30 as the vectors save them.
#[repr(C)]
pub struct Frame {
    /// x0..x30.
    pub x: [u64; 31],
    _pad: u64,
}
