//! The host-tested part of the interrupts API: which INTIDs it serves, the SGI
//! register's encoding, and its errors.

use core::fmt;

/// Why a device interrupt cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptError {
    /// guest-lib has no GIC set up (none in the DT, or the hypervisor gives none).
    NoGic,
    /// Not an interrupt this API serves: SGIs (0..16), PPIs (16..32) and SPIs
    /// (32..1020) are; an SGI is sent only as 0..16.
    BadIntid(u32),
}

impl fmt::Display for InterruptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoGic => write!(f, "no GIC set up for device interrupts"),
            Self::BadIntid(intid) => write!(f, "INTID {intid} is not one this API serves"),
        }
    }
}

/// Checks that `intid` is an SGI, a PPI or an SPI (not a special or LPI INTID).
pub fn check_intid(intid: u32) -> Result<u32, InterruptError> {
    (intid < 1020).then_some(intid).ok_or(InterruptError::BadIntid(intid))
}

/// The ICC_SGI1R_EL1 value that sends SGI `intid` to the PE whose MPIDR_EL1 is `mpidr`
/// (and only to it).
pub fn sgi_to(mpidr: u64, intid: u32) -> Result<u64, InterruptError> {
    if intid >= 16 {
        return Err(InterruptError::BadIntid(intid));
    }
    let aff = |shift: u32| (mpidr >> shift) & 0xff;
    let (aff0, aff1, aff2, aff3) = (aff(0), aff(8), aff(16), aff(32));
    // Aff0 is a bit of the 16-wide target list, in range selector Aff0 / 16.
    Ok(aff3 << 48 | (aff0 / 16) << 44 | aff2 << 32 | u64::from(intid) << 24 | aff1 << 16 | 1 << (aff0 % 16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgis_ppis_and_spis_are_served() {
        assert_eq!(check_intid(48), Ok(48));
        assert_eq!(check_intid(1), Ok(1));
        assert_eq!(check_intid(1020), Err(InterruptError::BadIntid(1020)));
        assert_eq!(InterruptError::NoGic.to_string(), "no GIC set up for device interrupts");
    }

    #[test]
    fn an_sgi_names_its_target_by_affinity() {
        // CPU 0 of QEMU virt (MPIDR 0x8000_0000: affinity 0.0.0.0): target list bit 0.
        assert_eq!(sgi_to(0x8000_0000, 1), Ok(1 << 24 | 1));
        // Affinity 3.2.1.18: range selector 1, target list bit 2.
        let mpidr = 3 << 32 | 2 << 16 | 1 << 8 | 18;
        assert_eq!(sgi_to(mpidr, 15), Ok(3 << 48 | 1 << 44 | 2 << 32 | 15 << 24 | 1 << 16 | 1 << 2));
        assert_eq!(sgi_to(0, 16), Err(InterruptError::BadIntid(16)));
    }
}
