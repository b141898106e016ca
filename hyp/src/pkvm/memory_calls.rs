//! Carrying out the memory actions a profile row allows: MEM_SHARE, MEM_UNSHARE and
//! MEM_RELINQUISH on the granules a call walks. Whether a call may act at all (its
//! arguments, the pages' states) the profile has already decided
//! ([`abi::profile`]); what can still refuse here is hyp's validator policy.

use crate::pkvm::hypercall::PolicyRefusal;
use crate::pkvm::ownership::{Ownership, OwnershipError, GRANULE};

/// Zeroes guest pages (hyp: through its identity map; tests: a fake).
pub trait GuestMemory {
    /// Fills the page at `ipa` with zeroes.
    fn zero_page(&mut self, ipa: u64);
}

/// The granules of a walk, from `ipa`.
fn granules(ipa: u64, walk: u64) -> impl Iterator<Item = u64> {
    (0..walk).map(move |i| ipa + i * GRANULE)
}

/// Shares `walk` private granules from `ipa` (the profile checked they are private).
pub fn share(ownership: &mut Ownership<'_>, ipa: u64, walk: u64) {
    for page in granules(ipa, walk) {
        let shared = ownership.share(page);
        debug_assert!(shared.is_ok(), "the profile saw {page:#x} private");
    }
}

/// Takes `walk` shared granules from `ipa` back, all or none: a granule a device still
/// holds refuses the whole call (policy `unshare-device-held`).
pub fn unshare(ownership: &mut Ownership<'_>, ipa: u64, walk: u64) -> Result<(), PolicyRefusal> {
    for page in granules(ipa, walk) {
        if let Err(OwnershipError::Pinned(_)) = ownership.can_unshare(page) {
            return Err(PolicyRefusal { policy: "unshare-device-held", ipa: page });
        }
    }
    for page in granules(ipa, walk) {
        let unshared = ownership.unshare(page);
        debug_assert!(unshared.is_ok(), "checked above");
    }
    Ok(())
}

/// Gives a private granule back to the host: the guest finds it zeroed.
pub fn relinquish<M: GuestMemory>(ownership: &Ownership<'_>, memory: &mut M, ipa: u64) {
    debug_assert!(ownership.can_relinquish(ipa).is_ok(), "the profile saw {ipa:#x} private");
    memory.zero_page(ipa);
}
