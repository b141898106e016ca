//! PSCI's vCPU power calls in a VM of several vCPUs: what CPU_ON and AFFINITY_INFO
//! answer for each kind of target. The profile tables answer a one-vCPU VM (where the
//! only other MPIDRs name no vCPU); these rows answer any count, and with one vCPU they
//! agree with those tables.
//!
//! The rows are Linux 7.3.4's `arch/arm64/kvm/psci.c`, which answers these calls for a
//! protected VM too (pKVM forwards them to the host's KVM), and each is measured: the
//! conformance run with two vCPUs (`pvmkit conformance --record`) prints one probe per
//! row, named `smp-<call>@<target>`, recorded in `abi/recordings/linux-7.3.4-smp.txt`,
//! which the abi tests hold these rows against. Which kind a target is (its affinity
//! matched at the asked level against the vCPUs' power) is the hypervisor's own state:
//! `hyp::vcpus` works it out and takes the answer from here.
//!
//! hyp answers an Android-form VM with the same rows: ACK 6.12 has its own PSCI for
//! protected VMs that pvmkit has not measured, and no recorded answer says it differs.

use crate::psci::{AFFINITY_LEVEL_OFF, AFFINITY_LEVEL_ON, ALREADY_ON, INVALID_PARAMETERS, SUCCESS};

/// The call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerCall {
    /// CPU_ON (either width): x1 target MPIDR, x2 entry, x3 context.
    CpuOn,
    /// AFFINITY_INFO (either width): x1 target affinity, x2 lowest affinity level.
    AffinityInfo,
}

/// What the target of a call is, in the order a hypervisor checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// x1 has bits outside MPIDR's affinity fields.
    OutsideMpidr,
    /// AFFINITY_INFO's lowest level is above 3.
    BadLevel,
    /// No vCPU has that affinity (at that level).
    NoVcpu,
    /// Every vCPU with that affinity is off.
    Off,
    /// A vCPU with that affinity is on (CPU_ON: the target is not off).
    On,
}

impl Target {
    /// Every kind, for tests and probes.
    pub const ALL: [Self; 5] = [Self::OutsideMpidr, Self::BadLevel, Self::NoVcpu, Self::Off, Self::On];

    /// The word a probe's name carries after `@`.
    pub const fn word(self) -> &'static str {
        match self {
            Self::OutsideMpidr => "outside-mpidr",
            Self::BadLevel => "bad-level",
            Self::NoVcpu => "no-vcpu",
            Self::Off => "off",
            Self::On => "on",
        }
    }

    /// The kind a probe's `@word` names.
    pub fn from_word(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.word() == word)
    }
}

/// One row: `call` on a target of kind `target` answers `answer` in x0 (x1–x3 zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerRow {
    /// The call.
    pub call: PowerCall,
    /// The target's kind.
    pub target: Target,
    /// x0.
    pub answer: i64,
    /// Where it is from.
    pub source: &'static str,
}

const fn row(call: PowerCall, target: Target, answer: i64, source: &'static str) -> PowerRow {
    PowerRow { call, target, answer, source }
}

/// Linux 7.3.4's answers (BadLevel does not apply to CPU_ON: it has no level).
pub const LINUX_7_3: &[PowerRow] = &[
    row(
        PowerCall::CpuOn,
        Target::OutsideMpidr,
        INVALID_PARAMETERS,
        "linux-7.3.4 psci.c:53-54 (kvm_psci_valid_affinity)",
    ),
    row(PowerCall::CpuOn, Target::NoVcpu, INVALID_PARAMETERS, "linux-7.3.4 psci.c:62-63"),
    row(PowerCall::CpuOn, Target::Off, SUCCESS, "linux-7.3.4 psci.c:76-100: any entry is taken, ON at once"),
    row(PowerCall::CpuOn, Target::On, ALREADY_ON, "linux-7.3.4 psci.c:66-72"),
    row(PowerCall::AffinityInfo, Target::OutsideMpidr, INVALID_PARAMETERS, "linux-7.3.4 psci.c:118-119"),
    row(PowerCall::AffinityInfo, Target::BadLevel, INVALID_PARAMETERS, "linux-7.3.4 psci.c:122-124"),
    row(PowerCall::AffinityInfo, Target::NoVcpu, INVALID_PARAMETERS, "linux-7.3.4 psci.c:142-143"),
    row(PowerCall::AffinityInfo, Target::Off, AFFINITY_LEVEL_OFF, "linux-7.3.4 psci.c:145"),
    row(PowerCall::AffinityInfo, Target::On, AFFINITY_LEVEL_ON, "linux-7.3.4 psci.c:133-139"),
];

