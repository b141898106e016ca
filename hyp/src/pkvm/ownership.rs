//! Who may touch each page of guest RAM: the one source of truth for sharing.
//!
//! Every guest page is `Private` (only the guest) or `Shared` (the guest and the
//! host's device side). A shared page may be pinned while a device request holds it;
//! a pinned page cannot be unshared. This follows pKVM's guest `OWNED` /
//! `SHARED_OWNED` states (and the hypervisor refcount that makes unshare fail while a
//! page is in use).
//!
//! The page states, every call and event that moves them, and what the guest sees,
//! per profile (`hypercall/tests.rs::the_page_state_table_holds` checks each row):
//!
//! | page state     | call or event                    | upstream 7.3            | android 6.12              | new state      |
//! |----------------|----------------------------------|-------------------------|---------------------------|----------------|
//! | Private        | MEM_SHARE                        | 0                       | x1 = granules done        | Shared, 0 pins |
//! | Shared         | MEM_SHARE                        | -3                      | -3                        | unchanged      |
//! | Shared, 0 pins | MEM_UNSHARE                      | 0                       | x1 = granules done        | Private        |
//! | Shared, pinned | MEM_UNSHARE                      | -3 (policy)             | -3 (policy)               | unchanged      |
//! | Private        | MEM_UNSHARE                      | -3                      | -3                        | unchanged      |
//! | Private        | MEM_RELINQUISH                   | -1 (no such call)       | 0, page zeroed            | Private        |
//! | Shared         | MEM_RELINQUISH                   | -1                      | -3                        | unchanged      |
//! | outside RAM    | MEM_SHARE                        | external abort at call  | external abort at call    | —              |
//! | outside RAM    | MEM_UNSHARE                      | -3                      | -3                        | —              |
//! | Shared, n pins | a device request takes the page  | pin                     | pin                       | n + 1 pins     |
//! | Shared, n + 1  | the device completes or resets   | unpin                   | unpin                     | n pins         |
//! | Private        | a device request names it        | violation: the VM ends  | violation: the VM ends    | —              |
//!
//! A ranged Android call walks up to 256 granules and acts on all of them or none
//! (a mixed range answers -3); "policy" rows are hyp's validator policy
//! `unshare-device-held` (`pvmkit_abi::profile::POLICIES`), stricter than the release.

use core::fmt;

use pvmkit_abi::address::{Ipa, Page};
use pvmkit_abi::memory_map::Region;

pub use pvmkit_abi::memory_map::GRANULE;

/// Bit 15 of a page's word: shared. Bits 14..0: pin count.
const SHARED: u16 = 1 << 15;
const PINS: u16 = SHARED - 1;

/// A page's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageState {
    /// Only the guest may touch it.
    Private,
    /// The host's device side may touch it too; `pins` device requests hold it.
    Shared {
        /// In-flight device requests that hold the page.
        pins: u16,
    },
}

/// Why a transition was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnershipError {
    /// The page is not in guest RAM.
    OutsideRam(Page),
    /// The page is not in the state the transition needs.
    WrongState(Page, PageState),
    /// The page is pinned by a device request.
    Pinned(Page),
    /// The pin count would overflow.
    TooManyPins(Page),
}

impl OwnershipError {
    /// The page it names.
    pub const fn page(&self) -> Page {
        match *self {
            Self::OutsideRam(page) | Self::WrongState(page, _) | Self::Pinned(page) | Self::TooManyPins(page) => page,
        }
    }
}

impl fmt::Display for OwnershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutsideRam(page) => write!(f, "page {page} is outside guest RAM"),
            Self::WrongState(page, state) => write!(f, "page {page} is {state:?}"),
            Self::Pinned(page) => write!(f, "page {page} is pinned by a device request"),
            Self::TooManyPins(page) => write!(f, "page {page} has too many pins"),
        }
    }
}

/// The states of every page of guest RAM, one word each, in memory hyp owns.
pub struct Ownership<'a> {
    base: u64,
    pages: &'a mut [u16],
}

