//! The signed payload pvmfw verifies: a 256-byte header, then the image.
//!
//! ```text
//! 0    magic "PVMKSIGN"
//! 8    version u32 (1)        12   header_size u32 (256)
//! 16   image_size u64         24   load_ipa u64 (page aligned)
//! 32   entry_ipa u64          40   mem_size u64 (≥ image_size: .bss, stack, heap)
//! 48   sha256(image) [32]
//! 80   format u32             84   reserved u32, zero
//! 88   text_offset u64        96   reserved [96], zero
//! 192  Ed25519 signature [64] over bytes 0..192
//! 256  image (image_size bytes)
//! ```
//!
//! Two formats ([`PayloadFormat`]): a flat image (an ELF's loadable bytes) that runs at
//! `load_ipa` from `entry_ipa`; or an arm64 Linux `Image`, which the loader places
//! (`load_ipa` and `entry_ipa` 0) at a 2 MiB-aligned base plus `text_offset`, reserving
//! `mem_size` (the Image's `image_size`) and entering at its first byte — both fields
//! copied from the Image's own header at signing, so pvmfw can place it before it has
//! verified a byte of it.
//!
//! The signature covers every header field, the image's hash among them, so a valid
//! signature vouches for exactly the bytes pvmfw will run, and how it will run them.
//! [`parse`] checks the structure (never panics); the signature is pvmfw's to check.
//!
//! ```
//! use abi::signed_payload::{parse, Header, PayloadFormat};
//!
//! let image = [0x14u8; 64];
//! let mut blob = Header::flat(64, 0x8020_0000, 0x8020_0000, 0x1000, [0; 32]).to_bytes().to_vec();
//! blob.extend_from_slice(&image); // the signature (zero here) is pvmfw's to check
//! let (header, body) = parse(&blob).unwrap();
//! assert_eq!((header.format, header.load_ipa, body.len()), (PayloadFormat::Flat, 0x8020_0000, 64));
//! ```

use core::fmt;

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// First eight bytes.
pub const MAGIC: [u8; 8] = *b"PVMKSIGN";
/// The version this crate reads and writes.
pub const VERSION: u32 = 1;
/// Size of the header.
pub const HEADER_SIZE: usize = 256;
/// The signed part of the header.
pub const SIGNED_SIZE: usize = 192;
/// Offset of the signature.
pub const SIGNATURE_OFFSET: usize = 192;

/// The header as it lies in the file: one declaration for parsing, encoding and tests.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct RawHeader {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`VERSION`].
    pub version: U32,
    /// [`HEADER_SIZE`].
    pub header_size: U32,
    /// [`Header::image_size`].
    pub image_size: U64,
    /// [`Header::load_ipa`].
    pub load_ipa: U64,
    /// [`Header::entry_ipa`].
    pub entry_ipa: U64,
    /// [`Header::mem_size`].
    pub mem_size: U64,
    /// [`Header::image_sha256`].
    pub image_sha256: [u8; 32],
    /// A [`PayloadFormat`].
    pub format: U32,
    /// Zero.
    pub reserved0: U32,
    /// [`Header::text_offset`].
    pub text_offset: U64,
    /// Zero.
    pub reserved: [u8; 96],
    /// [`Header::signature`].
    pub signature: [u8; 64],
}

const _: () = assert!(size_of::<RawHeader>() == HEADER_SIZE);
const _: () = assert!(core::mem::offset_of!(RawHeader, signature) == SIGNATURE_OFFSET);

/// How the image is laid out and entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum PayloadFormat {
    /// Flat bytes that run at `load_ipa`, entered at `entry_ipa`.
    Flat = 0,
    /// An arm64 Linux `Image` ([`crate::arm64_image`]), placed by the loader.
    Arm64Image = 1,
}

