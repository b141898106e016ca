//! Catching the VMM's own access to a page the guest has not shared. On the real pKVM
//! such a load or store faults (SIGSEGV, SEGV_ACCERR): the VMM notes which device,
//! queue and descriptor it is serving before each access, and the fault handler turns
//! the fault into a `violation` exit line naming them and the IPA, then ends the run.
//! The handler allocates nothing and returns never.

use core::cell::Cell;
use core::fmt::Write;

use pvmkit_abi::address::Ipa;
use pvmkit_abi::virtio_mmio::BufferRole;

use crate::exit::ExitReason;

/// What the thread is doing with guest memory. Per thread, because the fault is
/// delivered to the thread that faulted (and tests serve devices on many threads).
#[derive(Clone, Copy, Default)]
struct Watch {
    /// Guest RAM's host address, IPA and length.
    host: u64,
    ipa: Ipa,
    len: u64,
    /// The device being served (0: none), its queue and descriptor.
    device: u64,
    queue: u32,
    descriptor: Option<u16>,
    /// Which part of its request the descriptor's buffer is.
    buffer: Option<BufferRole>,
    /// The vCPU this thread runs.
    vcpu: Option<u32>,
}

thread_local! {
    static WATCH: Cell<Watch> = const { Cell::new(Watch { host: 0, ipa: Ipa(0), len: 0, device: 0, queue: 0, descriptor: None, buffer: None, vcpu: None }) };
}

fn update(f: impl FnOnce(&mut Watch)) {
    WATCH.with(|w| {
        let mut now = w.get();
        f(&mut now);
        w.set(now);
    });
}

/// Guest RAM at `ipa`, `len` bytes, is mapped at `host` in the VMM.
pub fn map(host: u64, ipa: Ipa, len: u64) {
    update(|w| (w.host, w.ipa, w.len) = (host, ipa, len));
}

/// This thread runs vCPU `index`.
pub fn vcpu(index: u32) {
    update(|w| w.vcpu = Some(index));
}

/// The VMM now serves `queue` of the device at `base` (0: no device).
pub fn device(base: u64, queue: u32) {
    update(|w| (w.device, w.queue, w.descriptor, w.buffer) = (base, queue, None, None));
}

/// ... and descriptor `index` of it (`None`: its rings), the `buffer` of its request.
pub fn descriptor(index: Option<u16>, buffer: Option<BufferRole>) {
    update(|w| (w.descriptor, w.buffer) = (index, buffer));
}

/// The exit line for a fault at VMM address `fault`.
pub fn exit_for(fault: u64) -> ExitReason {
    let w = WATCH.with(Cell::get);
    match fault.checked_sub(w.host) {
        Some(offset) if offset < w.len && w.device != 0 => {
            let what = if w.descriptor.is_some() { "buffer page not shared" } else { "ring page not shared" };
            ExitReason::Violation {
                page: w.ipa.offset(offset).page(),
                vcpu: w.vcpu,
                device: w.device,
                queue: w.queue,
                descriptor: w.descriptor,
                buffer: w.buffer,
                what,
            }
        }
        _ => ExitReason::VmmFault(fault),
    }
}

/// A line formatted into a fixed buffer (no allocation).
pub struct Line {
    bytes: [u8; 256],
    len: usize,
}

impl Line {
    /// `reason`'s exit line, tagged and newline-terminated.
    pub fn of(reason: &ExitReason) -> Self {
        let mut line = Line { bytes: [0; 256], len: 0 };
        let _ = writeln!(line, "{} {reason}", crate::exit::tag());
        line
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.bytes.len() - self.len;
        let n = s.len().min(room);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[cfg(target_os = "linux")]
mod handler {
    use super::*;

    extern "C" fn on_fault(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid siginfo for SIGSEGV.
        let fault = unsafe { (*info).si_addr() } as u64;
        let line = Line::of(&exit_for(fault));
        // SAFETY: write, tcdrain, sync, reboot and _exit are async-signal-safe, and
        // `line` lives on this stack.
        unsafe {
            libc::write(1, line.as_bytes().as_ptr().cast(), line.as_bytes().len());
            libc::tcdrain(1);
            libc::sync();
            if libc::getpid() == 1 {
                libc::reboot(libc::LINUX_REBOOT_CMD_POWER_OFF);
            }
            libc::_exit(1);
        }
    }

    /// Installs the fault handler.
    pub fn install() -> Result<(), String> {
        // SAFETY: a zeroed sigaction with a handler of the SA_SIGINFO shape.
        unsafe {
            let mut action: libc::sigaction = core::mem::zeroed();
            action.sa_sigaction = on_fault as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(libc::SIGSEGV, &action, core::ptr::null_mut()) != 0 {
                return Err(format!("installing the SIGSEGV handler: {}", std::io::Error::last_os_error()));
            }
        }
        Ok(())
    }
}

#[cfg(target_os = "linux")]
pub use handler::install;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_in_guest_ram_names_the_device_queue_descriptor_and_page() {
        map(0x7f00_0000_0000, Ipa(0x7fe0_0000), 258 << 20);
        vcpu(3);
        device(0xa00_3e00, 0);
        descriptor(Some(1), Some(BufferRole::Data));
        let reason = exit_for(0x7f00_0000_0000 + 0x40_1234);
        assert_eq!(
            Line::of(&reason).as_bytes(),
            b"[vmm] exit: reason=violation ipa=0x80201000 vcpu=3 device=virtio-mmio@0xa003e00 queue=0 desc=1 buffer=data what=\"buffer page not shared\"\n"
        );
        descriptor(None, None);
        assert!(Line::of(&exit_for(0x7f00_0000_0000)).as_bytes().ends_with(b"what=\"ring page not shared\"\n"));
        device(0, 0);
        assert_eq!(
            exit_for(0x7f00_0000_0000),
            ExitReason::VmmFault(0x7f00_0000_0000),
            "no device access: the VMM's own"
        );
    }
}