impl<'a> Ownership<'a> {
    /// Tracks guest RAM at `base` with one word per page in `pages`; all start private.
    pub fn new(base: u64, pages: &'a mut [u16]) -> Self {
        pages.fill(0);
        Self { base, pages }
    }

    /// Bytes of guest RAM tracked.
    pub fn ram_size(&self) -> u64 {
        self.pages.len() as u64 * GRANULE
    }

    /// The guest RAM tracked.
    pub fn ram(&self) -> Region {
        Region { start: self.base, end: self.base + self.ram_size() }
    }

    fn index(&self, page: Page) -> Result<usize, OwnershipError> {
        let index = page.ipa().get().checked_sub(self.base).map(|off| off / GRANULE);
        match index {
            Some(i) if i < self.pages.len() as u64 => Ok(i as usize),
            _ => Err(OwnershipError::OutsideRam(page)),
        }
    }

    /// The state of `page`.
    pub fn state(&self, page: Page) -> Result<PageState, OwnershipError> {
        let word = self.pages[self.index(page)?];
        Ok(if word & SHARED != 0 { PageState::Shared { pins: word & PINS } } else { PageState::Private })
    }

    /// The first page of `[ipa, ipa + len)` (any alignment, `len` > 0) that is not
    /// shared, or `None` when all are. A range that wraps or leaves guest RAM names the
    /// first page outside it.
    pub fn first_unshared(&self, ipa: Ipa, len: u64) -> Option<Page> {
        let first = ipa.page();
        let Some(last) = len.checked_sub(1).and_then(|l| ipa.checked_offset(l)) else {
            return Some(first);
        };
        pages_from(first, last.page()).find(|&page| !matches!(self.state(page), Ok(PageState::Shared { .. })))
    }

    /// Checks that `share` would succeed, changing nothing.
    pub fn can_share(&self, page: Page) -> Result<(), OwnershipError> {
        match self.state(page)? {
            PageState::Private => Ok(()),
            state => Err(OwnershipError::WrongState(page, state)),
        }
    }

    /// Checks that `unshare` would succeed, changing nothing.
    pub fn can_unshare(&self, page: Page) -> Result<(), OwnershipError> {
        match self.state(page)? {
            PageState::Shared { pins: 0 } => Ok(()),
            PageState::Shared { .. } => Err(OwnershipError::Pinned(page)),
            state => Err(OwnershipError::WrongState(page, state)),
        }
    }

    /// `Private → Shared`.
    pub fn share(&mut self, page: Page) -> Result<(), OwnershipError> {
        self.can_share(page)?;
        let i = self.index(page)?;
        self.pages[i] = SHARED;
        Ok(())
    }

    /// `Shared` (unpinned) `→ Private`.
    pub fn unshare(&mut self, page: Page) -> Result<(), OwnershipError> {
        self.can_unshare(page)?;
        let i = self.index(page)?;
        self.pages[i] = 0;
        Ok(())
    }

    /// Checks that a private page may be relinquished (its content is then zeroed by
    /// the caller; it stays the guest's, as a fresh zero page).
    pub fn can_relinquish(&self, page: Page) -> Result<(), OwnershipError> {
        match self.state(page)? {
            PageState::Private => Ok(()),
            state => Err(OwnershipError::WrongState(page, state)),
        }
    }

    /// Takes a pin on a shared page for a device request.
    pub fn pin(&mut self, page: Page) -> Result<(), OwnershipError> {
        let i = self.index(page)?;
        match self.state(page)? {
            PageState::Shared { pins } if pins < PINS => {
                self.pages[i] = SHARED | (pins + 1);
                Ok(())
            }
            PageState::Shared { .. } => Err(OwnershipError::TooManyPins(page)),
            state => Err(OwnershipError::WrongState(page, state)),
        }
    }

