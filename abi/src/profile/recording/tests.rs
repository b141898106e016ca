use super::*;
use crate::profile::teardown::Page;
use crate::profile::{
    HYP_LINUX_7_3_ORDINARY, HYP_LINUX_7_3_PROTECTED, INTENDED_DIFFERENCES, LINUX_7_3_ORDINARY, LINUX_7_3_PROTECTED,
};

#[test]
fn calls_and_registers_read_back_what_they_write() {
    let call =
        ProbeCall { conduit: Conduit::Smc, function: 0xc600_0003, args: [0x8041_2000, 0, 1], pages: Pages::Shared };
    assert_eq!(call.to_string(), "smc 0xc6000003 0x80412000 0x0 0x1 shared");
    assert_eq!(ProbeCall::parse(&call.to_string()), Some(call));
    assert_eq!(ProbeCall::parse("hvc 0xc6000003 0x0 0x0 0x0 private extra"), None);
    assert_eq!(ProbeCall::parse("hvc 0x1c6000003 0x0 0x0 0x0 private"), None, "w0 is 32 bits");
    let regs = [u64::MAX, 1, 0, 0x10];
    assert_eq!(parse_regs(&ShownRegs(regs).to_string()), Some(regs));
    assert_eq!(parse_regs("x1=0x0 x0=0x0 x2=0x0 x3=0x0"), None);
}

#[test]
fn probes_pair_results_with_their_calls() {
    let text = "# a comment: probe x = y\ntest conformance ... probe-call a = hvc 0x86000000 0x0 0x0 0x0 private\n\
                probe a = x0=0x1 x1=0x0 x2=0x0 x3=0x0\nprobe mmio-load = value 0x74726976\n";
    let probes: Vec<_> = probes(text.lines()).collect();
    assert_eq!(probes.len(), 2);
    assert_eq!(probes[0].name, "a");
    assert_eq!(probes[0].call.map(|c| c.function), Some(0x8600_0000));
    assert_eq!((probes[1].name, probes[1].result, probes[1].call), ("mmio-load", "value 0x74726976", None));
}

/// The tables of Linux 7.3.4 evaluated on every call the real release answered when it
/// was recorded (`pvmkit conformance --record`): a table edit the release does not bear
/// out fails here, without booting anything.
fn table_agrees_with(profile: &Profile, recording: &str) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for probe in probes(recording.lines()) {
        let Some(call) = probe.call else { continue };
        let expected = Expected::of(profile, &call);
        checked += 1;
        if !expected.matches(probe.result) {
            wrong.push(format!("{}: recorded {}, the table says {expected}", probe.name, probe.result));
        }
    }
    (checked, wrong)
}

#[test]
fn linux_7_3_tables_answer_as_the_release_was_recorded() {
    for (profile, recording) in [(&LINUX_7_3_PROTECTED, recorded::PROTECTED), (&LINUX_7_3_ORDINARY, recorded::ORDINARY)]
    {
        let (checked, wrong) = table_agrees_with(profile, recording);
        assert!(checked >= 90, "{}: only {checked} recorded calls", profile.release);
        assert!(wrong.is_empty(), "{}:\n{}", profile.release, wrong.join("\n"));
    }
}

#[test]
fn hyps_overlay_differs_exactly_where_pinned() {
    for (hyp, recording) in
        [(&HYP_LINUX_7_3_PROTECTED, recorded::PROTECTED), (&HYP_LINUX_7_3_ORDINARY, recorded::ORDINARY)]
    {
        let (_, wrong) = table_agrees_with(hyp, recording);
        let differing: Vec<&str> = wrong.iter().map(|w| w.split(':').next().unwrap_or("")).collect();
        let is_call = |name: &str| probes(recording.lines()).any(|p| p.name == name && p.call.is_some());
        let pinned: Vec<&str> = INTENDED_DIFFERENCES.iter().map(|d| d.probe).filter(|p| is_call(p)).collect();
        assert_eq!(differing, pinned, "{}", hyp.release);
        for d in INTENDED_DIFFERENCES {
            let probe = probes(recording.lines()).find(|p| p.name == d.probe).expect("recorded");
            if recording == recorded::PROTECTED {
                assert_eq!(probe.result, d.release, "{}: the release's answer as pinned", d.probe);
            }
            if let Some(call) = probe.call {
                assert_eq!(Expected::of(hyp, &call).to_string(), d.hyp, "{}: hyp's answer as pinned", d.probe);
            }
        }
    }
}

/// The negative control: one row of the table answered wrongly (MEMINFO's granule)
/// makes the comparison with the recording fail.
#[test]
fn a_wrong_row_is_caught_by_the_recording() {
    use crate::profile::{Over, Rule, When};
    const WRONG: &[Rule] = &[Rule {
        functions: &[crate::kvm::HYP_MEMINFO],
        over: Over::Hvc,
        when: When::Always,
        answer: Answer::Regs([0x1_0000, 0, 0, 0]),
        source: "a hand-altered row",
    }];
    const ALTERED: Profile =
        Profile { rules: &[WRONG, LINUX_7_3_PROTECTED.rules[0], LINUX_7_3_PROTECTED.rules[1]], ..LINUX_7_3_PROTECTED };
    let (_, wrong) = table_agrees_with(&ALTERED, recorded::PROTECTED);
    assert!(wrong.iter().any(|w| w.starts_with("meminfo:")), "{wrong:?}");
}

