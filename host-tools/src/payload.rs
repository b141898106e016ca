//! The payloads `pvmkit` runs, signs and packs, in the forms guests ship in: an ELF
//! executable (flattened and loaded where it was linked), or an arm64 Linux `Image`
//! (detected by its header; placed per the boot protocol). Which one a file is, its
//! bytes say, not its name. What pvmfw boots is always an Image ([`Payload::kernel`]):
//! an ELF qualifies when its flat image is one placed where it was linked, as
//! guest-lib's `guest.ld` makes it.

use std::path::Path;

use pvmkit_abi::arm64_image::{self, ImageHeader};
use pvmkit_abi::memory_map::Region;
use pvmkit_abi::memory_map::{
    BOUNCE_POOL_BASE, BOUNCE_POOL_SIZE, GUEST_DT_BASE, GUEST_DT_MAX_SIZE, GUEST_RAM_BASE, GUEST_RAM_SIZE,
};

use crate::files;
use crate::firmware::FlatImage;

/// pvmkit's guest RAM (the memory map's default), where payloads are placed.
pub const GUEST_RAM: Region = Region { start: GUEST_RAM_BASE, end: GUEST_RAM_BASE + GUEST_RAM_SIZE };

/// Reads a payload file and the kernel pvmfw boots from it, placed in [`GUEST_RAM`].
pub fn read_kernel(path: &Path) -> Result<(Payload, FlatImage), String> {
    let payload = Payload::read(path)?;
    let kernel = payload.kernel(GUEST_RAM).map_err(|e| format!("payload {}: {e}", path.display()))?;
    Ok((payload, kernel))
}

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
        Self::parse(files::read(path)?).map_err(|e| format!("payload {}: {e}", path.display()))
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

    /// The arm64 Image pvmfw boots and where the host loads it: an Image file where the
    /// boot protocol places it ([`Payload::placed`]); an ELF's flat image if it is an
    /// Image whose place is where the ELF was linked.
    pub fn kernel(&self, ram: Region) -> Result<FlatImage, String> {
        if let Self::Elf(flat) = self {
            let header = arm64_image::parse(&flat.bytes).map_err(|e| {
                format!(
                    "pvmfw boots arm64 Images, and this ELF's flat image is not one ({e}): link it with \
                     guest-lib's guest.ld, which starts it with an Image header"
                )
            })?;
            let at = image_place(&header, ram)?;
            if at.start != flat.load_address {
                return Err(format!(
                    "the ELF is linked at {:#x}, but the boot protocol places its Image at {:#x}",
                    flat.load_address, at.start
                ));
            }
            return Ok(FlatImage { entry: at.start, mem_size: header.image_size, ..flat.clone() });
        }
        self.placed(ram)
    }

    /// Where it runs when entered directly (no pvmfw) in a VM with pvmkit's memory map:
    /// an ELF where it was linked, an Image at the lowest 2 MiB-aligned base of guest
    /// RAM (plus its text_offset) clear of the guest DT and the bounce pool.
    pub fn placed(&self, ram: Region) -> Result<FlatImage, String> {
        match self {
            Self::Elf(image) => Ok(image.clone()),
            Self::Image { bytes, header } => {
                let at = image_place(header, ram)?;
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

/// Where the boot protocol puts an Image in a VM with pvmkit's memory map: the lowest
/// 2 MiB-aligned base of guest RAM (plus its text_offset) whose footprint is clear of
/// the guest DT and the bounce pool.
fn image_place(header: &ImageHeader, ram: Region) -> Result<Region, String> {
    let keep_clear = [
        Region { start: GUEST_DT_BASE, end: GUEST_DT_BASE + GUEST_DT_MAX_SIZE },
        Region { start: BOUNCE_POOL_BASE, end: BOUNCE_POOL_BASE + BOUNCE_POOL_SIZE },
    ];
    arm64_image::place(header, ram, &keep_clear).map_err(|e| e.to_string())
}

/// Where the host loads a signed kernel given as a file (`--signed-payload`, perhaps
/// tampered) and the footprint it reserves: its Image header is its first bytes, since
/// AVB appends after the image (the image's size from the footer when that parses).
/// What is not an Image goes to the payload base with its own length, for pvmfw to
/// refuse.
pub fn signed_placement(signed: &[u8], ram: Region) -> (u64, u64) {
    use pvmkit_abi::memory_map::PAYLOAD_BASE;
    let image_len = pvmkit_abi::avb::footer(signed).map_or(signed.len(), |f| f.original_image_size.get() as usize);
    let image = signed.get(..image_len).unwrap_or(signed);
    let placed = arm64_image::parse(image)
        .ok()
        .and_then(|header| image_place(&header, ram).ok().map(|at| (at.start, header.image_size)));
    placed.unwrap_or((PAYLOAD_BASE, signed.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    const RAM: Region = GUEST_RAM;

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
    fn pvmfw_boots_an_image_and_an_elf_only_if_its_flat_image_is_one() {
        let file = Payload::parse(image(0, 0x4000, 0x1000)).unwrap();
        assert_eq!(file.kernel(RAM).unwrap().load_address, GUEST_DT_BASE + GUEST_DT_MAX_SIZE);
        let elf = |bytes: Vec<u8>, at: u64| {
            Payload::Elf(FlatImage { load_address: at, mem_size: 0x4000, entry: at + 0x40, bytes })
        };
        let kernel = elf(image(0, 0x4000, 0x1000), 0x8020_0000).kernel(RAM).unwrap();
        assert_eq!((kernel.load_address, kernel.entry, kernel.mem_size), (0x8020_0000, 0x8020_0000, 0x4000));
        let err = elf(vec![0x14; 0x1000], 0x8020_0000).kernel(RAM).unwrap_err();
        assert!(err.contains("not one") && err.contains("guest.ld"), "{err}");
        let err = elf(image(0, 0x4000, 0x1000), 0x8400_0000).kernel(RAM).unwrap_err();
        assert!(err.contains("linked at 0x84000000") && err.contains("places its Image at 0x80200000"), "{err}");
    }
}
