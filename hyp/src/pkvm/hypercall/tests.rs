use super::*;
use crate::pkvm::mmio_guard::GuardTable;
use crate::testing::{pg, TestOwnership};
use pvmkit_abi::address::{Ipa, Page};
use pvmkit_abi::kvm;
use pvmkit_abi::profile::{Answer, Conduit};

const BASE: u64 = 0x8000_0000;
const PAGES: usize = 1024;
const ANDROID: VmMode = VmMode::Protected(AbiForm::Android);
const UPSTREAM: VmMode = VmMode::Protected(AbiForm::Upstream);
const MODES: [VmMode; 3] = [ANDROID, UPSTREAM, VmMode::Unprotected];

#[derive(Default)]
struct FakeMemory(Vec<Page>);

impl GuestMemory for FakeMemory {
    fn zero_page(&mut self, page: Page) {
        self.0.push(page);
    }
}

/// Devices that hold the pages listed (as a published, not yet notified request
/// would), besides whatever is pinned.
#[derive(Default)]
struct FakeDevices(Vec<(Page, memory_calls::Holder)>);

impl DeviceHolds for FakeDevices {
    fn holder(&mut self, _: &Ownership<'_>, page: Page) -> Option<memory_calls::Holder> {
        self.0.iter().find(|(p, _)| *p == page).map(|(_, h)| *h)
    }
}

const BLOCK: memory_calls::Holder = memory_calls::Holder { device: 0x0a00_3e00, queue: 0, descriptor: Some(1) };

/// A VM answering calls like hyp.
struct Vm {
    services: Services,
    ownership: TestOwnership,
    memory: FakeMemory,
    devices: FakeDevices,
    guard: GuardTable,
    short: ShortCounts,
    exits: ExitCounters,
}

impl Vm {
    fn new(mode: VmMode) -> Self {
        Self {
            services: Services { mode, stats: false, short_counts: false },
            ownership: TestOwnership::new(BASE, PAGES),
            memory: FakeMemory::default(),
            devices: FakeDevices::default(),
            guard: GuardTable::new(mode == ANDROID),
            short: ShortCounts::new(1),
            exits: ExitCounters::default(),
        }
    }

    fn over(&mut self, conduit: Conduit, id: u32, args: [u64; 3]) -> Outcome {
        self.raw(conduit, id as u64, args)
    }

    /// A call with all of x0 as given (only w0 is the function).
    fn raw(&mut self, conduit: Conduit, x0: u64, args: [u64; 3]) -> Outcome {
        let vm = VmState {
            ownership: &mut self.ownership,
            memory: &mut self.memory,
            guard: &mut self.guard,
            devices: &mut self.devices,
            exits: self.exits,
            clock: || Clock { nanoseconds: 0x1_0000_0002, virtual_count: 0x3_0000_0004, physical_count: 5 },
            short: &mut self.short,
        };
        dispatch(&self.services, vm, conduit, x0, args)
    }

    fn call(&mut self, id: u32, args: [u64; 3]) -> [u64; 4] {
        match self.over(Conduit::Hvc, id, args) {
            Outcome::Return(regs) => regs,
            other => panic!("{id:#x}: {other:?}"),
        }
    }

    fn state(&self, ipa: u64) -> PageState {
        self.ownership.state(pg(ipa)).unwrap()
    }
}

/// Every plain-valued answer hyp gives is the profile's, for calls across every range.
#[test]
fn answers_come_from_the_profile() {
    let ids = [
        0x8000_0000u32,
        0x8000_0001,
        0x8000_0002,
        0x8400_0000,
        0x8400_000a,
        0xc400_0003,
        0x8400_0006,
        0x8600_0000,
        0x8600_ff01,
        0xc600_0002,
        0xc600_0005,
        0xc600_0030,
        0x8600_0003,
        0xc500_0020,
        0x8400_0050,
    ];
    for mode in MODES {
        for id in ids {
            for args in [[0, 0, 0], [0x8000_8000, 0, 0], [1, 2, 3], [0x8400_0000, 0, 0], [0xc400_0003, 0, 0]] {
                for conduit in [Conduit::Hvc, Conduit::Smc] {
                    let mut vm = Vm::new(mode);
                    let profile = vm.services.profile();
                    let call = Call { conduit, function: id, args };
                    let facts = Facts { ownership: &vm.ownership, guard: &vm.guard };
                    let expected = profile.answer(&call, profile.walk(&call), &facts).answer;
                    if let Some(regs) = expected.regs() {
                        assert_eq!(vm.over(conduit, id, args), Outcome::Return(regs), "{mode:?} {id:#x} {args:x?}");
                    }
                }
            }
        }
    }
}

