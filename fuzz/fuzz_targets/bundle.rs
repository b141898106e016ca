//! hyp's bundle parser and layout, on any bytes (the bundle is the host's input): they
//! must return, never panic, and every entry of an accepted bundle lies inside it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pvmkit_abi::bundle::Bundle;

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = Bundle::parse(data) else { return };
    let _ = bundle.config();
    let range = data.as_ptr_range();
    for entry in bundle.entries() {
        let bytes = entry.data.as_ptr_range();
        assert!(range.start <= bytes.start && bytes.end <= range.end, "an entry lies outside the bundle");
        assert!(entry.mem_size >= entry.data.len() as u64, "an entry takes less memory than its bytes");
    }
    let _ = bundle.layout();
});