/// The header's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// How the image is laid out and entered.
    pub format: PayloadFormat,
    /// Bytes of image after the header.
    pub image_size: u64,
    /// Where the image must be placed (IPA).
    pub load_ipa: u64,
    /// Where it starts.
    pub entry_ipa: u64,
    /// How much memory it takes from where it is placed.
    pub mem_size: u64,
    /// An Image's `text_offset` (0 for a flat image).
    pub text_offset: u64,
    /// SHA-256 of the image.
    pub image_sha256: [u8; 32],
    /// Ed25519 signature over the first [`SIGNED_SIZE`] bytes.
    pub signature: [u8; 64],
}

/// Why a signed payload's structure was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Shorter than a header.
    TooShort(usize),
    /// Wrong magic.
    BadMagic,
    /// Unknown version.
    UnsupportedVersion(u32),
    /// header_size is not [`HEADER_SIZE`].
    BadHeaderSize(u32),
    /// A reserved byte is not zero.
    ReservedNotZero,
    /// image_size is more than the bytes after the header.
    ImageTruncated {
        /// What the header claims.
        image_size: u64,
        /// What is there.
        available: usize,
    },
    /// mem_size is smaller than the image, load_ipa is unaligned, or the range wraps;
    /// or an Image names an address or an unaligned text_offset.
    BadLayout,
    /// The format field names no format.
    UnknownFormat(u32),
    /// The entry point is not inside the image.
    EntryOutsideImage(u64),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort(n) => write!(f, "signed payload is {n} bytes, shorter than its header"),
            Self::BadMagic => write!(f, "signed payload magic is not PVMKSIGN"),
            Self::UnsupportedVersion(v) => write!(f, "signed payload version {v} is not supported"),
            Self::BadHeaderSize(n) => {
                write!(f, "signed payload header size {n} is not {HEADER_SIZE}")
            }
            Self::ReservedNotZero => write!(f, "signed payload header has non-zero reserved bytes"),
            Self::ImageTruncated { image_size, available } => {
                write!(f, "signed payload image is {image_size} bytes but only {available} follow the header")
            }
            Self::BadLayout => write!(f, "signed payload load address, size or memory size is invalid"),
            Self::UnknownFormat(n) => write!(f, "signed payload format {n} is not known"),
            Self::EntryOutsideImage(e) => {
                write!(f, "signed payload entry {e:#x} is outside its image")
            }
        }
    }
}

/// Checks a signed payload's structure; returns the header and the image bytes.
pub fn parse(blob: &[u8]) -> Result<(Header, &[u8]), HeaderError> {
    let h: &[u8; HEADER_SIZE] =
        blob.get(..HEADER_SIZE).and_then(|h| h.try_into().ok()).ok_or(HeaderError::TooShort(blob.len()))?;
    let header = parse_header(h, blob.len() - HEADER_SIZE)?;
    Ok((header, &blob[HEADER_SIZE..HEADER_SIZE + header.image_size as usize]))
}

