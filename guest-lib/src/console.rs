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
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

static UART_BASE: AtomicU64 = AtomicU64::new(0);
/// Bytes written so far, and the last one: so that a harness can tell whether a case
/// printed, and whether the console stands at the start of a line ([`output_mark`]).
/// (Per thread in host tests, which run in parallel threads.)
#[cfg(not(test))]
static WRITTEN: AtomicU64 = AtomicU64::new(0);
#[cfg(not(test))]
static LAST: AtomicU8 = AtomicU8::new(b'\n');
#[cfg(test)]
std::thread_local! {
    static WRITTEN: AtomicU64 = const { AtomicU64::new(0) };
    static LAST: AtomicU8 = const { AtomicU8::new(b'\n') };
}

fn count(byte: u8) {
    #[cfg(not(test))]
    {
        WRITTEN.fetch_add(1, Ordering::Relaxed);
        LAST.store(byte, Ordering::Relaxed);
    }
    #[cfg(test)]
    {
        WRITTEN.with(|w| w.fetch_add(1, Ordering::Relaxed));
        LAST.with(|l| l.store(byte, Ordering::Relaxed));
    }
}

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

/// How many bytes the console has been given so far, and whether the last was a
/// newline (the console stands at the start of a line).
pub fn output_mark() -> (u64, bool) {
    #[cfg(not(test))]
    let (written, last) = (WRITTEN.load(Ordering::Relaxed), LAST.load(Ordering::Relaxed));
    #[cfg(test)]
    let (written, last) = (WRITTEN.with(|w| w.load(Ordering::Relaxed)), LAST.with(|l| l.load(Ordering::Relaxed)));
    (written, last == b'\n')
}

fn put(byte: u8) {
    count(byte);
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

/// Who is printing: 0 for nobody, else the printing CPU's MPIDR affinity + 1.
static PRINTING: AtomicU64 = AtomicU64::new(0);

/// This CPU's tag for [`PRINTING`].
fn this_cpu_tag() -> u64 {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    {
        use aarch64_cpu::registers::{Readable, MPIDR_EL1};
        (MPIDR_EL1.get() & pvmkit_abi::psci::MPIDR_HWID_MASK) + 1
    }
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    1
}

/// Writes `args` to the console whole: a print on another CPU waits for this one to
/// end; one on the same CPU (an exception reported in the middle of a print) goes
/// straight through rather than wait for itself.
pub fn print(args: fmt::Arguments<'_>) {
    let me = this_cpu_tag();
    let nested = PRINTING.load(Ordering::Relaxed) == me;
    if !nested {
        while PRINTING.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed).is_err() {
            core::hint::spin_loop();
        }
    }
    let _ = fmt::Write::write_fmt(&mut Console, args);
    if !nested {
        PRINTING.store(0, Ordering::Release);
    }
}

/// Prints to the console (a whole `print!` at a time when several CPUs print).
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        $crate::console::print(format_args!($($arg)*));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A print leaves the console free; one nested on the same CPU (as an exception's
    /// report inside a print) goes through instead of waiting for itself.
    #[test]
    fn prints_free_the_console_and_nest_on_one_cpu() {
        print(format_args!("whole"));
        assert_eq!(PRINTING.load(Ordering::Relaxed), 0);
        PRINTING.store(this_cpu_tag(), Ordering::Relaxed);
        print(format_args!("nested"));
        assert_eq!(PRINTING.load(Ordering::Relaxed), this_cpu_tag(), "the outer print still holds it");
        PRINTING.store(0, Ordering::Relaxed);
    }
}
