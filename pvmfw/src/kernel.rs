//! The kernel where the host loaded it (AVF's boot protocol: `/config` `kernel-address`
//! and `kernel-size`), once verified: an arm64 `Image` whose base, `kernel-address` less
//! its `text_offset`, is 2 MiB aligned, and whose footprint (the larger of its header's
//! `image_size` and the signed bytes, which its `.bss` will overwrite) lies in RAM clear
//! of everything else the payload is given. pvmfw enters it at its first byte.

use pvmkit_abi::arm64_image;
use pvmkit_abi::memory_map::Region;
use pvmkit_abi::pvmfw::Refusal;

use crate::placement;
use crate::refusal::Refused;

/// The boot protocol's base alignment.
pub const BASE_ALIGN: u64 = 2 << 20;

/// Checks the verified `image` loaded at `loaded` (the signed bytes' region) and returns
/// its footprint.
pub fn footprint(
    loaded: Region,
    image: &[u8],
    ram: Region,
    keep_clear: &[(&'static str, Region)],
) -> Result<Region, Refused> {
    let header = arm64_image::parse(image)?;
    let base = loaded.start.wrapping_sub(header.text_offset);
    if loaded.start < header.text_offset || !base.is_multiple_of(BASE_ALIGN) {
        return Err(Refused::new(
            Refusal::ImageHeader,
            format_args!(
                "payload: kernel-address {:#x} less the Image's text_offset {:#x} is not 2 MiB aligned",
                loaded.start, header.text_offset
            ),
        ));
    }
    Ok(placement::payload_region(loaded.start, header.image_size.max(loaded.size()), ram, keep_clear)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: Region = Region { start: 0x8000_0000, end: 0x9000_0000 };
    const CLEAR: [(&str, Region); 2] = [
        ("the DT area", Region { start: 0x8000_0000, end: 0x8020_0000 }),
        ("the ramdisk", Region { start: 0x8800_0000, end: 0x8810_0000 }),
    ];

    fn image(text_offset: u64, image_size: u64) -> alloc::vec::Vec<u8> {
        let mut bytes = arm64_image::header_bytes(text_offset, image_size, 0xa).to_vec();
        bytes.resize(0x1000, 0);
        bytes
    }

    fn loaded(at: u64, size: u64) -> Region {
        Region { start: at, end: at + size }
    }

    #[test]
    fn the_image_runs_where_it_lies_if_the_boot_protocol_allows() {
        let at = |start, text_offset, image_size, signed| {
            footprint(loaded(start, signed), &image(text_offset, image_size), RAM, &CLEAR)
        };
        // A 2 MiB-aligned base, with and without a text_offset; the larger of image_size
        // and the signed bytes is the footprint.
        assert_eq!(at(0x8020_0000, 0, 0x10_0000, 0x2_0000), Ok(loaded(0x8020_0000, 0x10_0000)));
        assert_eq!(at(0x8028_0000, 0x8_0000, 0x1000, 0x2_0000), Ok(loaded(0x8028_0000, 0x2_0000)));
        // A text_offset as large as the address: base 0, which is 2 MiB aligned.
        assert_eq!(at(0x8020_0000, 0x8020_0000, 0x1000, 0x1000), Ok(loaded(0x8020_0000, 0x1000)));
        // A base that is not 2 MiB aligned, or a text_offset above the address (also one
        // whose wrapped difference would be 2 MiB aligned).
        for (start, text_offset) in [(0x8020_1000, 0), (0x8020_0000, 0x8_0000), (0x1000, 0x2000), (0x1000, 0x20_1000)] {
            let refused = at(start, text_offset, 0x1000, 0x1000).unwrap_err();
            assert_eq!(refused.reason, Refusal::ImageHeader, "{}", refused.detail);
        }
        // A footprint that runs into the ramdisk or out of RAM.
        assert_eq!(at(0x8600_0000, 0, 0x200_0001, 0x1000).unwrap_err().reason, Refusal::PayloadPlacement);
        assert_eq!(at(0x8fe0_0000, 0, 0x40_0000, 0x1000).unwrap_err().reason, Refusal::PayloadPlacement);
        // Not an Image at all.
        let refused = footprint(loaded(0x8020_0000, 0x1000), &[0; 0x1000], RAM, &CLEAR).unwrap_err();
        assert_eq!(refused.reason, Refusal::ImageHeader);
    }
}
