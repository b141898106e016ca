//! Sequences of hypercalls into hyp's dispatcher, in every VM mode and ABI form, with
//! the ownership invariants checked after each call:
//! - no call panics;
//! - only MEM_SHARE moves pages, and only private → shared; only MEM_UNSHARE moves them
//!   back; nothing else (RELINQUISH included) changes a page's state;
//! - no call pins a page (only the device side does);
//! - hyp's bookkeeping never disagrees with the facts the profile decided on;
//! - RELINQUISH zeroes only pages that stay private;
//! - pages outside guest RAM are never touched;
//! - interleaved MMIO aborts (any syndrome, any IPA): in a protected VM only an access
//!   inside one of the VM's device windows, wholly inside granules registered with
//!   the MMIO guard, is ever emulated; never an access to guest RAM;
//! - two vCPUs interleave their calls (a vCPU that is off makes none) with PSCI CPU_ON,
//!   CPU_OFF and AFFINITY_INFO (`hyp::vcpus`): the answers are PSCI's codes, a started
//!   vCPU runs once its CPU takes the start, AFFINITY_INFO agrees with the power table.
#![no_main]

use hyp::pkvm::hypercall::{dispatch, Clock, ExitCounters, Outcome, Services, ShortCounts, VmState};
use hyp::pkvm::memory_calls::{DeviceHolds, GuestMemory, Holder};
use hyp::pkvm::mmio_guard::GuardTable;
use hyp::pkvm::ownership::{Ownership, PageState, GRANULE};
use hyp::testing::pg;
use hyp::trap::mmio::{self, Access, Decision, DeviceKind, DeviceWindow};
use hyp::vcpus::{Power, Vcpus, AFFINITY_OFF, AFFINITY_ON};
use libfuzzer_sys::fuzz_target;
use pvmkit_abi::address::{Ipa, Page};
use pvmkit_abi::esr::Esr;
use pvmkit_abi::hyp_options::{AbiForm, VmMode};
use pvmkit_abi::kvm;
use pvmkit_abi::memory_map::Region;
use pvmkit_abi::profile::Conduit;
use pvmkit_fuzz::Input;

const BASE: u64 = 0x8000_0000;
const PAGES: usize = 32;

#[derive(Default)]
struct Zeroed(Vec<Page>);

impl GuestMemory for Zeroed {
    fn zero_page(&mut self, page: Page) {
        self.0.push(page);
    }
}

/// A device holding one page, as a published request would (0: none).
struct HeldPage(Page);

impl DeviceHolds for HeldPage {
    fn holder(&mut self, _: &Ownership<'_>, page: Page) -> Option<Holder> {
        (page == self.0).then_some(Holder { device: 0x0a00_3e00, queue: 0, descriptor: Some(0) })
    }
}

/// Function ids worth hitting often; any other u32 is tried too.
const IDS: [u32; 14] = [
    kvm::KVM_FEATURES,
    kvm::HYP_MEMINFO,
    kvm::MEM_SHARE,
    kvm::MEM_UNSHARE,
    kvm::MEM_RELINQUISH,
    kvm::MMIO_GUARD_INFO,
    kvm::MMIO_GUARD_ENROLL,
    kvm::MMIO_GUARD_MAP,
    kvm::MMIO_GUARD_UNMAP,
    kvm::MMIO_RGUARD_MAP,
    kvm::MMIO_RGUARD_UNMAP,
    kvm::VENDOR_HYP_CALL_UID,
    0x8000_0000,
    0x8400_0008,
];

