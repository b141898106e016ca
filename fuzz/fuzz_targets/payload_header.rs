//! The signed payload's header parser, and pvmfw's verification behind it, on any
//! bytes: they must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((header, image)) = pvmfw::verify::parse(data) {
        let bytes: [u8; 256] = data[..256].try_into().unwrap();
        let _ = pvmfw::verify::check(&bytes, &header, image, &[7; 32]);
    }
});
