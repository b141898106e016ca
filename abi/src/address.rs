//! Addresses, one type per address space, so that an address of one space is never
//! passed where another's is meant (a guest's virtual address where a hypervisor call
//! wants an intermediate physical one, a byte address where a page is meant). Each is
//! a `u64` underneath, free to make and to take apart; what a type promises is said on
//! it.

use core::fmt;

use crate::memory_map::GRANULE;

/// An intermediate physical address: what a guest calls physical and what its
/// hypervisor's stage 2 translates (the input of MEM_SHARE, MMIO_GUARD_MAP, a virtio
/// descriptor's address in a VM).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Ipa(pub u64);

/// A physical address of the machine (what stage 2 translates to: hyp's own view,
/// identity mapped to the guest's IPAs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct PhysAddr(pub u64);

/// A granule-aligned guest page (the unit of sharing and of the MMIO guard): its
/// IPA is a multiple of [`GRANULE`], by construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Page(u64);

impl Ipa {
    /// The address as a number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// `bytes` further on, wrapping (whoever checks the range refuses what wraps).
    pub const fn offset(self, bytes: u64) -> Self {
        Self(self.0.wrapping_add(bytes))
    }

    /// `bytes` further on, or `None` past the end of the address space.
    pub const fn checked_offset(self, bytes: u64) -> Option<Self> {
        match self.0.checked_add(bytes) {
            Some(a) => Some(Self(a)),
            None => None,
        }
    }

    /// The page this address lies in.
    pub const fn page(self) -> Page {
        Page(self.0 & !(GRANULE - 1))
    }

    /// How far into its page this address lies.
    pub const fn page_offset(self) -> u64 {
        self.0 & (GRANULE - 1)
    }

    /// Whether this address starts a page.
    pub const fn is_page_aligned(self) -> bool {
        self.page_offset() == 0
    }
}

impl PhysAddr {
    /// The address as a number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// `bytes` further on, wrapping.
    pub const fn offset(self, bytes: u64) -> Self {
        Self(self.0.wrapping_add(bytes))
    }
}

impl Page {
    /// Page 0, at IPA 0 (a placeholder where a page must be named before one is known).
    pub const FIRST: Self = Self(0);

    /// The page starting at `ipa`, or `None` if `ipa` does not start a page.
    pub const fn at(ipa: Ipa) -> Option<Self> {
        if ipa.is_page_aligned() {
            Some(Self(ipa.0))
        } else {
            None
        }
    }

    /// The page number `number` (its IPA is `number` granules on from 0), or `None`
    /// past the end of the address space.
    pub const fn number(number: u64) -> Option<Self> {
        match number.checked_mul(GRANULE) {
            Some(a) => Some(Self(a)),
            None => None,
        }
    }

    /// Where the page starts.
    pub const fn ipa(self) -> Ipa {
        Ipa(self.0)
    }

    /// Its number: its IPA in granules.
    pub const fn index(self) -> u64 {
        self.0 / GRANULE
    }

    /// The `count` pages from this one on, in order (fewer if the address space ends
    /// first).
    pub fn run(self, count: u64) -> impl Iterator<Item = Self> {
        let first = self.index();
        (first..first.saturating_add(count)).filter_map(Self::number)
    }

    /// The next page, or `None` at the end of the address space.
    pub const fn next(self) -> Option<Self> {
        match self.0.checked_add(GRANULE) {
            Some(a) => Some(Self(a)),
            None => None,
        }
    }
}

/// `{}` shows an address as `0x…`; `{:x}` and `{:#x}` as its number would.
macro_rules! shown_in_hex {
    ($($address:ty),*) => {$(
        impl fmt::Display for $address {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }

        impl fmt::LowerHex for $address {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    )*};
}

shown_in_hex!(Ipa, PhysAddr, Page);

#[cfg(test)]
mod tests {
    use super::*;

    /// The Arm architecture's 4 KiB granule: bits 11:0 are the offset in the page.
    #[test]
    fn a_page_is_the_granule_an_address_lies_in() {
        let ipa = Ipa(0x8020_1234);
        assert_eq!((ipa.page().ipa(), ipa.page_offset()), (Ipa(0x8020_1000), 0x234));
        assert!(!ipa.is_page_aligned() && Page::at(ipa).is_none());
        let page = Page::at(Ipa(0x8020_1000)).unwrap();
        assert_eq!((page.index(), page.next().unwrap().ipa()), (0x80201, Ipa(0x8020_2000)));
        assert_eq!(Page::number(0x80201), Some(page));
        assert_eq!(Page::number(u64::MAX), None);
        assert_eq!(Ipa(u64::MAX).page().next(), None, "the last page has none after it");
        let three: Vec<Page> = page.run(3).collect();
        assert_eq!(three, [0x80201, 0x80202, 0x80203].map(|n| Page::number(n).unwrap()));
        assert_eq!(Ipa(u64::MAX).page().run(3).count(), 1, "the address space ends first");
        assert_eq!(page.run(0).count(), 0);
        assert_eq!(Ipa(u64::MAX).checked_offset(1), None);
        assert_eq!(Ipa(u64::MAX).offset(2), Ipa(1), "wrapping, for the checker to refuse");
        assert_eq!(
            format!("{ipa} {page} {:x} {}", page.ipa(), PhysAddr(0x900_0000)),
            "0x80201234 0x80201000 80201000 0x9000000"
        );
    }
}
