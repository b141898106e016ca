use super::*;
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

/// The ID fields the Linux 7.3.4 tables claim are the recorded ones, and every field
/// recorded is claimed.
#[test]
fn linux_7_3_cpu_fields_are_the_recorded_ones() {
    for (profile, recording) in [(&LINUX_7_3_PROTECTED, recorded::PROTECTED), (&LINUX_7_3_ORDINARY, recorded::ORDINARY)]
    {
        let recorded: Vec<(&str, &str)> = probes(recording.lines())
            .filter(|p| p.name.starts_with("cpu-") && p.call.is_none())
            .map(|p| (p.name, p.result))
            .collect();
        assert_eq!(recorded.len(), crate::profile::cpu::ID_FIELDS.len(), "{}", profile.release);
        for (name, result) in recorded {
            let claim = profile.id_fields.iter().find(|(n, _)| *n == name).map(|(_, v)| format!("value {v:#x}"));
            assert_eq!(claim.as_deref(), Some(result), "{name} in {}", profile.release);
        }
    }
}
