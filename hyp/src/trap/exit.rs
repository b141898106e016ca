//! hyp's final, machine-readable console line (design.md §5):
//! `exit: reason=<reason> key=value…` after hyp's tag. `pvmkit` reads exactly one such line, with the run's nonce.

use core::fmt;
use pvmkit_abi::address::Ipa;
use pvmkit_abi::virtio_mmio::BufferRole;

use pvmkit_abi::exit_line::{Head, Quoted, Reason, Violation};

use crate::esr::Esr;

/// Why the VM ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason<'a> {
    /// The guest called PSCI SYSTEM_OFF.
    SystemOff,
    /// The guest called PSCI SYSTEM_RESET (hyp powers off rather than reboot).
    Reset,
    /// The guest broke a pKVM rule that hyp enforces.
    Violation {
        /// The guest IPA involved.
        ipa: Ipa,
        /// The vCPU whose exit found it.
        vcpu: Option<u32>,
        /// The device (its register base), when a device was involved.
        device: Option<u64>,
        /// The queue, when a virtqueue was involved.
        queue: Option<u32>,
        /// The descriptor, when one was involved.
        descriptor: Option<u16>,
        /// Which part of its request the descriptor's buffer is, when known.
        buffer: Option<BufferRole>,
        /// What was wrong.
        what: &'a str,
    },
    /// The guest took an exception hyp cannot handle or hand back.
    GuestCrash {
        /// Syndrome.
        esr: Esr,
        /// Fault address (FAR_EL2).
        far: u64,
        /// Guest PC (ELR_EL2).
        elr: u64,
    },
    /// hyp could not go on: bad input from the host, or its own bug.
    HypError {
        /// What happened.
        detail: &'a str,
    },
    /// The last running vCPU called PSCI CPU_OFF: nothing can run again.
    AllVcpusOff,
}

impl ExitReason<'_> {
    /// The `reason=` word's reason.
    pub const fn reason(&self) -> Reason {
        match self {
            Self::SystemOff => Reason::SystemOff,
            Self::Reset => Reason::Reset,
            Self::Violation { .. } => Reason::Violation,
            Self::GuestCrash { .. } => Reason::GuestCrash,
            Self::HypError { .. } => Reason::HypError,
            Self::AllVcpusOff => Reason::AllVcpusOff,
        }
    }
}

impl fmt::Display for ExitReason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Head(self.reason()))?;
        match self {
            Self::SystemOff | Self::Reset | Self::AllVcpusOff => Ok(()),
            Self::Violation { ipa, vcpu, device, queue, descriptor, buffer, what } => {
                let (ipa, vcpu, device, queue, descriptor, buffer, what) =
                    (ipa.get(), *vcpu, *device, *queue, *descriptor, *buffer, *what);
                write!(f, "{}", Violation { ipa, vcpu, device, queue, descriptor, buffer, what })
            }
            Self::GuestCrash { esr, far, elr } => {
                write!(f, " esr={:#x} far={far:#x} elr={elr:#x} class={}", esr.0, Quoted(esr.class_name()))
            }
            Self::HypError { detail } => write!(f, " detail={}", Quoted(detail)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_line_and_parseable() {
        assert_eq!(ExitReason::SystemOff.to_string(), "exit: reason=system_off");
        assert_eq!(ExitReason::Reset.to_string(), "exit: reason=reset");
        assert_eq!(ExitReason::AllVcpusOff.to_string(), "exit: reason=all_vcpus_off");
        let crash = ExitReason::GuestCrash { esr: Esr(0x0200_0000), far: 0x10, elr: 0x8020_0000 };
        assert_eq!(
            crash.to_string(),
            "exit: reason=guest_crash esr=0x2000000 far=0x10 elr=0x80200000 class=\"unknown reason (undefined instruction?)\""
        );
        let err = ExitReason::HypError { detail: "bad \"bundle\"\nline" };
        assert_eq!(err.to_string(), "exit: reason=hyp_error detail=\"bad 'bundle''line\"");
        let v = ExitReason::Violation {
            ipa: Ipa(0x8000_1000),
            vcpu: Some(1),
            device: Some(0x0a00_3e00),
            queue: Some(0),
            descriptor: Some(2),
            buffer: Some(BufferRole::Status),
            what: "buffer page not shared",
        };
        assert_eq!(
            v.to_string(),
            "exit: reason=violation ipa=0x80001000 vcpu=1 device=virtio-mmio@0xa003e00 queue=0 desc=2 buffer=status what=\"buffer page not shared\""
        );
    }
}