#[test]
fn upstream_shares_one_granule_and_aborts_outside_memory() {
    let mut vm = Vm::new(UPSTREAM);
    assert_eq!(vm.call(kvm::MEM_SHARE, [BASE, 0, 0]), [0, 0, 0, 0]);
    assert_eq!(vm.state(BASE), PageState::Shared { pins: 0 });
    assert_eq!(vm.call(kvm::MEM_SHARE, [BASE, 0, 0])[0] as i64, -3, "already shared");
    assert_eq!(vm.over(Conduit::Hvc, kvm::MEM_SHARE, [0x0900_0000, 0, 0]), Outcome::ExternalAbortAtCall);
    assert_eq!(vm.over(Conduit::Smc, kvm::MEM_SHARE, [BASE + GRANULE, 0, 0]), Outcome::Return([u64::MAX, 0, 0, 0]));
    assert_eq!(vm.state(BASE + GRANULE), PageState::Private, "SMC reaches the host, which shares nothing");
    assert_eq!(vm.call(kvm::MEM_UNSHARE, [BASE, 0, 0]), [0, 0, 0, 0]);
    assert_eq!(vm.state(BASE), PageState::Private);
    assert_eq!(vm.call(kvm::MMIO_GUARD_MAP, [0x0900_0000, 0, 0])[0], u64::MAX, "no MMIO guard upstream");
    assert!(!vm.guard.is_enforcing());
}

/// A page the device holds, pinned at a notify or only published in the available
/// ring, is never taken back: the call ends the VM naming the page and its holder.
#[test]
fn unsharing_a_page_a_device_holds_ends_the_vm_naming_it() {
    for mode in [ANDROID, UPSTREAM] {
        let mut vm = Vm::new(mode);
        vm.call(kvm::MEM_SHARE, [BASE, 0, 0]);
        vm.ownership.pin(pg(BASE)).unwrap();
        let outcome = vm.over(Conduit::Hvc, kvm::MEM_UNSHARE, [BASE, 0, 0]);
        assert_eq!(outcome, Outcome::DeviceHeld(memory_calls::DeviceHeld { page: pg(BASE), holder: None }));
        assert_eq!(vm.state(BASE), PageState::Shared { pins: 1 });
        // Published, not yet taken: no pin, but the device holds it all the same.
        let page = BASE + GRANULE;
        vm.call(kvm::MEM_SHARE, [page, 0, 0]);
        vm.devices.0.push((pg(page), BLOCK));
        let outcome = vm.over(Conduit::Hvc, kvm::MEM_UNSHARE, [page, 0, 0]);
        let held = memory_calls::DeviceHeld { page: pg(page), holder: Some(BLOCK) };
        assert_eq!(outcome, Outcome::DeviceHeld(held));
        assert_eq!(held.what(), "MEM_UNSHARE of a buffer a device request holds");
        assert_eq!(vm.state(page), PageState::Shared { pins: 0 }, "nothing changed");
        // Once the device gives it back, the page is the guest's to take.
        vm.devices.0.clear();
        assert_eq!(vm.call(kvm::MEM_UNSHARE, [page, 0, 0])[0], 0);
    }
    assert!(pvmkit_abi::profile::POLICIES.iter().any(|p| p.name == "unshare-device-held"), "the policy is listed");
}

