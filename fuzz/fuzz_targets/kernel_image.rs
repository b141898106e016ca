//! The signed payload's header parser, and pvmfw's verification behind it, on any
//! bytes: they must return, never panic. An arm64 Image's header parser and its
//! placement too: whatever they accept lies inside RAM, clear of what must stay clear,
//! at a 2 MiB-aligned base plus its text_offset.
#![no_main]

use abi::arm64_image::{self, ImageHeader, BASE_ALIGN};
use abi::memory_map::Region;
use abi::signed_payload::PayloadFormat;
use libfuzzer_sys::fuzz_target;

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
    if let Ok((header, image)) = pvmfw::verify::parse(data) {
        let bytes: [u8; 256] = data[..256].try_into().unwrap();
        let _ = pvmfw::verify::check(&bytes, &header, image, &[7; 32]);
        if header.format == PayloadFormat::Arm64Image {
            check_placement(&ImageHeader { text_offset: header.text_offset, image_size: header.mem_size, flags: 0 });
            let _ = arm64_image::parse(image);
        }
    }
    if let Ok(header) = arm64_image::parse(data) {
        check_placement(&header);
    }
});
