//! What the host reads of a VM's memory once the VM is torn down. test-guest's
//! conformance scenario fills one private page and one page it leaves shared with
//! [`mark`]ed words; pvmkit's VMM, after closing the VM, looks for both in guest RAM
//! and prints `probe teardown-private = ...` and `probe teardown-shared = ...`
//! ([`Found`]), recorded from the real release ([`super::recording`]).
//!
//! ```
//! use pvmkit_abi::profile::teardown::{mark, Found, Page, Survey};
//!
//! let mut ram = vec![0u64; 3 * 512];
//! for (i, word) in ram[512..1024].iter_mut().enumerate() {
//!     *word = mark(Page::Shared, i);
//! }
//! let survey = Survey::of(&ram);
//! assert_eq!((survey.pages, survey.holding, survey.shared), (3, 1, Some(1)));
//! assert_eq!((survey.found(Page::Shared), survey.found(Page::Private)), (Found::Kept, Found::Gone));
//! ```

/// Words in a 4 KiB page.
pub const PAGE_WORDS: usize = 512;

/// Which page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// Never shared.
    Private,
    /// Shared with MEM_SHARE and left shared.
    Shared,
}

impl Page {
    /// Its probe's name.
    pub const fn probe(self) -> &'static str {
        match self {
            Self::Private => "teardown-private",
            Self::Shared => "teardown-shared",
        }
    }
}

/// Word `i` of `page`'s mark: computed, never stored in an image, so that only a page
/// the guest filled holds it (an xorshift sequence from a per-page seed).
pub fn mark(page: Page, i: usize) -> u64 {
    let mut x = match page {
        Page::Private => 0x7076_6d6b_6974_0001u64,
        Page::Shared => 0x7076_6d6b_6974_0002u64,
    } ^ ((i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// Whether the mark was found after teardown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// A whole page still holds it.
    Kept,
    /// No page holds it.
    Gone,
}

impl core::fmt::Display for Found {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Kept => "kept",
            Self::Gone => "zeroed",
        })
    }
}

/// One pass over guest RAM once the VM is gone: how many pages still hold data, and
/// which page (by index) first holds each mark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Survey {
    /// Whole pages looked at.
    pub pages: usize,
    /// Pages holding anything but zeros.
    pub holding: usize,
    /// The first page holding the private mark.
    pub private: Option<usize>,
    /// The first page holding the shared mark.
    pub shared: Option<usize>,
}

impl Survey {
    /// Surveys `ram`, page by page (whole pages of words).
    pub fn of(ram: &[u64]) -> Self {
        let holds = |p: &[u64], page| p.iter().enumerate().all(|(i, &w)| w == mark(page, i));
        let mut survey = Self::default();
        for (index, p) in ram.chunks_exact(PAGE_WORDS).enumerate() {
            survey.pages += 1;
            if p.iter().all(|&w| w == 0) {
                continue;
            }
            survey.holding += 1;
            for (page, slot) in [(Page::Private, &mut survey.private), (Page::Shared, &mut survey.shared)] {
                if slot.is_none() && holds(p, page) {
                    *slot = Some(index);
                }
            }
        }
        survey
    }

    /// The first page holding `page`'s mark.
    pub fn at(&self, page: Page) -> Option<usize> {
        match page {
            Page::Private => self.private,
            Page::Shared => self.shared,
        }
    }

    /// Whether `page`'s mark was found.
    pub fn found(&self, page: Page) -> Found {
        if self.at(page).is_some() {
            Found::Kept
        } else {
            Found::Gone
        }
    }
}

/// Whether the host finds a page wiped once the VM is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wipe {
    /// Always: the page reads as zero.
    Always,
    /// Never: the page keeps what the guest left in it.
    Never,
    /// Not reliably: some runs find it wiped, others find the guest's data.
    NotReliably,
}

/// What the host reads, after the VM is torn down, of a page that held the guest's
/// data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Teardown {
    /// A page that was private to the VM.
    pub private: Wipe,
    /// A page the VM left shared.
    pub shared: Wipe,
    /// Where this comes from.
    pub source: &'static str,
}

impl Teardown {
    /// What the probe of `page` prints under this rule; `None` where a run may print
    /// either.
    pub fn expected(&self, page: Page) -> Option<Found> {
        match self.wipe(page) {
            Wipe::Always => Some(Found::Gone),
            Wipe::Never => Some(Found::Kept),
            Wipe::NotReliably => None,
        }
    }

    /// The rule for `page`.
    pub fn wipe(&self, page: Page) -> Wipe {
        match page {
            Page::Private => self.private,
            Page::Shared => self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_marks_differ_and_are_not_zero() {
        for i in 0..PAGE_WORDS {
            assert_ne!(mark(Page::Private, i), mark(Page::Shared, i));
            assert_ne!(mark(Page::Private, i), 0);
        }
        assert_ne!(mark(Page::Private, 0), mark(Page::Private, 1));
    }

    #[test]
    fn a_page_counts_only_whole_and_aligned() {
        let mut ram = vec![0u64; 4 * PAGE_WORDS];
        // Shifted by one word: not a page of the mark.
        for i in 0..PAGE_WORDS {
            ram[PAGE_WORDS + 1 + i] = mark(Page::Private, i);
        }
        assert_eq!(Survey::of(&ram).found(Page::Private), Found::Gone);
        for i in 0..PAGE_WORDS {
            ram[2 * PAGE_WORDS + i] = mark(Page::Private, i);
        }
        let survey = Survey::of(&ram);
        assert_eq!((survey.found(Page::Private), survey.at(Page::Private)), (Found::Kept, Some(2)));
        assert_eq!((survey.pages, survey.holding), (4, 2), "pages 1 and 2 hold data, 0 and 3 none");
        ram[3 * PAGE_WORDS - 1] = 0;
        assert_eq!(Survey::of(&ram).found(Page::Private), Found::Gone, "one word wiped");
        assert_eq!(Survey::of(&ram[..PAGE_WORDS + 7]).pages, 1, "a partial page is not looked at");
    }

    #[test]
    fn expectations_follow_the_rule() {
        let rule = Teardown { private: Wipe::Always, shared: Wipe::Never, source: "" };
        assert_eq!((rule.expected(Page::Private), rule.expected(Page::Shared)), (Some(Found::Gone), Some(Found::Kept)));
        let unreliable = Teardown { private: Wipe::NotReliably, ..rule };
        assert_eq!(unreliable.expected(Page::Private), None, "either outcome");
        assert_eq!(unreliable.wipe(Page::Shared), Wipe::Never);
        assert_eq!(Found::Gone.to_string(), "zeroed");
    }
}
