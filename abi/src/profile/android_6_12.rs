//! The Android Common Kernel android16-6.12's pKVM, as its source reads: each row names
//! the file and function of ACK android16-6.12 it comes from (`arch/arm64/kvm/hyp/nvhe/`
//! `pkvm.c` and `mem_protect.c`). There is no Android hypervisor here to measure, so
//! nothing in this table is checked against a running release; rows whose source says
//! "inference:" are pvmkit's reading where the source leaves the answer to something
//! outside EL2 (the host's VMM, stage-2 state), and `pvmkit conformance` lists them.
//! Where android15-6.6 differs, the row says so.
//!
//! EL2 answers the pKVM calls, PSCI and the SMCCC discovery calls itself
//! (`kvm_handle_pvm_hvc64`); a function it does not know reaches `pkvm_handle_psci`,
//! whose default answers NOT_SUPPORTED with x1–x3 zeroed.

use super::psci_forms::{AFFINITY_INFO, CPU_ON, CPU_SUSPEND, SYSTEM_RESET2};
use super::{row, Action, Answer, Over, Pages, Profile, Report, Rule, When, INVALID, KVM_UID_REGS, OWN_MPIDR};
use crate::kvm::{self, func, Features};
use crate::psci;
use crate::smccc::{self, NOT_SUPPORTED};

const HVC64: &str = "ACK-6.12 nvhe/pkvm.c kvm_handle_pvm_hvc64";
const MEMSHARE: &str = "ACK-6.12 nvhe/pkvm.c pkvm_memshare_call, pkvm_memunshare_call";
const GUARD: &str = "ACK-6.12 nvhe/pkvm.c pkvm_install_ioguard_page; mem_protect.c __pkvm_install_ioguard_page";
const UNGUARD: &str = "ACK-6.12 nvhe/pkvm.c pkvm_remove_ioguard_page (a no-op kept for older guests; 6.6 unmaps)";
const RELINQUISH: &str = "ACK-6.12 nvhe/pkvm.c pkvm_memrelinquish_call; mem_protect.c __pkvm_guest_relinquish_to_host";
const PSCI_TO_HOST: &str =
    "ACK-6.12 nvhe/pkvm.c pkvm_handle_psci passes it to the host; inference: the host's KVM psci.c answers";

/// The calls that take a granule count in x2.
const RANGED: &[u32] = &[kvm::MEM_SHARE, kvm::MEM_UNSHARE, kvm::MMIO_RGUARD_MAP, kvm::MMIO_RGUARD_UNMAP];

/// PSCI functions EL2 lists in `PSCI_FEATURES`.
const PSCI_LISTED: &[u64] = &[
    psci::PSCI_VERSION as u64,
    psci::CPU_SUSPEND as u64,
    psci::CPU_SUSPEND_64 as u64,
    psci::CPU_OFF as u64,
    psci::CPU_ON as u64,
    psci::CPU_ON_64 as u64,
    psci::AFFINITY_INFO as u64,
    psci::AFFINITY_INFO_64 as u64,
    psci::SYSTEM_OFF as u64,
    psci::SYSTEM_RESET as u64,
    psci::PSCI_FEATURES as u64,
    psci::SYSTEM_RESET2 as u64,
    psci::SYSTEM_RESET2_64 as u64,
    smccc::SMCCC_VERSION as u64,
];

/// MEMINFO and the guard's INFO, which 6.12 routes to one handler.
const MEMINFO_AND_INFO: &[u32] = &[kvm::HYP_MEMINFO, kvm::MMIO_GUARD_INFO];
/// MEM_SHARE and MEM_UNSHARE, for the checks they share.
const SHARE_UNSHARE: &[u32] = &[kvm::MEM_SHARE, kvm::MEM_UNSHARE];
/// The single and ranged guard maps, for the checks they share.
const GUARD_MAPS: &[u32] = &[kvm::MMIO_GUARD_MAP, kvm::MMIO_RGUARD_MAP];

