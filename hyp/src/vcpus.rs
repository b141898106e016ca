//! The VM's vCPUs and their power, as PSCI CPU_ON, CPU_OFF and AFFINITY_INFO change
//! and report it when the VM has more than one. vCPU `i` has MPIDR affinity `i` (Aff0),
//! as QEMU `virt` and KVM number them; vCPU 0 starts on, the others off.
//!
//! Here is which kind of target a call names ([`Target`]): an affinity with bits
//! outside MPIDR's affinity fields, a level above 3, one no vCPU has, or the power of
//! the vCPUs that match (a started vCPU counts as on at once: no ON_PENDING; any entry
//! address is taken; AFFINITY_INFO at levels 0 to 3 masks the lower affinity fields
//! away, on if any matching vCPU is). What each kind answers is the table's
//! ([`pvmkit_abi::profile::vcpu_power`], upstream KVM's, measured on the real pKVM).

use pvmkit_abi::profile::vcpu_power::{self, PowerCall, PowerRow, Target};
use pvmkit_abi::psci::{INVALID_PARAMETERS, MPIDR_HWID_MASK, SUCCESS};

/// The most vCPUs a VM has.
pub const MAX_VCPUS: usize = pvmkit_abi::bundle::MAX_VCPUS as usize;

/// AFFINITY_INFO's answers.
pub const AFFINITY_ON: i64 = pvmkit_abi::psci::AFFINITY_LEVEL_ON;
/// AFFINITY_INFO: every matching vCPU is off.
pub const AFFINITY_OFF: i64 = pvmkit_abi::psci::AFFINITY_LEVEL_OFF;

/// The answers hyp gives ([`vcpu_power::LINUX_7_3`], for both ABI forms).
const ROWS: &[PowerRow] = vcpu_power::LINUX_7_3;

fn answer(call: PowerCall, target: Target) -> i64 {
    // Every kind a call can name has a row (the table's tests); a missing one would
    // refuse rather than act.
    vcpu_power::answer(ROWS, call, target).unwrap_or(INVALID_PARAMETERS)
}

/// A vCPU's power.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Power {
    /// Powered off: CPU_ON may start it.
    Off,
    /// Started by CPU_ON; its CPU has not entered it yet.
    Starting {
        /// Where it starts (EL1h, MMU off).
        entry: u64,
        /// Its x0.
        context: u64,
    },
    /// Running.
    On,
}

/// The VM's vCPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vcpus {
    count: usize,
    power: [Power; MAX_VCPUS],
}

impl Vcpus {
    /// `count` vCPUs (1 to [`MAX_VCPUS`], clamped), vCPU 0 on.
    pub fn new(count: usize) -> Self {
        let mut power = [Power::Off; MAX_VCPUS];
        power[0] = Power::On;
        Self { count: count.clamp(1, MAX_VCPUS), power }
    }

    /// How many vCPUs the VM has.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The vCPU whose MPIDR affinity is exactly `mpidr`, if the VM has it.
    pub fn index(&self, mpidr: u64) -> Option<usize> {
        (mpidr & !0xff == 0 && (mpidr as usize) < self.count).then_some(mpidr as usize)
    }

    /// vCPU `i`'s power.
    pub fn power(&self, i: usize) -> Option<Power> {
        self.power.get(i).copied().filter(|_| i < self.count)
    }

    /// How many vCPUs are on or starting.
    pub fn running(&self) -> usize {
        self.power[..self.count].iter().filter(|p| **p != Power::Off).count()
    }

    /// CPU_ON of `target` at `entry` with `context` in x0: the PSCI answer.
    pub fn cpu_on(&mut self, target: u64, entry: u64, context: u64) -> i64 {
        let kind = self.cpu_on_target(target);
        let answer = answer(PowerCall::CpuOn, kind);
        if let (SUCCESS, Target::Off, Some(i)) = (answer, kind, self.index(target)) {
            self.power[i] = Power::Starting { entry, context };
        }
        answer
    }

    /// What CPU_ON's target is.
    pub fn cpu_on_target(&self, target: u64) -> Target {
        if target & !MPIDR_HWID_MASK != 0 {
            return Target::OutsideMpidr;
        }
        match self.index(target).map(|i| self.power[i]) {
            None => Target::NoVcpu,
            Some(Power::Off) => Target::Off,
            Some(_) => Target::On,
        }
    }

