//! The guest console: the PL011 the device tree names, `print!`/`println!`, and a
//! `log` backend. Output before the console is known (or on the host) is dropped.
//!
//! ```ignore
//! // guest-lib's runtime points the console at the DT's PL011 once it is registered
//! // with the MMIO guard; then:
//! guest_lib::println!("hello from a pVM");
//! log::info!("and through `log`");
//! ```

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

static UART_BASE: AtomicU64 = AtomicU64::new(0);

const UARTDR: u64 = 0x00;
const UARTFR: u64 = 0x18;
const FR_TXFF: u32 = 1 << 5;

/// Handle to the console; write to it with `core::fmt::Write`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Console;

/// Points the console at a PL011.
///
/// # Safety
/// `base` must be the register window of a PL011 that stays accessible (and, in a
/// protected VM, registered with the MMIO guard) for as long as anything prints.
pub unsafe fn init(base: u64) {
    UART_BASE.store(base, Ordering::Relaxed);
}

/// The console's base address, or 0 before [`init`].
pub fn base() -> u64 {
    UART_BASE.load(Ordering::Relaxed)
}

fn put(byte: u8) {
    let base = base();
    if base == 0 {
        return;
    }
    #[cfg(target_os = "none")]
    // SAFETY: `init`'s contract: `base` is a PL011; FR and DR are 32-bit registers.
    unsafe {
        while ((base + UARTFR) as *const u32).read_volatile() & FR_TXFF != 0 {}
        ((base + UARTDR) as *mut u32).write_volatile(byte as u32);
    }
    #[cfg(not(target_os = "none"))]
    let _ = (byte, UARTDR, UARTFR, FR_TXFF);
}

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        s.bytes().for_each(put);
        Ok(())
    }
}

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::console::Console, format_args!($($arg)*));
    }};
}

/// Prints a line to the console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::print!("{}\n", format_args!($($arg)*)) };
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        crate::println!("[{}] {}", record.level(), record.args());
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Sends `log` records to the console at `level` and above.
pub fn init_logger(level: log::LevelFilter) {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}
