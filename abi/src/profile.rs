//! What a hypervisor answers, call by call, as data: one table per release pvmkit
//! imitates, each row cited to its source (a measurement on the real hypervisor, or a
//! file and line of the release).
//!
//! hyp answers from these tables (its dispatcher looks the call up and carries out the
//! row's [`Answer`]), and test-guest computes what it expects from the same rows, so
//! the two cannot drift apart. A table is read top to bottom; the first row whose
//! function, conduit and condition match decides. A call no row matches gets
//! NOT_SUPPORTED with x1–x3 zeroed (what KVM's SMCCC handler does for any id it does
//! not know).
//!
//! - [`LINUX_7_3_PROTECTED`]: a protected VM under upstream Linux 7.3.4's pKVM.
//! - [`LINUX_7_3_ORDINARY`]: an ordinary VM under the same host's KVM.
//! - [`HYP_LINUX_7_3_PROTECTED`], [`HYP_LINUX_7_3_ORDINARY`]: what hyp answers in their
//!   place: the release's rows under an overlay of hyp's deliberate differences, each
//!   pinned by value in [`INTENDED_DIFFERENCES`].
//! - [`ANDROID_6_12`]: a protected VM under the Android Common Kernel android16-6.12.
//!
//! Where hyp refuses more than a release would, that is pvmkit's validator policy, not
//! the ABI: [`POLICIES`] lists each such refusal beside the tables. Where hyp cannot
//! give the release's answer at all, [`INTENDED_DIFFERENCES`] says which, with both
//! answers, and why (the conformance run tolerates exactly those values). The upstream
//! tables are checked against the real release's recorded answers ([`recording`],
//! `abi/recordings/`).
//!
//! ```
//! use pvmkit_abi::profile::{Answer, Call, Conduit, Pages, VmFacts, LINUX_7_3_PROTECTED};
//!
//! /// A VM whose pages are all private RAM.
//! struct AllPrivate;
//! impl VmFacts for AllPrivate {
//!     fn pages(&self, _ipa: u64, _count: u64) -> Pages { Pages::Private }
//!     fn any_ram(&self, _ipa: u64, _count: u64) -> bool { true }
//!     fn enrolled(&self) -> bool { false }
//! }
//! // Linux 7.3 has no MMIO guard: the features bitmap says 0x1d over HVC.
//! assert_eq!(LINUX_7_3_PROTECTED.features(&AllPrivate).0[0], 0x1d);
//! let share = Call { conduit: Conduit::Hvc, function: pvmkit_abi::kvm::MEM_SHARE, args: [0x8040_0000, 0, 0] };
//! let lookup = LINUX_7_3_PROTECTED.answer(&share, 1, &AllPrivate);
//! assert!(matches!(lookup.answer, Answer::Act(..)), "a private page is shared");
//! ```

mod android_6_12;
pub mod cpu;
pub mod debug_pmu;
mod differences;
mod linux_7_3;
pub mod recording;
pub mod teardown;
#[cfg(test)]
mod tests;
pub mod vcpu_power;

pub use android_6_12::ANDROID_6_12;
pub use differences::{Difference, Policy, INTENDED_DIFFERENCES, POLICIES};
pub use linux_7_3::{HYP_LINUX_7_3_ORDINARY, HYP_LINUX_7_3_PROTECTED, LINUX_7_3_ORDINARY, LINUX_7_3_PROTECTED};

use crate::kvm;
use crate::smccc::{self, NOT_SUPPORTED};

pub use crate::memory_map::GRANULE;

/// The instruction a call came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    /// `hvc #0`.
    Hvc,
    /// `smc #0` (trapped to the hypervisor by HCR_EL2.TSC).
    Smc,
}

/// Which conduits a row applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Over {
    /// HVC only (the hypervisor's own handler sees nothing else).
    Hvc,
    /// SMC only.
    Smc,
    /// Either.
    Either,
}

impl Over {
    const fn admits(self, conduit: Conduit) -> bool {
        matches!((self, conduit), (Self::Either, _) | (Self::Hvc, Conduit::Hvc) | (Self::Smc, Conduit::Smc))
    }
}

