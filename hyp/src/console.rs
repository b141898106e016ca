//! hyp's console: the platform's PL011, shared with the guest's emulated writes.
//! hyp's own lines always begin at a line start, with its tag and the run's nonce
//! (`[hyp#…] `, `abi::exit_line`), which the guest never learns: `pvmkit` takes only
//! such lines for hyp's. Lines written before hyp has read its options carry no nonce.

use core::cell::Cell;
use core::fmt::{self, Write};

use abi::exit_line::{Nonce, Tag, Writer};

const UARTDR: u64 = 0x00;
const UARTFR: u64 = 0x18;
const FR_TXFF: u32 = 1 << 5;

/// The console. Single core, never used re-entrantly: plain cells suffice.
pub struct Console {
    base: Cell<u64>,
    at_line_start: Cell<bool>,
    nonce: Cell<Option<Nonce>>,
}

// SAFETY: hyp runs on one CPU with exceptions masked at EL2; nothing races.
unsafe impl Sync for Console {}

/// The one console.
pub static CONSOLE: Console = Console {
    base: Cell::new(abi::memory_map::QEMU_EARLY_UART),
    at_line_start: Cell::new(true),
    nonce: Cell::new(None),
};

impl Console {
    /// Moves the console to the PL011 the DTB describes.
    pub fn set_base(&self, base: u64) {
        self.base.set(base);
    }

    /// Tags hyp's lines from now on with the run's nonce.
    pub fn set_nonce(&self, nonce: Option<Nonce>) {
        self.nonce.set(nonce);
    }

    /// Sends one byte, waiting while the FIFO is full.
    pub fn put(&self, byte: u8) {
        let base = self.base.get();
        // SAFETY: `base` is the platform's PL011 (from the DTB, or QEMU virt's fixed
        // address before the DTB is read); FR and DR are 32-bit registers.
        unsafe {
            while (((base + UARTFR) as *const u32).read_volatile() & FR_TXFF) != 0 {}
            ((base + UARTDR) as *mut u32).write_volatile(byte as u32);
        }
        self.at_line_start.set(byte == b'\n');
    }

    /// Records a byte the guest wrote to the data register through emulation.
    pub fn note_guest_byte(&self, byte: u8) {
        self.at_line_start.set(byte == b'\n');
    }

    /// Starts a new line if someone left one open.
    pub fn break_line(&self) {
        if !self.at_line_start.get() {
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

/// Prints one of hyp's lines, tagged.
pub fn line(args: fmt::Arguments<'_>) {
    CONSOLE.break_line();
    let mut out = &CONSOLE;
    let _ = write!(out, "{} ", Tag(Writer::Hyp, CONSOLE.nonce.get()));
    let _ = out.write_fmt(args);
    CONSOLE.put(b'\n');
}

/// `hyp_println!("...")`: one `[hyp#<nonce>] ...` line.
macro_rules! hyp_println {
    ($($arg:tt)*) => { $crate::console::line(format_args!($($arg)*)) };
}

pub(crate) use hyp_println;
