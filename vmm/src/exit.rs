//! How a run ends, in the words hyp uses (`pvmkit`'s verdict reads both the same way):
//! `[vmm] exit: reason=system_off|reset|violation|guest_crash|vmm_error …`; and the tag
//! every line the VMM writes starts with, carrying the run's nonce (`pvmkit_abi::exit_line`),
//! which `pvmkit` hands over in the initramfs, out of the guest's reach.

use core::fmt;
use std::sync::OnceLock;

use pvmkit_abi::address::Page;
use pvmkit_abi::exit_line::{Head, Nonce, Quoted, Reason, Tag, Violation, Writer};
use pvmkit_abi::virtio_mmio::BufferRole;

static NONCE: OnceLock<Nonce> = OnceLock::new();

/// Tags the VMM's lines from now on with the run's nonce (the first one set stays).
pub fn set_nonce(nonce: Nonce) {
    let _ = NONCE.set(nonce);
}

/// What starts every line the VMM writes: `[vmm#<nonce>]` (`[vmm]` before a nonce is
/// set, which `pvmkit` never takes for the VMM's). Reading it is one atomic load: the
/// fault handler may.
pub fn tag() -> Tag {
    Tag(Writer::Vmm, NONCE.get().copied())
}

/// `vmm_println!("...")`: one of the VMM's lines, tagged.
#[macro_export]
macro_rules! vmm_println {
    ($($arg:tt)*) => { println!("{} {}", $crate::exit::tag(), format_args!($($arg)*)) };
}

/// Why the VM ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// PSCI SYSTEM_OFF: a clean power-off.
    SystemOff,
    /// PSCI SYSTEM_RESET: the guest gave up.
    Reset,
    /// The guest handed a device memory it had not shared.
    Violation {
        /// The guest page.
        page: Page,
        /// The vCPU whose exit the VMM was serving, when known.
        vcpu: Option<u32>,
        /// The device's register base.
        device: u64,
        /// The queue.
        queue: u32,
        /// The descriptor, when one is involved.
        descriptor: Option<u16>,
        /// Which part of its request the descriptor's buffer is, when known.
        buffer: Option<BufferRole>,
        /// What was wrong.
        what: &'static str,
    },
    /// The vCPU stopped in a way the VMM cannot resume.
    GuestCrash(String),
    /// The VMM itself failed (no KVM, no protected VM, a bad bundle).
    VmmError(String),
    /// The VMM faulted at this address outside any access to guest memory for a device.
    VmmFault(u64),
    /// Every vCPU is powered off (the last one called PSCI CPU_OFF): nothing can run again.
    AllVcpusOff,
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = Head;
        match self {
            Self::SystemOff => write!(f, "{}", head(Reason::SystemOff)),
            Self::Reset => write!(f, "{}", head(Reason::Reset)),
            Self::AllVcpusOff => write!(f, "{}", head(Reason::AllVcpusOff)),
            Self::Violation { page, vcpu, device, queue, descriptor, buffer, what } => {
                let (device, queue) = (Some(*device), Some(*queue));
                let fields = Violation {
                    ipa: page.ipa().get(),
                    vcpu: *vcpu,
                    device,
                    queue,
                    descriptor: *descriptor,
                    buffer: *buffer,
                    what,
                };
                write!(f, "{}{fields}", head(Reason::Violation))
            }
            Self::GuestCrash(detail) => write!(f, "{} detail={}", head(Reason::GuestCrash), Quoted(detail)),
            Self::VmmError(detail) => write!(f, "{} detail={}", head(Reason::VmmError), Quoted(detail)),
            Self::VmmFault(at) => {
                write!(f, "{} detail=\"the VMM faulted at {at:#x}\"", head(Reason::VmmError))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_lines_use_hyps_words() {
        assert_eq!(ExitReason::SystemOff.to_string(), "exit: reason=system_off");
        assert_eq!(ExitReason::Reset.to_string(), "exit: reason=reset");
        assert_eq!(ExitReason::AllVcpusOff.to_string(), "exit: reason=all_vcpus_off");
        let v = ExitReason::Violation {
            page: Page::at(pvmkit_abi::address::Ipa(0x8000_1000)).unwrap(),
            vcpu: Some(1),
            device: 0xa00_3e00,
            queue: 0,
            descriptor: Some(2),
            buffer: Some(BufferRole::Header),
            what: "x",
        };
        assert_eq!(
            v.to_string(),
            "exit: reason=violation ipa=0x80001000 vcpu=1 device=virtio-mmio@0xa003e00 queue=0 desc=2 buffer=header what=\"x\""
        );
        assert_eq!(
            ExitReason::VmmError("no /dev/kvm".into()).to_string(),
            "exit: reason=vmm_error detail=\"no /dev/kvm\""
        );
    }
}
