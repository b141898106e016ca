//! Answering the guest's HVC and SMC calls from the profile of the release hyp
//! imitates ([`pvmkit_abi::profile`]): the table decides every answer; this module only
//! gathers the facts a row asks about and carries out the row's action.
//!
//! - protected, `abi=upstream`: [`pvmkit_abi::profile::HYP_LINUX_7_3_PROTECTED`] (Linux 7.3.4's
//!   rows under hyp's overlay of intended differences)
//! - protected, `abi=android`: [`pvmkit_abi::profile::ANDROID_6_12`]
//! - unprotected: [`pvmkit_abi::profile::HYP_LINUX_7_3_ORDINARY`]
//!
//! Besides the profile hyp answers one call of its own, `HYP_STATS`, and only when
//! asked to (`stats=on`). Where hyp refuses what the release would do (its validator
//! [`pvmkit_abi::profile::POLICIES`]), the outcome names the policy so hyp can say so.

use pvmkit_abi::address::{Ipa, Page};
use pvmkit_abi::hyp_options::{AbiForm, VmMode, HYP_STATS, HYP_STATS_WFX, HYP_STATS_WORK};
use pvmkit_abi::profile::{
    Action, Answer, Call, Conduit, Pages, Profile, VmFacts, ANDROID_6_12, HYP_LINUX_7_3_ORDINARY,
    HYP_LINUX_7_3_PROTECTED,
};
use pvmkit_abi::smccc::{INVALID_PARAMETER, NOT_SUPPORTED};

use crate::pkvm::action_error::ActionError;
pub use crate::pkvm::action_error::Inconsistency;
use crate::pkvm::guard_calls;
use crate::pkvm::memory_calls::{self, DeviceHeld, DeviceHolds, GuestMemory};
use crate::pkvm::mmio_guard::GuardTable;
use crate::pkvm::ownership::{Ownership, PageState, GRANULE};

/// What the VM is allowed to see of hyp's services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Services {
    /// The VM's mode, from hyp's options.
    pub mode: VmMode,
    /// Whether `HYP_STATS` is answered (hyp option `stats=on`).
    pub stats: bool,
    /// Whether ranged calls stop after a random number of granules (hyp option
    /// `short-counts=on`), as the Android hypervisor is free to.
    pub short_counts: bool,
}

impl Services {
    /// The caps on the ID-register fields the VM sees (`pvmkit_abi::profile::cpu`): the
    /// recorded real pKVM's, for a protected VM in the upstream form (the Android
    /// release is not measured, an ordinary VM is not sanitized).
    pub fn id_caps(&self) -> &'static [(&'static str, u64)] {
        match self.mode {
            VmMode::Protected(AbiForm::Upstream) => pvmkit_abi::profile::LINUX_7_3_PROTECTED.id_fields,
            _ => &[],
        }
    }

    /// The release this VM's answers come from.
    pub fn profile(&self) -> &'static Profile {
        match self.mode {
            VmMode::Protected(AbiForm::Upstream) => &HYP_LINUX_7_3_PROTECTED,
            VmMode::Protected(AbiForm::Android) => &ANDROID_6_12,
            VmMode::Unprotected => &HYP_LINUX_7_3_ORDINARY,
        }
    }
}

/// Guest exits hyp counted, for `HYP_STATS`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitCounters {
    /// Every exit.
    pub total: u64,
    /// Data aborts (MMIO).
    pub data_aborts: u64,
    /// Interrupts (hyp's tick).
    pub interrupts: u64,
    /// WFI/WFE trapped (HCR_EL2.TWI/TWE).
    pub wfx: u64,
    /// hyp's counted instructions (`hyp::trap::work`), when its meter runs.
    pub hyp_work: Option<u64>,
}

/// The counters KVM PTP reports, read when the call arrives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    /// Nanoseconds of hyp's clock (hyp has no wall clock: time since the counter's zero).
    pub nanoseconds: u64,
    /// The guest's virtual counter.
    pub virtual_count: u64,
    /// The physical counter.
    pub physical_count: u64,
}

