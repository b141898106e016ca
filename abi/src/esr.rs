//! The architectural exception syndrome (ESR_ELx), decoded: hyp reads ESR_EL2 on a
//! guest exit, guests read ESR_EL1 when an abort is delivered to them.
//!
//! Field positions: Arm ARM D24.2.40 (ESR_EL2; ESR_EL1 has the same layout); data-abort
//! ISS: "ISS encoding for an exception from a Data Abort".
//!
//! ```
//! use pvmkit_abi::esr::Esr;
//!
//! // A 32-bit load into w3 that took an external abort at stage 2.
//! let esr = Esr(0x9383_0010);
//! assert_eq!(esr.ec(), 0x24);
//! let access = esr.data_abort().unwrap();
//! assert_eq!((access.width(), access.wnr, access.srt), (4, false, 3));
//! ```

use core::fmt;

/// Exception classes hyp handles or names (ESR bits 31:26).
pub mod ec {
    /// Unknown reason (e.g. an undefined instruction that trapped).
    pub const UNKNOWN: u8 = 0x00;
    /// A trapped WFI or WFE.
    pub const WFX: u8 = 0x01;
    /// HVC from AArch64.
    pub const HVC64: u8 = 0x16;
    /// SMC from AArch64, trapped by `HCR_EL2.TSC`.
    pub const SMC64: u8 = 0x17;
    /// A trapped MSR/MRS/system instruction.
    pub const SYSREG: u8 = 0x18;
    /// Instruction abort from a lower exception level.
    pub const IABT_LOWER: u8 = 0x20;
    /// Instruction abort from the current exception level.
    pub const IABT_CURRENT: u8 = 0x21;
    /// PC alignment fault.
    pub const PC_ALIGNMENT: u8 = 0x22;
    /// Data abort from a lower exception level.
    pub const DABT_LOWER: u8 = 0x24;
    /// Data abort from the current exception level.
    pub const DABT_CURRENT: u8 = 0x25;
    /// SP alignment fault.
    pub const SP_ALIGNMENT: u8 = 0x26;
    /// SError interrupt.
    pub const SERROR: u8 = 0x2f;
    /// BRK instruction.
    pub const BRK64: u8 = 0x3c;
}

/// Fault status code for a synchronous external abort (DFSC/IFSC 0b010000).
pub const FSC_EXTERNAL_ABORT: u8 = 0x10;
/// `ESR.IL`: a 32-bit instruction trapped.
pub const IL: u64 = 1 << 25;

/// A raw syndrome value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Esr(pub u64);

impl Esr {
    /// Exception class.
    pub const fn ec(self) -> u8 {
        ((self.0 >> 26) & 0x3f) as u8
    }

    /// Instruction-specific syndrome.
    pub const fn iss(self) -> u32 {
        (self.0 & 0x1ff_ffff) as u32
    }

    /// The immediate of a trapped HVC/SMC.
    pub const fn imm16(self) -> u16 {
        self.0 as u16
    }

    /// A short name of the exception class.
    pub const fn class_name(self) -> &'static str {
        match self.ec() {
            ec::UNKNOWN => "unknown reason (undefined instruction?)",
            ec::WFX => "WFI/WFE",
            ec::HVC64 => "HVC",
            ec::SMC64 => "SMC",
            ec::SYSREG => "system register access",
            ec::IABT_LOWER | ec::IABT_CURRENT => "instruction abort",
            ec::PC_ALIGNMENT => "PC alignment fault",
            ec::DABT_LOWER | ec::DABT_CURRENT => "data abort",
            ec::SP_ALIGNMENT => "SP alignment fault",
            ec::SERROR => "SError",
            ec::BRK64 => "BRK",
            _ => "other",
        }
    }

    /// The decoded data-abort syndrome, when this is a data abort.
    pub const fn data_abort(self) -> Option<DataAbort> {
        match self.ec() {
            ec::DABT_LOWER | ec::DABT_CURRENT => Some(DataAbort::decode(self.iss())),
            _ => None,
        }
    }
}

impl fmt::Display for Esr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x} (EC {:#04x}: {}", self.0, self.ec(), self.class_name())?;
        if let Some(abort) = self.data_abort() {
            write!(f, ", {abort}")?;
        }
        write!(f, ")")
    }
}

