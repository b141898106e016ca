//! The arm64 Linux `Image` format, the payload format Linux, U-Boot and position-
//! independent guests ship in, and where the boot protocol says to place it
//! (Linux's `Documentation/arch/arm64/booting.rst`).
//!
//! ```text
//! 0   code0 u32 (executable: usually a branch to the real entry)   4  code1 u32
//! 8   text_offset u64   16  image_size u64   24  flags u64
//! 32  res2 u64   40  res3 u64   48  res4 u64   56  magic "ARM\x64"   60  res5 u32
//! ```
//!
//! The loader picks a 2 MiB-aligned base in RAM, copies the file to `base +
//! text_offset`, keeps `image_size` bytes from there free for the image (its `.bss`
//! and whatever else it claims), and enters at the first byte with x0 = the DT's
//! address and x1–x3 zero, MMU off. [`parse`] and [`place`] refuse with a named
//! [`ImageError`] and never panic.
//!
//! ```
//! use pvmkit_abi::arm64_image::{header_bytes, parse, place};
//! use pvmkit_abi::memory_map::Region;
//!
//! let mut file = header_bytes(0, 0x10_0000, 0xa).to_vec(); // text_offset 0, 1 MiB, 4 KiB pages
//! file.resize(0x4000, 0);
//! let header = parse(&file).unwrap();
//! let ram = Region { start: 0x8000_0000, end: 0x9000_0000 };
//! let dt_area = Region { start: 0x8000_0000, end: 0x8020_0000 };
//! assert_eq!(place(&header, ram, &[dt_area]).unwrap().start, 0x8020_0000);
//! ```

use core::fmt;

use crate::memory_map::Region;
use crate::memory_map::GRANULE;

/// Size of the header.
pub const HEADER_SIZE: usize = 64;
/// The magic at offset 56: "ARM\x64", little-endian.
pub const MAGIC: u32 = 0x644d_5241;
/// Alignment of the base the image is placed from (plus `text_offset`).
pub const BASE_ALIGN: u64 = 2 << 20;

/// The header fields a loader acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    /// Where the image goes from the 2 MiB-aligned base.
    pub text_offset: u64,
    /// Bytes from `base + text_offset` the image takes (its file bytes and beyond).
    pub image_size: u64,
    /// Bit 0: big-endian kernel; bits 1–2: page size (0 unspecified, 1 4K, 2 16K,
    /// 3 64K); bit 3: the base may be anywhere in RAM.
    pub flags: u64,
}

impl ImageHeader {
    /// The page size the image was built for, in bytes, if it says.
    pub const fn page_size(&self) -> Option<u64> {
        match (self.flags >> 1) & 3 {
            1 => Some(4 << 10),
            2 => Some(16 << 10),
            3 => Some(64 << 10),
            _ => None,
        }
    }
}

/// Why an Image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// Shorter than its header.
    TooShort(usize),
    /// No "ARM\x64" at offset 56.
    BadMagic,
    /// image_size 0: a pre-3.17 header, which does not say how much memory it takes.
    NoImageSize,
    /// A big-endian image (flags bit 0).
    BigEndian,
    /// Built for a page size the platform's guests do not use.
    PageSize(u64),
    /// text_offset is not a multiple of 4 KiB.
    UnalignedTextOffset(u64),
    /// The file is longer than the memory its header claims.
    FileLargerThanImage {
        /// Bytes in the file.
        file: u64,
        /// The header's image_size.
        image_size: u64,
    },
    /// No 2 MiB-aligned base in RAM leaves room for it clear of what must stay clear.
    DoesNotFit {
        /// text_offset + image_size.
        needs: u64,
        /// The RAM it was to go in.
        ram: Region,
    },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort(n) => write!(f, "arm64 Image is {n} bytes, shorter than its {HEADER_SIZE}-byte header"),
            Self::BadMagic => write!(f, "arm64 Image has no ARM\\x64 magic at offset 56"),
            Self::NoImageSize => {
                write!(f, "arm64 Image header has image_size 0 (a pre-3.17 header): its size is unknown")
            }
            Self::BigEndian => write!(f, "arm64 Image is big-endian"),
            Self::PageSize(p) => write!(f, "arm64 Image is built for {} KiB pages; the guest has 4 KiB", p >> 10),
            Self::UnalignedTextOffset(o) => write!(f, "arm64 Image text_offset {o:#x} is not 4 KiB aligned"),
            Self::FileLargerThanImage { file, image_size } => {
                write!(f, "arm64 Image file is {file:#x} bytes, more than its image_size {image_size:#x}")
            }
            Self::DoesNotFit { needs, ram } => write!(
                f,
                "arm64 Image needs {needs:#x} bytes from a 2 MiB-aligned base, and guest RAM {:#x}..{:#x} has no such \
                 place free",
                ram.start, ram.end
            ),
        }
    }
}

