use super::*;
use crate::kvm::func;
use crate::psci;

/// A VM of 16 granules at 0x8000_0000: the first 8 private, the rest shared.
struct Vm {
    enrolled: bool,
}

const RAM: u64 = 0x8000_0000;

impl VmFacts for Vm {
    fn pages(&self, ipa: u64, count: u64) -> Pages {
        // The profile asks about whole granules only.
        assert!(ipa.is_multiple_of(GRANULE), "asked about {ipa:#x}");
        let end = ipa + count * GRANULE;
        if ipa < RAM || end > RAM + 16 * GRANULE {
            return Pages::Outside;
        }
        let shared = |p: u64| p >= RAM + 8 * GRANULE;
        let first = shared(ipa);
        if (0..count).all(|i| shared(ipa + i * GRANULE) == first) {
            if first {
                Pages::Shared
            } else {
                Pages::Private
            }
        } else {
            Pages::Mixed
        }
    }

    fn any_ram(&self, ipa: u64, count: u64) -> bool {
        (0..count).any(|i| (RAM..RAM + 16 * GRANULE).contains(&ipa.wrapping_add(i * GRANULE)))
    }

    fn enrolled(&self) -> bool {
        self.enrolled
    }

    fn ipa_space_end(&self) -> u64 {
        1 << 39
    }
}

fn ask(profile: &Profile, conduit: Conduit, function: u32, args: [u64; 3]) -> Answer {
    let call = Call { conduit, function, args };
    profile.answer(&call, profile.walk(&call), &Vm { enrolled: true }).answer
}

fn hvc(profile: &Profile, function: u32, args: [u64; 3]) -> Answer {
    ask(profile, Conduit::Hvc, function, args)
}

#[test]
fn linux_7_3_protected_answers_as_measured() {
    let p = &LINUX_7_3_PROTECTED;
    assert_eq!(hvc(p, kvm::KVM_FEATURES, [0; 3]), Answer::Regs([0x1d, 0, 0, 0]));
    assert_eq!(ask(p, Conduit::Smc, kvm::KVM_FEATURES, [0; 3]), Answer::Regs([0x3, 0, 0, 0]));
    assert_eq!(hvc(p, kvm::HYP_MEMINFO, [0; 3]), Answer::Regs([4096, 0, 0, 0]));
    for reserved in [[1, 0, 0], [0, 1, 0], [0, 0, 1]] {
        assert_eq!(hvc(p, kvm::HYP_MEMINFO, reserved), Answer::Code(-3));
    }
    assert_eq!(hvc(p, kvm::MEM_SHARE, [RAM, 0, 0]), Answer::Act(Action::Share, Report::Zero));
    assert_eq!(hvc(p, kvm::MEM_SHARE, [RAM + 8 * GRANULE, 0, 0]), Answer::Code(-3), "already shared");
    assert_eq!(hvc(p, kvm::MEM_SHARE, [RAM + 1, 0, 0]), Answer::Code(-3), "unaligned");
    assert_eq!(hvc(p, kvm::MEM_SHARE, [RAM, 1, 0]), Answer::Code(-3), "x2 reserved");
    assert_eq!(hvc(p, kvm::MEM_SHARE, [0x0900_0000, 0, 0]), Answer::ExternalAbortAtCall);
    assert_eq!(hvc(p, kvm::MEM_SHARE, [0x0900_0000, 0, 1]), Answer::Code(-3), "arguments are checked first");
    assert_eq!(ask(p, Conduit::Smc, kvm::MEM_SHARE, [RAM, 0, 0]), Answer::Code(-1), "EL2 handles HVC only");
    assert_eq!(hvc(p, 0x8600_0003, [RAM, 0, 0]), Answer::Code(-1), "the SMC32 id");
    assert_eq!(hvc(p, kvm::MEM_UNSHARE, [RAM, 0, 0]), Answer::Code(-3), "not shared");
    assert_eq!(hvc(p, kvm::MEM_UNSHARE, [0x0900_0000, 0, 0]), Answer::Code(-3), "outside: no abort");
    assert_eq!(hvc(p, kvm::MEM_UNSHARE, [RAM + 8 * GRANULE, 0, 0]), Answer::Act(Action::Unshare, Report::Zero));
    assert_eq!(hvc(p, kvm::MEM_RELINQUISH, [RAM, 0, 0]), Answer::Code(-1));
    for guard in 5..=11 {
        assert_eq!(hvc(p, 0xc600_0000 | guard, [0x0900_0000, 0, 0]), Answer::Code(-1), "no MMIO guard");
    }
    assert_eq!(hvc(p, psci::PSCI_VERSION, [0; 3]), Answer::Code(0x10003));
    assert_eq!(hvc(p, psci::PSCI_FEATURES, [psci::CPU_ON_64 as u64, 0, 0]), Answer::Code(0));
    assert_eq!(hvc(p, psci::PSCI_FEATURES, [psci::SYSTEM_RESET2 as u64, 0, 0]), Answer::Code(0));
    assert_eq!(hvc(p, psci::PSCI_FEATURES, [0x8400_00ff, 0, 0]), Answer::Code(-1));
    assert_eq!(hvc(p, psci::CPU_ON_64, [0, 0, 0]), Answer::Code(-4), "already on");
    assert_eq!(hvc(p, psci::CPU_ON_64, [1, 0, 0]), Answer::Code(-2), "no such vCPU");
    assert_eq!(hvc(p, psci::SYSTEM_OFF, [0; 3]), Answer::PowerOff);
    assert_eq!(hvc(p, smccc::SMCCC_VERSION, [0; 3]), Answer::Code(0x10001));
    assert_eq!(hvc(p, smccc::SMCCC_ARCH_FEATURES, [smccc::ARCH_WORKAROUND_1 as u64, 0, 0]), Answer::Code(1));
    assert_eq!(hvc(p, smccc::SMCCC_ARCH_FEATURES, [kvm::KVM_FEATURES as u64, 0, 0]), Answer::Code(-1));
    assert_eq!(hvc(p, 0xc600_0030, [1, 2, 3]).regs(), Some([u64::MAX, 0, 0, 0]), "unknown: x1-x3 zeroed");
}

