//! Where pvmfw writes into guest memory: the DT slot, `[GUEST_DT_BASE, +
//! HOST_DT_MAX_SIZE)`. The host's DT lies there (pvmfw copies it into its own memory,
//! then erases it) and the payload's new DT goes there; the kernel and the ramdisk are
//! clear of the whole DT area (checked by [`crate::host_dt`] and [`crate::kernel`]).
//!
//! A host DT or a new DT that does not fit the slot is refused by name, never
//! truncated.

use core::fmt;

use pvmkit_abi::memory_map::Region;
use pvmkit_abi::memory_map::GUEST_DT_BASE;
use pvmkit_abi::pvmfw::HOST_DT_MAX_SIZE;

/// The DT slot.
pub const DT_SLOT: Region = Region { start: GUEST_DT_BASE, end: GUEST_DT_BASE + HOST_DT_MAX_SIZE };

/// A device tree that does not fit the DT slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The host's DT is not inside the slot.
    HostDtOutsideSlot {
        /// Where it is.
        at: u64,
        /// Its totalsize.
        size: u64,
    },
    /// The payload's new DT is larger than the slot.
    NewDtTooLarge(u64),
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HostDtOutsideSlot { at, size } => write!(
                f,
                "host device tree: {size:#x} bytes at {at:#x} do not fit its slot {:#x}..{:#x}",
                DT_SLOT.start, DT_SLOT.end
            ),
            Self::NewDtTooLarge(size) => {
                write!(
                    f,
                    "the payload's device tree ({size:#x} bytes) does not fit the DT slot ({HOST_DT_MAX_SIZE:#x})"
                )
            }
        }
    }
}

/// The host DT's bytes, `size` (its totalsize) at `at`, if they lie inside the slot.
pub fn host_dt(at: u64, size: u64) -> Result<Region, LayoutError> {
    Region::new(at, size).filter(|r| DT_SLOT.contains(r)).ok_or(LayoutError::HostDtOutsideSlot { at, size })
}

/// Where the payload's new DT of `size` bytes goes.
pub fn new_dt(size: u64) -> Result<Region, LayoutError> {
    Region::new(DT_SLOT.start, size).filter(|r| DT_SLOT.contains(r)).ok_or(LayoutError::NewDtTooLarge(size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host_dt::Limits;

    #[test]
    fn a_dt_fits_its_slot_or_is_refused_by_name() {
        // The largest host DT and new DT accepted.
        assert!(host_dt(GUEST_DT_BASE, HOST_DT_MAX_SIZE).is_ok() && new_dt(HOST_DT_MAX_SIZE).is_ok());
        // One byte more, or a DT placed higher in the slot, is refused by name.
        assert_eq!(
            host_dt(GUEST_DT_BASE, HOST_DT_MAX_SIZE + 1),
            Err(LayoutError::HostDtOutsideSlot { at: GUEST_DT_BASE, size: HOST_DT_MAX_SIZE + 1 })
        );
        assert!(host_dt(GUEST_DT_BASE + 16, HOST_DT_MAX_SIZE).is_err());
        assert!(host_dt(GUEST_DT_BASE - 16, 32).is_err(), "below the slot");
        assert!(host_dt(u64::MAX - 8, 64).is_err(), "a wrapping region is refused");
        assert_eq!(new_dt(HOST_DT_MAX_SIZE + 1), Err(LayoutError::NewDtTooLarge(HOST_DT_MAX_SIZE + 1)));
        assert!(host_dt(GUEST_DT_BASE, (2 << 20) - 16).unwrap_err().to_string().contains("do not fit its slot"));
        // The slot lies in the DT area, which the kernel and ramdisk are kept clear of.
        assert!(Limits::qemu_virt().dt_area.contains(&DT_SLOT));
    }
}
