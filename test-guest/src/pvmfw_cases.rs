//! What pvmfw hands over: a device tree it rebuilt, with the payload's secret reserved.

extern crate alloc;

use abi::pvmfw::{SECRET_COMPATIBLE, SECRET_SIZE};
use guest_lib::harness::{CaseResult, Harness};
use guest_lib::{ensure, ensure_eq, println, BootInfo};
use sha2::{Digest, Sha256};

pub fn run(h: &mut Harness<impl core::fmt::Write>, boot: &BootInfo) {
    if !boot.dt.chosen_has("pvmkit,verified-boot") {
        h.skip("pvmfw_handover", "not booted through pvmfw");
        return;
    }
    let mut digest = None;
    h.run("pvmfw_handover", || handover(boot, &mut digest));
    if let Some(hex) = digest {
        // One line of its own, for pvmkit's end-to-end tests to compare across runs.
        println!("secret digest: {hex}");
    }
}

fn handover(boot: &BootInfo, digest_out: &mut Option<alloc::string::String>) -> CaseResult {
    let dt = &boot.dt;
    ensure_eq!(dt.memory, Some((0x8000_0000, 256 << 20)));
    ensure!(dt.uart.is_some(), "no console in pvmfw's DT");
    ensure_eq!(dt.virtio_mmio().count(), 3);
    ensure!(dt.bootarg(abi::guest_console::MODE).is_some(), "the command line was not passed on");
    let (addr, size) = dt.reserved_memory(SECRET_COMPATIBLE).ok_or("no reserved secret")?;
    ensure_eq!(size, SECRET_SIZE as u64);
    // SAFETY: pvmfw reserved these bytes for the payload's secret.
    let secret = unsafe { core::slice::from_raw_parts(addr as *const u8, SECRET_SIZE) };
    ensure!(secret.iter().any(|&b| b != 0), "the secret is all zero");
    // pvmfw's own region and the VM secret it came from are gone.
    // SAFETY: the first bytes of pvmfw's former region, guest memory.
    let pvmfw_start = unsafe { core::slice::from_raw_parts(abi::pvmfw::VM_SECRET_IPA as *const u8, 4096) };
    ensure!(pvmfw_start.iter().all(|&b| b == 0), "the VM secret page was not erased");
    let digest: [u8; 32] = Sha256::digest(secret).into();
    *digest_out = Some(digest.iter().map(|b| alloc::format!("{b:02x}")).collect());
    Ok(())
}
