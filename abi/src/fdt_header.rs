//! The first eight bytes of a flattened device tree (devicetree specification, 5.2):
//! its magic and `totalsize`. hyp, pvmfw and guests all find a DT by address and must
//! learn its length from these before they can look at the rest.
//!
//! ```
//! use pvmkit_abi::fdt_header::total_size;
//!
//! assert_eq!(total_size([0xd0, 0x0d, 0xfe, 0xed, 0, 0, 0x20, 0], 1 << 20), Ok(0x2000));
//! assert!(total_size([0xd0, 0x0d, 0xfe, 0xed, 0, 0x20, 0, 0], 1 << 20).is_err(), "2 MiB > the limit");
//! ```

/// `0xd00dfeed`, big-endian.
pub const MAGIC: [u8; 4] = [0xd0, 0x0d, 0xfe, 0xed];
/// The size of a v17 header: no blob can be smaller.
pub const MIN_SIZE: u32 = 40;

/// Why the header does not describe a usable blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// No magic.
    NotADt,
    /// `totalsize` below a header or above the caller's limit.
    BadSize(u32),
}

/// The blob's `totalsize`, checked to be at least a header and at most `max` bytes.
pub fn total_size(header: [u8; 8], max: usize) -> Result<usize, HeaderError> {
    if header[..4] != MAGIC {
        return Err(HeaderError::NotADt);
    }
    let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if size < MIN_SIZE || size as usize > max {
        return Err(HeaderError::BadSize(size));
    }
    Ok(size as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_bounded() {
        assert_eq!(total_size([0xd0, 0x0d, 0xfe, 0xed, 0, 0, 0x10, 0], 1 << 20), Ok(0x1000));
        assert_eq!(total_size([0; 8], 1 << 20), Err(HeaderError::NotADt));
        assert_eq!(total_size([0xd0, 0x0d, 0xfe, 0xed, 0, 0, 0, 39], 1 << 20), Err(HeaderError::BadSize(39)));
        assert_eq!(total_size([0xd0, 0x0d, 0xfe, 0xed, 0, 0x10, 0, 1], 1 << 20), Err(HeaderError::BadSize(0x10_0001)));
    }
}