    /// Drops a pin.
    pub fn unpin(&mut self, page: Page) -> Result<(), OwnershipError> {
        let i = self.index(page)?;
        match self.state(page)? {
            PageState::Shared { pins } if pins > 0 => {
                self.pages[i] = SHARED | (pins - 1);
                Ok(())
            }
            state => Err(OwnershipError::WrongState(page, state)),
        }
    }

    /// Pins every page `[ipa, ipa + len)` touches (`len` > 0), all or nothing, and
    /// returns exactly what it pinned, for [`Self::unpin_range`].
    pub fn pin_range(&mut self, ipa: Ipa, len: u64) -> Result<PinnedRange, OwnershipError> {
        let first = ipa.page();
        let last = len.checked_sub(1).and_then(|l| ipa.checked_offset(l)).ok_or(OwnershipError::OutsideRam(first))?;
        let range = PinnedRange { first, pages: last.page().index() - first.index() + 1 };
        for (done, page) in range.pages().enumerate() {
            if let Err(e) = self.pin(page) {
                for pinned in range.pages().take(done) {
                    // Pinned just now: dropping that pin cannot fail.
                    let _ = self.unpin(pinned);
                }
                return Err(e);
            }
        }
        Ok(range)
    }

    /// Drops the pins [`Self::pin_range`] took. An error means hyp's bookkeeping is
    /// wrong (a pin dropped twice): the caller must stop, not carry on.
    pub fn unpin_range(&mut self, range: PinnedRange) -> Result<(), OwnershipError> {
        for page in range.pages() {
            self.unpin(page)?;
        }
        Ok(())
    }
}

/// The pages from `first` to `last`, both included. Written out rather than through
/// `Page::run`: this and [`PinnedRange::pages`] are on every device request's path, and
/// through `run` hyp's bench counted ~150 more instructions per request.
fn pages_from(first: Page, last: Page) -> impl Iterator<Item = Page> {
    (first.index()..=last.index()).filter_map(Page::number)
}

/// Pages pinned together, remembered so that exactly these are unpinned later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinnedRange {
    /// The first page.
    pub first: Page,
    /// How many pages from it.
    pub pages: u64,
}

