//! HYP_MEMINFO, MEM_SHARE, MEM_UNSHARE and MEM_RELINQUISH, with the semantics of each
//! ABI form (`shared/reference/pkvm-abi.md` §2–3):
//!
//! - upstream: one granule per call; x2 and x3 must be 0; every error is
//!   INVALID_PARAMETER; MEMINFO returns x1 = 0; no RELINQUISH.
//! - android: x2 is a granule count (0 means 1) and x1 returns how many were done; at
//!   most [`ANDROID_MAX_PAGES_PER_CALL`] per call, and one bad page fails the whole call
//!   with nothing changed; MEMINFO returns x1 = HAS_RANGE; RELINQUISH zeroes a page.
//!
//! hyp refuses (INVALID_PARAMETER) an IPA outside guest RAM: real pKVM would fault the
//! page in from the host first, but under hyp all of guest RAM is present from the
//! start, so such an IPA can never become guest memory.

use abi::hyp_options::AbiForm;
use abi::kvm::MEMINFO_HAS_RANGE;
use abi::smccc::{INVALID_PARAMETER, SUCCESS};

use crate::hypercall::Reply;
use crate::ownership::{Ownership, GRANULE};

/// The most granules one Android MEM_SHARE/UNSHARE walks (pKVM walks 512 PTEs).
pub const ANDROID_MAX_PAGES_PER_CALL: u64 = 512;

/// Zeroes guest pages (hyp: through its identity map; tests: a fake).
pub trait GuestMemory {
    /// Fills the page at `ipa` with zeroes.
    fn zero_page(&mut self, ipa: u64);
}

fn status(code: i64) -> Reply {
    Reply::four([code as u64, 0, 0, 0])
}

fn done(pages: u64) -> Reply {
    Reply::four([SUCCESS as u64, pages, 0, 0])
}

/// HYP_MEMINFO: the granule, and (Android) the range flag.
pub fn meminfo(form: AbiForm, args: [u64; 3]) -> Reply {
    if args != [0; 3] {
        return status(INVALID_PARAMETER);
    }
    let flags = match form {
        AbiForm::Android => MEMINFO_HAS_RANGE,
        AbiForm::Upstream => 0,
    };
    Reply::four([GRANULE, flags, 0, 0])
}

/// Which way pages move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// MEM_SHARE.
    Share,
    /// MEM_UNSHARE.
    Unshare,
}

/// MEM_SHARE or MEM_UNSHARE.
pub fn share_or_unshare(form: AbiForm, dir: Direction, ownership: &mut Ownership<'_>, args: [u64; 3]) -> Reply {
    let [ipa, x2, x3] = args;
    let pages = match form {
        AbiForm::Upstream if x2 != 0 || x3 != 0 => return status(INVALID_PARAMETER),
        AbiForm::Upstream => 1,
        AbiForm::Android if x3 != 0 => return status(INVALID_PARAMETER),
        AbiForm::Android => x2.clamp(1, ANDROID_MAX_PAGES_PER_CALL),
    };
    // Check every page first: a call either does all its pages or none.
    for i in 0..pages {
        let Some(page) = ipa.checked_add(i * GRANULE) else {
            return status(INVALID_PARAMETER);
        };
        let ok = match dir {
            Direction::Share => ownership.can_share(page),
            Direction::Unshare => ownership.can_unshare(page),
        };
        if ok.is_err() {
            return status(INVALID_PARAMETER);
        }
    }
    for i in 0..pages {
        let page = ipa + i * GRANULE;
        let result = match dir {
            Direction::Share => ownership.share(page),
            Direction::Unshare => ownership.unshare(page),
        };
        debug_assert!(result.is_ok(), "checked above");
    }
    match form {
        AbiForm::Upstream => status(SUCCESS),
        AbiForm::Android => done(pages),
    }
}

