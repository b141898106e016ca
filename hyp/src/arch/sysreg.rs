//! System registers hyp reads and writes, by name.

/// Reads a system register.
macro_rules! read_sysreg {
    ($name:literal) => {{
        let value: u64;
        // SAFETY: reading a system register at EL2 has no memory-safety effect.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) value, options(nomem, nostack, preserves_flags)) };
        value
    }};
}

/// Writes a system register, then synchronises the context.
macro_rules! write_sysreg {
    ($name:literal, $value:expr) => {{
        let value: u64 = $value;
        // SAFETY: hyp writes only EL2 control and EL1 context registers of the guest,
        // whose values the callers choose deliberately.
        unsafe { core::arch::asm!(concat!("msr ", $name, ", {}"), "isb", in(reg) value, options(nostack, preserves_flags)) };
    }};
}

pub(crate) use {read_sysreg, write_sysreg};
