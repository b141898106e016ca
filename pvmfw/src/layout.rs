//! Where everything pvmfw writes into guest memory goes, laid out so that no two
//! regions can overlap for any input pvmfw accepts:
//!
//! - the DT slot, `[GUEST_DT_BASE, + HOST_DT_MAX_SIZE)`: the host's DT lies there (pvmfw
//!   copies it into its own memory, then erases it) and the payload's new DT goes there;
//! - the secret page, the last page of the DT area, far above the slot;
//! - the payload, clear of the whole DT area (checked by [`crate::placement`]).
//!
//! A host DT or a new DT that does not fit the slot is refused by name, never
//! truncated and never allowed to run into the secret.

use core::fmt;

use abi::memory_map::Region;
use abi::memory_map::GUEST_DT_BASE;
use abi::pvmfw::{HOST_DT_MAX_SIZE, PAYLOAD_SECRET_IPA};

/// The DT slot.
pub const DT_SLOT: Region = Region { start: GUEST_DT_BASE, end: GUEST_DT_BASE + HOST_DT_MAX_SIZE };
/// The page that holds the payload's secret.
pub const SECRET_PAGE: Region = Region { start: PAYLOAD_SECRET_IPA, end: PAYLOAD_SECRET_IPA + 4096 };

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
    use crate::placement::payload_region;

    #[test]
    fn nothing_pvmfw_accepts_can_reach_the_secret() {
        // The largest host DT and new DT accepted.
        let host = host_dt(GUEST_DT_BASE, HOST_DT_MAX_SIZE).unwrap();
        let new = new_dt(HOST_DT_MAX_SIZE).unwrap();
        assert!(!host.overlaps(&SECRET_PAGE) && !new.overlaps(&SECRET_PAGE));
        // One byte more, or a DT placed higher in the slot, is refused by name.
        assert_eq!(
            host_dt(GUEST_DT_BASE, HOST_DT_MAX_SIZE + 1),
            Err(LayoutError::HostDtOutsideSlot { at: GUEST_DT_BASE, size: HOST_DT_MAX_SIZE + 1 })
        );
        assert!(host_dt(GUEST_DT_BASE + 16, HOST_DT_MAX_SIZE).is_err());
        assert!(host_dt(PAYLOAD_SECRET_IPA - 16, 32).is_err());
        assert!(host_dt(u64::MAX - 8, 64).is_err(), "a wrapping region is refused");
        assert_eq!(new_dt(HOST_DT_MAX_SIZE + 1), Err(LayoutError::NewDtTooLarge(HOST_DT_MAX_SIZE + 1)));
        // The DT that wiped half the secret: 2 MiB less 16 bytes.
        assert!(host_dt(GUEST_DT_BASE, (2 << 20) - 16).unwrap_err().to_string().contains("do not fit its slot"));
        // The payload: wherever placement accepts it, it is clear of slot and secret.
        let limits = Limits::qemu_virt();
        let ram = Region { start: GUEST_DT_BASE, end: GUEST_DT_BASE + (256 << 20) };
        let keep_clear = [("pvmfw", limits.pvmfw), ("the DT area", limits.dt_area)];
        for load in (GUEST_DT_BASE..GUEST_DT_BASE + (4 << 20)).step_by(4096) {
            if let Ok(payload) = payload_region(load, 0x10000, ram, &keep_clear) {
                assert!(!payload.overlaps(&SECRET_PAGE) && !payload.overlaps(&DT_SLOT), "{payload:?}");
            }
        }
        assert!(limits.dt_area.contains(&DT_SLOT) && limits.dt_area.contains(&SECRET_PAGE));
    }
}