/// MEM_RELINQUISH (Android): a private page goes back to the host and returns zeroed.
pub fn relinquish<M: GuestMemory>(ownership: &mut Ownership<'_>, memory: &mut M, args: [u64; 3]) -> Reply {
    let [ipa, x2, x3] = args;
    if x2 != 0 || x3 != 0 || ownership.can_relinquish(ipa).is_err() {
        return status(INVALID_PARAMETER);
    }
    memory.zero_page(ipa);
    status(SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypercall::{dispatch, Outcome, Services, VmState};
    use crate::ownership::PageState;
    use abi::hyp_options::VmMode;

    const BASE: u64 = 0x8000_0000;
    const PAGES: usize = 1024;
    const NS: u64 = u64::MAX;
    const INVAL: u64 = INVALID_PARAMETER as u64;

    #[derive(Default)]
    struct FakeMemory(Vec<u64>);

    impl GuestMemory for FakeMemory {
        fn zero_page(&mut self, ipa: u64) {
            self.0.push(ipa);
        }
    }

    /// A VM with its own ownership table and memory, answering calls like hyp.
    struct Vm {
        mode: VmMode,
        ownership: Ownership<'static>,
        zeroed: FakeMemory,
    }

    impl Vm {
        fn new(mode: VmMode) -> Self {
            Self::with_pages(mode, PAGES)
        }

        fn with_pages(mode: VmMode, pages: usize) -> Self {
            let words = vec![0u16; pages].leak();
            Self { mode, ownership: Ownership::new(BASE, words), zeroed: FakeMemory::default() }
        }

        fn call(&mut self, id: u32, args: [u64; 3]) -> [u64; 4] {
            let mut guard = crate::mmio_guard::GuardTable::new(true);
            let ram = abi::bundle::Region { start: BASE, end: BASE };
            let vm = VmState {
                ownership: &mut self.ownership,
                memory: &mut self.zeroed,
                guard: &mut guard,
                guard_vm: crate::guard_calls::GuardVm { devices: &[], ram },
                exits: Default::default(),
            };
            match dispatch(&Services { mode: self.mode, stats: false }, vm, id as u64, args) {
                Outcome::Return(r) => r.regs,
                other => panic!("{other:?}"),
            }
        }

        fn state(&mut self, ipa: u64) -> PageState {
            self.ownership.state(ipa).unwrap()
        }
    }

    const UP: VmMode = VmMode::Protected(AbiForm::Upstream);
    const ANDROID: VmMode = VmMode::Protected(AbiForm::Android);
    const SHARE: u32 = abi::kvm::MEM_SHARE;
    const UNSHARE: u32 = abi::kvm::MEM_UNSHARE;

    #[test]
    fn meminfo_per_form() {
        assert_eq!(Vm::new(UP).call(abi::kvm::HYP_MEMINFO, [0; 3]), [4096, 0, 0, 0]);
        assert_eq!(Vm::new(ANDROID).call(abi::kvm::HYP_MEMINFO, [0; 3]), [4096, 1, 0, 0]);
        assert_eq!(Vm::new(UP).call(abi::kvm::HYP_MEMINFO, [0, 0, 1])[0], INVAL);
        assert_eq!(Vm::new(ANDROID).call(abi::kvm::HYP_MEMINFO, [1, 0, 0])[0], INVAL);
        assert_eq!(Vm::new(VmMode::Unprotected).call(abi::kvm::HYP_MEMINFO, [0; 3])[0], NS);
    }

    #[test]
    fn upstream_share_unshare_one_granule() {
        let mut vm = Vm::new(UP);
        assert_eq!(vm.call(SHARE, [BASE, 0, 0]), [0, 0, 0, 0]);
        assert_eq!(vm.state(BASE), PageState::Shared { pins: 0 });
        assert_eq!(vm.call(SHARE, [BASE, 0, 0])[0], INVAL, "double share");
        assert_eq!(vm.call(UNSHARE, [BASE, 0, 0]), [0, 0, 0, 0]);
        assert_eq!(vm.call(UNSHARE, [BASE, 0, 0])[0], INVAL, "unshare of a private page");
        assert_eq!(vm.call(SHARE, [BASE + 8, 0, 0])[0], INVAL, "unaligned");
        assert_eq!(vm.call(SHARE, [BASE - 4096, 0, 0])[0], INVAL, "below RAM");
        assert_eq!(vm.call(SHARE, [BASE + PAGES as u64 * 4096, 0, 0])[0], INVAL, "above RAM");
        assert_eq!(vm.call(SHARE, [BASE, 1, 0])[0], INVAL, "x2 reserved");
        assert_eq!(vm.call(SHARE, [BASE, 0, 1])[0], INVAL, "x3 reserved");
        assert_eq!(vm.state(BASE), PageState::Private, "refused calls change nothing");
        assert_eq!(vm.call(abi::kvm::MEM_RELINQUISH, [BASE, 0, 0])[0], NS, "no relinquish upstream");
    }

    #[test]
    fn android_ranges_are_all_or_nothing() {
        let mut vm = Vm::new(ANDROID);
        assert_eq!(vm.call(SHARE, [BASE, 0, 0]), [0, 1, 0, 0], "0 means one granule");
        assert_eq!(vm.call(SHARE, [BASE + 4096, 100, 0]), [0, 100, 0, 0]);
        assert_eq!(vm.state(BASE + 100 * 4096), PageState::Shared { pins: 0 });
        assert_eq!(vm.state(BASE + 101 * 4096), PageState::Private);
        assert_eq!(vm.call(SHARE, [BASE + 200 * 4096, 1000, 0]), [0, 512, 0, 0], "capped per call");
        // A range with one already-shared page fails whole.
        assert_eq!(vm.call(SHARE, [BASE + 100 * 4096, 5, 0])[0], INVAL);
        assert_eq!(vm.state(BASE + 101 * 4096), PageState::Private);
        // A range running off the end of RAM fails whole.
        assert_eq!(vm.call(SHARE, [BASE + (PAGES as u64 - 2) * 4096, 4, 0])[0], INVAL);
        assert_eq!(vm.state(BASE + (PAGES as u64 - 2) * 4096), PageState::Private);
        assert_eq!(vm.call(SHARE, [!0xfff, 4, 0])[0], INVAL, "wrapping range");
        assert_eq!(vm.call(UNSHARE, [BASE, 101, 0]), [0, 101, 0, 0]);
        assert_eq!(vm.call(UNSHARE, [BASE, 1, 0])[0], INVAL);
        assert_eq!(vm.call(SHARE, [BASE, 1, 1])[0], INVAL, "x3 reserved");
    }

    #[test]
    fn android_relinquish_zeroes_private_pages_only() {
        let mut vm = Vm::new(ANDROID);
        assert_eq!(vm.call(abi::kvm::MEM_RELINQUISH, [BASE + 4096, 0, 0]), [0, 0, 0, 0]);
        assert_eq!(vm.zeroed.0, vec![BASE + 4096]);
        vm.call(SHARE, [BASE, 0, 0]);
        assert_eq!(vm.call(abi::kvm::MEM_RELINQUISH, [BASE, 0, 0])[0], INVAL, "shared page");
        assert_eq!(vm.call(abi::kvm::MEM_RELINQUISH, [BASE + 4096, 1, 0])[0], INVAL, "x2 reserved");
        assert_eq!(vm.call(abi::kvm::MEM_RELINQUISH, [BASE + 1, 0, 0])[0], INVAL, "unaligned");
        assert_eq!(vm.zeroed.0.len(), 1);
    }

    #[test]
    fn pinned_pages_cannot_be_unshared() {
        let mut vm = Vm::new(ANDROID);
        vm.call(SHARE, [BASE, 3, 0]);
        vm.ownership.pin(BASE + 4096).unwrap();
        assert_eq!(vm.call(UNSHARE, [BASE, 3, 0])[0], INVAL);
        assert_eq!(vm.state(BASE), PageState::Shared { pins: 0 }, "nothing unshared");
        vm.ownership.unpin(BASE + 4096).unwrap();
        assert_eq!(vm.call(UNSHARE, [BASE, 3, 0]), [0, 3, 0, 0]);
    }

    /// Random sequences of valid and invalid calls, pins and unpins, checked against a
    /// model written straight from the ABI text: every return value and every state.
    #[test]
    fn property_random_sequences_match_the_model() {
        #[derive(Clone, Copy, PartialEq, Debug)]
        struct Page {
            shared: bool,
            pins: u16,
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for form in [AbiForm::Upstream, AbiForm::Android] {
            const N: u64 = 24;
            let mut vm = Vm::with_pages(VmMode::Protected(form), N as usize);
            let mut model = vec![Page { shared: false, pins: 0 }; N as usize];
            let mut zeroed = 0;
            for step in 0..50_000 {
                let r = next();
                // Mostly in-range pages, some outside, some unaligned.
                let page = (r % (N + 4)) as i64 - 2;
                let mut ipa = (BASE as i64 + page * 4096) as u64;
                if r % 31 == 0 {
                    ipa += 8;
                }
                let count = (r >> 8) % 6;
                let reserved = if r % 23 == 0 { 1 } else { 0 };
                let in_ram = |p: i64| p >= 0 && (p as u64) < N;
                let aligned = ipa.is_multiple_of(4096);
                match (r >> 16) % 5 {
                    op @ (0 | 1) => {
                        let share = op == 0;
                        let id = if share { SHARE } else { UNSHARE };
                        let args = match form {
                            AbiForm::Upstream => [ipa, reserved * count, reserved],
                            AbiForm::Android => [ipa, count, reserved],
                        };
                        let got = vm.call(id, args);
                        let pages = match form {
                            AbiForm::Upstream => 1,
                            AbiForm::Android => count.max(1),
                        };
                        let valid = reserved == 0
                            && aligned
                            && (0..pages as i64).all(|i| {
                                in_ram(page + i) && {
                                    let p = model[(page + i) as usize];
                                    if share {
                                        !p.shared
                                    } else {
                                        p.shared && p.pins == 0
                                    }
                                }
                            });
                        let want = match (valid, form) {
                            (false, _) => [INVAL, 0, 0, 0],
                            (true, AbiForm::Upstream) => [0, 0, 0, 0],
                            (true, AbiForm::Android) => [0, pages, 0, 0],
                        };
                        assert_eq!(got, want, "step {step}: {form:?} share={share} page {page} x{count}");
                        if valid {
                            for i in 0..pages as i64 {
                                model[(page + i) as usize].shared = share;
                            }
                        }
                    }
                    2 => {
                        let got = vm.call(abi::kvm::MEM_RELINQUISH, [ipa, 0, reserved]);
                        let want = match form {
                            AbiForm::Upstream => NS,
                            AbiForm::Android => {
                                let ok = reserved == 0 && aligned && in_ram(page) && !model[page as usize].shared;
                                if ok {
                                    zeroed += 1;
                                    0
                                } else {
                                    INVAL
                                }
                            }
                        };
                        assert_eq!(got[0], want, "step {step}: relinquish page {page}");
                    }
                    op => {
                        let pin = op == 3;
                        let got = if pin { vm.ownership.pin(ipa) } else { vm.ownership.unpin(ipa) };
                        let ok = aligned
                            && in_ram(page)
                            && model[page as usize].shared
                            && (pin || model[page as usize].pins > 0);
                        assert_eq!(got.is_ok(), ok, "step {step}: pin={pin} page {page}");
                        if ok {
                            let p = &mut model[page as usize];
                            p.pins = if pin { p.pins + 1 } else { p.pins - 1 };
                        }
                    }
                }
                for (i, p) in model.iter().enumerate() {
                    let want = if p.shared { PageState::Shared { pins: p.pins } } else { PageState::Private };
                    assert_eq!(vm.state(BASE + i as u64 * 4096), want, "step {step}: page {i}");
                }
            }
            assert_eq!(vm.zeroed.0.len(), zeroed);
        }
    }
}
