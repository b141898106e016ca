//! Where the payload may lie: inside guest RAM and clear of everything else the payload
//! is given (the DT area, the ramdisk, the bounce pool).

use core::fmt;

use pvmkit_abi::memory_map::Region;

/// Why the payload cannot lie where it was loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlacementError {
    /// load address + memory size wraps.
    Wraps,
    /// Not inside guest RAM.
    OutsideRam(Region),
    /// Over something else.
    Overlaps(Region, &'static str),
}

impl fmt::Display for PlacementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wraps => write!(f, "payload memory size wraps"),
            Self::OutsideRam(r) => write!(f, "payload {:#x}..{:#x} does not fit guest RAM", r.start, r.end),
            Self::Overlaps(r, what) => {
                write!(f, "payload {:#x}..{:#x} overlaps {what}", r.start, r.end)
            }
        }
    }
}

/// The payload's footprint, checked against `ram` and every `(name, region)` in `keep_clear`.
pub fn payload_region(
    load_ipa: u64,
    mem_size: u64,
    ram: Region,
    keep_clear: &[(&'static str, Region)],
) -> Result<Region, PlacementError> {
    let target = Region::new(load_ipa, mem_size).ok_or(PlacementError::Wraps)?;
    if !ram.contains(&target) {
        return Err(PlacementError::OutsideRam(target));
    }
    match keep_clear.iter().find(|(_, r)| target.overlaps(r)) {
        Some((what, _)) => Err(PlacementError::Overlaps(target, what)),
        None => Ok(target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: Region = Region { start: 0x8000_0000, end: 0x9000_0000 };
    const CLEAR: [(&str, Region); 3] = [
        ("pvmfw", Region { start: 0x7fc0_0000, end: 0x8000_0000 }),
        ("the DT area", Region { start: 0x8000_0000, end: 0x8020_0000 }),
        ("the ramdisk", Region { start: 0x8800_0000, end: 0x8804_0000 }),
    ];

    #[test]
    fn accepts_free_ram_and_refuses_the_rest() {
        assert_eq!(
            payload_region(0x8020_0000, 0x100_0000, RAM, &CLEAR),
            Ok(Region { start: 0x8020_0000, end: 0x8120_0000 })
        );
        assert_eq!(
            payload_region(0x8020_0000, 1 << 30, RAM, &CLEAR),
            Err(PlacementError::OutsideRam(Region { start: 0x8020_0000, end: 0xc020_0000 }))
        );
        assert!(
            matches!(payload_region(0x7fc0_0000, 0x1000, RAM, &CLEAR), Err(PlacementError::OutsideRam(_))),
            "pvmfw is not RAM"
        );
        let over_pvmfw = payload_region(0x7fc0_0000, 0x1000, Region { start: 0x7fc0_0000, end: 0x9000_0000 }, &CLEAR);
        assert_eq!(over_pvmfw, Err(PlacementError::Overlaps(Region { start: 0x7fc0_0000, end: 0x7fc0_1000 }, "pvmfw")));
        assert!(matches!(
            payload_region(0x8010_0000, 0x1000, RAM, &CLEAR),
            Err(PlacementError::Overlaps(_, "the DT area"))
        ));
        assert!(matches!(
            payload_region(0x8700_0000, 0x200_0000, RAM, &CLEAR),
            Err(PlacementError::Overlaps(_, "the ramdisk"))
        ));
        assert_eq!(payload_region(u64::MAX - 0xfff, 0x2000, RAM, &CLEAR), Err(PlacementError::Wraps));
    }
}
