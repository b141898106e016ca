//! Answering the guest's HVC and SMC calls (both conduits reach the same dispatcher).
//!
//! What hyp implements: SMCCC_VERSION, SMCCC_ARCH_FEATURES, the vendor UID (KVM's), the
//! KVM features bitmap (advertising exactly the services implemented for the VM's mode),
//! PSCI_VERSION, PSCI_FEATURES, SYSTEM_OFF and SYSTEM_RESET; for a protected VM also the
//! pKVM memory calls of its ABI form ([`crate::memory_calls`]). Every other function ID
//! returns NOT_SUPPORTED in x0 and leaves everything else as it was.

use abi::hyp_options::{AbiForm, VmMode};
use abi::kvm::{self, func, Features};
use abi::{psci, smccc};

use crate::guard_calls::{self, GuardVm};
use crate::memory_calls::{self, Direction, GuestMemory};
use crate::mmio_guard::GuardTable;
use crate::ownership::Ownership;

/// What the VM is allowed to see of hyp's services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Services {
    /// The VM's mode, from hyp's options.
    pub mode: VmMode,
    /// Whether `HYP_STATS` is answered (hyp option `stats=on`).
    pub stats: bool,
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
}

impl Services {
    /// The features bitmap hyp advertises: exactly the vendor-hypervisor functions it
    /// implements for this mode.
    pub fn features(&self) -> Features {
        match self.mode {
            VmMode::Protected(AbiForm::Upstream) => Features::with(&[
                func::FEATURES,
                func::HYP_MEMINFO,
                func::MEM_SHARE,
                func::MEM_UNSHARE,
                func::MMIO_GUARD_MAP,
            ]),
            VmMode::Protected(AbiForm::Android) => Features::with(&[
                func::FEATURES,
                func::HYP_MEMINFO,
                func::MEM_SHARE,
                func::MEM_UNSHARE,
                func::MMIO_GUARD_INFO,
                func::MMIO_GUARD_ENROLL,
                func::MMIO_GUARD_MAP,
                func::MMIO_GUARD_UNMAP,
                func::MEM_RELINQUISH,
                func::MMIO_RGUARD_MAP,
                func::MMIO_RGUARD_UNMAP,
            ]),
            VmMode::Unprotected => Features::with(&[func::FEATURES]),
        }
    }

    /// The ABI form, for a protected VM.
    pub fn protected_form(&self) -> Option<AbiForm> {
        match self.mode {
            VmMode::Protected(form) => Some(form),
            VmMode::Unprotected => None,
        }
    }
}

/// The registers a call returns: the first `count` of x0..x3 are written back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Values for x0..x3.
    pub regs: [u64; 4],
    /// How many of them the call defines.
    pub count: usize,
}

impl Reply {
    /// A reply that sets only x0.
    pub const fn x0(value: i64) -> Self {
        Self { regs: [value as u64, 0, 0, 0], count: 1 }
    }

    /// A reply that sets x0..x3.
    pub const fn four(regs: [u64; 4]) -> Self {
        Self { regs, count: 4 }
    }
}

/// What to do after a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Write the reply into the guest's registers and resume it.
    Return(Reply),
    /// The guest asked for PSCI SYSTEM_OFF.
    SystemOff,
    /// The guest asked for PSCI SYSTEM_RESET.
    SystemReset,
}

/// PSCI functions hyp implements, as `PSCI_FEATURES` reports them (SMCCC_VERSION is
/// listed because PSCI 1.0 uses it to announce SMCCC 1.1).
const PSCI_IMPLEMENTED: [u32; 5] =
    [psci::PSCI_VERSION, psci::PSCI_FEATURES, psci::SYSTEM_OFF, psci::SYSTEM_RESET, smccc::SMCCC_VERSION];

/// Arm architecture calls hyp implements, as `SMCCC_ARCH_FEATURES` reports them.
const ARCH_IMPLEMENTED: [u32; 2] = [smccc::SMCCC_VERSION, smccc::SMCCC_ARCH_FEATURES];

/// What a call may change besides the guest's registers.
pub struct VmState<'s, 'o, M: GuestMemory> {
    /// Page ownership.
    pub ownership: &'s mut Ownership<'o>,
    /// Guest memory, for calls that write it.
    pub memory: &'s mut M,
    /// The MMIO guard's registered granules.
    pub guard: &'s mut GuardTable,
    /// What guard calls check against.
    pub guard_vm: GuardVm<'s>,
    /// Exits so far.
    pub exits: ExitCounters,
}