impl Clock {
    /// The clock the counters give: the physical count `physical` at `frequency` Hz
    /// (a frequency of 0, which no timer has, taken as 1), and the guest's virtual
    /// count, `cntvoff` behind it (wrapping, as the architecture subtracts).
    pub fn from_counters(physical: u64, frequency: u64, cntvoff: u64) -> Self {
        let nanoseconds = u128::from(physical) * 1_000_000_000 / u128::from(frequency.max(1));
        Clock {
            nanoseconds: u64::try_from(nanoseconds).unwrap_or(u64::MAX),
            virtual_count: physical.wrapping_sub(cntvoff),
            physical_count: physical,
        }
    }
}

/// What to do after a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Write x0..x3 and resume the guest after the call.
    Return([u64; 4]),
    /// hyp's validator refused what the release would have done: write x0..x3, resume,
    /// and say so (the policy's name, and the granule that made it fire).
    Refused {
        /// The registers.
        regs: [u64; 4],
        /// The policy ([`pvmkit_abi::profile::POLICIES`]).
        policy: &'static str,
        /// The granule.
        ipa: Ipa,
    },
    /// Deliver a synchronous external abort at the call instruction, FAR = 0.
    ExternalAbortAtCall,
    /// The guest asked to power off.
    SystemOff,
    /// The guest asked to reset.
    SystemReset,
    /// The guest took back a page a device holds: end the VM with a violation naming
    /// the page, its holder and the calling vCPU.
    DeviceHeld(DeviceHeld),
    /// hyp's bookkeeping disagrees with the profile's facts: end the VM, naming it.
    Inconsistent(Inconsistency),
}

/// A small, repeatable source of short counts (xorshift64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShortCounts(u64);

impl ShortCounts {
    /// A generator seeded with `seed` (0 is replaced: xorshift never leaves 0).
    pub const fn new(seed: u64) -> Self {
        Self(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }

    /// A count in `1..=walk`.
    pub fn pick(&mut self, walk: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        1 + x % walk.max(1)
    }
}

/// What a call may change besides the guest's registers.
pub struct VmState<'s, 'o, M: GuestMemory> {
    /// Page ownership.
    pub ownership: &'s mut Ownership<'o>,
    /// Guest memory, for calls that write it.
    pub memory: &'s mut M,
    /// The MMIO guard's registered granules.
    pub guard: &'s mut GuardTable,
    /// Which device holds a page, for MEM_UNSHARE.
    pub devices: &'s mut dyn DeviceHolds,
    /// Exits so far.
    pub exits: ExitCounters,
    /// Reads the counters, for PTP (only a PTP call pays for it).
    pub clock: fn() -> Clock,
    /// The short-count generator.
    pub short: &'s mut ShortCounts,
}

/// The facts a profile row asks about, read from hyp's state.
struct Facts<'a, 'o> {
    ownership: &'a Ownership<'o>,
    guard: &'a GuardTable,
}

impl VmFacts for Facts<'_, '_> {
    fn pages(&self, ipa: u64, count: u64) -> Pages {
        let mut seen = None;
        for i in 0..count {
            let page = Ipa(ipa).checked_offset(i * GRANULE).and_then(Page::at);
            let shared = match page.map(|page| self.ownership.state(page)) {
                Some(Ok(PageState::Private)) => false,
                Some(Ok(PageState::Shared { .. })) => true,
                _ => return Pages::Outside,
            };
            if seen.is_some_and(|s| s != shared) {
                return Pages::Mixed;
            }
            seen = Some(shared);
        }
        if seen == Some(true) {
            Pages::Shared
        } else {
            Pages::Private
        }
    }

    fn any_ram(&self, ipa: u64, count: u64) -> bool {
        (0..count).any(|i| {
            Ipa(ipa)
                .checked_offset(i * GRANULE)
                .and_then(Page::at)
                .is_some_and(|page| self.ownership.state(page).is_ok())
        })
    }

