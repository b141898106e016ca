use super::*;
use std::cell::RefCell;
use std::collections::BTreeSet;

const DEV: u64 = 0x0a00_0000;
const INVAL: u64 = smccc::INVALID_PARAMETER as u64;

/// A hypervisor that records every call and guards granules it is told about,
/// refusing those in `bad`.
struct Fake {
    calls: RefCell<Vec<(u32, [u64; 3])>>,
    guarded: RefCell<BTreeSet<u64>>,
    bad: BTreeSet<u64>,
}

impl Fake {
    fn new(bad: &[u64]) -> Self {
        Self { calls: RefCell::default(), guarded: RefCell::default(), bad: bad.iter().copied().collect() }
    }

    fn calls_to(&self, f: u32) -> Vec<[u64; 3]> {
        self.calls.borrow().iter().filter(|(g, _)| *g == f).map(|(_, a)| *a).collect()
    }
}

impl Conduit for Fake {
    fn call(&self, f: u32, a: [u64; 3]) -> [u64; 4] {
        self.calls.borrow_mut().push((f, a));
        let mut guarded = self.guarded.borrow_mut();
        match f {
            kvm::MMIO_GUARD_INFO | kvm::HYP_MEMINFO => [4096, 0, 0, 0],
            kvm::MMIO_GUARD_ENROLL => [0, 0, 0, 0],
            kvm::MMIO_GUARD_MAP | kvm::MMIO_RGUARD_MAP => {
                let n = if f == kvm::MMIO_RGUARD_MAP { a[1].min(3) } else { 1 };
                let pages: Vec<u64> = (0..n).map(|i| a[0] + i * 4096).collect();
                if pages.iter().any(|p| self.bad.contains(p)) {
                    return [INVAL, 0, 0, 0];
                }
                guarded.extend(pages);
                [0, n, 0, 0]
            }
            kvm::MMIO_GUARD_UNMAP | kvm::MMIO_RGUARD_UNMAP => {
                let n = if f == kvm::MMIO_RGUARD_UNMAP { a[1].min(3) } else { 1 };
                for i in 0..n {
                    guarded.remove(&(a[0] + i * 4096));
                }
                [0, n, 0, 0]
            }
            _ => [u64::MAX, 0, 0, 0],
        }
    }
}

fn android(ranged: bool) -> Features {
    let mut f = vec![0, 5, 6, 7, 8];
    if ranged {
        f.extend([10, 11]);
    }
    Features::with(&f)
}

#[test]
fn android_maps_each_granule_and_unmaps_at_the_last_user() {
    let fake = Fake::new(&[]);
    let guard = MmioGuard::new(&fake, android(false)).unwrap();
    assert_eq!(guard.form(), Some(Form::Android { ranged: false }));
    guard.enroll().unwrap();
    guard.map(Ipa(DEV + 0x100), 0x2000).unwrap(); // touches three granules
    assert_eq!(fake.calls_to(kvm::MMIO_GUARD_MAP), vec![[DEV, 0, 0], [DEV + 0x1000, 0, 0], [DEV + 0x2000, 0, 0]]);
    guard.map(Ipa(DEV + 0x2000), 4).unwrap(); // already mapped: no call
    assert_eq!(fake.calls_to(kvm::MMIO_GUARD_MAP).len(), 3);
    assert_eq!(guard.users(Ipa(DEV + 0x2abc)), 2);
    guard.unmap(Ipa(DEV + 0x100), 0x2000).unwrap();
    assert_eq!(fake.calls_to(kvm::MMIO_GUARD_UNMAP), vec![[DEV, 0, 0], [DEV + 0x1000, 0, 0]]);
    assert_eq!(*fake.guarded.borrow(), BTreeSet::from([DEV + 0x2000]));
    guard.unmap(Ipa(DEV + 0x2000), 4).unwrap();
    assert!(fake.guarded.borrow().is_empty());
    assert_eq!(guard.unmap(Ipa(DEV), 4), Err(GuardError::NotMapped(Ipa(DEV))));
}