fn u64_at(b: &[u8; HEADER_SIZE], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Whether `file` starts with an arm64 Image header (its magic).
pub fn is_image(file: &[u8]) -> bool {
    file.get(56..60) == Some(&MAGIC.to_le_bytes()[..])
}

/// Checks the header of an Image `file_len` bytes long.
pub fn parse_header(h: &[u8; HEADER_SIZE], file_len: u64) -> Result<ImageHeader, ImageError> {
    if !is_image(h) {
        return Err(ImageError::BadMagic);
    }
    let header = ImageHeader { text_offset: u64_at(h, 8), image_size: u64_at(h, 16), flags: u64_at(h, 24) };
    if header.image_size == 0 {
        return Err(ImageError::NoImageSize);
    }
    if header.flags & 1 != 0 {
        return Err(ImageError::BigEndian);
    }
    if let Some(page) = header.page_size().filter(|&p| p != GRANULE) {
        return Err(ImageError::PageSize(page));
    }
    if !header.text_offset.is_multiple_of(GRANULE) {
        return Err(ImageError::UnalignedTextOffset(header.text_offset));
    }
    if file_len > header.image_size {
        return Err(ImageError::FileLargerThanImage { file: file_len, image_size: header.image_size });
    }
    Ok(header)
}

/// Checks an Image file's header.
pub fn parse(file: &[u8]) -> Result<ImageHeader, ImageError> {
    let h: &[u8; HEADER_SIZE] =
        file.get(..HEADER_SIZE).and_then(|h| h.try_into().ok()).ok_or(ImageError::TooShort(file.len()))?;
    parse_header(h, file.len() as u64)
}

/// Where the image goes: the lowest 2 MiB-aligned base in `ram` whose `[base +
/// text_offset, + image_size)` lies inside `ram` and overlaps none of `keep_clear`.
/// Returns that region (its start is the entry point).
pub fn place(header: &ImageHeader, ram: Region, keep_clear: &[Region]) -> Result<Region, ImageError> {
    let needs = header.text_offset.checked_add(header.image_size);
    let does_not_fit = ImageError::DoesNotFit { needs: needs.unwrap_or(u64::MAX), ram };
    let needs = needs.ok_or(does_not_fit)?;
    let align_up = |at: u64| at.checked_add(BASE_ALIGN - 1).map(|a| a & !(BASE_ALIGN - 1));
    let mut base = align_up(ram.start).ok_or(does_not_fit)?;
    // Each round either accepts or moves the base past the region it ran into.
    loop {
        let image = base
            .checked_add(header.text_offset)
            .and_then(|start| Region::new(start, header.image_size))
            .filter(|image| base.checked_add(needs).is_some() && ram.contains(image))
            .ok_or(does_not_fit)?;
        match keep_clear.iter().filter(|r| r.overlaps(&image)).map(|r| r.end).max() {
            None => return Ok(image),
            Some(end) => {
                let past = align_up(end.saturating_sub(header.text_offset)).ok_or(does_not_fit)?;
                base = past.max(base.checked_add(BASE_ALIGN).ok_or(does_not_fit)?);
            }
        }
    }
}

/// A header with these fields (code0 a branch to offset 64), for tests and tools.
pub fn header_bytes(text_offset: u64, image_size: u64, flags: u64) -> [u8; HEADER_SIZE] {
    let mut h = [0u8; HEADER_SIZE];
    h[0..4].copy_from_slice(&0x1400_0010u32.to_le_bytes());
    h[8..16].copy_from_slice(&text_offset.to_le_bytes());
    h[16..24].copy_from_slice(&image_size.to_le_bytes());
    h[24..32].copy_from_slice(&flags.to_le_bytes());
    h[56..60].copy_from_slice(&MAGIC.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: Region = Region { start: 0x8000_0000, end: 0x9000_0000 };
    const DT_AREA: Region = Region { start: 0x8000_0000, end: 0x8020_0000 };

    fn image(text_offset: u64, image_size: u64, flags: u64, len: usize) -> Vec<u8> {
        let mut f = header_bytes(text_offset, image_size, flags).to_vec();
        f.resize(len, 0xaa);
        f
    }

    #[test]
    fn reads_a_well_formed_header() {
        let h = parse(&image(0x8_0000, 0x20_0000, 0xa, 0x1000)).unwrap();
        assert_eq!((h.text_offset, h.image_size, h.page_size()), (0x8_0000, 0x20_0000, Some(4096)));
        assert!(is_image(&image(0, 0x1000, 0, 64)));
        assert!(!is_image(b"\x7fELF"));
    }

    #[test]
    fn refuses_malformed_headers_by_name() {
        assert_eq!(parse(&[0; 63]), Err(ImageError::TooShort(63)));
        let mut bad = image(0, 0x1000, 0, 64);
        bad[56] = b'X';
        assert_eq!(parse(&bad), Err(ImageError::BadMagic));
        assert_eq!(parse(&image(0, 0, 0, 64)), Err(ImageError::NoImageSize));
        assert_eq!(parse(&image(0, 0x1000, 1, 64)), Err(ImageError::BigEndian));
        assert_eq!(parse(&image(0, 0x1000, 6, 64)), Err(ImageError::PageSize(64 << 10)));
        assert_eq!(parse(&image(0x10, 0x1000, 0, 64)), Err(ImageError::UnalignedTextOffset(0x10)));
        assert_eq!(
            parse(&image(0, 0x1000, 0, 0x1001)),
            Err(ImageError::FileLargerThanImage { file: 0x1001, image_size: 0x1000 })
        );
        for e in [ImageError::BadMagic, ImageError::NoImageSize, ImageError::DoesNotFit { needs: 1, ram: RAM }] {
            assert!(e.to_string().contains("arm64 Image"), "{e}");
        }
    }

    #[test]
    fn places_at_the_lowest_free_2mib_base_plus_text_offset() {
        let h = ImageHeader { text_offset: 0, image_size: 0x10_0000, flags: 0 };
        assert_eq!(place(&h, RAM, &[DT_AREA]), Ok(Region { start: 0x8020_0000, end: 0x8030_0000 }));
        let h = ImageHeader { text_offset: 0x8_0000, image_size: 0x10_0000, flags: 0 };
        // text_offset alone clears nothing here: the base moves to the next 2 MiB.
        assert_eq!(place(&h, RAM, &[DT_AREA]).unwrap().start, 0x8028_0000);
        // Where the DT area ends short of a boundary, text_offset may let it sit lower.
        let short = Region { start: 0x8000_0000, end: 0x8004_0000 };
        assert_eq!(place(&h, RAM, &[short]).unwrap().start, 0x8008_0000);
        // Something in the way further up is stepped over.
        let staged = Region { start: 0x8030_0000, end: 0x8050_0000 };
        assert_eq!(place(&h, RAM, &[DT_AREA, staged]).unwrap().start, 0x8068_0000);
        // RAM that does not start 2 MiB-aligned.
        let odd = Region { start: 0x8010_0000, end: 0x9000_0000 };
        assert_eq!(place(&h, odd, &[]).unwrap().start, 0x8028_0000);
    }

    #[test]
    fn refuses_what_does_not_fit_and_never_panics() {
        let big = ImageHeader { text_offset: 0, image_size: 0x1000_0000, flags: 0 };
        assert!(matches!(place(&big, RAM, &[DT_AREA]), Err(ImageError::DoesNotFit { .. })));
        let everywhere = Region { start: 0, end: u64::MAX };
        let h = ImageHeader { text_offset: 0, image_size: 0x1000, flags: 0 };
        assert!(place(&h, RAM, &[everywhere]).is_err());
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let h = ImageHeader { text_offset: seed.rotate_left(7), image_size: seed >> (seed & 63), flags: 0 };
            let ram = Region { start: seed >> 3, end: (seed >> 3).saturating_add(seed >> 20) };
            let clear = [Region { start: seed >> 5, end: (seed >> 5).saturating_add(seed >> 40) }];
            if let Ok(r) = place(&h, ram, &clear) {
                assert!(ram.contains(&r) && !r.overlaps(&clear[0]) && r.size() == h.image_size);
                assert!((r.start - h.text_offset).is_multiple_of(BASE_ALIGN));
            }
        }
    }
}