/// What `call` on a `target` answers by `rows` (`None`: no row, which the tests rule
/// out for every call and kind that can arise).
pub fn answer(rows: &[PowerRow], call: PowerCall, target: Target) -> Option<i64> {
    rows.iter().find(|r| r.call == call && r.target == target).map(|r| r.answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::recording::{self, parse_regs, recorded};
    use crate::profile::{Answer, Call, Conduit, Pages, VmFacts, LINUX_7_3_PROTECTED};
    use crate::psci;

    /// Every call has a row for every kind of target it can name, and only one.
    #[test]
    fn every_kind_a_call_can_name_has_one_row() {
        for call in [PowerCall::CpuOn, PowerCall::AffinityInfo] {
            for target in Target::ALL {
                let rows = LINUX_7_3.iter().filter(|r| r.call == call && r.target == target).count();
                let arises = !(call == PowerCall::CpuOn && target == Target::BadLevel);
                assert_eq!(rows, usize::from(arises), "{call:?} {target:?}");
            }
        }
        for target in Target::ALL {
            assert_eq!(Target::from_word(target.word()), Some(target));
        }
    }

    /// The real pKVM's answers, probe by probe (`abi/recordings/linux-7.3.4-smp.txt`):
    /// each probe's name says the call and the target's kind.
    #[test]
    fn the_rows_are_what_the_real_pkvm_answered() {
        let mut seen = Vec::new();
        // (The VMM's teardown probes follow every run: not this table's.)
        for probe in recording::probes(recorded::SMP.lines()).filter(|p| p.name.starts_with("smp-")) {
            let (name, word) = probe.name.strip_prefix("smp-").and_then(|n| n.split_once('@')).expect(probe.name);
            let call = if name.starts_with("cpu-on") { PowerCall::CpuOn } else { PowerCall::AffinityInfo };
            let target = Target::from_word(word).expect(word);
            let regs = parse_regs(probe.result).expect(probe.result);
            assert_eq!(Some(regs[0] as i64), answer(LINUX_7_3, call, target), "{}", probe.name);
            assert_eq!(regs[1..], [0, 0, 0], "{}", probe.name);
            seen.push((call, target));
        }
        for row in LINUX_7_3 {
            assert!(seen.contains(&(row.call, row.target)), "{:?} {:?} was not measured", row.call, row.target);
        }
    }

    struct NoPages;

    impl VmFacts for NoPages {
        fn pages(&self, _: u64, _: u64) -> Pages {
            Pages::Private
        }
        fn any_ram(&self, _: u64, _: u64) -> bool {
            false
        }
        fn enrolled(&self) -> bool {
            false
        }
    }

    /// With one vCPU the rows give what the one-vCPU table gives: MPIDR 0 is on, 1 names
    /// no vCPU, bit 41 lies outside the affinity fields.
    #[test]
    fn with_one_vcpu_the_rows_agree_with_the_profile_table() {
        for (function, call) in [(psci::CPU_ON_64, PowerCall::CpuOn), (psci::AFFINITY_INFO_64, PowerCall::AffinityInfo)]
        {
            for (x1, target) in [(0, Target::On), (1, Target::NoVcpu), (1 << 41, Target::OutsideMpidr)] {
                let c = Call { conduit: Conduit::Hvc, function, args: [x1, 0, 0] };
                let lookup = LINUX_7_3_PROTECTED.answer(&c, 1, &NoPages);
                assert_eq!(
                    lookup.answer,
                    Answer::Code(answer(LINUX_7_3, call, target).unwrap()),
                    "{function:#x} {x1:#x}"
                );
            }
        }
    }
}