/// The state of the granules a memory call walks, as the hypervisor sees them. A page
/// the guest never touched counts as private: the real pKVM faults it in and retries
/// the call, so the guest cannot tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pages {
    /// Every granule is guest RAM, owned by the guest and not shared.
    Private,
    /// Every granule is shared with the host.
    Shared,
    /// Some are private and some shared.
    Mixed,
    /// At least one granule is outside guest RAM (above it, below it, a device).
    Outside,
}

/// A condition on a call's arguments or on the VM's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// Always.
    Always,
    /// Any of these argument registers is non-zero (bit 0: x1, bit 1: x2, bit 2: x3).
    ArgsSet(u8),
    /// x2 is zero.
    X2Zero,
    /// x1 is one of these values.
    X1In(&'static [u64]),
    /// x1 has a bit set outside this mask.
    X1Outside(u64),
    /// x1 is not granule aligned.
    Unaligned,
    /// The granules walked are in this state.
    Pages(Pages),
    /// Any granule walked is guest RAM (in any state).
    InRam,
    /// The VM has not enrolled with the MMIO guard.
    NotEnrolled,
    /// The page at x1 lies past the VM's IPA space ([`VmFacts::ipa_space_end`]).
    PageBeyondIpaSpace,
    /// The x2 granules from x1 (0 meaning 1) run past the VM's IPA space, or past the
    /// end of the address space (they wrap).
    RangeBeyondIpaSpace,
}

/// What a call does besides setting registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Share the walked granules with the host.
    Share,
    /// Take the walked granules back.
    Unshare,
    /// Give the granule back to the host, zeroed (the guest sees zeroes after).
    Relinquish,
    /// Register the walked granules with the MMIO guard.
    GuardMap,
    /// Enrol the VM with the MMIO guard: unregistered MMIO is refused from now on.
    Enroll,
    /// Nothing (a call kept for compatibility).
    Nothing,
}

/// What x1 carries after an [`Answer::Act`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// x1 = 0.
    Zero,
    /// x1 = how many granules were done.
    Count,
    /// x1 = the guest's x2, unchanged (a call that does nothing and says so).
    EchoX2,
}

/// A call's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// x0 = this status, x1–x3 = 0.
    Code(i64),
    /// x0 = this status, x1 = the guest's x2 unchanged, x2–x3 = 0.
    CodeEchoingX2(i64),
    /// x0–x3 exactly.
    Regs([u64; 4]),
    /// Carry out the action on the walked granules; x0 = 0, x1 per the report.
    Act(Action, Report),
    /// KVM PTP: x0:x1 = wall-clock ns, x2:x3 = the counter x1 asked for (values).
    Time,
    /// The call never returns: a synchronous external abort at the call instruction
    /// itself, FAR = 0 (the hypervisor's fake fault-in abort for an IPA no memslot holds).
    ExternalAbortAtCall,
    /// The VM powers off.
    PowerOff,
    /// The VM resets.
    Reset,
}

impl Answer {
    /// x0–x3 for the answers that are plain values.
    pub const fn regs(self) -> Option<[u64; 4]> {
        match self {
            Self::Code(code) => Some([code as u64, 0, 0, 0]),
            Self::Regs(regs) => Some(regs),
            _ => None,
        }
    }

    /// x0–x3 the answer sets for a call with `args` (x1–x3) that walked `walk`
    /// granules (`None`: not a register answer: an abort, a power-off, the time).
    pub const fn registers(self, args: [u64; 3], walk: u64) -> Option<[u64; 4]> {
        match self {
            Self::Code(code) => Some([code as u64, 0, 0, 0]),
            Self::CodeEchoingX2(code) => Some([code as u64, args[1], 0, 0]),
            Self::Regs(regs) => Some(regs),
            Self::Act(_, Report::Zero) => Some([0; 4]),
            Self::Act(_, Report::Count) => Some([0, walk, 0, 0]),
            Self::Act(_, Report::EchoX2) => Some([0, args[1], 0, 0]),
            Self::Time | Self::ExternalAbortAtCall | Self::PowerOff | Self::Reset => None,
        }
    }
}

