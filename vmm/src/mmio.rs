//! Which device an MMIO exit reaches. On real upstream pKVM the hypervisor forwards
//! every access with a syndrome to the VMM, at any address: keeping a guest from
//! touching what it has no device for is this VMM's job, and it answers with an
//! external abort, as hyp does.

use abi::memory_map::QEMU_EARLY_UART;

/// The console's register window.
pub const CONSOLE: (u64, u64) = (QEMU_EARLY_UART, 0x1000);

/// Where an access goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The PL011, at this offset.
    Console(u64),
    /// Nothing: the guest gets an external abort.
    Abort,
}

/// Routes an access of `len` bytes at `ipa`.
pub fn route(ipa: u64, len: usize) -> Route {
    let (base, size) = CONSOLE;
    match ipa.checked_sub(base) {
        Some(offset) if offset + len as u64 <= size && len <= 4 => Route::Console(offset),
        _ => Route::Abort,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_console_answers() {
        assert_eq!(route(0x0900_0000, 4), Route::Console(0));
        assert_eq!(route(0x0900_0ffc, 4), Route::Console(0xffc));
        assert_eq!(route(0x0900_0ffe, 4), Route::Abort, "crosses the window's end");
        assert_eq!(route(0x0900_0000, 8), Route::Abort, "the PL011 has no 64-bit registers");
        assert_eq!(route(0x0a00_3e00, 4), Route::Abort);
        assert_eq!(route(1 << 47, 4), Route::Abort);
    }
}
