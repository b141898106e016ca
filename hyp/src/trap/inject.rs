//! Handing a synchronous exception to the guest (an external abort, or an UNDEFINED
//! exception for a register access the release refuses), as the architecture would
//! have delivered it at EL1 (Arm ARM D1.10 "Exception entry"; the same steps as KVM's
//! `enter_exception64`).

use crate::esr::{ec, FSC_EXTERNAL_ABORT, IL};

/// PSTATE.M for EL1 using SP_EL1.
const MODE_EL1H: u64 = 0b0101;
/// PSTATE.M for EL1 using SP_EL0.
const MODE_EL1T: u64 = 0b0100;
/// PSTATE.M\[4\]: the interrupted code ran in AArch32.
const MODE_AARCH32: u64 = 1 << 4;
/// PSTATE.{D,A,I,F}.
const DAIF: u64 = 0b1111 << 6;
/// PSTATE.{N,Z,C,V}.
const NZCV: u64 = 0b1111 << 28;

/// Data or instruction side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortKind {
    /// A load or store.
    Data,
    /// An instruction fetch.
    Instruction,
}

/// The guest state at the moment of the trap that matters for the injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrapState {
    /// SPSR_EL2: the guest's PSTATE.
    pub spsr: u64,
    /// ELR_EL2: the faulting instruction.
    pub elr: u64,
    /// FAR_EL2: the faulting virtual address.
    pub far: u64,
    /// VBAR_EL1: the guest's vector base.
    pub vbar_el1: u64,
}

/// Register values that deliver the abort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Injection {
    /// New ESR_EL1.
    pub esr_el1: u64,
    /// New FAR_EL1.
    pub far_el1: u64,
    /// New ELR_EL1: the guest resumes (if its handler returns) at the faulting instruction.
    pub elr_el1: u64,
    /// New SPSR_EL1: the interrupted PSTATE.
    pub spsr_el1: u64,
    /// New ELR_EL2: the guest vector to run.
    pub elr_el2: u64,
    /// New SPSR_EL2: EL1h with all of DAIF masked, flags kept.
    pub spsr_el2: u64,
}

/// Computes the injection of a synchronous external abort.
pub fn external_abort(kind: AbortKind, state: TrapState) -> Injection {
    let mode = state.spsr & 0x1f;
    let from_el1 = mode & MODE_AARCH32 == 0 && (mode == MODE_EL1H || mode == MODE_EL1T);
    let class = match (kind, from_el1) {
        (AbortKind::Data, true) => ec::DABT_CURRENT,
        (AbortKind::Data, false) => ec::DABT_LOWER,
        (AbortKind::Instruction, true) => ec::IABT_CURRENT,
        (AbortKind::Instruction, false) => ec::IABT_LOWER,
    };
    deliver((class as u64) << 26 | IL | FSC_EXTERNAL_ABORT as u64, state)
}

/// Computes the injection of an UNDEFINED exception (EC 0, "unknown reason") at the
/// trapped instruction, as pKVM's `inject_undef64` does. FAR_EL1 is UNKNOWN for it:
/// the injection carries the trap's FAR, which the caller need not write.
pub fn undefined(state: TrapState) -> Injection {
    deliver((ec::UNKNOWN as u64) << 26 | IL, state)
}

/// The injection of a synchronous exception with syndrome `esr` taken where `state`
/// says: the vector for the interrupted mode, EL1h with DAIF masked.
fn deliver(esr: u64, state: TrapState) -> Injection {
    let mode = state.spsr & 0x1f;
    let vector_offset = if mode & MODE_AARCH32 != 0 {
        0x600
    } else {
        match mode {
            MODE_EL1T => 0x000,
            MODE_EL1H => 0x200,
            _ => 0x400, // EL0 AArch64
        }
    };
    Injection {
        esr_el1: esr,
        far_el1: state.far,
        elr_el1: state.elr,
        spsr_el1: state.spsr,
        elr_el2: state.vbar_el1.wrapping_add(vector_offset),
        spsr_el2: (state.spsr & NZCV) | DAIF | MODE_EL1H,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(spsr: u64) -> TrapState {
        TrapState { spsr, elr: 0x8020_1234, far: 0x0a00_0000, vbar_el1: 0x8020_0800 }
    }

    #[test]
    fn data_abort_from_el1h_goes_to_the_current_el_spx_vector() {
        let inj = external_abort(AbortKind::Data, state(0x6000_03c5));
        // The value the probe guest saw on QEMU 7.2 (reference el2-and-qemu.md §1.10).
        assert_eq!(inj.esr_el1, 0x9600_0010);
        assert_eq!(inj.far_el1, 0x0a00_0000);
        assert_eq!(inj.elr_el1, 0x8020_1234);
        assert_eq!(inj.spsr_el1, 0x6000_03c5);
        assert_eq!(inj.elr_el2, 0x8020_0a00);
        assert_eq!(inj.spsr_el2, 0x6000_03c5);
    }

    #[test]
    fn vector_and_class_follow_the_interrupted_mode() {
        let el1t = external_abort(AbortKind::Data, state(0x4));
        assert_eq!((el1t.esr_el1 >> 26, el1t.elr_el2), (0x25, 0x8020_0800));
        let el0 = external_abort(AbortKind::Data, state(0x0));
        assert_eq!((el0.esr_el1 >> 26, el0.elr_el2), (0x24, 0x8020_0c00));
        assert_eq!(el0.spsr_el2, 0x3c5);
        let a32 = external_abort(AbortKind::Instruction, state(0x10));
        assert_eq!((a32.esr_el1 >> 26, a32.elr_el2), (0x20, 0x8020_0e00));
        let iabt = external_abort(AbortKind::Instruction, state(0x5));
        assert_eq!(iabt.esr_el1, 0x8600_0010);
    }

    #[test]
    fn an_undefined_exception_is_ec_0_at_the_instruction() {
        // 0x2000000: what the real pKVM 7.3.4 delivered to a protected VM's PMCR_EL0
        // read (abi/recordings/linux-7.3.4-protected.txt, reg-pmcr-el0).
        let inj = undefined(state(0x6000_03c5));
        assert_eq!(inj.esr_el1, 0x0200_0000);
        assert_eq!((inj.elr_el1, inj.elr_el2, inj.spsr_el2), (0x8020_1234, 0x8020_0a00, 0x6000_03c5));
        assert_eq!(undefined(state(0x0)).elr_el2, 0x8020_0c00, "from EL0: the lower-EL vector");
    }
}