/// One row: for these functions over these conduits, when the condition holds, this
/// answer; and where that was read or measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The function IDs (w0) the row answers: one, or the forms that behave alike (a
    /// call's SMC32 and SMC64 ids, MEM_SHARE and MEM_UNSHARE's common checks).
    pub functions: &'static [u32],
    /// The conduits the row applies to.
    pub over: Over,
    /// The condition.
    pub when: When,
    /// The result.
    pub answer: Answer,
    /// Where the row comes from.
    pub source: &'static str,
}

/// A row, for the tables.
const fn row(functions: &'static [u32], over: Over, when: When, answer: Answer, source: &'static str) -> Rule {
    Rule { functions, over, when, answer, source }
}

/// The answer to a refused argument.
const INVALID: Answer = Answer::Code(smccc::INVALID_PARAMETER);

/// KVM's UID in x0..x3, as both releases answer `VENDOR_HYP_CALL_UID`.
const KVM_UID_REGS: Answer =
    Answer::Regs([kvm::KVM_UID[0] as u64, kvm::KVM_UID[1] as u64, kvm::KVM_UID[2] as u64, kvm::KVM_UID[3] as u64]);

/// The MPIDR affinity of the boot vCPU (affinity 0); the rows that name it describe a
/// one-vCPU VM, as recorded (hyp answers a VM of several from `hyp::vcpus`).
const OWN_MPIDR: &[u64] = &[0];

/// PSCI calls whose SMC32 and SMC64 forms both releases answer alike.
mod psci_forms {
    use crate::psci;

    pub const CPU_ON: &[u32] = &[psci::CPU_ON, psci::CPU_ON_64];
    pub const AFFINITY_INFO: &[u32] = &[psci::AFFINITY_INFO, psci::AFFINITY_INFO_64];
    pub const CPU_SUSPEND: &[u32] = &[psci::CPU_SUSPEND, psci::CPU_SUSPEND_64];
    pub const SYSTEM_RESET2: &[u32] = &[psci::SYSTEM_RESET2, psci::SYSTEM_RESET2_64];
    pub const SYSTEM_OFF2: &[u32] = &[psci::SYSTEM_OFF2, psci::SYSTEM_OFF2_64];
}

/// What the hypervisor knows about the VM when it answers.
pub trait VmFacts {
    /// The state of `count` granules from `ipa` (`ipa` granule aligned, no overflow).
    fn pages(&self, ipa: u64, count: u64) -> Pages;
    /// Whether any of `count` granules from `ipa` is guest RAM.
    fn any_ram(&self, ipa: u64, count: u64) -> bool;
    /// Whether the VM is enrolled with the MMIO guard.
    fn enrolled(&self) -> bool;
    /// The first IPA past the VM's IPA space (by default none is known: no limit).
    fn ipa_space_end(&self) -> u64 {
        u64::MAX
    }
}

/// One call as the hypervisor receives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    /// The conduit.
    pub conduit: Conduit,
    /// w0: the function ID.
    pub function: u32,
    /// x1–x3.
    pub args: [u64; 3],
}

/// What a hypervisor offers a VM: its rows, and how its ranged calls walk.
#[derive(Clone, Copy, Debug)]
pub struct Profile {
    /// The release, as the README and reports name it.
    pub release: &'static str,
    /// The rows, read in order.
    pub rules: &'static [&'static [Rule]],
    /// Functions whose x2 is a granule count (0 meaning 1).
    pub ranged: &'static [u32],
    /// The most granules one ranged call walks; the hypervisor may stop earlier and
    /// say so in x1 (a "short count"), and the guest must call again for the rest.
    pub range_limit: u64,
    /// Whether the MMIO guard is enforced from the VM's first instruction when it
    /// boots through pvmfw (Android), or only after ENROLL.
    pub guard_enrolled_with_pvmfw: bool,
    /// The ID-register fields the VM sees ([`cpu::ID_FIELDS`]), by probe name, where the
    /// table makes a claim (the value depends on the host's CPU as well: these are
    /// Debian's 7.3.4 under QEMU's `max` CPU, as recorded).
    pub id_fields: &'static [(&'static str, u64)],
    /// What PMU and debug register accesses do ([`debug_pmu`]); `None` where the
    /// release's source has not been read for it.
    pub register_access: Option<debug_pmu::AccessRules>,
    /// What the host reads of the VM's memory once the VM is torn down
    /// ([`teardown::Teardown`]); `None` where not known.
    pub teardown: Option<teardown::Teardown>,
}

