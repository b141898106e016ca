use super::*;
use crate::conduit::fake::FakeConduit;
use crate::hypervisor::Hypervisor;
use pvmkit_abi::kvm::Features;
use std::cell::RefCell;
use std::collections::BTreeSet;

const BASE: u64 = 0x8000_0000;
const INVAL: u64 = smccc::INVALID_PARAMETER as u64;

fn protected() -> HypervisorInfo {
    HypervisorInfo { smccc_version: Some((1, 1)), hypervisor: Hypervisor::Kvm(Features([0x21d, 0, 0, 0])) }
}

/// A hypervisor with page state, in the given form, that refuses `bad` pages and
/// handles at most `cap` granules per ranged call.
struct Hyp {
    shared: RefCell<BTreeSet<u64>>,
    bad: BTreeSet<u64>,
    ranged: bool,
    cap: u64,
}

impl Hyp {
    fn answer(&self, f: u32, a: [u64; 3]) -> [u64; 4] {
        match f {
            kvm::HYP_MEMINFO => [4096, self.ranged as u64, 0, 0],
            kvm::MEM_SHARE | kvm::MEM_UNSHARE => {
                let share = f == kvm::MEM_SHARE;
                let n = if self.ranged { a[1].clamp(1, self.cap) } else { 1 };
                let pages: Vec<u64> = (0..n).map(|i| a[0] + i * 4096).collect();
                let mut shared = self.shared.borrow_mut();
                let ok = pages.iter().all(|p| !self.bad.contains(p) && shared.contains(p) != share);
                if !ok {
                    return [INVAL, 0, 0, 0];
                }
                for p in pages {
                    if share {
                        shared.insert(p);
                    } else {
                        shared.remove(&p);
                    }
                }
                [0, if self.ranged { n } else { 0 }, 0, 0]
            }
            _ => [u64::MAX, 0, 0, 0],
        }
    }
}

fn hyp(ranged: bool, cap: u64, bad: &[u64]) -> Hyp {
    Hyp { shared: RefCell::new(BTreeSet::new()), bad: bad.iter().copied().collect(), ranged, cap }
}

#[test]
fn upstream_shares_one_granule_per_call() {
    let h = hyp(false, 1, &[]);
    let fake = FakeConduit::new(|f, a| h.answer(f, a));
    let sharer = MemSharer::new(&fake, &protected()).unwrap();
    assert!(sharer.is_protected() && !sharer.is_ranged());
    sharer.share(Ipa(BASE), 100 * 4096).unwrap();
    assert_eq!(h.shared.borrow().len(), 100);
    let calls = fake.calls.borrow();
    assert_eq!(calls.len(), 101, "MEMINFO + one call per granule");
    assert!(calls[1..].iter().all(|(f, a)| *f == kvm::MEM_SHARE && a[1] == 0 && a[2] == 0));
}

#[test]
fn android_uses_ranges_and_follows_progress() {
    let h = hyp(true, 40, &[]);
    let fake = FakeConduit::new(|f, a| h.answer(f, a));
    let sharer = MemSharer::new(&fake, &protected()).unwrap();
    assert!(sharer.is_ranged());
    sharer.share(Ipa(BASE), 100 * 4096).unwrap();
    assert_eq!(h.shared.borrow().len(), 100);
    assert_eq!(fake.calls.borrow().len(), 1 + 3, "40 + 40 + 20");
    sharer.unshare(Ipa(BASE), 100 * 4096).unwrap();
    assert!(h.shared.borrow().is_empty());
}

#[test]
fn a_refusal_midway_rolls_back_and_names_the_granule() {
    for ranged in [false, true] {
        let bad = BASE + 7 * 4096;
        let h = hyp(ranged, 4, &[bad]);
        let fake = FakeConduit::new(|f, a| h.answer(f, a));
        let sharer = MemSharer::new(&fake, &protected()).unwrap();
        let err = sharer.share(Ipa(BASE), 10 * 4096).unwrap_err();
        let want_ipa = if ranged { BASE + 4 * 4096 } else { bad };
        assert_eq!(err, ShareError::Refused { ipa: Ipa(want_ipa), code: -3 }, "ranged={ranged}");
        assert!(h.shared.borrow().is_empty(), "ranged={ranged}: nothing stays shared");
    }
}

#[test]
fn unshare_failure_reshares() {
    let h = hyp(false, 1, &[]);
    let fake = FakeConduit::new(|f, a| h.answer(f, a));
    let sharer = MemSharer::new(&fake, &protected()).unwrap();
    sharer.share(Ipa(BASE), 3 * 4096).unwrap();
    // The third granule is not shared: unsharing four fails there and re-shares three.
    let err = sharer.unshare(Ipa(BASE), 4 * 4096).unwrap_err();
    assert_eq!(err, ShareError::Refused { ipa: Ipa(BASE + 3 * 4096), code: -3 });
    assert_eq!(h.shared.borrow().len(), 3);
}

