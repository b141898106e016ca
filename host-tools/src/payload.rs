//! The payloads `pvmkit` runs, signs and packs, in the forms guests ship in: an ELF
//! executable (flattened and loaded where it was linked), or an arm64 Linux `Image`
//! (detected by its header; placed per the boot protocol). Which one a file is, its
//! bytes say, not its name.

use std::path::Path;

use abi::arm64_image::{self, ImageHeader};
use abi::memory_map::Region;
use abi::memory_map::{BOUNCE_POOL_BASE, BOUNCE_POOL_SIZE, GUEST_DT_BASE, GUEST_DT_MAX_SIZE};
use abi::signed_payload::Header;
use sha2::{Digest, Sha256};

use crate::firmware::{self, FlatImage};

/// A payload, read and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// An ELF executable, flattened.
    Elf(FlatImage),
    /// An arm64 `Image`: the file's bytes and its checked header.
    Image {
        /// The file.
        bytes: Vec<u8>,
        /// Its header.
        header: ImageHeader,
    },
}

impl Payload {
    /// Reads a payload file: an arm64 Image if its header says so, else an ELF.
    pub fn read(path: &Path) -> Result<Self, String> {
        Self::parse(firmware::read(path)?).map_err(|e| format!("payload {}: {e}", path.display()))
    }

    /// Reads a payload from its bytes.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, String> {
        if arm64_image::is_image(&bytes) {
            let header = arm64_image::parse(&bytes).map_err(|e| e.to_string())?;
            return Ok(Self::Image { bytes, header });
        }
        FlatImage::from_elf(&bytes)
            .map(Self::Elf)
            .map_err(|e| format!("{e} (nor an arm64 Image: no ARM\\x64 magic at offset 56)"))
    }

    /// A short name of the format, for messages.
    pub fn format_name(&self) -> &'static str {
        match self {
            Self::Elf(_) => "ELF",
            Self::Image { .. } => "arm64 Image",
        }
    }

    /// Appends `pad` zero bytes to the image (a different payload, same code).
    pub fn pad(&mut self, pad: usize) {
        match self {
            Self::Elf(image) => {
                image.bytes.resize(image.bytes.len() + pad, 0);
                image.mem_size = image.mem_size.max(image.bytes.len() as u64);
            }
            Self::Image { bytes, header } => {
                bytes.resize(bytes.len() + pad, 0);
                header.image_size = header.image_size.max(bytes.len() as u64);
            }
        }
    }

    /// The unsigned header of its signed form; `mem_size` overrides the footprint (for
    /// tests of pvmfw's placement checks).
    pub fn signed_header(&self, mem_size: Option<u64>) -> (Header, &[u8]) {
        match self {
            Self::Elf(image) => {
                let hash: [u8; 32] = Sha256::digest(&image.bytes).into();
                let len = image.bytes.len() as u64;
                let mem_size = mem_size.unwrap_or(image.mem_size).max(len);
                (Header::flat(len, image.load_address, image.entry, mem_size, hash), &image.bytes)
            }
            Self::Image { bytes, header } => {
                let hash: [u8; 32] = Sha256::digest(bytes).into();
                let len = bytes.len() as u64;
                let mem_size = mem_size.unwrap_or(header.image_size).max(len);
                (Header::arm64_image(len, header.text_offset, mem_size, hash), bytes)
            }
        }
    }

    /// Where it runs when entered directly (no pvmfw) in a VM with pvmkit's memory map:
    /// an ELF where it was linked, an Image at the lowest 2 MiB-aligned base of guest
    /// RAM (plus its text_offset) clear of the guest DT and the bounce pool.
    pub fn placed(&self, ram: Region) -> Result<FlatImage, String> {
        match self {
            Self::Elf(image) => Ok(image.clone()),
            Self::Image { bytes, header } => {
                let keep_clear = [
                    Region { start: GUEST_DT_BASE, end: GUEST_DT_BASE + GUEST_DT_MAX_SIZE },
                    Region { start: BOUNCE_POOL_BASE, end: BOUNCE_POOL_BASE + BOUNCE_POOL_SIZE },
                ];
                let at = arm64_image::place(header, ram, &keep_clear).map_err(|e| e.to_string())?;
                Ok(FlatImage {
                    load_address: at.start,
                    bytes: bytes.clone(),
                    mem_size: header.image_size,
                    entry: at.start,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::memory_map::{GUEST_RAM_BASE, GUEST_RAM_SIZE};
    use abi::signed_payload::PayloadFormat;

    const RAM: Region = Region { start: GUEST_RAM_BASE, end: GUEST_RAM_BASE + GUEST_RAM_SIZE };

    fn image(text_offset: u64, image_size: u64, len: usize) -> Vec<u8> {
        let mut f = arm64_image::header_bytes(text_offset, image_size, 0xa).to_vec();
        f.resize(len, 0x5a);
        f
    }

    #[test]
    fn tells_an_image_from_an_elf_by_its_bytes() {
        let p = Payload::parse(image(0, 0x4000, 0x1000)).unwrap();
        assert_eq!(p.format_name(), "arm64 Image");
        let err = Payload::parse(b"neither an ELF nor an Image".to_vec()).unwrap_err();
        assert!(err.contains("not an ELF") && err.contains("nor an arm64 Image"), "{err}");
        let mut bad = image(0, 0x10, 0x1000);
        assert!(Payload::parse(bad.clone()).unwrap_err().contains("more than its image_size"));
        bad[24] = 1;
        assert!(Payload::parse(bad).unwrap_err().contains("big-endian"));
    }

    #[test]
    fn an_image_entered_directly_sits_above_the_dt_area() {
        let p = Payload::parse(image(0x8_0000, 0x4000, 0x1000)).unwrap();
        let placed = p.placed(RAM).unwrap();
        assert_eq!(placed.load_address, GUEST_DT_BASE + GUEST_DT_MAX_SIZE + 0x8_0000);
        assert_eq!((placed.entry, placed.mem_size, placed.bytes.len()), (placed.load_address, 0x4000, 0x1000));
        let huge = Payload::parse(image(0, GUEST_RAM_SIZE, 0x1000)).unwrap();
        assert!(huge.placed(RAM).unwrap_err().contains("no such place free"));
    }

    #[test]
    fn an_image_is_signed_with_its_own_layout_and_no_address() {
        let mut p = Payload::parse(image(0x8_0000, 0x4000, 0x1000)).unwrap();
        p.pad(0x3001);
        let (h, bytes) = p.signed_header(None);
        assert_eq!((h.format, h.load_ipa, h.entry_ipa, h.text_offset), (PayloadFormat::Arm64Image, 0, 0, 0x8_0000));
        assert_eq!((h.image_size, h.mem_size), (0x4001, 0x4001), "padding past image_size grows the footprint");
        assert_eq!(bytes.len(), 0x4001);
    }
}
