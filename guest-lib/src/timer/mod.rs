//! Timed waits that work on every hypervisor pvmkit runs: the guest arms its virtual
//! timer and sleeps in WFI until the timer's condition holds.
//!
//! On real KVM a WFI blocks until an interrupt is pending, so the timer's interrupt
//! (PPI 27) must reach the vCPU: guest-lib enables it in the GICv3 the DT names (its
//! redistributor and CPU interface, in `arch/timer.rs`), with interrupts still
//! masked at the CPU — a pending interrupt wakes a WFI whether or not it is taken.
//! hyp gives the guest a virtual GIC too; under a hypervisor that gives none, each WFI
//! returns at once and the same loop simply polls the timer. Nothing here depends on
//! hyp's tick.
//!
//! ```
//! // The arithmetic is host-tested; `sleep_ns` runs in the guest:
//! assert_eq!(guest_lib::timer::ticks(1_000_000, 62_500_000), 62_500);
//! ```
//! ```ignore
//! // In a guest on guest-lib's runtime (the GIC is set up on first use):
//! guest_lib::timer::sleep_ns(1_000_000);
//! // Without the runtime, hand it the DT and the MMIO guard once, or waits spin:
//! guest_lib::timer::init(&dt, &guard);
//! ```

pub(crate) mod wait;
pub use wait::{ticks, Wake};

#[cfg(any(target_os = "none", doc))]
pub use crate::arch::timer::{init, init_on_first_use, sleep_ns, uses_interrupts};
