//! This guest's own console: the PL011 the DT names, written a byte at a time with
//! single-register stores (a hypervisor can only emulate accesses with a syndrome).

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

const UARTDR: u64 = 0x00;
const UARTFR: u64 = 0x18;
const FR_TXFF: u32 = 1 << 5;

static BASE: AtomicU64 = AtomicU64::new(0);

/// Points the console at a PL011 registered with the MMIO guard.
pub fn init(base: u64) {
    BASE.store(base, Ordering::Relaxed);
}

/// Writes to the console; output before `init` is dropped.
pub struct Uart;

impl fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let base = BASE.load(Ordering::Relaxed);
        if base == 0 {
            return Ok(());
        }
        for byte in s.bytes() {
            // SAFETY: `init` was given a PL011 that stays mapped and registered; FR and DR
            // are 32-bit registers.
            unsafe {
                while ((base + UARTFR) as *const u32).read_volatile() & FR_TXFF != 0 {}
                ((base + UARTDR) as *mut u32).write_volatile(u32::from(byte));
            }
        }
        Ok(())
    }
}

/// Prints a line on the console.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::console::Uart, format_args!("{}\n", format_args!($($arg)*)));
    }};
}
