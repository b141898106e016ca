//! Carrying out the memory actions a profile row allows: MEM_SHARE, MEM_UNSHARE and
//! MEM_RELINQUISH on the granules a call walks. Whether a call may act at all (its
//! arguments, the pages' states) the profile has already decided
//! ([`pvmkit_abi::profile`]); what can still refuse here is hyp's validator policy. Where
//! hyp's own page table disagrees with what the profile saw, nothing changes and the
//! call fails with an [`Inconsistency`], which ends the VM with a hyp error: a release
//! build checks it as a debug build does.

use crate::pkvm::action_error::{ActionError, Inconsistency};
pub use crate::pkvm::action_error::{DeviceHeld, Holder};
use crate::pkvm::ownership::{Ownership, OwnershipError};
use pvmkit_abi::address::Page;

/// Which device holds a guest page (hyp: its virtio transports; tests: a fake).
pub trait DeviceHolds {
    /// The device holding `page`, if any.
    fn holder(&mut self, ownership: &Ownership<'_>, page: Page) -> Option<Holder>;
}

/// Zeroes guest pages (hyp: through its identity map; tests: a fake).
pub trait GuestMemory {
    /// Fills `page` with zeroes.
    fn zero_page(&mut self, page: Page);
}

/// The granules of a walk, from `first` (none past the end of the address space).
fn granules(first: Page, walk: u64) -> impl Iterator<Item = Page> {
    first.run(walk)
}

/// Shares `walk` private granules from `first`, all or none (the profile saw them
/// private).
pub fn share(ownership: &mut Ownership<'_>, first: Page, walk: u64) -> Result<(), ActionError> {
    for page in granules(first, walk) {
        ownership.can_share(page).map_err(|e| inconsistent(e, "MEM_SHARE of a granule the profile saw private"))?;
    }
    for page in granules(first, walk) {
        ownership.share(page).map_err(|e| inconsistent(e, "MEM_SHARE changed its mind"))?;
    }
    Ok(())
}

/// Takes `walk` shared granules from `first` back, all or none: a granule a device still
/// holds ([`DeviceHeld`]) stops the whole call before anything changes.
pub fn unshare(
    ownership: &mut Ownership<'_>,
    devices: &mut dyn DeviceHolds,
    first: Page,
    walk: u64,
) -> Result<(), ActionError> {
    for page in granules(first, walk) {
        let held = |holder| Err(ActionError::DeviceHeld(DeviceHeld { page, holder }));
        match ownership.can_unshare(page) {
            Ok(()) => {}
            Err(OwnershipError::Pinned(_)) => return held(devices.holder(ownership, page)),
            Err(e) => return Err(inconsistent(e, "MEM_UNSHARE of a granule the profile saw shared")),
        }
        if let Some(holder) = devices.holder(ownership, page) {
            return held(Some(holder));
        }
    }
    for page in granules(first, walk) {
        ownership.unshare(page).map_err(|e| inconsistent(e, "MEM_UNSHARE changed its mind"))?;
    }
    Ok(())
}

/// Gives a private granule back to the host: the guest finds it zeroed.
pub fn relinquish<M: GuestMemory>(ownership: &Ownership<'_>, memory: &mut M, page: Page) -> Result<(), ActionError> {
    ownership
        .can_relinquish(page)
        .map_err(|e| inconsistent(e, "MEM_RELINQUISH of a granule the profile saw private"))?;
    memory.zero_page(page);
    Ok(())
}

fn inconsistent(error: OwnershipError, what: &'static str) -> ActionError {
    ActionError::Inconsistent(Inconsistency { ipa: error.page().ipa(), what })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pkvm::ownership::{PageState, GRANULE};
    use crate::testing::pg as p;
    use pvmkit_abi::address::Ipa;

    struct Zeroed(Vec<Page>);

    impl GuestMemory for Zeroed {
        fn zero_page(&mut self, page: Page) {
            self.0.push(page);
        }
    }

    const RAM: u64 = 0x8000_0000;

    /// Each action on pages whose state is not the one the profile saw: a named
    /// inconsistency, and nothing changed (release builds too: no debug assertion).
    #[test]
    fn bookkeeping_that_disagrees_with_the_profile_changes_nothing_and_is_named() {
        let mut pages = [0u16; 4];
        let mut ownership = Ownership::new(RAM, &mut pages);
        ownership.share(p(RAM + GRANULE)).unwrap();
        let err = share(&mut ownership, p(RAM), 2).unwrap_err();
        assert_eq!(
            err,
            ActionError::Inconsistent(Inconsistency {
                ipa: Ipa(RAM + GRANULE),
                what: "MEM_SHARE of a granule the profile saw private"
            })
        );
        assert_eq!(ownership.state(p(RAM)), Ok(PageState::Private), "all or nothing");
        let err = unshare(&mut ownership, &mut NoDevice, p(RAM), 2).unwrap_err();
        assert!(matches!(err, ActionError::Inconsistent(Inconsistency { ipa: Ipa(RAM), .. })), "{err:?}");
        assert_eq!(ownership.state(p(RAM + GRANULE)), Ok(PageState::Shared { pins: 0 }));
        let mut zeroed = Zeroed(Vec::new());
        let err = relinquish(&ownership, &mut zeroed, p(RAM + GRANULE)).unwrap_err();
        assert!(matches!(err, ActionError::Inconsistent(_)), "{err:?}");
        assert!(zeroed.0.is_empty(), "a shared page was zeroed");
        assert_eq!(relinquish(&ownership, &mut zeroed, p(RAM)), Ok(()));
        assert_eq!(zeroed.0, [p(RAM)]);
        // Outside RAM is an inconsistency too (the profile checks the range first).
        assert!(matches!(share(&mut ownership, p(RAM + 4 * GRANULE), 1), Err(ActionError::Inconsistent(_))));
    }

    struct NoDevice;

    impl DeviceHolds for NoDevice {
        fn holder(&mut self, _: &Ownership<'_>, _: Page) -> Option<Holder> {
            None
        }
    }

    /// The second granule is pinned: the whole call stops at it, nothing changes.
    #[test]
    fn a_pinned_granule_stops_the_whole_unshare() {
        let mut pages = [0u16; 4];
        let mut ownership = Ownership::new(RAM, &mut pages);
        share(&mut ownership, p(RAM), 2).unwrap();
        ownership.pin(p(RAM + GRANULE)).unwrap();
        let err = unshare(&mut ownership, &mut NoDevice, p(RAM), 2).unwrap_err();
        assert_eq!(err, ActionError::DeviceHeld(DeviceHeld { page: p(RAM + GRANULE), holder: None }));
        assert_eq!(ownership.state(p(RAM)), Ok(PageState::Shared { pins: 0 }), "all or nothing");
        assert_eq!(DeviceHeld { page: p(0), holder: None }.what(), "MEM_UNSHARE of a page a device holds");
        let ring = Holder { device: 0x0a00_3e00, queue: 1, descriptor: None };
        assert_eq!(DeviceHeld { page: p(0), holder: Some(ring) }.what(), "MEM_UNSHARE of a ring page of a ready queue");
    }
}