    fn enrolled(&self) -> bool {
        self.guard.is_enforcing()
    }

    fn ipa_space_end(&self) -> u64 {
        1 << crate::platform::stage2::IPA_BITS
    }
}

/// Answers one call that came through `conduit`. `x0` holds the function ID (only w0
/// counts, as SMCCC says) and `args` hold x1..x3.
pub fn dispatch<M: GuestMemory>(
    services: &Services,
    vm: VmState<'_, '_, M>,
    conduit: Conduit,
    x0: u64,
    args: [u64; 3],
) -> Outcome {
    let call = Call { conduit, function: x0 as u32, args };
    if call.function == HYP_STATS && services.stats {
        let e = vm.exits;
        return Outcome::Return(match args[0] {
            HYP_STATS_WFX => [0, e.wfx, 0, 0],
            HYP_STATS_WORK => match e.hyp_work {
                Some(work) => [0, work, 0, 0],
                None => [NOT_SUPPORTED as u64, 0, 0, 0],
            },
            _ => [0, e.total, e.data_aborts, e.interrupts],
        });
    }
    let profile = services.profile();
    let mut walk = profile.walk(&call);
    if services.short_counts && walk > 1 {
        walk = vm.short.pick(walk);
    }
    let facts = Facts { ownership: vm.ownership, guard: vm.guard };
    let lookup = profile.answer(&call, walk, &facts);
    let ipa = args[0];
    match lookup.answer {
        Answer::Code(_) | Answer::CodeEchoingX2(_) | Answer::Regs(_) => {
            Outcome::Return(lookup.answer.registers(args, walk).unwrap_or_default())
        }
        Answer::Time => {
            let clock = (vm.clock)();
            let counter =
                if args[0] == pvmkit_abi::kvm::PTP_PHYSICAL { clock.physical_count } else { clock.virtual_count };
            let ns = clock.nanoseconds;
            Outcome::Return([ns >> 32, ns & 0xffff_ffff, counter >> 32, counter & 0xffff_ffff])
        }
        Answer::ExternalAbortAtCall => Outcome::ExternalAbortAtCall,
        Answer::PowerOff => Outcome::SystemOff,
        Answer::Reset => Outcome::SystemReset,
        Answer::Act(action, report) => {
            // The granule a walk starts at: the profile let only an aligned one through.
            let first = || {
                Page::at(Ipa(ipa)).ok_or(ActionError::Inconsistent(Inconsistency {
                    ipa: Ipa(ipa),
                    what: "a walk the profile allowed starts inside a granule",
                }))
            };
            let done = match action {
                Action::Share => first().and_then(|first| memory_calls::share(vm.ownership, first, walk)),
                Action::Unshare => {
                    first().and_then(|first| memory_calls::unshare(vm.ownership, vm.devices, first, walk))
                }
                // The page holding x1 (6.12 checks no alignment).
                Action::Relinquish => memory_calls::relinquish(vm.ownership, vm.memory, Ipa(ipa).page()),
                Action::GuardMap => {
                    first().and_then(|first| guard_calls::map(vm.guard, vm.ownership.ram(), first, walk))
                }
                Action::Enroll => {
                    vm.guard.enroll();
                    Ok(())
                }
                Action::Nothing => Ok(()),
            };
            match done {
                Ok(()) => Outcome::Return(Answer::Act(action, report).registers(args, walk).unwrap_or_default()),
                Err(ActionError::Policy(refusal)) => Outcome::Refused {
                    regs: [INVALID_PARAMETER as u64, 0, 0, 0],
                    policy: refusal.policy,
                    ipa: refusal.ipa,
                },
                Err(ActionError::DeviceHeld(held)) => Outcome::DeviceHeld(held),
                Err(ActionError::Inconsistent(inconsistency)) => Outcome::Inconsistent(inconsistency),
            }
        }
    }
}

#[cfg(test)]
mod tests;