#[test]
fn linux_7_3_ordinary_vm_has_no_pkvm_calls() {
    let p = &LINUX_7_3_ORDINARY;
    assert_eq!(hvc(p, kvm::KVM_FEATURES, [0; 3]), Answer::Regs([0x3, 0, 0, 0]));
    assert_eq!(hvc(p, kvm::MEM_SHARE, [RAM, 0, 0]), Answer::Code(-1));
    assert_eq!(hvc(p, kvm::HYP_MEMINFO, [0; 3]), Answer::Code(-1));
    assert_eq!(hvc(p, kvm::KVM_PTP, [0; 3]), Answer::Time);
    assert_eq!(hvc(p, kvm::KVM_PTP, [2, 0, 0]), Answer::Code(-1));
}

#[test]
fn android_ranges_walk_at_most_256_granules() {
    let p = &ANDROID_6_12;
    let share = |x2| Call { conduit: Conduit::Hvc, function: kvm::MEM_SHARE, args: [RAM, x2, 0] };
    assert_eq!(p.walk(&share(0)), 1, "0 means one granule");
    assert_eq!(p.walk(&share(7)), 7);
    assert_eq!(p.walk(&share(100_000)), 256);
    assert_eq!(hvc(p, kvm::MEM_SHARE, [RAM, 8, 0]), Answer::Act(Action::Share, Report::Count));
    assert_eq!(hvc(p, kvm::MEM_SHARE, [RAM, 9, 0]), Answer::Code(-3), "one shared granule fails the whole call");
    let short = p.answer(&share(9), 8, &Vm { enrolled: true });
    assert_eq!(short.answer, Answer::Act(Action::Share, Report::Count), "a short walk looks at what it walks");
    assert_eq!(hvc(p, kvm::HYP_MEMINFO, [0; 3]), Answer::Regs([4096, 1, 0, 0]));
    assert_eq!(hvc(p, smccc::SMCCC_VERSION, [0; 3]), Answer::Code(0x10002));
    assert_eq!(hvc(p, smccc::SMCCC_ARCH_FEATURES, [smccc::SMCCC_VERSION as u64, 0, 0]), Answer::Code(-1));
    assert_eq!(hvc(p, kvm::KVM_FEATURES, [0; 3]), Answer::Regs([0xffd, 0, 0, 0]));
}