/// Checks a header already copied out of the signed payload, whose image has
/// `available` bytes after the header. A reader of untrusted memory copies the header
/// first and parses the copy, so that what it checked is what it uses.
pub fn parse_header(h: &[u8; HEADER_SIZE], available: usize) -> Result<Header, HeaderError> {
    let raw = RawHeader::read_from_bytes(h).map_err(|_| HeaderError::TooShort(h.len()))?;
    if raw.magic != MAGIC {
        return Err(HeaderError::BadMagic);
    }
    if raw.version.get() != VERSION {
        return Err(HeaderError::UnsupportedVersion(raw.version.get()));
    }
    if raw.header_size.get() as usize != HEADER_SIZE {
        return Err(HeaderError::BadHeaderSize(raw.header_size.get()));
    }
    let format = match raw.format.get() {
        0 => PayloadFormat::Flat,
        1 => PayloadFormat::Arm64Image,
        n => return Err(HeaderError::UnknownFormat(n)),
    };
    if raw.reserved0.get() != 0 || raw.reserved.iter().any(|&b| b != 0) {
        return Err(HeaderError::ReservedNotZero);
    }
    let header = Header {
        format,
        text_offset: raw.text_offset.get(),
        image_size: raw.image_size.get(),
        load_ipa: raw.load_ipa.get(),
        entry_ipa: raw.entry_ipa.get(),
        mem_size: raw.mem_size.get(),
        image_sha256: raw.image_sha256,
        signature: raw.signature,
    };
    if header.image_size > available as u64 {
        return Err(HeaderError::ImageTruncated { image_size: header.image_size, available });
    }
    if header.mem_size < header.image_size
        || header.image_size == 0
        || !header.load_ipa.is_multiple_of(4096)
        || header.load_ipa.checked_add(header.mem_size).is_none()
    {
        return Err(HeaderError::BadLayout);
    }
    if format == PayloadFormat::Arm64Image {
        // The loader places an Image: it names no address, and its offset is a page's.
        if header.load_ipa != 0 || header.entry_ipa != 0 || !header.text_offset.is_multiple_of(4096) {
            return Err(HeaderError::BadLayout);
        }
        return Ok(header);
    }
    if header.text_offset != 0 {
        return Err(HeaderError::BadLayout);
    }
    let entry_ok = header.entry_ipa >= header.load_ipa
        && header.entry_ipa - header.load_ipa < header.image_size
        && header.entry_ipa.is_multiple_of(4);
    if !entry_ok {
        return Err(HeaderError::EntryOutsideImage(header.entry_ipa));
    }
    Ok(header)
}

impl Header {
    /// A flat image's header, unsigned.
    pub fn flat(image_size: u64, load_ipa: u64, entry_ipa: u64, mem_size: u64, image_sha256: [u8; 32]) -> Self {
        let format = PayloadFormat::Flat;
        Self { format, image_size, load_ipa, entry_ipa, mem_size, text_offset: 0, image_sha256, signature: [0; 64] }
    }

    /// An arm64 Image's header, unsigned: `mem_size` and `text_offset` from its own.
    pub fn arm64_image(image_size: u64, text_offset: u64, mem_size: u64, image_sha256: [u8; 32]) -> Self {
        let format = PayloadFormat::Arm64Image;
        Self { format, image_size, load_ipa: 0, entry_ipa: 0, mem_size, text_offset, image_sha256, signature: [0; 64] }
    }

    /// The header's bytes; the signature field is the header's (zero for a signer).
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let raw = RawHeader {
            magic: MAGIC,
            version: VERSION.into(),
            header_size: (HEADER_SIZE as u32).into(),
            image_size: self.image_size.into(),
            load_ipa: self.load_ipa.into(),
            entry_ipa: self.entry_ipa.into(),
            mem_size: self.mem_size.into(),
            image_sha256: self.image_sha256,
            format: (self.format as u32).into(),
            reserved0: 0.into(),
            text_offset: self.text_offset.into(),
            reserved: [0; 96],
            signature: self.signature,
        };
        let mut h = [0u8; HEADER_SIZE];
        h.copy_from_slice(raw.as_bytes());
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(image: &[u8]) -> Vec<u8> {
        let mut b = Header::flat(image.len() as u64, 0x8020_0000, 0x8020_0000, 0x10_0000, [7; 32]).to_bytes().to_vec();
        b[SIGNATURE_OFFSET..].copy_from_slice(&[9; 64]);
        b.extend_from_slice(image);
        b
    }