/// The Linux 7.3.4 tables' claims beyond the calls (ID fields, PMU and debug register
/// access, teardown) are what the release was recorded doing, and each table claims
/// every ID field, register probe and teardown probe it does not leave open.
#[test]
fn linux_7_3_cpu_and_teardown_claims_are_the_recorded_ones() {
    use crate::profile::{cpu::ID_FIELDS, debug_pmu::PROBES};
    for (profile, recording) in [(&LINUX_7_3_PROTECTED, recorded::PROTECTED), (&LINUX_7_3_ORDINARY, recorded::ORDINARY)]
    {
        // Unclaimed: a register as the CPU has it, a page the release does not wipe
        // reliably.
        let hardware = PROBES.iter().filter(|p| profile.register_access.and_then(|r| r.expected(p)).is_none()).count();
        let pages = [Page::Private, Page::Shared];
        let unreliable = pages.iter().filter(|&&p| profile.teardown.and_then(|t| t.expected(p)).is_none()).count();
        let all = ID_FIELDS.len() + PROBES.len() + pages.len();
        assert_eq!(claims(profile).count() + hardware + unreliable, all, "{}", profile.release);
        let wrong: Vec<String> = claims_departing(profile, recording).map(|d| d.to_string()).collect();
        assert!(wrong.is_empty(), "{}:\n{}", profile.release, wrong.join("\n"));
    }
}

/// The negative controls: pKVM answering every breakpoint as read-as-zero (not only the
/// first), an ordinary VM's PMU reading as zero, a shared page wiped at teardown and an
/// ordinary VM's memory wiped are each caught by the recording.
#[test]
fn a_wrong_register_or_teardown_claim_is_caught_by_the_recording() {
    use crate::profile::debug_pmu::{Access, AccessRules, LINUX_7_3_ORDINARY_ACCESS, LINUX_7_3_PROTECTED_ACCESS};
    use crate::profile::teardown::{Teardown, Wipe};
    let departing = |profile: &Profile, recording| -> Vec<&str> {
        claims_departing(profile, recording).map(|d| d.probe).collect::<Vec<_>>()
    };
    const ALL_BREAKPOINTS: Profile = Profile {
        register_access: Some(AccessRules { debug: Access::ReadsZero, ..LINUX_7_3_PROTECTED_ACCESS }),
        ..LINUX_7_3_PROTECTED
    };
    assert_eq!(departing(&ALL_BREAKPOINTS, recorded::PROTECTED), ["reg-dbgbvr1-el1", "reg-dbgclaimclr-el1"]);
    const PMU_AS_ZERO: Profile = Profile {
        register_access: Some(AccessRules { pmu: Access::ReadsZero, ..LINUX_7_3_ORDINARY_ACCESS }),
        ..LINUX_7_3_ORDINARY
    };
    assert_eq!(departing(&PMU_AS_ZERO, recorded::ORDINARY), ["reg-pmcr-el0", "reg-pmccntr-el0"]);
    const SHARED_WIPED: Profile = Profile {
        teardown: Some(Teardown { private: Wipe::NotReliably, shared: Wipe::Always, source: "a hand-altered claim" }),
        ..LINUX_7_3_PROTECTED
    };
    assert_eq!(departing(&SHARED_WIPED, recorded::PROTECTED), ["teardown-shared"]);
    const ORDINARY_WIPED: Profile = Profile {
        teardown: Some(Teardown { private: Wipe::Always, shared: Wipe::Never, source: "a hand-altered claim" }),
        ..LINUX_7_3_ORDINARY
    };
    assert_eq!(departing(&ORDINARY_WIPED, recorded::ORDINARY), ["teardown-private"]);
    assert_eq!(
        departing(&LINUX_7_3_PROTECTED, "probe cpu-ras = value 0x1\n").len(),
        claims(&LINUX_7_3_PROTECTED).count() - 1
    );
}

/// hyp answers register access as the releases do, but for one pinned difference: its
/// ordinary VM keeps the PMU (the bench counts the baseline's instructions with it).
#[test]
fn hyps_register_access_differs_only_in_the_ordinary_pmu() {
    use crate::profile::debug_pmu::{Access, AccessRules};
    assert_eq!(HYP_LINUX_7_3_PROTECTED.register_access, LINUX_7_3_PROTECTED.register_access);
    let (hyp, release) = (HYP_LINUX_7_3_ORDINARY.register_access.unwrap(), LINUX_7_3_ORDINARY.register_access.unwrap());
    assert_eq!((hyp.pmu, release.pmu), (Access::AsHardware, Access::Undefined));
    assert_eq!(AccessRules { pmu: release.pmu, source: release.source, ..hyp }, release, "nothing else differs");
}
