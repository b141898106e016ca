//! Counting the guest's own instructions with the PMU, for measurements that repeat:
//! on a VM whose PMU counts retired instructions (hyp under QEMU's `-icount`), the
//! count of a piece of guest code is the same on every run, however loaded the host.
//! Only EL1 and EL0 are counted, never the hypervisor's work.
//!
//! A VM without a usable PMU (the real pKVM hides it from protected VMs, and QEMU counts
//! instructions only with `-icount`) gets `None`.
//!
//! ```ignore
//! use guest_lib::instructions::InstructionCounter;
//!
//! if let Some(counter) = InstructionCounter::start() {
//!     let before = counter.read();
//!     work();
//!     println!("{} instructions", counter.since(before));
//! }
//! ```

/// The guest's instruction counter: PMU event counter 0, counting INST_RETIRED at EL1
/// and EL0.
#[derive(Clone, Copy, Debug)]
pub struct InstructionCounter(());

impl InstructionCounter {
    /// Starts the counter, or `None` where the PMU is absent, hidden or not counting.
    #[cfg(any(target_os = "none", doc))]
    pub fn start() -> Option<Self> {
        use crate::register_gaps;
        use aarch64_cpu::registers::{Readable, ID_AA64DFR0_EL1};
        let version = ID_AA64DFR0_EL1.read(ID_AA64DFR0_EL1::PMUVer);
        if !pmu_implemented(version) || register_gaps::pmu_event_counters() == 0 {
            return None;
        }
        register_gaps::pmu_start_counter0(register_gaps::PMEVTYPER_INST_RETIRED_EL1_EL0);
        let counter = InstructionCounter(());
        let first = counter.read();
        // A handful of instructions must show.
        core::hint::black_box(first);
        (counter.read() != first).then_some(counter)
    }

    /// The count now (32 bits, wrapping: take differences with [`Self::since`]).
    #[cfg(any(target_os = "none", doc))]
    pub fn read(&self) -> u32 {
        crate::register_gaps::pmu_counter0()
    }

    /// Instructions counted since the reading `before`.
    #[cfg(any(target_os = "none", doc))]
    pub fn since(&self, before: u32) -> u64 {
        u64::from(self.read().wrapping_sub(before))
    }
}

/// Whether ID_AA64DFR0_EL1.PMUVer names a PMUv3 (0: none; 0xf: IMPLEMENTATION DEFINED,
/// not PMUv3).
pub fn pmu_implemented(pmu_version: u64) -> bool {
    (1..0xf).contains(&pmu_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_pmuv3_is_used() {
        assert!(!pmu_implemented(0));
        assert!(pmu_implemented(1));
        assert!(pmu_implemented(6));
        assert!(!pmu_implemented(0xf));
    }
}
