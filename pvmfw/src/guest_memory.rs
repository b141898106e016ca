//! The VM's own memory as pvmfw clears it: what the host handed over and pvmfw has
//! consumed (the configuration data, the host's DT) and the DICE secrets' pages.

use pvmkit_abi::address::Ipa;

/// Overwrites `len` bytes of guest memory from `ipa` with zeroes (pvmfw runs with its
/// memory identity mapped: an IPA is its address).
pub fn erase(ipa: Ipa, len: u64) {
    // SAFETY: callers pass ranges of the VM's own memory that nothing else uses.
    unsafe { core::ptr::write_bytes(ipa.get() as *mut u8, 0, len as usize) };
}