    #[test]
    fn parses_a_well_formed_payload() {
        let b = blob(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let (h, image) = parse(&b).unwrap();
        assert_eq!(image, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!((h.load_ipa, h.entry_ipa, h.mem_size, h.image_size), (0x8020_0000, 0x8020_0000, 0x10_0000, 8));
        assert_eq!(h.image_sha256, [7; 32]);
        assert_eq!(h.signature, [9; 64]);
        assert_eq!((h.format, h.text_offset), (PayloadFormat::Flat, 0));
        let mut image = Header::arm64_image(8, 0x8_0000, 0x20_0000, [7; 32]).to_bytes().to_vec();
        image.extend_from_slice(&[0; 8]);
        let (h, _) = parse(&image).unwrap();
        assert_eq!(
            (h.format, h.text_offset, h.mem_size, h.load_ipa),
            (PayloadFormat::Arm64Image, 0x8_0000, 0x20_0000, 0)
        );
        assert_eq!(h.to_bytes()[..SIGNED_SIZE], image[..SIGNED_SIZE], "encoding round-trips");
    }

    #[test]
    fn refuses_an_image_that_names_where_it_goes() {
        let image = |h: Header| {
            let mut b = h.to_bytes().to_vec();
            b.extend_from_slice(&[0; 8]);
            parse(&b).map(|_| ())
        };
        let good = Header::arm64_image(8, 0, 0x1000, [0; 32]);
        assert_eq!(image(good), Ok(()));
        assert_eq!(image(Header { load_ipa: 0x8020_0000, ..good }), Err(HeaderError::BadLayout));
        assert_eq!(image(Header { entry_ipa: 0x40, ..good }), Err(HeaderError::BadLayout));
        assert_eq!(image(Header { text_offset: 0x10, ..good }), Err(HeaderError::BadLayout));
        assert_eq!(image(Header { mem_size: 4, ..good }), Err(HeaderError::BadLayout));
        let flat = Header::flat(8, 0x8020_0000, 0x8020_0000, 0x1000, [0; 32]);
        assert_eq!(image(Header { text_offset: 0x1000, ..flat }), Err(HeaderError::BadLayout));
        let mut b = good.to_bytes().to_vec();
        b.extend_from_slice(&[0; 8]);
        assert_eq!(parse(&edited(&b, |h| h.format.set(7))), Err(HeaderError::UnknownFormat(7)));
    }

    /// `good` with its header's fields edited.
    fn edited(good: &[u8], edit: impl FnOnce(&mut RawHeader)) -> Vec<u8> {
        let mut b = good.to_vec();
        edit(RawHeader::mut_from_prefix(&mut b).unwrap().0);
        b
    }

    #[test]
    fn refuses_malformed_ones_and_never_panics() {
        let good = blob(&[0; 64]);
        assert_eq!(parse(&good[..100]), Err(HeaderError::TooShort(100)));
        assert_eq!(parse(&edited(&good, |h| h.magic[0] = 0)), Err(HeaderError::BadMagic));
        assert_eq!(parse(&edited(&good, |h| h.version.set(2))), Err(HeaderError::UnsupportedVersion(2)));
        assert_eq!(parse(&edited(&good, |h| h.header_size.set(0))), Err(HeaderError::BadHeaderSize(0)));
        assert_eq!(parse(&edited(&good, |h| h.reserved[4] = 1)), Err(HeaderError::ReservedNotZero));
        assert_eq!(parse(&edited(&good, |h| h.reserved0.set(1))), Err(HeaderError::ReservedNotZero));
        assert_eq!(parse(&good[..good.len() - 1]), Err(HeaderError::ImageTruncated { image_size: 64, available: 63 }));
        let unaligned = edited(&good, |h| h.load_ipa.set(0x8020_0001));
        assert_eq!(parse(&unaligned), Err(HeaderError::BadLayout));
        let entry_at_end = edited(&good, |h| h.entry_ipa.set(0x8020_0040));
        assert_eq!(parse(&entry_at_end), Err(HeaderError::EntryOutsideImage(0x8020_0040)));
        assert_eq!(parse(&edited(&good, |h| h.mem_size.set(u64::MAX))), Err(HeaderError::BadLayout));
        let mut seed = 0x1234_5678u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut b = good.clone();
            let at = seed as usize % b.len();
            b[at] = (seed >> 32) as u8;
            let _ = parse(&b[..(seed >> 40) as usize % (b.len() + 1)]);
        }
    }
}