const ANDROID_EL2: &[Rule] = &[
    row(
        &[kvm::KVM_FEATURES],
        Over::Either,
        When::Always,
        Answer::Regs(
            Features::with(&[
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
            ])
            .to_regs(),
        ),
        "ACK-6.12 nvhe/pkvm.c kvm_handle_pvm_hvc64 as of the snapshots without the device \
         power-request call (newer 6.12 also sets its bit, in x1)",
    ),
    row(&[kvm::VENDOR_HYP_CALL_UID], Over::Either, When::Always, KVM_UID_REGS, HVC64),
    row(MEMINFO_AND_INFO, Over::Either, When::ArgsSet(0b111), INVALID, "ACK-6.12 nvhe/pkvm.c pkvm_meminfo_call"),
    row(
        MEMINFO_AND_INFO,
        Over::Either,
        When::Always,
        Answer::Regs([4096, kvm::MEMINFO_HAS_RANGE, 0, 0]),
        "ACK-6.12 nvhe/pkvm.c pkvm_meminfo_call, which kvm_handle_pvm_hvc64 routes INFO to as well",
    ),
    row(SHARE_UNSHARE, Over::Either, When::ArgsSet(0b100), INVALID, MEMSHARE),
    row(SHARE_UNSHARE, Over::Either, When::Unaligned, INVALID, MEMSHARE),
    row(
        &[kvm::MEM_SHARE],
        Over::Either,
        When::Pages(Pages::Outside),
        Answer::ExternalAbortAtCall,
        "ACK-6.12 nvhe/pkvm.c pkvm_memshare_call asks the host to map the page (pkvm_request_map); \
         inference: the host finds no memslot and injects an abort, as upstream's measurably does",
    ),
    row(
        &[kvm::MEM_SHARE],
        Over::Either,
        When::Pages(Pages::Private),
        Answer::Act(Action::Share, Report::Count),
        MEMSHARE,
    ),
    row(
        &[kvm::MEM_UNSHARE],
        Over::Either,
        When::Pages(Pages::Shared),
        Answer::Act(Action::Unshare, Report::Count),
        MEMSHARE,
    ),
    row(SHARE_UNSHARE, Over::Either, When::Always, INVALID, "ACK-6.12 mem_protect.c guest_request_walker: a state mismatch anywhere fails the whole call"),
    row(&[kvm::MEM_RELINQUISH], Over::Either, When::ArgsSet(0b110), INVALID, RELINQUISH),
    // No alignment check: the page holding x1 is meant (the condition rows below look at
    // that page).
    row(
        &[kvm::MEM_RELINQUISH],
        Over::Either,
        When::Pages(Pages::Outside),
        Answer::Act(Action::Nothing, Report::Zero),
        "ACK-6.12 nvhe/pkvm.c pkvm_memrelinquish_call: nothing mapped there is a no-op returning 0",
    ),
    row(&[kvm::MEM_RELINQUISH], Over::Either, When::Pages(Pages::Private), Answer::Act(Action::Relinquish, Report::Zero), RELINQUISH),
    row(&[kvm::MEM_RELINQUISH], Over::Either, When::Always, INVALID, "ACK-6.12 mem_protect.c __pkvm_guest_relinquish_to_host: a shared page, or one held for DMA, is refused"),
    row(&[kvm::MMIO_GUARD_ENROLL], Over::Either, When::Always, Answer::Act(Action::Enroll, Report::Zero), HVC64),
    // MAP takes one page and ignores x2 and x3; RGUARD_MAP refuses x3, and x2 = 0.
    row(&[kvm::MMIO_RGUARD_MAP], Over::Either, When::ArgsSet(0b100), INVALID, GUARD),
    row(GUARD_MAPS, Over::Either, When::NotEnrolled, INVALID, GUARD),
    row(GUARD_MAPS, Over::Either, When::Unaligned, INVALID, GUARD),
    row(&[kvm::MMIO_RGUARD_MAP], Over::Either, When::X2Zero, INVALID, "ACK-6.12 mem_protect.c __pkvm_install_ioguard_page: an empty range"),
    row(
        &[kvm::MMIO_GUARD_MAP],
        Over::Either,
        When::PageBeyondIpaSpace,
        INVALID,
        "ACK-6.12 mem_protect.c __pkvm_install_ioguard_page: the stage-2 walk refuses a range past the IPA space",
    ),
    row(
        &[kvm::MMIO_RGUARD_MAP],
        Over::Either,
        When::RangeBeyondIpaSpace,
        INVALID,
        "ACK-6.12 mem_protect.c __pkvm_install_ioguard_page: the stage-2 walk refuses a range past the IPA space, or one that wraps",
    ),
    row(
        GUARD_MAPS,
        Over::Either,
        When::InRam,
        INVALID,
        "ACK-6.12 mem_protect.c __pkvm_install_ioguard_page refuses a mapped page; inference: guest RAM is mapped \
         (a RAM page the guest never touched is not, and 6.12 would guard it)",
    ),
    row(GUARD_MAPS, Over::Either, When::Always, Answer::Act(Action::GuardMap, Report::Count), GUARD),
    // UNMAP and RGUARD_UNMAP do nothing, and answer with x1 = the count asked for, even
    // when they refuse: 1 for UNMAP, the guest's x2 unchanged for RGUARD_UNMAP.
    row(&[kvm::MMIO_GUARD_UNMAP], Over::Either, When::NotEnrolled, Answer::Regs([smccc::INVALID_PARAMETER as u64, 1, 0, 0]), UNGUARD),
    row(&[kvm::MMIO_GUARD_UNMAP], Over::Either, When::Always, Answer::Regs([0, 1, 0, 0]), UNGUARD),
    row(&[kvm::MMIO_RGUARD_UNMAP], Over::Either, When::ArgsSet(0b100), Answer::CodeEchoingX2(smccc::INVALID_PARAMETER), UNGUARD),
    row(&[kvm::MMIO_RGUARD_UNMAP], Over::Either, When::NotEnrolled, Answer::CodeEchoingX2(smccc::INVALID_PARAMETER), UNGUARD),
    row(&[kvm::MMIO_RGUARD_UNMAP], Over::Either, When::Always, Answer::Act(Action::Nothing, Report::EchoX2), UNGUARD),
    row(&[smccc::SMCCC_VERSION], Over::Either, When::Always, Answer::Code(smccc::VERSION_1_2 as i64), HVC64),
    row(
        &[smccc::SMCCC_ARCH_FEATURES],
        Over::Either,
        When::Always,
        Answer::Code(NOT_SUPPORTED),
        "ACK-6.12 nvhe/pkvm.c kvm_handle_pvm_hvc64 has no case for it: pkvm_handle_psci's default, -1",
    ),
    row(
        &[psci::PSCI_VERSION],
        Over::Either,
        When::Always,
        Answer::Code(psci::VERSION_1_1 as i64),
        "ACK-6.12 nvhe/pkvm.c pvm_psci_version",
    ),
    row(
        &[psci::PSCI_FEATURES],
        Over::Either,
        When::X1In(PSCI_LISTED),
        Answer::Code(0),
        "ACK-6.12 nvhe/pkvm.c pvm_psci_features",
    ),
    row(
        &[psci::PSCI_FEATURES],
        Over::Either,
        When::Always,
        Answer::Code(psci::NOT_SUPPORTED),
        "ACK-6.12 nvhe/pkvm.c pvm_psci_features",
    ),
    row(
        CPU_ON,
        Over::Either,
        When::X1In(OWN_MPIDR),
        Answer::Code(psci::ALREADY_ON),
        "ACK-6.12 nvhe/pkvm.c pvm_psci_vcpu_on",
    ),
    row(CPU_ON, Over::Either, When::Always, Answer::Code(psci::INVALID_PARAMETERS), "ACK-6.12 nvhe/pkvm.c pvm_psci_vcpu_on"),
    row(AFFINITY_INFO, Over::Either, When::X1In(OWN_MPIDR), Answer::Code(0), "ACK-6.12 nvhe/pkvm.c pvm_psci_vcpu_affinity_info"),
    row(
        AFFINITY_INFO,
        Over::Either,
        When::Always,
        Answer::Code(psci::INVALID_PARAMETERS),
        "ACK-6.12 nvhe/pkvm.c pvm_psci_vcpu_affinity_info",
    ),
    row(CPU_SUSPEND, Over::Either, When::Always, Answer::Code(0), PSCI_TO_HOST),
    row(&[psci::CPU_OFF], Over::Either, When::Always, Answer::PowerOff, "ACK-6.12 nvhe/pkvm.c pvm_psci_vcpu_off; the only vCPU stops"),
    row(&[psci::SYSTEM_OFF], Over::Either, When::Always, Answer::PowerOff, PSCI_TO_HOST),
    row(&[psci::SYSTEM_RESET], Over::Either, When::Always, Answer::Reset, PSCI_TO_HOST),
    row(SYSTEM_RESET2, Over::Either, When::Always, Answer::Reset, PSCI_TO_HOST),
];

/// A protected VM under ACK android16-6.12's pKVM: the MMIO guard (enforced from the
/// first instruction when the VM boots through pvmfw, else after ENROLL), ranged
/// memory and guard calls of at most 256 granules that may stop short.
pub const ANDROID_6_12: Profile = Profile {
    release: "Android Common Kernel android16-6.12 pKVM (protected VM)",
    rules: &[ANDROID_EL2],
    ranged: RANGED,
    range_limit: 256,
    guard_enrolled_with_pvmfw: true,
    id_fields: &[],
    // Neither is in what pvmkit has read of ACK 6.12 (`nvhe/sys_regs.c`, the teardown
    // path): no claim, and hyp's Android profile leaves both as the CPU has them.
    register_access: None,
    teardown: None,
};