#[test]
fn android_ranges_report_counts_and_change_all_or_nothing() {
    let mut vm = Vm::new(ANDROID);
    assert_eq!(vm.call(kvm::MEM_SHARE, [BASE, 0, 0]), [0, 1, 0, 0], "0 means one granule");
    assert_eq!(vm.call(kvm::MEM_SHARE, [BASE + GRANULE, 300, 0]), [0, 256, 0, 0], "at most 256 per call");
    assert_eq!(vm.state(BASE + 256 * GRANULE), PageState::Shared { pins: 0 });
    assert_eq!(vm.state(BASE + 257 * GRANULE), PageState::Private);
    // A range with one shared granule in it fails whole.
    assert_eq!(vm.call(kvm::MEM_SHARE, [BASE + 256 * GRANULE, 4, 0])[0] as i64, -3);
    assert_eq!(vm.state(BASE + 258 * GRANULE), PageState::Private);
    assert_eq!(vm.call(kvm::MEM_UNSHARE, [BASE, 257, 0]), [0, 256, 0, 0]);
    assert_eq!(vm.call(kvm::MEM_RELINQUISH, [BASE + 600 * GRANULE, 0, 0]), [0, 0, 0, 0]);
    assert_eq!(vm.memory.0, [pg(BASE + 600 * GRANULE)]);
}

#[test]
fn short_counts_stop_early_but_never_lose_a_granule() {
    let mut vm = Vm::new(ANDROID);
    vm.services.short_counts = true;
    let (mut at, mut calls) = (BASE, 0);
    let mut counts = Vec::new();
    while at < BASE + 200 * GRANULE {
        let left = (BASE + 200 * GRANULE - at) / GRANULE;
        let [x0, x1, ..] = vm.call(kvm::MEM_SHARE, [at, left, 0]);
        assert_eq!(x0, 0);
        assert!((1..=left).contains(&x1), "{x1} of {left}");
        counts.push(x1);
        at += x1 * GRANULE;
        calls += 1;
    }
    assert!(calls > 1, "a 200-granule share stopped short at least once: {counts:?}");
    assert!((0..200).all(|i| vm.state(BASE + i * GRANULE) == PageState::Shared { pins: 0 }));
    assert_eq!(vm.state(BASE + 200 * GRANULE), PageState::Private, "nothing beyond what was asked");
    let mut again = ShortCounts::new(1);
    let replay: Vec<u64> = counts
        .iter()
        .scan(200, |left, _| {
            let n = again.pick(*left);
            *left -= n;
            Some(n)
        })
        .collect();
    assert_eq!(counts, replay, "a fixed seed repeats");
}

#[test]
fn android_guard_follows_enrolment() {
    let mut vm = Vm::new(ANDROID);
    vm.guard = GuardTable::new(false);
    assert_eq!(vm.call(kvm::MMIO_GUARD_MAP, [0x0900_0000, 0, 0])[0] as i64, -3, "MAP before ENROLL");
    assert_eq!(vm.call(kvm::MMIO_GUARD_ENROLL, [0; 3]), [0; 4]);
    assert!(vm.guard.is_enforcing());
    assert_eq!(vm.call(kvm::MMIO_GUARD_MAP, [0x0900_0000, 0xdead, 0]), [0, 1, 0, 0], "x2 ignored");
    assert!(vm.guard.is_guarded(Ipa(0x0900_0000)));
    assert_eq!(vm.call(kvm::MMIO_GUARD_UNMAP, [0x0900_0000, 0, 0]), [0, 1, 0, 0]);
    assert!(vm.guard.is_guarded(Ipa(0x0900_0000)), "6.12's UNMAP is a no-op");
    assert_eq!(vm.call(kvm::MMIO_RGUARD_MAP, [0x0a00_0000, 0, 0])[0] as i64, -3, "x2 = 0");
    assert_eq!(vm.call(kvm::MMIO_RGUARD_MAP, [0x0a00_0000, 3, 0]), [0, 3, 0, 0]);
    assert_eq!(vm.call(kvm::MMIO_GUARD_MAP, [BASE, 0, 0])[0] as i64, -3, "guest RAM");
    assert_eq!(vm.call(kvm::MMIO_RGUARD_MAP, [BASE - GRANULE, 2, 0])[0] as i64, -3, "a range reaching into RAM");
    assert!(!vm.guard.is_guarded(Ipa(BASE - GRANULE)), "all or nothing");
}

