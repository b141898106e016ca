//! What pvmfw hands over: a device tree it rebuilt, and nothing of its own behind it.

use abi::avf_config::MAGIC as CONFIG_MAGIC;
use abi::pvmfw::{PVMFW_BASE, PVMFW_SIZE};
use guest_lib::harness::{CaseResult, Harness};
use guest_lib::{ensure, ensure_eq, BootInfo};

pub fn run(h: &mut Harness<impl core::fmt::Write>, boot: &BootInfo) {
    if !boot.dt.chosen_has(abi::dt::VERIFIED_BOOT) {
        h.skip("pvmfw_handover", "not booted through pvmfw");
        return;
    }
    h.run("pvmfw_handover", || handover(boot));
}

fn handover(boot: &BootInfo) -> CaseResult {
    let dt = &boot.dt;
    ensure_eq!(dt.memory, Some((0x8000_0000, 256 << 20)));
    ensure!(dt.uart.is_some(), "no console in pvmfw's DT");
    ensure_eq!(dt.virtio_mmio().count(), 3);
    ensure!(dt.bootarg(abi::guest_console::MODE).is_some(), "the command line was not passed on");
    // pvmfw's region, its configuration data (the DICE secrets) included, was erased:
    // no page of it still starts with the configuration data's magic.
    for page in (PVMFW_BASE..PVMFW_BASE + PVMFW_SIZE).step_by(4096) {
        // SAFETY: pvmfw's former region, guest memory the runtime maps as RAM.
        let first = unsafe { core::ptr::read_volatile(page as *const u32) };
        ensure!(first != CONFIG_MAGIC, "pvmfw's configuration data is still at {page:#x}");
    }
    Ok(())
}