/// An argument: mostly a page of guest RAM (or just outside), sometimes anything.
fn arg(input: &mut Input<'_>) -> Option<u64> {
    Some(match input.byte()? {
        0..=159 => BASE.wrapping_add((input.byte()? as u64 % (PAGES as u64 + 4)).wrapping_sub(2).wrapping_mul(GRANULE)),
        160..=199 => input.byte()? as u64 % 64,
        200..=219 => BASE + input.byte()? as u64,
        _ => input.u64()?,
    })
}
fn states(o: &Ownership<'_>) -> Vec<PageState> {
    (0..PAGES as u64).map(|i| o.state(pg(BASE + i * GRANULE)).unwrap()).collect()
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let Some(mode) = input.byte() else { return };
    let mode = match mode % 3 {
        0 => VmMode::Protected(AbiForm::Android),
        1 => VmMode::Protected(AbiForm::Upstream),
        _ => VmMode::Unprotected,
    };
    let Some(flags) = input.byte() else { return };
    let services = Services { mode, stats: false, short_counts: flags & 1 != 0 };
    let mut short = ShortCounts::new(u64::from(flags));
    let mut words = vec![0u16; PAGES];
    let mut ownership = Ownership::new(BASE, &mut words);
    let mut guard = GuardTable::new(mode == VmMode::Protected(AbiForm::Android) && flags & 2 != 0);
    let ram = Region { start: BASE, end: BASE + PAGES as u64 * GRANULE };
    let devices = [
        DeviceWindow { base: 0x0900_0000, size: 0x1000, kind: DeviceKind::Console },
        DeviceWindow { base: 0x0a00_3a00, size: 0x200, kind: DeviceKind::Virtio { slot: 29 } },
        DeviceWindow { base: 0x0a00_3e00, size: 0x200, kind: DeviceKind::Virtio { slot: 31 } },
    ];
    let mut vcpus = Vcpus::new(2);
    // A page a device holds throughout (possibly none, possibly outside RAM).
    let mut held = HeldPage(pg(BASE + u64::from(input.byte().unwrap_or(0) % 40) * GRANULE));
    while let Some(pick) = input.byte() {
        // The calling vCPU: one that is off makes no call (a starting one runs first).
        let caller = usize::from(input.byte().unwrap_or(0) & 1);
        if vcpus.take_start(caller).is_some() {
            assert_eq!(vcpus.power(caller), Some(Power::On));
        }
        if vcpus.power(caller) != Some(Power::On) {
            continue;
        }
        if (240..250).contains(&pick) {
            let target = [0, 1, 2, 0x100, 1 << 40][usize::from(input.byte().unwrap_or(0)) % 5];
            let before = vcpus.power(target as usize);
            match pick % 3 {
                0 => {
                    let answer = vcpus.cpu_on(target, input.u64().unwrap_or(0), 0);
                    assert!([0, -2, -4].contains(&answer), "CPU_ON answered {answer}");
                    assert_eq!(answer == 0, before == Some(Power::Off) && target < 2, "CPU_ON of {target:#x}");
                }
                1 => {
                    let answer = vcpus.affinity_info(target, 0);
                    let want = match before {
                        None => -2,
                        Some(Power::Off) => AFFINITY_OFF,
                        Some(_) => AFFINITY_ON,
                    };
                    assert_eq!(answer, if target < 2 { want } else { -2 }, "AFFINITY_INFO of {target:#x}");
                }
                _ => {
                    vcpus.cpu_off(caller);
                    assert_eq!(vcpus.power(caller), Some(Power::Off));
                }
            }
            let running = (0..2).filter(|&i| vcpus.power(i) != Some(Power::Off)).count();
            assert_eq!(vcpus.running(), running);
            if running == 0 {
                // The VM would end here (reason=all_vcpus_off): start over with vCPU 0.
                vcpus = Vcpus::new(2);
            }
            continue;
        }
        if pick >= 250 {
            // An MMIO abort: a syndrome and an IPA near a device or in RAM.
            let (Some(esr), Some(near)) = (input.u64(), input.byte()) else { return };
            let base = [0x0900_0000, 0x0a00_3a00, 0x0a00_3e00, BASE, 0x0a00_0000][near as usize % 5];
            let ipa = base + (input.u64().unwrap_or(0) % 0x2000);
            let Some(abort) = Esr(0x9000_0000 | (esr & 0x01ff_ffff)).data_abort() else { continue };
            if let Decision::Emulate { pa, access, device } = mmio::decide(&abort, Ipa(ipa), &devices, &guard) {
                let pa = pa.get();
                let width = match access {
                    Access::Load { width, .. } | Access::Store { width, .. } => width as u64,
                };
                assert!(!(ram.start..ram.end).contains(&pa), "emulated an access to guest RAM at {pa:#x}");
                assert!(device.base <= pa && pa + width <= device.base + device.size, "outside its window");
                if guard.is_enforcing() {
                    assert!(guard.allows(Ipa(pa), width as u8), "emulated an unguarded access at {pa:#x}");
                    assert!(guard.is_guarded(Ipa(pa)) && guard.is_guarded(Ipa(pa + width - 1)), "unguarded granule");
                }
            }
            continue;
        }
        let x0 = if pick < 200 { IDS[pick as usize % IDS.len()] as u64 } else { input.u64().unwrap_or(0) };
        let (Some(a), Some(b), Some(c)) = (arg(&mut input), arg(&mut input), arg(&mut input)) else { return };
        let before = states(&ownership);
        let mut zeroed = Zeroed::default();
        let vm = VmState {
            ownership: &mut ownership,
            memory: &mut zeroed,
            guard: &mut guard,
            devices: &mut held,
            exits: ExitCounters::default(),
            clock: Clock::default,
            short: &mut short,
        };
        let conduit = if pick % 2 == 0 { Conduit::Hvc } else { Conduit::Smc };
        let outcome = dispatch(&services, vm, conduit, x0, [a, b, c]);
        assert!(
            !matches!(outcome, Outcome::Inconsistent(_)),
            "hyp's bookkeeping disagreed with the profile: {outcome:?}"
        );
        assert!(mode == VmMode::Protected(AbiForm::Android) || !guard.is_enforcing(), "only Android has a guard");
        let after = states(&ownership);
        if let Outcome::DeviceHeld(d) = outcome {
            assert_eq!((x0 as u32, d.page, d.holder.is_some()), (kvm::MEM_UNSHARE, held.0, true), "{d:?}");
            assert_eq!(before, after, "a stopped unshare changed pages");
            // The VM ends there: nothing further to call.
            return;
        }
        let i = ((held.0.ipa().get() - BASE) / GRANULE) as usize;
        if let (Some(PageState::Shared { .. }), Some(PageState::Private)) = (before.get(i), after.get(i)) {
            panic!("the held page {:#x} was unshared", held.0);
        }
        let function = x0 as u32;
        for (i, (was, is)) in before.iter().zip(&after).enumerate() {
            let page = BASE + i as u64 * GRANULE;
            assert!(!matches!(is, PageState::Shared { pins } if *pins > 0), "a hypercall pinned {page:#x}");
            match (was, is) {
                (x, y) if x == y => {}
                (PageState::Private, PageState::Shared { .. }) => {
                    assert_eq!(function, kvm::MEM_SHARE, "{function:#x} shared {page:#x}")
                }
                (PageState::Shared { .. }, PageState::Private) => {
                    assert_eq!(function, kvm::MEM_UNSHARE, "{function:#x} unshared {page:#x}")
                }
                (x, y) => panic!("{function:#x} moved {page:#x} from {x:?} to {y:?}"),
            }
        }
        for &page in &zeroed.0 {
            assert_eq!(function, kvm::MEM_RELINQUISH, "{function:#x} zeroed {page:#x}");
            let page = page.ipa().get();
            assert!(ram.start <= page && page < ram.end, "zeroed {page:#x} outside guest RAM");
            let i = ((page - BASE) / GRANULE) as usize;
            assert_eq!(after[i], PageState::Private, "relinquished {page:#x}, which is not private");
        }
    }
});