/// The data-abort ISS, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataAbort {
    /// ISV: the syndrome fields below (SAS..AR) are valid.
    pub isv: bool,
    /// Access size: 1 << sas bytes.
    pub sas: u8,
    /// The load sign-extends.
    pub sse: bool,
    /// The transfer register (31 = zero register).
    pub srt: u8,
    /// The transfer register is 64-bit.
    pub sf: bool,
    /// Acquire/release semantics.
    pub ar: bool,
    /// FAR is not valid.
    pub fnv: bool,
    /// External abort type.
    pub ea: bool,
    /// Cache maintenance.
    pub cm: bool,
    /// The fault happened during a stage-1 table walk.
    pub s1ptw: bool,
    /// A write (or a cache maintenance op) caused it.
    pub wnr: bool,
    /// Data fault status code.
    pub dfsc: u8,
}

impl DataAbort {
    /// Decodes a data-abort ISS.
    pub const fn decode(iss: u32) -> Self {
        Self {
            isv: iss & (1 << 24) != 0,
            sas: ((iss >> 22) & 3) as u8,
            sse: iss & (1 << 21) != 0,
            srt: ((iss >> 16) & 0x1f) as u8,
            sf: iss & (1 << 15) != 0,
            ar: iss & (1 << 14) != 0,
            fnv: iss & (1 << 10) != 0,
            ea: iss & (1 << 9) != 0,
            cm: iss & (1 << 8) != 0,
            s1ptw: iss & (1 << 7) != 0,
            wnr: iss & (1 << 6) != 0,
            dfsc: (iss & 0x3f) as u8,
        }
    }

    /// Access width in bytes (valid with ISV).
    pub const fn width(&self) -> u8 {
        1 << self.sas
    }
}

impl fmt::Display for DataAbort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = if self.wnr { "write" } else { "read" };
        if self.isv {
            write!(f, "{}-byte {dir} via x{}, DFSC {:#04x}", self.width(), self.srt, self.dfsc)
        } else {
            write!(f, "{dir} without syndrome (ISV=0), DFSC {:#04x}", self.dfsc)
        }
    }
}

/// The faulting IPA of a stage-2 abort, from HPFAR_EL2 (IPA bits 51:12 in its bits 43:4) and
/// the page offset from FAR_EL2.
pub const fn fault_ipa(hpfar: u64, far: u64) -> u64 {
    ((hpfar & 0x0fff_ffff_fff0) << 8) | (far & 0xfff)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Syndromes QEMU 7.2 produced for a guest at EL1 touching an unmapped UART page
    // (recorded in shared/reference/el2-and-qemu.md §1.8).
    #[test]
    fn decodes_measured_syndromes() {
        let strb = Esr(0x9301_0045).data_abort().unwrap();
        assert!(strb.isv && strb.wnr && !strb.sf);
        assert_eq!((strb.width(), strb.srt, strb.dfsc), (1, 1, 0x05));

        let ldr = Esr(0x9383_0005).data_abort().unwrap();
        assert!(ldr.isv && !ldr.wnr && !ldr.sse && !ldr.sf);
        assert_eq!((ldr.width(), ldr.srt), (4, 3));

        let ldrsh = Esr(0x9364_8005).data_abort().unwrap();
        assert!(ldrsh.isv && ldrsh.sse && ldrsh.sf);
        assert_eq!((ldrsh.width(), ldrsh.srt), (2, 4));

        assert!(!Esr(0x9200_0005).data_abort().unwrap().isv); // ldp
        assert!(!Esr(0x9200_0045).data_abort().unwrap().isv); // str with writeback

        assert_eq!(Esr(0x5a00_0000).ec(), ec::HVC64);
        assert_eq!(Esr(0x5e00_0000).ec(), ec::SMC64);
        assert!(Esr(0x5a00_0000).data_abort().is_none());
    }

    #[test]
    fn ipa_from_hpfar_and_far() {
        assert_eq!(fault_ipa(0x0009_0000, 0x0900_0018), 0x0900_0018);
        assert_eq!(fault_ipa(0x8000_0000_0000_0000 | (0x8_0000_0000 >> 8), 0x123), 0x8_0000_0123);
    }

    #[test]
    fn display_names_the_parts() {
        let text = format!("{}", Esr(0x9383_0005));
        assert!(text.contains("data abort") && text.contains("4-byte read via x3"), "{text}");
    }
}