#[test]
fn android_guard_rules() {
    let p = &ANDROID_6_12;
    let dev = 0x0a00_0000;
    assert_eq!(hvc(p, kvm::MMIO_RGUARD_MAP, [dev, 0, 0]), Answer::Code(-3), "x2 = 0");
    assert_eq!(hvc(p, kvm::MMIO_RGUARD_MAP, [dev, 2, 0]), Answer::Act(Action::GuardMap, Report::Count));
    assert_eq!(hvc(p, kvm::MMIO_GUARD_MAP, [RAM, 0, 0]), Answer::Code(-3), "guest memory");
    assert_eq!(hvc(p, kvm::MMIO_RGUARD_MAP, [RAM - GRANULE, 2, 0]), Answer::Code(-3), "a range reaching into RAM");
    assert_eq!(hvc(p, kvm::MMIO_GUARD_MAP, [dev + 4, 0, 0]), Answer::Code(-3), "unaligned");
    assert_eq!(hvc(p, kvm::MMIO_GUARD_MAP, [dev, 0xdead, 0xbeef]), Answer::Act(Action::GuardMap, Report::Count));
    let not_enrolled = Vm { enrolled: false };
    let map = Call { conduit: Conduit::Hvc, function: kvm::MMIO_GUARD_MAP, args: [dev, 0, 0] };
    assert_eq!(p.answer(&map, 1, &not_enrolled).answer, Answer::Code(-3), "MAP needs ENROLL");
    assert_eq!(hvc(p, kvm::MEM_RELINQUISH, [dev, 0, 0]), Answer::Act(Action::Nothing, Report::Zero));
    assert_eq!(hvc(p, kvm::MEM_RELINQUISH, [RAM, 0, 0]), Answer::Act(Action::Relinquish, Report::Zero));
    // pkvm_memrelinquish_call checks no alignment: the page holding x1 is meant.
    assert_eq!(hvc(p, kvm::MEM_RELINQUISH, [RAM + 8, 0, 0]), Answer::Act(Action::Relinquish, Report::Zero));
}

/// What pkvm_remove_ioguard_page answers: nothing is done, x1 is the count asked for
/// (1 for UNMAP, the guest's x2 unchanged for RGUARD_UNMAP), refusals included.
#[test]
fn android_unmaps_echo_the_count_asked_for() {
    let p = &ANDROID_6_12;
    let dev = 0x0a00_0000;
    let regs = |function, args: [u64; 3], enrolled| {
        let call = Call { conduit: Conduit::Hvc, function, args };
        let walk = p.walk(&call);
        p.answer(&call, walk, &Vm { enrolled }).answer.registers(args, walk)
    };
    let invalid = smccc::INVALID_PARAMETER as u64;
    assert_eq!(regs(kvm::MMIO_GUARD_UNMAP, [dev, 7, 9], true), Some([0, 1, 0, 0]));
    assert_eq!(regs(kvm::MMIO_GUARD_UNMAP, [dev + 3, 0, 0], true), Some([0, 1, 0, 0]), "the IPA is never read");
    assert_eq!(regs(kvm::MMIO_GUARD_UNMAP, [dev, 0, 0], false), Some([invalid, 1, 0, 0]));
    assert_eq!(regs(kvm::MMIO_RGUARD_UNMAP, [dev, 1000, 0], true), Some([0, 1000, 0, 0]), "not capped at 256");
    assert_eq!(regs(kvm::MMIO_RGUARD_UNMAP, [dev, 0, 0], true), Some([0, 0, 0, 0]));
    assert_eq!(regs(kvm::MMIO_RGUARD_UNMAP, [dev, 5, 1], true), Some([invalid, 5, 0, 0]), "x3 set");
    assert_eq!(regs(kvm::MMIO_RGUARD_UNMAP, [dev, 5, 0], false), Some([invalid, 5, 0, 0]), "not enrolled");
}

