//! Telling a VM whose vCPUs are all powered off from one that is merely quiet. KVM
//! handles PSCI itself, so a vCPU that calls CPU_OFF just waits inside KVM_RUN for a
//! CPU_ON that, when it was the last one running, never comes. When no vCPU has left
//! KVM_RUN for a while, the VMM wakes them all ([`crate::kick`]); each then reports
//! whether KVM has it stopped. All stopped: nothing can run again, and the VM ends
//! `reason=all_vcpus_off`, as under hyp.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How long without any exit before the vCPUs are asked (a guest waiting in WFI for
/// its timer is asked too, and goes on).
pub const QUIET: Duration = Duration::from_secs(1);
/// How long the asked vCPUs get to report.
pub const ANSWER: Duration = Duration::from_millis(100);

/// What the vCPU threads report.
pub struct Census {
    /// Per vCPU: KVM had it stopped when it last reported.
    stopped: Vec<AtomicBool>,
    /// Every exit of every vCPU, counted.
    exits: AtomicU64,
}

impl Census {
    /// `vcpus` vCPUs, none known to be stopped.
    pub fn new(vcpus: usize) -> Self {
        Self { stopped: (0..vcpus).map(|_| AtomicBool::new(false)).collect(), exits: AtomicU64::new(0) }
    }

    /// vCPU `index` left KVM_RUN with an exit to serve: it runs.
    pub fn exited(&self, index: usize) {
        self.exits.fetch_add(1, Ordering::Relaxed);
        if let Some(s) = self.stopped.get(index) {
            s.store(false, Ordering::Release);
        }
    }

    /// vCPU `index`, woken out of KVM_RUN, says whether KVM has it stopped.
    pub fn woken(&self, index: usize, stopped: bool) {
        if let Some(s) = self.stopped.get(index) {
            s.store(stopped, Ordering::Release);
        }
    }

    /// Exits so far.
    pub fn exits(&self) -> u64 {
        self.exits.load(Ordering::Relaxed)
    }

    /// Whether every vCPU reported itself stopped and none has exited since `exits`.
    pub fn all_stopped_since(&self, exits: u64) -> bool {
        self.exits() == exits && self.stopped.iter().all(|s| s.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_every_vcpu_stopped_and_no_exit_since_is_all_off() {
        let census = Census::new(2);
        let before = census.exits();
        census.woken(0, true);
        assert!(!census.all_stopped_since(before), "vCPU 1 has not reported");
        census.woken(1, true);
        assert!(census.all_stopped_since(before));
        // A CPU_ON between the question and the answer: vCPU 1 runs again and exits.
        census.exited(1);
        assert!(!census.all_stopped_since(before));
        let now = census.exits();
        assert!(!census.all_stopped_since(now), "an exit clears its stop");
        census.woken(1, true);
        assert!(census.all_stopped_since(now));
        census.woken(0, false);
        assert!(!census.all_stopped_since(now), "a vCPU waiting in WFI is not off");
    }
}