/// The answer the table gives, and the row that gave it (`None`: no row matched).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// The answer.
    pub answer: Answer,
    /// The row.
    pub rule: Option<&'static Rule>,
    /// How many granules the call walks (1 for a call that is not ranged).
    pub walk: u64,
}

impl Profile {
    /// How many granules a call walks before any short count: x2 (0 meaning 1) capped
    /// at the range limit for a ranged function, else 1.
    pub fn walk(&self, call: &Call) -> u64 {
        if self.ranged.contains(&call.function) {
            call.args[1].clamp(1, self.range_limit)
        } else {
            1
        }
    }

    /// Looks a call up: the first matching row's answer, or NOT_SUPPORTED.
    /// `walk` is the number of granules a memory condition looks at (at most
    /// [`Profile::walk`]; smaller when the hypervisor stops short).
    pub fn answer(&self, call: &Call, walk: u64, vm: &impl VmFacts) -> Lookup {
        for table in self.rules {
            for rule in table.iter() {
                if rule.functions.contains(&call.function)
                    && rule.over.admits(call.conduit)
                    && holds(rule.when, call, walk, vm)
                {
                    return Lookup { answer: rule.answer, rule: Some(rule), walk };
                }
            }
        }
        Lookup { answer: Answer::Code(NOT_SUPPORTED), rule: None, walk }
    }

    /// The features bitmap this profile's `KVM_FEATURES` returns over HVC.
    pub fn features(&self, vm: &impl VmFacts) -> kvm::Features {
        let call = Call { conduit: Conduit::Hvc, function: kvm::KVM_FEATURES, args: [0; 3] };
        match self.answer(&call, 1, vm).answer.regs() {
            Some(regs) => kvm::Features::from_regs(regs),
            None => kvm::Features::NONE,
        }
    }
}

/// The rows of `profile` that rest on inference rather than the source or a
/// measurement (their source says `inference:`).
pub fn inference_rows(profile: &Profile) -> impl Iterator<Item = &'static Rule> {
    profile.rules.iter().flat_map(|t| t.iter()).filter(|r| r.source.contains("inference:"))
}

fn holds(when: When, call: &Call, walk: u64, vm: &impl VmFacts) -> bool {
    let [x1, x2, x3] = call.args;
    let walked = || {
        let last = (walk - 1).checked_mul(GRANULE).and_then(|span| x1.checked_add(span));
        match last {
            Some(_) => vm.pages(x1 & !(GRANULE - 1), walk),
            None => Pages::Outside,
        }
    };
    match when {
        When::Always => true,
        When::ArgsSet(mask) => [x1, x2, x3].iter().enumerate().any(|(i, &x)| mask & (1 << i) != 0 && x != 0),
        When::X2Zero => x2 == 0,
        When::X1In(values) => values.contains(&x1),
        When::X1Outside(mask) => x1 & !mask != 0,
        When::Unaligned => !x1.is_multiple_of(GRANULE),
        When::Pages(state) => walked() == state,
        When::InRam => vm.any_ram(x1 & !(GRANULE - 1), walk),
        When::NotEnrolled => !vm.enrolled(),
        When::PageBeyondIpaSpace => x1.checked_add(GRANULE).is_none_or(|end| end > vm.ipa_space_end()),
        When::RangeBeyondIpaSpace => {
            let bytes = x2.max(1).checked_mul(GRANULE);
            bytes.and_then(|b| x1.checked_add(b)).is_none_or(|end| end > vm.ipa_space_end())
        }
    }
}
