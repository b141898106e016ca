//! The AVB parser (`pvmkit_abi::avb`) on any bytes: it returns, never panics; every region it
//! hands out lies inside the bytes it was given, and the vbmeta image it finds lies
//! between the image and the footer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pvmkit_abi::avb::{Descriptor, SignedPayload, FOOTER_SIZE};

/// Whether `part` lies inside `whole`.
fn inside(part: &[u8], whole: &[u8]) -> bool {
    let (start, end) = (whole.as_ptr() as usize, whole.as_ptr() as usize + whole.len());
    let p = part.as_ptr() as usize;
    part.is_empty() || (p >= start && p + part.len() <= end)
}

fuzz_target!(|data: &[u8]| {
    let Ok(signed) = SignedPayload::parse(data) else { return };
    assert!(signed.image.len() + FOOTER_SIZE <= data.len());
    let vbmeta = signed.vbmeta;
    for region in [vbmeta.hash(), vbmeta.signature(), vbmeta.public_key_bytes()].into_iter().flatten() {
        assert!(inside(region, data));
    }
    assert_eq!(vbmeta.hash().map(<[u8]>::len), Ok(vbmeta.algorithm.hash_size()));
    for descriptor in vbmeta.descriptors().flatten() {
        match descriptor {
            Descriptor::Hash(h) => {
                for part in [h.partition_name, h.salt, h.digest] {
                    assert!(inside(part, data));
                }
            }
            Descriptor::Property { key, value } => assert!(inside(key, data) && inside(value, data)),
            Descriptor::Other(_) => {}
        }
    }
});