#[test]
fn a_full_guard_table_is_a_named_policy_refusal() {
    let mut vm = Vm::new(ANDROID);
    let many = crate::pkvm::mmio_guard::MAX_GUARDED as u64;
    // Ranged calls stop at 256 granules (as the release's): fill the table in two.
    let first = many.min(256);
    assert_eq!(vm.call(kvm::MMIO_RGUARD_MAP, [0x1000_0000, first, 0]), [0, first, 0, 0]);
    let rest = many - first;
    assert_eq!(vm.call(kvm::MMIO_RGUARD_MAP, [0x1000_0000 + first * GRANULE, rest, 0]), [0, rest, 0, 0]);
    match vm.over(Conduit::Hvc, kvm::MMIO_RGUARD_MAP, [0x2000_0000, 2, 0]) {
        Outcome::Refused { policy: "guard-table-full", .. } => {}
        other => panic!("{other:?}"),
    }
    assert!(!vm.guard.is_guarded(Ipa(0x2000_0000)), "all or nothing");
    // The policy's text states the bound hyp holds.
    let policy = pvmkit_abi::profile::POLICIES.iter().find(|p| p.name == "guard-table-full").unwrap();
    assert!(policy.what.starts_with(&format!("more than {many} MMIO-guard granules")), "{}", policy.what);
    // ... and it covers every device page of the largest VM: 8 redistributors of two
    // 64 KiB frames, the distributor, a console and 8 virtio transports.
    let largest = 8 * 2 * 16 + 16 + 1 + 8;
    assert!(many >= largest, "{many} < {largest}");
}

#[test]
fn ptp_reports_hyps_counters() {
    let mut vm = Vm::new(VmMode::Unprotected);
    assert_eq!(vm.call(kvm::KVM_PTP, [0, 0, 0]), [1, 2, 3, 4]);
    assert_eq!(vm.call(kvm::KVM_PTP, [1, 0, 0]), [1, 2, 0, 5]);
    assert_eq!(vm.call(kvm::KVM_PTP, [2, 0, 0])[0], u64::MAX);
    assert_eq!(
        Vm::new(UPSTREAM)
            .services
            .profile()
            .answer(
                &Call { conduit: Conduit::Hvc, function: kvm::KVM_PTP, args: [0; 3] },
                1,
                &Facts { ownership: &Vm::new(UPSTREAM).ownership, guard: &GuardTable::new(false) }
            )
            .answer,
        Answer::Time
    );
}

#[test]
fn hyp_stats_only_when_asked_for() {
    for stats in [false, true] {
        let mut vm = Vm::new(ANDROID);
        vm.services.stats = stats;
        vm.exits = ExitCounters { total: 7, data_aborts: 3, interrupts: 2, wfx: 5, hyp_work: None };
        let reply = vm.call(HYP_STATS, [0; 3]);
        let wfx = vm.call(HYP_STATS, [HYP_STATS_WFX, 0, 0]);
        let no_meter = vm.call(HYP_STATS, [HYP_STATS_WORK, 0, 0]);
        vm.exits.hyp_work = Some(12345);
        let work = vm.call(HYP_STATS, [HYP_STATS_WORK, 0, 0]);
        if stats {
            assert_eq!(reply, [0, 7, 3, 2]);
            assert_eq!(wfx, [0, 5, 0, 0]);
            assert_eq!(no_meter, [u64::MAX, 0, 0, 0], "no counter: NOT_SUPPORTED, not a made-up 0");
            assert_eq!(work, [0, 12345, 0, 0]);
        } else {
            assert_eq!(reply, [u64::MAX, 0, 0, 0], "off by default: the guest sees exactly the release's ABI");
        }
    }
}

