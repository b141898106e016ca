//! Why the guest left: the vector it came through (a [`TrapKind`], shared with the
//! assembly as `const` operands) and, for a synchronous exit, its syndrome, decoded
//! once into a [`GuestExit`] that the firmware's trap path matches on.

use crate::esr::{ec, DataAbort, Esr};
use crate::trap::sysreg::SysregAccess;

/// The vector a guest exit came through: what `vectors.S` passes to Rust in x1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum TrapKind {
    /// Synchronous, from AArch64 EL1/EL0.
    Synchronous = 0,
    /// A physical IRQ.
    Irq = 1,
    /// A physical FIQ.
    Fiq = 2,
    /// An SError.
    SError = 3,
    /// Anything from AArch32, which hyp does not run.
    AArch32 = 4,
}

impl TrapKind {
    /// Every kind, in numeric order.
    pub const ALL: [TrapKind; 5] = [Self::Synchronous, Self::Irq, Self::Fiq, Self::SError, Self::AArch32];

    /// The kind the assembly passed, if it is one.
    pub fn from_raw(raw: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| *kind as u64 == raw)
    }
}

/// A guest exit, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestExit {
    /// An HVC: an SMCCC call (ELR is past the HVC).
    Hvc,
    /// A trapped SMC (HCR_EL2.TSC): an SMCCC call (ELR is at the SMC).
    Smc,
    /// A trapped WFI (or WFIT).
    Wfi,
    /// A trapped WFE (or WFET).
    Wfe,
    /// A trapped MSR or MRS.
    SystemRegister(SysregAccess),
    /// A data abort outside guest RAM: an access hyp emulates (with a valid syndrome,
    /// on a device the VM may reach) or refuses.
    DataAbort(DataAbort),
    /// The guest fetched from outside its RAM.
    InstructionAbort,
    /// A physical IRQ (hyp's tick, or one hyp forwards to the guest) or FIQ arrived
    /// while the guest ran.
    Interrupt,
    /// The guest caused an SError, or took a synchronous exception hyp does not serve.
    Crash(Esr),
    /// The guest switched to AArch32.
    AArch32,
}

impl GuestExit {
    /// Decodes an exit from its vector and ESR_EL2 (read for every kind; only a
    /// synchronous exit's and an SError's mean anything).
    pub fn decode(kind: TrapKind, esr: Esr) -> Self {
        match kind {
            TrapKind::Irq | TrapKind::Fiq => Self::Interrupt,
            TrapKind::SError => Self::Crash(esr),
            TrapKind::AArch32 => Self::AArch32,
            TrapKind::Synchronous => match esr.ec() {
                ec::HVC64 => Self::Hvc,
                ec::SMC64 => Self::Smc,
                // ISS.TI bit 0: WFE (else WFI).
                ec::WFX if esr.iss() & 1 == 0 => Self::Wfi,
                ec::WFX => Self::Wfe,
                ec::SYSREG => Self::SystemRegister(SysregAccess::decode(esr.iss())),
                ec::DABT_LOWER => Self::DataAbort(DataAbort::decode(esr.iss())),
                ec::IABT_LOWER => Self::InstructionAbort,
                _ => Self::Crash(esr),
            },
        }
    }

    /// Whether the exit counts as a data abort in hyp's exit counters.
    pub fn is_data_abort(&self) -> bool {
        matches!(self, Self::DataAbort(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_unknown_ones_are_refused() {
        for kind in TrapKind::ALL {
            assert_eq!(TrapKind::from_raw(kind as u64), Some(kind));
        }
        assert_eq!(TrapKind::from_raw(5), None);
    }

    #[test]
    fn each_exit_is_decoded_once() {
        let sync = |esr| GuestExit::decode(TrapKind::Synchronous, Esr(esr));
        assert_eq!(sync(0x5a00_0000), GuestExit::Hvc);
        assert_eq!(sync(0x5e00_0000), GuestExit::Smc);
        assert_eq!(sync(0x0600_0001), GuestExit::Wfe);
        assert_eq!(sync(0x0600_0000), GuestExit::Wfi);
        assert!(matches!(sync(0x623a_3076), GuestExit::SystemRegister(a) if a.sgi_register().is_some()));
        // A 32-bit load into w3 with a syndrome, and a load pair without one.
        match sync(0x9383_0010) {
            GuestExit::DataAbort(abort) => assert_eq!((abort.width(), abort.srt, abort.wnr), (4, 3, false)),
            other => panic!("{other:?}"),
        }
        match sync(0x9200_0010) {
            GuestExit::DataAbort(abort) => assert!(!abort.isv, "no syndrome: mmio::decide refuses it"),
            other => panic!("{other:?}"),
        }
        assert!(sync(0x9200_0010).is_data_abort() && !sync(0x5a00_0000).is_data_abort());
        assert_eq!(sync(0x8200_0010), GuestExit::InstructionAbort);
        assert_eq!(sync(0x0200_0000), GuestExit::Crash(Esr(0x0200_0000)), "an undefined instruction");
        assert_eq!(GuestExit::decode(TrapKind::Irq, Esr(0)), GuestExit::Interrupt);
        assert_eq!(GuestExit::decode(TrapKind::SError, Esr(0xbe00_0000)), GuestExit::Crash(Esr(0xbe00_0000)));
        assert_eq!(GuestExit::decode(TrapKind::AArch32, Esr(0)), GuestExit::AArch32);
    }
}
