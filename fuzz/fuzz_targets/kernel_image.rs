//! The arm64 Image header parser, its placement, and pvmfw's check of a kernel where
//! the host loaded it, on any bytes and any address: they must return, never panic;
//! whatever they accept lies inside RAM, clear of what must stay clear, at a 2 MiB-
//! aligned base plus its text_offset.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pvmkit_abi::arm64_image::{self, ImageHeader, BASE_ALIGN};
use pvmkit_abi::memory_map::Region;

const RAM: Region = Region { start: 0x8000_0000, end: 0x9000_0000 };
const KEEP_CLEAR: [Region; 2] =
    [Region { start: 0x8000_0000, end: 0x8020_0000 }, Region { start: 0x8800_0000, end: 0x8810_0000 }];

fn check_placement(header: &ImageHeader) {
    if let Ok(at) = arm64_image::place(header, RAM, &KEEP_CLEAR) {
        assert!(RAM.contains(&at) && at.size() == header.image_size);
        assert!(KEEP_CLEAR.iter().all(|r| !r.overlaps(&at)));
        assert!((at.start - header.text_offset).is_multiple_of(BASE_ALIGN));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = arm64_image::parse(data) {
        check_placement(&header);
    }
    // The first 16 bytes say where the host loaded the kernel and how much it says it
    // loaded; the rest is the kernel.
    let Some((place, image)) = data.split_first_chunk::<16>() else { return };
    let at = u64::from_le_bytes(place[..8].try_into().unwrap());
    let size = u64::from_le_bytes(place[8..].try_into().unwrap());
    let Some(loaded) = Region::new(at, size) else { return };
    let clear = [("the DT area", KEEP_CLEAR[0]), ("the ramdisk", KEEP_CLEAR[1])];
    if let Ok(footprint) = pvmfw::kernel::footprint(loaded, image, RAM, &clear) {
        let header = arm64_image::parse(image).unwrap();
        assert!(RAM.contains(&footprint) && footprint.start == at);
        assert!(footprint.size() >= size && footprint.size() >= header.image_size);
        assert!(KEEP_CLEAR.iter().all(|r| !r.overlaps(&footprint)));
        assert!((at - header.text_offset).is_multiple_of(BASE_ALIGN));
    }
});
