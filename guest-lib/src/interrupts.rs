//! Device interrupts without vectors: a driver enables its device's interrupt at the
//! GIC, submits its request, and waits for the interrupt in WFI with interrupts still
//! masked at the CPU; the GIC's acknowledge register says which one came. Completion
//! then costs no polling of the used ring, and the hypervisor need not wait for the
//! device on the driver's behalf (hyp does, for drivers that poll).
//!
//! The GIC is the one guest-lib sets up for its timer ([`crate::timer`]); the interrupt's
//! INTID comes from the DT ([`crate::device_tree::GuestDt::virtio_mmio_interrupt`]).
//!
//! ```ignore
//! use guest_lib::interrupts;
//! let intid = dt.virtio_mmio_interrupt(base).unwrap();
//! interrupts::enable(intid)?;
//! let token = unsafe { blk.read_blocks_nb(sector, &mut req, &mut buf, &mut resp)? };
//! interrupts::wait(intid);           // acknowledged: active until ended
//! blk.ack_interrupt();               // the device lowers its line
//! interrupts::end(intid);
//! assert_eq!(blk.peek_used(), Some(token));
//! ```

use core::fmt;

/// Why a device interrupt cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptError {
    /// guest-lib has no GIC set up (none in the DT, or the hypervisor gives none).
    NoGic,
    /// Not a shared peripheral interrupt (32..1020).
    NotAnSpi(u32),
}

impl fmt::Display for InterruptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoGic => write!(f, "no GIC set up for device interrupts"),
            Self::NotAnSpi(intid) => write!(f, "INTID {intid} is not a shared peripheral interrupt"),
        }
    }
}

/// Checks that `intid` is an SPI.
pub fn check_spi(intid: u32) -> Result<u32, InterruptError> {
    (32..1020).contains(&intid).then_some(intid).ok_or(InterruptError::NotAnSpi(intid))
}

#[cfg(any(target_os = "none", doc))]
pub use crate::arch::interrupts::{disable, enable, end, wait};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_spis_are_device_interrupts() {
        assert_eq!(check_spi(48), Ok(48));
        assert_eq!(check_spi(27), Err(InterruptError::NotAnSpi(27)));
        assert_eq!(check_spi(1020), Err(InterruptError::NotAnSpi(1020)));
        assert_eq!(InterruptError::NoGic.to_string(), "no GIC set up for device interrupts");
    }
}
