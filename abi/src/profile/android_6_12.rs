//! The Android Common Kernel android16-6.12's pKVM, as its source reads
//! (`shared/reference/pkvm-abi.md` §1–4, 7 and `real-pkvm-7.3.md` §7, which cite ACK
//! 6.12 `arch/arm64/kvm/hyp/nvhe/pkvm.c` and `hyp-main.c`). There is no Android
//! hypervisor here to measure: rows marked "inference" are pvmkit's reading where the
//! notes are silent. Where android15-6.6 differs, the row says so.
//!
//! EL2 answers the pKVM calls, PSCI and the SMCCC discovery calls itself; anything it
//! does not know goes to the host's KVM, which answers NOT_SUPPORTED with x1–x3 zeroed.

use super::psci_forms::{AFFINITY_INFO, CPU_ON, CPU_SUSPEND, SYSTEM_RESET2};
use super::{row, Action, Answer, Over, Pages, Profile, Report, Rule, When, INVALID, KVM_UID_REGS, OWN_MPIDR};
use crate::kvm::{self, func, Features};
use crate::psci;
use crate::smccc::{self, NOT_SUPPORTED};

const MEMSHARE: &str = "ACK-6.12 nvhe/pkvm.c pkvm_memshare_call (pkvm-abi.md §3.2)";
const GUARD: &str = "ACK-6.12 nvhe/pkvm.c, mem_protect.c __pkvm_install_ioguard_page (pkvm-abi.md §4.2)";
const PSCI_EL2: &str = "ACK-6.12 nvhe/pkvm.c pkvm_handle_psci (pkvm-abi.md §7)";

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
/// The single and ranged guard unmaps.
const GUARD_UNMAPS: &[u32] = &[kvm::MMIO_GUARD_UNMAP, kvm::MMIO_RGUARD_UNMAP];

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
        "ACK-6.12 nvhe/pkvm.c (pkvm-abi.md §1: 0xffd; 6.12's DEV_REQ bit: see INTENDED_DIFFERENCES)",
    ),
    row(&[kvm::VENDOR_HYP_CALL_UID], Over::Either, When::Always, KVM_UID_REGS, "ACK-6.12 nvhe/pkvm.c (pkvm-abi.md §1)"),
    row(MEMINFO_AND_INFO, Over::Either, When::ArgsSet(0b111), INVALID, "ACK-6.12 pkvm_meminfo_call (pkvm-abi.md §2)"),
    row(
        MEMINFO_AND_INFO,
        Over::Either,
        When::Always,
        Answer::Regs([4096, kvm::MEMINFO_HAS_RANGE, 0, 0]),
        "ACK-6.12 pkvm_meminfo_call, which INFO is routed to too (pkvm-abi.md §2)",
    ),
    row(SHARE_UNSHARE, Over::Either, When::ArgsSet(0b100), INVALID, MEMSHARE),
    row(SHARE_UNSHARE, Over::Either, When::Unaligned, INVALID, MEMSHARE),
    row(
        &[kvm::MEM_SHARE],
        Over::Either,
        When::Pages(Pages::Outside),
        Answer::ExternalAbortAtCall,
        "inference: the host cannot satisfy the MAP request for an IPA no memslot holds, as on upstream",
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
    row(SHARE_UNSHARE, Over::Either, When::Always, INVALID, "ACK-6.12: a state mismatch anywhere fails the whole call"),
    row(
        &[kvm::MEM_RELINQUISH],
        Over::Either,
        When::ArgsSet(0b110),
        INVALID,
        "ACK-6.12 pkvm_memrelinquish_call (pkvm-abi.md §3.3)",
    ),
    row(
        &[kvm::MEM_RELINQUISH],
        Over::Either,
        When::Unaligned,
        INVALID,
        "inference: the page-aligned IPA rule of the other memory calls",
    ),
    row(
        &[kvm::MEM_RELINQUISH],
        Over::Either,
        When::Pages(Pages::Outside),
        Answer::Act(Action::Nothing, Report::Zero),
        "ACK-6.12: nothing mapped there is a no-op returning 0 (pkvm-abi.md §3.3)",
    ),
    row(
        &[kvm::MEM_RELINQUISH],
        Over::Either,
        When::Pages(Pages::Private),
        Answer::Act(Action::Relinquish, Report::Zero),
        "ACK-6.12 __pkvm_guest_relinquish_to_host (pkvm-abi.md §3.3)",
    ),
    row(
        &[kvm::MEM_RELINQUISH],
        Over::Either,
        When::Always,
        INVALID,
        "inference: only a guest-owned page is relinquished",
    ),
    row(&[kvm::MMIO_GUARD_ENROLL], Over::Either, When::Always, Answer::Act(Action::Enroll, Report::Zero), GUARD),
    row(&[kvm::MMIO_RGUARD_MAP], Over::Either, When::ArgsSet(0b100), INVALID, GUARD),
    row(
        &[kvm::MMIO_RGUARD_MAP],
        Over::Either,
        When::X2Zero,
        INVALID,
        "real-pkvm-7.3.md §7: RGUARD_MAP with x2 = 0 is -3",
    ),
    row(GUARD_MAPS, Over::Either, When::NotEnrolled, INVALID, GUARD),
    row(GUARD_MAPS, Over::Either, When::Unaligned, INVALID, GUARD),
    row(GUARD_MAPS, Over::Either, When::InRam, INVALID, "ACK-6.12: an IPA that maps guest memory is refused"),
    row(GUARD_MAPS, Over::Either, When::Always, Answer::Act(Action::GuardMap, Report::Count), GUARD),
    row(
        GUARD_UNMAPS,
        Over::Either,
        When::Always,
        Answer::Act(Action::Nothing, Report::Count),
        "ACK-6.12: UNMAP is a no-op kept for compatibility, x1 = the count (6.6 really unmaps)",
    ),
    row(
        &[smccc::SMCCC_VERSION],
        Over::Either,
        When::Always,
        Answer::Code(smccc::VERSION_1_2 as i64),
        "ACK-6.12 (pkvm-abi.md §7)",
    ),
    row(
        &[smccc::SMCCC_ARCH_FEATURES],
        Over::Either,
        When::Always,
        Answer::Code(NOT_SUPPORTED),
        "ACK-6.12: unrecognised at EL2, -1 for everything (pkvm-abi.md §7)",
    ),
    row(&[psci::PSCI_VERSION], Over::Either, When::Always, Answer::Code(psci::VERSION_1_1 as i64), PSCI_EL2),
    row(&[psci::PSCI_FEATURES], Over::Either, When::X1In(PSCI_LISTED), Answer::Code(0), PSCI_EL2),
    row(&[psci::PSCI_FEATURES], Over::Either, When::Always, Answer::Code(psci::NOT_SUPPORTED), PSCI_EL2),
    row(CPU_ON, Over::Either, When::X1In(OWN_MPIDR), Answer::Code(psci::ALREADY_ON), PSCI_EL2),
    row(CPU_ON, Over::Either, When::Always, Answer::Code(psci::INVALID_PARAMETERS), PSCI_EL2),
    row(AFFINITY_INFO, Over::Either, When::X1In(OWN_MPIDR), Answer::Code(0), PSCI_EL2),
    row(AFFINITY_INFO, Over::Either, When::Always, Answer::Code(psci::INVALID_PARAMETERS), PSCI_EL2),
    row(CPU_SUSPEND, Over::Either, When::Always, Answer::Code(0), "ACK-6.12: CPU_SUSPEND goes to the host (a WFI)"),
    row(&[psci::CPU_OFF], Over::Either, When::Always, Answer::PowerOff, "the only vCPU stops"),
    row(&[psci::SYSTEM_OFF], Over::Either, When::Always, Answer::PowerOff, PSCI_EL2),
    row(&[psci::SYSTEM_RESET], Over::Either, When::Always, Answer::Reset, PSCI_EL2),
    row(SYSTEM_RESET2, Over::Either, When::Always, Answer::Reset, PSCI_EL2),
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
};