/// Answers one call. `x0` holds the function ID (only w0 counts, as SMCCC says) and
/// `args` hold x1..x3.
pub fn dispatch<M: GuestMemory>(services: &Services, vm: VmState<'_, '_, M>, x0: u64, args: [u64; 3]) -> Outcome {
    let function = x0 as u32;
    if let Some(form) = services.protected_form() {
        let advertised = smccc::owner_of(function) == smccc::owner::VENDOR_HYP
            && function & smccc::CONV_64 != 0
            && services.features().has(smccc::number_of(function));
        let reply = match function {
            _ if !advertised => None,
            kvm::HYP_MEMINFO => Some(memory_calls::meminfo(form, args)),
            kvm::MEM_SHARE => Some(memory_calls::share_or_unshare(form, Direction::Share, vm.ownership, args)),
            kvm::MEM_UNSHARE => Some(memory_calls::share_or_unshare(form, Direction::Unshare, vm.ownership, args)),
            kvm::MEM_RELINQUISH => Some(memory_calls::relinquish(vm.ownership, vm.memory, args)),
            kvm::MMIO_GUARD_INFO => Some(guard_calls::info(args)),
            kvm::MMIO_GUARD_ENROLL => Some(guard_calls::enroll()),
            kvm::MMIO_GUARD_MAP => Some(guard_calls::map(form, vm.guard, vm.guard_vm, args)),
            kvm::MMIO_GUARD_UNMAP => Some(guard_calls::unmap(vm.guard, args)),
            kvm::MMIO_RGUARD_MAP => Some(guard_calls::ranged(true, vm.guard, vm.guard_vm, args)),
            kvm::MMIO_RGUARD_UNMAP => Some(guard_calls::ranged(false, vm.guard, vm.guard_vm, args)),
            _ => None,
        };
        if let Some(reply) = reply {
            return Outcome::Return(reply);
        }
    }
    let asked = args[0] as u32;
    let supported = |yes: bool| Reply::x0(if yes { smccc::SUCCESS } else { smccc::NOT_SUPPORTED });
    let reply = match function {
        smccc::SMCCC_VERSION => Reply::x0(smccc::VERSION_1_1 as i64),
        smccc::SMCCC_ARCH_FEATURES => supported(ARCH_IMPLEMENTED.contains(&asked)),
        kvm::VENDOR_HYP_CALL_UID => Reply::four(kvm::KVM_UID.map(u64::from)),
        abi::hyp_options::HYP_STATS if services.stats => match args[0] {
            abi::hyp_options::HYP_STATS_WFX => Reply::four([0, vm.exits.wfx, 0, 0]),
            _ => Reply::four([0, vm.exits.total, vm.exits.data_aborts, vm.exits.interrupts]),
        },
        kvm::KVM_FEATURES => Reply::four(services.features().to_regs()),
        psci::PSCI_VERSION => Reply::x0(psci::VERSION_1_1 as i64),
        psci::PSCI_FEATURES => supported(PSCI_IMPLEMENTED.contains(&asked)),
        psci::SYSTEM_OFF => return Outcome::SystemOff,
        psci::SYSTEM_RESET => return Outcome::SystemReset,
        _ => Reply::x0(smccc::NOT_SUPPORTED),
    };
    Outcome::Return(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::hyp_options::AbiForm;

    const MODES: [VmMode; 3] =
        [VmMode::Protected(AbiForm::Android), VmMode::Protected(AbiForm::Upstream), VmMode::Unprotected];

    /// Records the pages a call zeroes.
    #[derive(Default)]
    pub(crate) struct FakeMemory(pub Vec<u64>);

    impl GuestMemory for FakeMemory {
        fn zero_page(&mut self, ipa: u64) {
            self.0.push(ipa);
        }
    }

    fn call(mode: VmMode, x0: u64, x1: u64) -> Outcome {
        let mut words = vec![0u16; 16];
        let mut ownership = Ownership::new(0x8000_0000, &mut words);
        let mut memory = FakeMemory::default();
        let mut guard = GuardTable::new(true);
        let ram = abi::bundle::Region { start: 0x8000_0000, end: 0x8001_0000 };
        let vm = VmState {
            ownership: &mut ownership,
            memory: &mut memory,
            guard: &mut guard,
            guard_vm: GuardVm { devices: &[], ram },
            exits: ExitCounters::default(),
        };
        dispatch(&Services { mode, stats: false }, vm, x0, [x1, 0, 0])
    }

    fn ret(outcome: Outcome) -> Reply {
        match outcome {
            Outcome::Return(reply) => reply,
            other => panic!("expected a return, got {other:?}"),
        }
    }

    #[test]
    fn versions_and_uid() {
        for mode in MODES {
            assert_eq!(ret(call(mode, 0x8000_0000, 0)), Reply::x0(0x10001));
            assert_eq!(ret(call(mode, 0x8400_0000, 0)), Reply::x0(0x10001));
            let uid = ret(call(mode, 0x8600_ff01, 0));
            assert_eq!(uid.count, 4);
            assert_eq!(uid.regs, [0xb66f_b428, 0xe911_c52e, 0x564b_caa9, 0x743a_004d]);
        }
    }

    #[test]
    fn features_bitmap_lists_only_what_is_implemented() {
        for mode in MODES {
            let services = Services { mode, stats: false };
            let reply = ret(call(mode, 0x8600_0000, 0));
            assert_eq!(reply.regs, services.features().to_regs());
            let features = Features::from_regs(reply.regs);
            // Every advertised vendor function must answer something other than -1.
            for n in 0..128 {
                let id = if n == 0 { 0x8600_0000 } else { 0xc600_0000 | n as u64 };
                let answered = ret(call(mode, id, 0)).regs[0] != smccc::NOT_SUPPORTED as u64;
                assert_eq!(features.has(n), answered, "function {n} in {mode:?}");
            }
        }
    }

    #[test]
    fn feature_queries() {
        let mode = MODES[0];
        assert_eq!(ret(call(mode, 0x8000_0001, 0x8000_0000)), Reply::x0(0));
        assert_eq!(ret(call(mode, 0x8000_0001, 0x8000_8000)), Reply::x0(-1)); // ARCH_WORKAROUND_1
        assert_eq!(ret(call(mode, 0x8400_000a, 0x8400_0008)), Reply::x0(0));
        assert_eq!(ret(call(mode, 0x8400_000a, 0x8400_0009)), Reply::x0(0));
        assert_eq!(ret(call(mode, 0x8400_000a, 0xc400_0003)), Reply::x0(-1)); // CPU_ON
    }

    #[test]
    fn hyp_stats_only_when_asked_for() {
        let mut words = vec![0u16; 16];
        let mut ownership = Ownership::new(0x8000_0000, &mut words);
        let mut memory = FakeMemory::default();
        let mut guard = GuardTable::new(true);
        let ram = abi::bundle::Region { start: 0x8000_0000, end: 0x8001_0000 };
        let exits = ExitCounters { total: 7, data_aborts: 3, interrupts: 2, wfx: 5 };
        for stats in [false, true] {
            let mut stats_call = |x1: u64| {
                let vm = VmState {
                    ownership: &mut ownership,
                    memory: &mut memory,
                    guard: &mut guard,
                    guard_vm: GuardVm { devices: &[], ram },
                    exits,
                };
                ret(dispatch(&Services { mode: MODES[0], stats }, vm, abi::hyp_options::HYP_STATS as u64, [x1, 0, 0]))
            };
            let reply = stats_call(0);
            let wfx = stats_call(abi::hyp_options::HYP_STATS_WFX);
            if stats {
                assert_eq!(reply.regs, [0, 7, 3, 2]);
                assert_eq!(wfx.regs, [0, 5, 0, 0]);
            } else {
                assert_eq!(reply, Reply::x0(-1), "off by default: the guest sees exactly the pKVM ABI");
            }
        }
    }

    #[test]
    fn power_calls_end_the_vm() {
        assert_eq!(call(MODES[0], 0x8400_0008, 0), Outcome::SystemOff);
        assert_eq!(call(MODES[2], 0x8400_0009, 0), Outcome::SystemReset);
        // Only w0 is the function ID.
        assert_eq!(call(MODES[1], 0xdead_0000_8400_0008, 0), Outcome::SystemOff);
    }

    #[test]
    fn unknown_calls_return_not_supported_and_touch_only_x0() {
        for id in [0u64, 0xffff_ffff, 0xc600_0030, 0x8400_00ff, 0xc400_0003, 0x8200_0000] {
            let reply = ret(call(MODES[0], id, 0x1234));
            assert_eq!(reply.count, 1);
            assert_eq!(reply.regs[0] as i64, -1, "{id:#x}");
        }
    }
}
