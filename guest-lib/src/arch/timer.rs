//! The virtual timer and the GICv3 setup that lets its interrupt wake a WFI.

use crate::address::Ipa;
use core::sync::atomic::{AtomicU8, Ordering};

use mmio_guard::MmioGuarded;

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{Readable, Writeable, CNTFRQ_EL0, CNTVCT_EL0, CNTV_CTL_EL0, CNTV_CVAL_EL0};

use crate::register_gaps;
use crate::set_once::SetOnce;
use crate::timer::wait::{ticks, Wake};
use crate::GuestDt;

/// The virtual timer's interrupt (PPI 11, as the DT's timer node lists it third).
const VTIMER_INTID: u32 = pvmkit_abi::gic::ppi_intid(pvmkit_abi::memory_map::TIMER_PPIS[2]);
use pvmkit_abi::gic::{CTLR_ARE, CTLR_ENABLE_GRP1, GICR_WAKER};

use super::gic::{self, configure, read32, write32};
/// GICD_CTLR: affinity routing and group 1 enabled (single security state).
const GICD_CTLR_ARE_GRP1: u32 = CTLR_ARE | CTLR_ENABLE_GRP1;

/// Not set up yet.
const UNSET: u8 = 0;
/// The GIC delivers the timer's interrupt: WFI until it is pending.
const INTERRUPT: u8 = 1;
/// No usable GIC: each WFI returns (a hypervisor that traps it), the timer is polled
/// around it.
const POLLED: u8 = 2;
/// Never set up (a guest OS that did not call `init`): spin on the timer, no WFI,
/// since on real KVM a WFI with no interrupt to wake it would block for good.
const SPIN: u8 = 3;
static STATE: AtomicU8 = AtomicU8::new(UNSET);
/// What sets the GIC up on first use, when something registered it (guest-lib's
/// runtime does).
static ON_FIRST_USE: SetOnce<fn() -> Wake> = SetOnce::new();

/// Registers `set_up`, which calls [`init`], to run on the first wait or interrupt call
/// before any `init`. Once only; a second registration is refused.
pub fn init_on_first_use(set_up: fn() -> Wake) -> Result<(), fn() -> Wake> {
    ON_FIRST_USE.set(set_up).map(|_| ())
}

/// The GIC's distributor and redistributor bases, if guest-lib set the GIC up (setting
/// it up now on first use).
pub fn gic_frames() -> Option<(u64, u64)> {
    gic::frames().filter(|_| uses_interrupts() == Wake::Interrupt)
}

/// Sets up the GIC `dt` names (registering it with `guard`) so that the virtual timer's
/// interrupt reaches this CPU, if there is one the hypervisor lets the guest touch; timed
/// waits then sleep in WFI. Returns how they will wake.
pub fn init(dt: &GuestDt<'_>, guard: &(impl MmioGuarded + ?Sized)) -> Wake {
    let wake = setup(dt, guard);
    STATE.store(if wake == Wake::Interrupt { INTERRUPT } else { POLLED }, Ordering::Relaxed);
    wake
}

fn setup(dt: &GuestDt<'_>, guard: &(impl MmioGuarded + ?Sized)) -> Wake {
    let Some((gicd, gicr)) = dt.gic_v3() else { return Wake::Polled };
    if guard.map(Ipa(gicd), 0x1_0000).is_err() || guard.map(Ipa(gicr), 0x2_0000).is_err() {
        return Wake::Polled;
    }
    // A hypervisor that gives the guest no GIC answers with an external abort.
    // SAFETY: a register read expected to succeed or abort.
    if unsafe { super::probe::read_u32(gicr + GICR_WAKER) }.is_err() {
        let _ = guard.unmap(Ipa(gicd), 0x1_0000);
        let _ = guard.unmap(Ipa(gicr), 0x2_0000);
        return Wake::Polled;
    }
    write32(gicd, read32(gicd) | GICD_CTLR_ARE_GRP1);
    gic::wake_redistributor(gicr);
    configure(gicd, gicr, VTIMER_INTID);
    // The CPU interface: system registers on, every priority unmasked, group 1 on.
    register_gaps::enable_gic_cpu_interface();
    gic::set_frames(gicd, gicr);
    Wake::Interrupt
}

/// How waits wake on this VM. guest-lib's runtime sets the GIC up on first use
/// ([`init_on_first_use`]); without the runtime, [`init`] does, and until then waits
/// spin.
pub fn uses_interrupts() -> Wake {
    match STATE.load(Ordering::Relaxed) {
        INTERRUPT => Wake::Interrupt,
        POLLED | SPIN => Wake::Polled,
        _ => match ON_FIRST_USE.get() {
            Some(set_up) => set_up(),
            None => {
                STATE.store(SPIN, Ordering::Relaxed);
                Wake::Polled
            }
        },
    }
}

/// Sleeps at least `ns` nanoseconds: arms the virtual timer and waits in WFI until it
/// fires. Interrupts stay masked at the CPU: the pending interrupt wakes the WFI and
/// goes away when the timer is disabled.
pub fn sleep_ns(ns: u64) -> Wake {
    let wake = uses_interrupts();
    let deadline = CNTVCT_EL0.get().saturating_add(ticks(ns, CNTFRQ_EL0.get()));
    CNTV_CVAL_EL0.set(deadline);
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET);
    loop {
        barrier::isb(barrier::SY);
        if CNTV_CTL_EL0.is_set(CNTV_CTL_EL0::ISTATUS) {
            break;
        }
        if STATE.load(Ordering::Relaxed) == SPIN {
            core::hint::spin_loop();
            continue;
        }
        // SAFETY: waiting has no memory effect.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
    CNTV_CTL_EL0.set(0);
    wake
}