#[test]
fn power_calls_end_the_vm() {
    assert_eq!(Vm::new(ANDROID).over(Conduit::Hvc, 0x8400_0008, [0; 3]), Outcome::SystemOff);
    assert_eq!(Vm::new(VmMode::Unprotected).over(Conduit::Smc, 0x8400_0009, [0; 3]), Outcome::SystemReset);
    // Only w0 is the function ID.
    assert_eq!(Vm::new(UPSTREAM).raw(Conduit::Hvc, 0xdead_0000_8400_0008, [0; 3]), Outcome::SystemOff);
}

/// The page-state table in `ownership.rs`, row by row (the device rows are the virtio
/// tests': pins are taken and dropped by the device side).
#[test]
fn the_page_state_table_holds() {
    const NOT_SUPPORTED: u64 = -1i64 as u64;
    const INVALID: u64 = -3i64 as u64;
    let page = BASE + 0x10_000;
    let outside = 0x4000_0000;
    for (mode, done) in [(UPSTREAM, 0), (ANDROID, 1)] {
        let mut vm = Vm::new(mode);
        let ranged = |x2| if mode == ANDROID { [page, x2, 0] } else { [page, 0, 0] };
        // Private --MEM_SHARE--> Shared, 0 pins.
        assert_eq!(vm.call(kvm::MEM_SHARE, ranged(1))[..2], [0, done], "{mode:?}");
        assert_eq!(vm.state(page), PageState::Shared { pins: 0 });
        // Shared --MEM_SHARE--> -3, unchanged.
        assert_eq!(vm.call(kvm::MEM_SHARE, ranged(1))[0], INVALID);
        assert_eq!(vm.state(page), PageState::Shared { pins: 0 });
        // Shared, pinned --MEM_UNSHARE--> the VM ends (policy), unchanged.
        vm.ownership.pin_range(Ipa(page), 1).unwrap();
        match vm.over(Conduit::Hvc, kvm::MEM_UNSHARE, ranged(1)) {
            Outcome::DeviceHeld(held) => assert_eq!(held.page, pg(page)),
            other => panic!("{mode:?}: {other:?}"),
        }
        assert_eq!(vm.state(page), PageState::Shared { pins: 1 });
        vm.ownership.unpin_range(crate::pkvm::ownership::PinnedRange { first: pg(page), pages: 1 }).unwrap();
        // Shared, 0 pins --MEM_UNSHARE--> Private.
        assert_eq!(vm.call(kvm::MEM_UNSHARE, ranged(1))[..2], [0, done]);
        assert_eq!(vm.state(page), PageState::Private);
        // Private --MEM_UNSHARE--> -3, unchanged.
        assert_eq!(vm.call(kvm::MEM_UNSHARE, ranged(1))[0], INVALID);
        // Private --MEM_RELINQUISH--> zeroed (Android) / no such call (upstream).
        let relinquished = vm.call(kvm::MEM_RELINQUISH, [page, 0, 0])[0];
        if mode == ANDROID {
            assert_eq!((relinquished, vm.memory.0.as_slice()), (0, &[pg(page)][..]));
        } else {
            assert_eq!((relinquished, vm.memory.0.len()), (NOT_SUPPORTED, 0));
        }
        assert_eq!(vm.state(page), PageState::Private);
        // Shared --MEM_RELINQUISH--> -3 (Android) / -1 (upstream), unchanged.
        vm.call(kvm::MEM_SHARE, ranged(1));
        let want = if mode == ANDROID { INVALID } else { NOT_SUPPORTED };
        assert_eq!(vm.call(kvm::MEM_RELINQUISH, [page, 0, 0])[0], want);
        assert_eq!(vm.state(page), PageState::Shared { pins: 0 });
        // Outside RAM: MEM_SHARE aborts at the call, MEM_UNSHARE answers -3.
        let out = if mode == ANDROID { [outside, 1, 0] } else { [outside, 0, 0] };
        assert!(matches!(vm.over(Conduit::Hvc, kvm::MEM_SHARE, out), Outcome::ExternalAbortAtCall));
        assert_eq!(vm.call(kvm::MEM_UNSHARE, out)[0], INVALID);
    }
}