    /// CPU_OFF of the calling vCPU `i` (which then waits, off, for a CPU_ON).
    pub fn cpu_off(&mut self, i: usize) {
        if i < self.count {
            self.power[i] = Power::Off;
        }
    }

    /// Where vCPU `i` starts, if CPU_ON started it; it is on from now.
    pub fn take_start(&mut self, i: usize) -> Option<(u64, u64)> {
        match self.power(i)? {
            Power::Starting { entry, context } => {
                self.power[i] = Power::On;
                Some((entry, context))
            }
            _ => None,
        }
    }

    /// AFFINITY_INFO of `target` at `lowest_level`: the PSCI answer.
    pub fn affinity_info(&self, target: u64, lowest_level: u64) -> i64 {
        answer(PowerCall::AffinityInfo, self.affinity_target(target, lowest_level))
    }

    /// What AFFINITY_INFO's target is.
    pub fn affinity_target(&self, target: u64, lowest_level: u64) -> Target {
        if target & !MPIDR_HWID_MASK != 0 {
            return Target::OutsideMpidr;
        }
        // Level n ignores affinity fields 0..n (Aff3 sits at bits 32..40).
        let mask = match lowest_level {
            0 => MPIDR_HWID_MASK,
            1 => MPIDR_HWID_MASK & !0xff,
            2 => MPIDR_HWID_MASK & !0xffff,
            3 => MPIDR_HWID_MASK & !0xff_ffff,
            _ => return Target::BadLevel,
        };
        let mut matching = (0..self.count).filter(|&i| i as u64 & mask == target & mask).map(|i| self.power[i]);
        match matching.next() {
            None => Target::NoVcpu,
            Some(first) if first != Power::Off || matching.any(|p| p != Power::Off) => Target::On,
            Some(_) => Target::Off,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pvmkit_abi::psci::ALREADY_ON;

    #[test]
    fn cpu_on_starts_an_off_vcpu_once() {
        let mut v = Vcpus::new(4);
        assert_eq!((v.count(), v.running()), (4, 1));
        assert_eq!(v.cpu_on(0, 0x8020_0000, 0), ALREADY_ON, "the boot vCPU");
        assert_eq!(v.cpu_on(2, 0x8020_0000, 7), SUCCESS);
        assert_eq!(v.power(2), Some(Power::Starting { entry: 0x8020_0000, context: 7 }));
        assert_eq!(v.cpu_on(2, 0x8020_0000, 7), ALREADY_ON, "started counts as on: no ON_PENDING");
        assert_eq!(v.affinity_info(2, 0), AFFINITY_ON);
        assert_eq!(v.take_start(2), Some((0x8020_0000, 7)));
        assert_eq!(v.take_start(2), None, "taken once");
        assert_eq!(v.running(), 2);
        // Any entry is taken (KVM checks none: measured, CPU_ON(1, 0, 0) succeeds).
        assert_eq!(v.cpu_on(1, 0, 0), SUCCESS);
    }

    #[test]
    fn unknown_and_malformed_targets_are_invalid() {
        let mut v = Vcpus::new(2);
        for target in [2, 8, 0x100, 1 << 40, 1 << 31] {
            assert_eq!(v.cpu_on(target, 0, 0), INVALID_PARAMETERS, "{target:#x}");
        }
        assert_eq!(v.affinity_info(5, 0), INVALID_PARAMETERS);
        assert_eq!(v.affinity_info(1 << 24, 0), INVALID_PARAMETERS, "bits outside the affinity fields");
        assert_eq!(v.affinity_info(0, 4), INVALID_PARAMETERS, "no level 4");
    }

    #[test]
    fn cpu_off_and_affinity_info() {
        let mut v = Vcpus::new(3);
        assert_eq!((v.affinity_info(0, 0), v.affinity_info(1, 0)), (AFFINITY_ON, AFFINITY_OFF));
        // Level 1: Aff0 ignored, every vCPU matches, one is on.
        assert_eq!(v.affinity_info(0x7, 1), AFFINITY_ON);
        v.cpu_off(0);
        assert_eq!((v.running(), v.affinity_info(0, 0), v.affinity_info(2, 1)), (0, AFFINITY_OFF, AFFINITY_OFF));
        assert_eq!(v.cpu_on(0, 0x1000, 1), SUCCESS, "an off boot vCPU starts again");
        let one = Vcpus::new(0);
        assert_eq!((one.count(), one.power(1)), (1, None), "clamped to one");
        assert_eq!(Vcpus::new(99).count(), MAX_VCPUS);
    }
}
