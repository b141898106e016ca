//! Interrupts without vectors: a driver enables its device's interrupt at the GIC,
//! submits its request, and waits for the interrupt in WFI with interrupts still masked
//! at the CPU; the GIC's acknowledge register says which one came. Completion then
//! costs no polling of the used ring, and the hypervisor need not wait for the device
//! on the driver's behalf (hyp does, for drivers that poll). A guest can also send
//! itself an SGI ([`send_sgi_to_self`]) and wait for it the same way.
//!
//! The GIC is the one guest-lib sets up for its timer ([`crate::timer`]); the interrupt's
//! INTID comes from the DT ([`crate::device_tree::GuestDt::virtio_mmio_interrupt`]).
//!
//! ```ignore
//! use guest_lib::interrupts;
//! let intid = dt.virtio_mmio_interrupt(base).unwrap();
//! blk.ack_interrupt();                   // quiet what earlier requests raised
//! interrupts::enable(intid)?;
//! let token = unsafe { blk.read_blocks_nb(sector, &mut req, &mut buf, &mut resp)? };
//! while blk.peek_used() != Some(token) {
//!     interrupts::wait(intid);           // acknowledged: active until ended
//!     blk.ack_interrupt();               // the device lowers its line
//!     interrupts::end(intid);
//! }
//! ```

pub(crate) mod intid;
pub use intid::{check_intid, sgi_to, InterruptError};

#[cfg(any(target_os = "none", doc))]
pub use crate::arch::interrupts::{
    disable, enable, end, init_this_cpu, redistributor, send_sgi, send_sgi_to_self, wait,
};