/// A range whose first granule is private and a later one shared is mixed: the share
/// fails whole and nothing changes (each granule of the range is looked at, not the
/// first one again).
#[test]
fn a_range_is_judged_granule_by_granule() {
    let mut vm = Vm::new(ANDROID);
    assert_eq!(vm.call(kvm::MEM_SHARE, [BASE + 3 * GRANULE, 0, 0])[0], 0);
    assert_eq!(vm.call(kvm::MEM_SHARE, [BASE + 2 * GRANULE, 2, 0])[0] as i64, -3);
    assert_eq!(vm.state(BASE + 2 * GRANULE), PageState::Private);
    // The last RAM granule is RAM: guarding it is refused.
    let last = BASE + (PAGES as u64 - 1) * GRANULE;
    assert_eq!(vm.call(kvm::MMIO_RGUARD_MAP, [last, 1, 0])[0] as i64, -3);
    assert_eq!(vm.call(kvm::MMIO_RGUARD_MAP, [last + GRANULE, 1, 0]), [0, 1, 0, 0], "the granule after it is not");
}

/// MEM_RELINQUISH acts on the page holding x1 (ACK 6.12 checks no alignment).
#[test]
fn relinquish_takes_the_page_holding_x1() {
    let mut vm = Vm::new(ANDROID);
    assert_eq!(vm.call(kvm::MEM_RELINQUISH, [BASE + 5 * GRANULE + 0x123, 0, 0])[0], 0);
    assert_eq!(vm.memory.0, [pg(BASE + 5 * GRANULE)]);
}

/// The short counts are Marsaglia's xorshift64 (shifts 13, 7, 17): from seed 1 its
/// outputs are 0x40822041, 0x100041060c011441, 0x9b1e842f6e862629 (the published
/// generator, computed apart), so a 200-granule walk first stops after
/// 1 + 0x40822041 % 200 = 162; and they vary.
#[test]
fn short_counts_are_xorshift64() {
    let mut counts = ShortCounts::new(1);
    assert_eq!(counts.pick(200), 1 + 0x4082_2041 % 200);
    // A walk of u64::MAX shows the raw state: the sequence's next two values.
    assert_eq!(counts.pick(u64::MAX), 1 + 0x1000_4106_0c01_1441);
    assert_eq!(counts.pick(u64::MAX), 1 + 0x9b1e_842f_6e86_2629);
    let picks: Vec<u64> = (0..8).map(|_| counts.pick(256)).collect();
    assert!(picks.iter().any(|&p| p != picks[0]), "{picks:?}");
    assert_eq!(ShortCounts::new(0), ShortCounts::new(0x9e37_79b9_7f4a_7c15), "0 is replaced");
}

/// The ID-field caps are the recorded release's for a protected VM in the upstream
/// form, and none otherwise (the Android release is not measured; an ordinary VM is
/// not sanitized).
#[test]
fn id_caps_are_the_upstream_releases_only() {
    let services = |mode| Services { mode, stats: false, short_counts: false };
    assert_eq!(services(UPSTREAM).id_caps(), pvmkit_abi::profile::LINUX_7_3_PROTECTED.id_fields);
    assert!(!services(UPSTREAM).id_caps().is_empty());
    assert!(services(ANDROID).id_caps().is_empty() && services(VmMode::Unprotected).id_caps().is_empty());
}

/// QEMU's generic timer runs at 62.5 MHz (16 ns a tick); the virtual count is the
/// physical minus CNTVOFF_EL2, modulo 2^64 (Arm ARM, D11.1.2).
#[test]
fn the_clock_follows_the_counters() {
    let clock = Clock::from_counters(625, 62_500_000, 25);
    assert_eq!((clock.nanoseconds, clock.virtual_count, clock.physical_count), (10_000, 600, 625));
    assert_eq!(Clock::from_counters(5, 62_500_000, 10).virtual_count, u64::MAX - 4);
    assert_eq!(Clock::from_counters(7, 0, 0).nanoseconds, 7_000_000_000, "no frequency: one tick a second");
}
