//! hyp's console: the platform's PL011, shared with the guest's emulated writes.
//! hyp's own lines always begin at a line start, with its tag and the run's nonce
//! (`[hyp#…] `, `pvmkit_abi::exit_line`), which the guest never learns: `pvmkit` takes only
//! such lines for hyp's. Lines written before hyp has read its options carry no nonce.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use pvmkit_abi::exit_line::{Nonce, Tag, Writer};

const UARTDR: u64 = 0x00;
const UARTFR: u64 = 0x18;
const FR_TXFF: u32 = 1 << 5;

/// The console, shared by every CPU: a whole line of hyp's at a time ([`line`]).
pub struct Console {
    base: AtomicU64,
    at_line_start: AtomicBool,
    nonce: AtomicU64,
    has_nonce: AtomicBool,
    /// Held while one of hyp's lines is written.
    writing: AtomicBool,
}

/// The one console.
pub static CONSOLE: Console = Console {
    base: AtomicU64::new(pvmkit_abi::memory_map::QEMU_EARLY_UART),
    at_line_start: AtomicBool::new(true),
    nonce: AtomicU64::new(0),
    has_nonce: AtomicBool::new(false),
    writing: AtomicBool::new(false),
};

impl Console {
    /// Moves the console to the PL011 the DTB describes.
    pub fn set_base(&self, base: u64) {
        self.base.store(base, Ordering::Relaxed);
    }

    /// Tags hyp's lines from now on with the run's nonce.
    pub fn set_nonce(&self, nonce: Option<Nonce>) {
        self.nonce.store(nonce.map_or(0, |n| n.0), Ordering::Relaxed);
        self.has_nonce.store(nonce.is_some(), Ordering::Release);
    }

    fn nonce(&self) -> Option<Nonce> {
        self.has_nonce.load(Ordering::Acquire).then(|| Nonce(self.nonce.load(Ordering::Relaxed)))
    }

    /// Sends one byte, waiting while the FIFO is full.
    pub fn put(&self, byte: u8) {
        let base = self.base.load(Ordering::Relaxed);
        // SAFETY: `base` is the platform's PL011 (from the DTB, or QEMU virt's fixed
        // address before the DTB is read); FR and DR are 32-bit registers.
        unsafe {
            while (((base + UARTFR) as *const u32).read_volatile() & FR_TXFF) != 0 {}
            ((base + UARTDR) as *mut u32).write_volatile(byte as u32);
        }
        self.at_line_start.store(byte == b'\n', Ordering::Relaxed);
    }

    /// Records a byte the guest wrote to the data register through emulation.
    pub fn note_guest_byte(&self, byte: u8) {
        self.at_line_start.store(byte == b'\n', Ordering::Relaxed);
    }

    /// Starts a new line if someone left one open.
    pub fn break_line(&self) {
        if !self.at_line_start.load(Ordering::Relaxed) {
            self.put(b'\n');
        }
    }
}

impl Write for &Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        s.bytes().for_each(|b| self.put(b));
        Ok(())
    }
}

/// Prints one of hyp's lines, tagged, whole (another CPU's waits).
pub fn line(args: fmt::Arguments<'_>) {
    while CONSOLE.writing.swap(true, Ordering::Acquire) {
        core::hint::spin_loop();
    }
    CONSOLE.break_line();
    let mut out = &CONSOLE;
    let _ = write!(out, "{} ", Tag(Writer::Hyp, CONSOLE.nonce()));
    let _ = out.write_fmt(args);
    CONSOLE.put(b'\n');
    CONSOLE.writing.store(false, Ordering::Release);
}

/// `hyp_println!("...")`: one `[hyp#<nonce>] ...` line.
macro_rules! hyp_println {
    ($($arg:tt)*) => { $crate::console::line(format_args!($($arg)*)) };
}

pub(crate) use hyp_println;