/// The stage-2 walk of __pkvm_install_ioguard_page refuses a range past the IPA space
/// and one that wraps.
#[test]
fn android_guard_maps_stay_inside_the_ipa_space() {
    let p = &ANDROID_6_12;
    let top = 1u64 << 39;
    assert_eq!(hvc(p, kvm::MMIO_GUARD_MAP, [top - GRANULE, 0, 0]), Answer::Act(Action::GuardMap, Report::Count));
    assert_eq!(hvc(p, kvm::MMIO_GUARD_MAP, [top, 0, 0]), Answer::Code(-3));
    assert_eq!(hvc(p, kvm::MMIO_RGUARD_MAP, [top - GRANULE, 2, 0]), Answer::Code(-3), "runs past the end");
    assert_eq!(
        hvc(p, kvm::MMIO_RGUARD_MAP, [top - 2 * GRANULE, 2, 0]),
        Answer::Act(Action::GuardMap, Report::Count),
        "ends at the end"
    );
    assert_eq!(hvc(p, kvm::MMIO_RGUARD_MAP, [!(GRANULE - 1), 2, 0]), Answer::Code(-3), "wraps");
    assert_eq!(hvc(p, kvm::MMIO_RGUARD_MAP, [GRANULE, u64::MAX, 0]), Answer::Code(-3), "a count that overflows");
}

/// Facts that give no IPA-space limit (the trait's default): nothing is refused for it.
#[test]
fn without_a_known_ipa_space_nothing_is_beyond_it() {
    struct Unlimited;
    impl VmFacts for Unlimited {
        fn pages(&self, _: u64, _: u64) -> Pages {
            Pages::Outside
        }
        fn any_ram(&self, _: u64, _: u64) -> bool {
            false
        }
        fn enrolled(&self) -> bool {
            true
        }
    }
    let map = Call { conduit: Conduit::Hvc, function: kvm::MMIO_GUARD_MAP, args: [1 << 50, 0, 0] };
    assert_eq!(ANDROID_6_12.answer(&map, 1, &Unlimited).answer, Answer::Act(Action::GuardMap, Report::Count));
}

#[test]
fn every_android_row_names_its_ack_source() {
    for rule in ANDROID_6_12.rules.iter().flat_map(|t| t.iter()) {
        assert!(
            rule.source.starts_with("ACK-6.12 ") && rule.source.contains(".c "),
            "{:x?}: {}",
            rule.functions,
            rule.source
        );
    }
    assert!(inference_rows(&ANDROID_6_12).count() > 0);
    assert_eq!(inference_rows(&LINUX_7_3_PROTECTED).count(), 0, "the upstream table is source and measurement");
}

#[test]
fn every_row_cites_its_source_and_every_advertised_function_has_a_row() {
    for profile in [&LINUX_7_3_PROTECTED, &LINUX_7_3_ORDINARY, &ANDROID_6_12] {
        for rule in profile.rules.iter().flat_map(|t| t.iter()) {
            assert!(rule.source.len() > 8, "{:x?} in {}", rule.functions, profile.release);
        }
        let features = profile.features(&Vm { enrolled: true });
        for n in 0..64u32 {
            let id = if n <= 1 { 0x8600_0000 | n } else { 0xc600_0000 | n };
            let answered =
                profile.answer(&Call { conduit: Conduit::Hvc, function: id, args: [0; 3] }, 1, &Vm { enrolled: true });
            // Linux 7.3 answers PTP to a protected VM without advertising it (measured).
            let quirk = n == func::PTP && features.has(func::MEM_SHARE) && !features.has(func::MMIO_GUARD_MAP);
            assert_eq!(features.has(n) || quirk, answered.rule.is_some(), "function {n} in {}", profile.release);
        }
    }
}

#[test]
fn a_range_that_wraps_is_outside() {
    let p = &ANDROID_6_12;
    assert_eq!(hvc(p, kvm::MEM_SHARE, [!(GRANULE - 1), 4, 0]), Answer::ExternalAbortAtCall);
}

#[test]
fn policies_and_differences_say_why() {
    assert!(POLICIES.iter().all(|p| !p.name.is_empty() && !p.why.is_empty()));
    assert!(INTENDED_DIFFERENCES.iter().all(|d| !d.why.is_empty()));
}

/// SYSTEM_RESET2 (psci.c): reset type 0 (warm) and vendor types (bit 31) reset, other
/// architectural types are refused.
#[test]
fn system_reset2_takes_warm_and_vendor_resets() {
    let p = &LINUX_7_3_PROTECTED;
    assert_eq!(hvc(p, psci::SYSTEM_RESET2, [0, 0, 0]), Answer::Reset);
    assert_eq!(hvc(p, psci::SYSTEM_RESET2, [0x8000_0000, 0, 0]), Answer::Reset, "vendor-specific");
    assert_eq!(hvc(p, psci::SYSTEM_RESET2, [1, 0, 0]), Answer::Code(psci::INVALID_PARAMETERS));
}