#[test]
fn a_failed_rollback_is_reported() {
    // A hypervisor that shares page 0, refuses page 1, and then refuses to unshare page 0.
    let fake = FakeConduit::new(|f, a| match (f, a[0]) {
        (kvm::HYP_MEMINFO, _) => [4096, 0, 0, 0],
        (kvm::MEM_SHARE, BASE) => [0, 0, 0, 0],
        _ => [INVAL, 0, 0, 0],
    });
    let sharer = MemSharer::new(&fake, &protected()).unwrap();
    assert_eq!(
        sharer.share(Ipa(BASE), 2 * 4096),
        Err(ShareError::RollbackFailed { ipa: Ipa(BASE + 4096), code: -3, rollback_ipa: Ipa(BASE) })
    );
}

#[test]
fn bad_answers_and_bad_ranges() {
    let fake = FakeConduit::new(|_, _| [0, 0, 0, 0]);
    assert_eq!(MemSharer::new(&fake, &protected()).err(), Some(ShareError::BadGranule(0)));
    let fake = FakeConduit::new(|f, _| if f == kvm::HYP_MEMINFO { [4096, 1, 0, 0] } else { [0, 99, 0, 0] });
    let sharer = MemSharer::new(&fake, &protected()).unwrap();
    assert_eq!(sharer.share(Ipa(BASE), 2 * 4096), Err(ShareError::BadProgress { ipa: Ipa(BASE), done: 99 }));
    assert_eq!(sharer.share(Ipa(BASE + 1), 4096), Err(ShareError::Unaligned { addr: Ipa(BASE + 1), len: 4096 }));
    assert_eq!(sharer.share(Ipa(BASE), 100), Err(ShareError::Unaligned { addr: Ipa(BASE), len: 100 }));
}

#[test]
fn without_protection_sharing_is_a_no_op() {
    let fake = FakeConduit::new(|_, _| [u64::MAX, 0, 0, 0]);
    let info = HypervisorInfo { smccc_version: None, hypervisor: Hypervisor::None };
    let sharer = MemSharer::new(&fake, &info).unwrap();
    assert!(!sharer.is_protected());
    sharer.share(Ipa(BASE), 4096).unwrap();
    sharer.unshare(Ipa(BASE), 4096).unwrap();
    assert!(fake.calls.borrow().is_empty(), "no hypercall at all");
    assert!(sharer.share(Ipa(BASE + 1), 4096).is_err(), "alignment is still checked");
}

/// A rollback that fails past the first granule names both places, for a refusal (its
/// own code) and for a hypervisor that reports no progress (INVALID_PARAMETER).
#[test]
fn a_failed_rollback_names_where_the_call_and_the_rollback_stopped() {
    let g = 4096;
    // Shares 0..3, refuses page 3 with NOT_SUPPORTED; unshares page 0 but refuses page 1.
    let fake = FakeConduit::new(|f, a| match (f, a[0]) {
        (kvm::HYP_MEMINFO, _) => [4096, 0, 0, 0],
        (kvm::MEM_SHARE, ipa) if ipa < BASE + 3 * 4096 => [0, 0, 0, 0],
        (kvm::MEM_UNSHARE, BASE) => [0, 0, 0, 0],
        (kvm::MEM_SHARE, _) => [u64::MAX, 0, 0, 0],
        _ => [INVAL, 0, 0, 0],
    });
    let sharer = MemSharer::new(&fake, &protected()).unwrap();
    assert_eq!(
        sharer.share(Ipa(BASE), 4 * g),
        Err(ShareError::RollbackFailed { ipa: Ipa(BASE + 3 * g), code: -1, rollback_ipa: Ipa(BASE + g) })
    );
    // A ranged hypervisor that does two granules, then reports none done.
    let fake = FakeConduit::new(|f, a| match (f, a[0]) {
        (kvm::HYP_MEMINFO, _) => [4096, 1, 0, 0],
        (kvm::MEM_SHARE, BASE) => [0, 2, 0, 0],
        (kvm::MEM_SHARE, _) => [0, 0, 0, 0],
        (kvm::MEM_UNSHARE, BASE) => [0, 1, 0, 0],
        _ => [INVAL, 0, 0, 0],
    });
    let ranged =
        HypervisorInfo { smccc_version: Some((1, 1)), hypervisor: Hypervisor::Kvm(Features([0xffd, 0, 0, 0])) };
    let sharer = MemSharer::new(&fake, &ranged).unwrap();
    assert_eq!(
        sharer.share(Ipa(BASE), 4 * g),
        Err(ShareError::RollbackFailed { ipa: Ipa(BASE + 2 * g), code: -3, rollback_ipa: Ipa(BASE + g) })
    );
    assert!(sharer.share(Ipa(BASE), 4 * g).unwrap_err().to_string().contains(&format!("{:#x}", BASE + g)));
}
