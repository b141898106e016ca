//! The configuration data's parser (`pvmkit_abi::avf_config`) on any bytes: it returns, never
//! panics; every entry it hands out lies inside the configuration, after the entry
//! table, 8-byte aligned, in order and apart; an accepted one has a DICE handover.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pvmkit_abi::avf_config::{parse, Entry};

fuzz_target!(|data: &[u8]| {
    let Ok(config) = parse(data) else { return };
    assert!(config.dice_handover().is_ok());
    let mut previous_end = data.as_ptr() as usize;
    for entry in [Entry::DiceHandover, Entry::DebugPolicy, Entry::VmDtbo, Entry::VmReferenceDt] {
        let Some(blob) = config.entry(entry) else { continue };
        let start = blob.as_ptr() as usize;
        assert!(start >= previous_end && start + blob.len() <= data.as_ptr() as usize + data.len());
        assert!((start - data.as_ptr() as usize).is_multiple_of(8));
        previous_end = start + blob.len();
    }
});