#[test]
fn two_users_of_one_granule_do_not_unmap_each_other() {
    let fake = Fake::new(&[]);
    let guard = MmioGuard::new(&fake, android(false)).unwrap();
    let a = guard.guard(Ipa(DEV + 0x3e00), 0x200).unwrap();
    let b = guard.guard(Ipa(DEV + 0x3f00), 0x100).unwrap();
    assert_eq!(fake.calls_to(kvm::MMIO_GUARD_MAP).len(), 1);
    drop(a);
    assert!(fake.guarded.borrow().contains(&(DEV + 0x3000)), "b still uses the granule");
    assert!(fake.calls_to(kvm::MMIO_GUARD_UNMAP).is_empty());
    assert_eq!(b.range(), (Ipa(DEV + 0x3f00), 0x100));
    drop(b);
    assert!(fake.guarded.borrow().is_empty());
    assert_eq!(fake.calls_to(kvm::MMIO_GUARD_UNMAP), vec![[DEV + 0x3000, 0, 0]]);
}

#[test]
fn ranged_calls_follow_progress() {
    let fake = Fake::new(&[]);
    let guard = MmioGuard::new(&fake, android(true)).unwrap();
    guard.map(Ipa(DEV), 5 * 4096).unwrap();
    assert_eq!(fake.calls_to(kvm::MMIO_RGUARD_MAP), vec![[DEV, 5, 0], [DEV + 3 * 4096, 2, 0]]);
    assert_eq!(fake.guarded.borrow().len(), 5);
    guard.unmap(Ipa(DEV), 5 * 4096).unwrap();
    assert!(fake.guarded.borrow().is_empty());
}

#[test]
fn a_refusal_names_the_granule_and_undoes_the_call() {
    let fake = Fake::new(&[DEV + 0x2000]);
    let guard = MmioGuard::new(&fake, android(false)).unwrap();
    guard.map(Ipa(DEV), 4).unwrap();
    assert_eq!(guard.map(Ipa(DEV), 0x3000), Err(GuardError::Refused { ipa: Ipa(DEV + 0x2000), code: -3 }));
    // Only the granule this call mapped was undone; the earlier user's stays.
    assert_eq!(*fake.guarded.borrow(), BTreeSet::from([DEV]));
    assert_eq!(guard.users(Ipa(DEV)), 1);
    assert_eq!(guard.users(Ipa(DEV + 0x1000)), 0);
}

#[test]
fn upstream_maps_with_the_single_call_and_never_unmaps() {
    let fake = Fake::new(&[]);
    let guard = MmioGuard::new(&fake, Features::with(&[0, 2, 3, 4, 7])).unwrap();
    assert_eq!(guard.form(), Some(Form::Upstream));
    guard.enroll().unwrap();
    assert!(fake.calls_to(kvm::MMIO_GUARD_ENROLL).is_empty(), "upstream has no enrolment");
    assert_eq!(fake.calls_to(kvm::HYP_MEMINFO).len(), 1, "the granule comes from MEMINFO");
    {
        let _g = guard.guard(Ipa(DEV), 0x200).unwrap();
    }
    assert_eq!(fake.calls_to(kvm::MMIO_GUARD_MAP), vec![[DEV, 0, 0]]);
    assert!(fake.calls_to(kvm::MMIO_GUARD_UNMAP).is_empty());
    assert_eq!(guard.users(Ipa(DEV)), 0);
}

#[test]
fn no_guard_means_no_calls() {
    let fake = Fake::new(&[]);
    let guard = MmioGuard::new(&fake, Features([0x1d, 0, 0, 0])).unwrap();
    assert_eq!(guard.form(), None);
    guard.enroll().unwrap();
    guard.map(Ipa(DEV), 0x1000).unwrap();
    guard.unmap(Ipa(DEV), 0x1000).unwrap();
    assert!(fake.calls.borrow().is_empty());
}

#[test]
fn bad_input_is_an_error() {
    let fake = Fake::new(&[]);
    let guard = MmioGuard::new(&fake, android(false)).unwrap();
    assert_eq!(guard.map(Ipa(DEV), 0), Err(GuardError::BadRange { addr: Ipa(DEV), len: 0 }));
    assert_eq!(guard.map(Ipa(u64::MAX), 2), Err(GuardError::BadRange { addr: Ipa(u64::MAX), len: 2 }));
    struct Zero;
    impl Conduit for Zero {
        fn call(&self, _: u32, _: [u64; 3]) -> [u64; 4] {
            [0; 4]
        }
    }
    assert_eq!(
        MmioGuard::new(Zero, android(false)).err().map(|e| e.to_string()),
        Some("MMIO guard granule 0x0 is unusable".into())
    );
}
