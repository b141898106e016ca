//! pvmfw's check of the host's device tree, on any bytes: it must return, never panic
//! or hang, and whatever it accepts must build a new tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pvmfw::host_dt::{check, dt_size, Limits};

fuzz_target!(|data: &[u8]| {
    if let Some(header) = data.get(..8) {
        let _ = dt_size(header.try_into().unwrap());
    }
    if let Ok(config) = check(data, &Limits::qemu_virt()) {
        let kept = pvmfw::bootargs::filter(config.bootargs).kept;
        let _ = pvmfw::handover_dt::build(
            &config,
            &kept,
            false,
            pvmkit_abi::memory_map::Region {
                start: pvmkit_abi::pvmfw::DICE_HANDOVER_BASE,
                end: pvmkit_abi::pvmfw::DICE_HANDOVER_BASE + 4096,
            },
        );
    }
});