impl PinnedRange {
    /// The pages.
    pub fn pages(self) -> impl Iterator<Item = Page> {
        let first = self.first.index();
        (first..first.saturating_add(self.pages)).filter_map(Page::number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::pg as p;

    #[test]
    fn the_tracked_ram_its_pin_limit_and_its_errors_say_what_they_are() {
        let mut pages = [0u16; 2];
        let mut o = Ownership::new(0x8000_0000, &mut pages);
        assert_eq!(o.ram(), Region { start: 0x8000_0000, end: 0x8000_2000 });
        o.share(p(0x8000_0000)).unwrap();
        for _ in 0..PINS {
            o.pin(p(0x8000_0000)).unwrap();
        }
        assert_eq!(o.state(p(0x8000_0000)), Ok(PageState::Shared { pins: PINS }));
        assert_eq!(o.pin(p(0x8000_0000)), Err(OwnershipError::TooManyPins(p(0x8000_0000))), "the count never wraps");
        assert_eq!(o.state(p(0x8000_0000)), Ok(PageState::Shared { pins: PINS }));
        assert_eq!(OwnershipError::Pinned(p(0x8000_0000)).to_string(), "page 0x80000000 is pinned by a device request");
    }

    const BASE: u64 = 0x8000_0000;

    #[test]
    fn transitions() {
        let mut words = vec![0xffffu16; 16];
        let mut o = Ownership::new(BASE, &mut words);
        assert_eq!(o.state(p(BASE)), Ok(PageState::Private), "new() clears");
        assert_eq!(o.ram_size(), 16 * 4096);
        o.share(p(BASE)).unwrap();
        assert_eq!(o.state(p(BASE)), Ok(PageState::Shared { pins: 0 }));
        assert_eq!(o.share(p(BASE)), Err(OwnershipError::WrongState(p(BASE), PageState::Shared { pins: 0 })));
        o.pin(p(BASE)).unwrap();
        o.pin(p(BASE)).unwrap();
        assert_eq!(o.state(p(BASE)), Ok(PageState::Shared { pins: 2 }));
        assert_eq!(o.unshare(p(BASE)), Err(OwnershipError::Pinned(p(BASE))));
        o.unpin(p(BASE)).unwrap();
        o.unpin(p(BASE)).unwrap();
        assert_eq!(o.unpin(p(BASE)), Err(OwnershipError::WrongState(p(BASE), PageState::Shared { pins: 0 })));
        o.unshare(p(BASE)).unwrap();
        assert_eq!(o.unshare(p(BASE)), Err(OwnershipError::WrongState(p(BASE), PageState::Private)));
        assert_eq!(o.pin(p(BASE)), Err(OwnershipError::WrongState(p(BASE), PageState::Private)));
        assert_eq!(o.can_relinquish(p(BASE)), Ok(()));
    }

    #[test]
    fn addresses_are_checked() {
        let mut words = vec![0u16; 4];
        let mut o = Ownership::new(BASE, &mut words);
        assert!(Page::at(Ipa(BASE + 1)).is_none(), "an unaligned page cannot even be named");
        assert_eq!(o.share(p(BASE - 4096)), Err(OwnershipError::OutsideRam(p(BASE - 4096))));
        assert_eq!(o.share(p(BASE + 4 * 4096)), Err(OwnershipError::OutsideRam(p(BASE + 4 * 4096))));
        assert_eq!(o.share(p(0)), Err(OwnershipError::OutsideRam(p(0))));
        assert_eq!(o.state(p(!0xfff)), Err(OwnershipError::OutsideRam(p(!0xfff))));
    }

    #[test]
    fn shared_ranges() {
        let mut words = vec![0u16; 4];
        let mut o = Ownership::new(BASE, &mut words);
        o.share(p(BASE + 4096)).unwrap();
        o.share(p(BASE + 2 * 4096)).unwrap();
        assert_eq!(o.first_unshared(Ipa(BASE + 4096), 8192), None);
        assert_eq!(o.first_unshared(Ipa(BASE + 4096 + 100), 4096), None);
        assert_eq!(o.first_unshared(Ipa(BASE + 4096), 8193), Some(p(BASE + 3 * 4096)));
        assert_eq!(o.first_unshared(Ipa(BASE + 4095), 2), Some(p(BASE)));
        assert_eq!(o.first_unshared(Ipa(BASE + 4096), 0), Some(p(BASE + 4096)), "an empty range is never shared");
        assert_eq!(o.first_unshared(Ipa(u64::MAX), 2), Some(p(!0xfff)), "a wrapping range is never shared");
    }

    #[test]
    fn ranges_pin_all_or_nothing_and_unpin_exactly() {
        let mut words = vec![0u16; 4];
        let mut o = Ownership::new(BASE, &mut words);
        o.share(p(BASE)).unwrap();
        o.share(p(BASE + 4096)).unwrap();
        let r = o.pin_range(Ipa(BASE + 4000), 200).unwrap();
        assert_eq!(r, PinnedRange { first: p(BASE), pages: 2 });
        assert_eq!(o.state(p(BASE + 4096)), Ok(PageState::Shared { pins: 1 }));
        // Runs into a private page: nothing stays pinned.
        assert_eq!(
            o.pin_range(Ipa(BASE), 3 * 4096),
            Err(OwnershipError::WrongState(p(BASE + 8192), PageState::Private))
        );
        assert_eq!(o.state(p(BASE)), Ok(PageState::Shared { pins: 1 }));
        assert_eq!(o.pin_range(Ipa(BASE), 0), Err(OwnershipError::OutsideRam(p(BASE))));
        o.unpin_range(r).unwrap();
        assert_eq!(o.state(p(BASE)), Ok(PageState::Shared { pins: 0 }));
        assert!(o.unpin_range(r).is_err(), "a second unpin is a bookkeeping error");
    }
}
