//! Checking that the guest's RAM is real RAM that nothing else uses: inside QEMU's
//! memory, clear of hyp's image, QEMU's DTB and the bundle it came in.

use core::fmt;

use pvmkit_abi::memory_map::Region;

/// Something that occupies host memory guest RAM must not overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reserved {
    /// What it is, for messages.
    pub name: &'static str,
    /// Where it is.
    pub region: Region,
}

/// Why guest RAM cannot go where the bundle says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlacementError {
    /// Guest RAM is not inside one RAM region of the platform.
    NotInRam(Region),
    /// Guest RAM overlaps something hyp or QEMU uses.
    Overlaps(Region, &'static str),
}

impl fmt::Display for PlacementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotInRam(r) => {
                write!(f, "guest RAM {:#x}..{:#x} is not inside platform RAM", r.start, r.end)
            }
            Self::Overlaps(r, what) => {
                write!(f, "guest RAM {:#x}..{:#x} overlaps {what}", r.start, r.end)
            }
        }
    }
}

/// Checks guest RAM against the platform's RAM and everything reserved.
pub fn check_guest_ram(guest: Region, ram: &[Region], reserved: &[Reserved]) -> Result<(), PlacementError> {
    if !ram.iter().any(|r| r.contains(&guest)) {
        return Err(PlacementError::NotInRam(guest));
    }
    match reserved.iter().find(|r| r.region.overlaps(&guest)) {
        Some(r) => Err(PlacementError::Overlaps(guest, r.name)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: Region = Region { start: 0x4000_0000, end: 0xc000_0000 };
    const HYP: Reserved = Reserved { name: "hyp image", region: Region { start: 0x4008_0000, end: 0x4020_0000 } };

    #[test]
    fn accepts_free_ram_and_refuses_the_rest() {
        let guest = Region { start: 0x8000_0000, end: 0x9000_0000 };
        assert_eq!(check_guest_ram(guest, &[RAM], &[HYP]), Ok(()));
        let high = Region { start: 0xb000_0000, end: 0xd000_0000 };
        assert_eq!(check_guest_ram(high, &[RAM], &[HYP]), Err(PlacementError::NotInRam(high)));
        let low = Region { start: 0x4000_0000, end: 0x5000_0000 };
        assert_eq!(check_guest_ram(low, &[RAM], &[HYP]), Err(PlacementError::Overlaps(low, "hyp image")));
        assert_eq!(check_guest_ram(guest, &[], &[]), Err(PlacementError::NotInRam(guest)));
    }
}
