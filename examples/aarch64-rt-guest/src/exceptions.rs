//! aarch64-rt's vectors call these. A data abort on one of guest-lib's probe
//! instructions is turned into the probe's `Err` with guest-lib's fix-up; anything else
//! is reported, decoded by guest-lib, and ends the VM.

use aarch64_rt::{exception_handlers, ExceptionHandlers, RegisterStateRef};
use guest_lib::exceptions::ExceptionReport;

exception_handlers!(Exceptions);

struct Exceptions;

fn syndrome() -> (u64, u64) {
    let (esr, far): (u64, u64);
    // SAFETY: reading the syndrome registers has no side effects.
    unsafe {
        core::arch::asm!("mrs {}, esr_el1", "mrs {}, far_el1", out(reg) esr, out(reg) far, options(nomem, nostack));
    }
    (esr, far)
}

fn report(kind: &'static str, elr: u64) -> ! {
    let (esr, far) = syndrome();
    crate::say!("[guest] {}", ExceptionReport { kind, esr: guest_lib::exceptions::Esr(esr), far, elr });
    crate::platform::fail()
}

impl ExceptionHandlers for Exceptions {
    extern "C" fn sync_current(mut state: RegisterStateRef) {
        let (esr, far) = syndrome();
        let elr = state.elr as u64;
        match guest_lib::exceptions::probe::fixup(esr, elr, far) {
            Some(fix) => {
                // SAFETY: resuming after the probe's single access with x1 = 1 is the
                // probe's contract (guest-lib's probe.S expects exactly this).
                let regs = unsafe { state.get_mut() };
                regs.elr = fix.resume_at as usize;
                regs.registers[1] = fix.x1;
            }
            None => report("synchronous", elr),
        }
    }

    extern "C" fn irq_current(state: RegisterStateRef) {
        report("IRQ", state.elr as u64)
    }

    extern "C" fn serror_current(state: RegisterStateRef) {
        report("SError", state.elr as u64)
    }
}
