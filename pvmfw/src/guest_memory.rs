//! The VM's own memory as pvmfw clears it: what the host handed over and pvmfw has
//! consumed (the configuration data, the host's DT) and the DICE secrets' pages.

/// Overwrites guest memory with zeroes.
pub fn erase(ipa: u64, len: u64) {
    // SAFETY: callers pass ranges of the VM's own memory that nothing else uses.
    unsafe { core::ptr::write_bytes(ipa as *mut u8, 0, len as usize) };
}
