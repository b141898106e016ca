//! What pvmfw hands over: a device tree it rebuilt, nothing of its own behind it, and
//! the payload's DICE handover in a private page.
//!
//! The DICE case prints what the host checks (`host-tools/tests/dice.rs`): the chain, in
//! hex, and a fingerprint of each CDI (the first 8 bytes of its SHA-256: enough to tell
//! two CDIs apart, nothing of the secret).

extern crate alloc;

use guest_lib::harness::{CaseResult, Harness};
use guest_lib::{ensure, ensure_eq, println, BootInfo};
use pvmkit_abi::avf_config::MAGIC as CONFIG_MAGIC;
use pvmkit_abi::pvmfw::{PVMFW_BASE, PVMFW_SIZE};

pub fn run(h: &mut Harness<impl core::fmt::Write>, boot: &BootInfo) {
    if !boot.dt.chosen_has(pvmkit_abi::dt::VERIFIED_BOOT) {
        h.skip("pvmfw_handover", "not booted through pvmfw");
        return;
    }
    h.run("pvmfw_handover", || handover(boot));
    h.run("dice_handover", || dice(boot));
}

/// What a line of the chain's hex carries.
const CHAIN_BYTES_PER_LINE: usize = 192;

fn dice(boot: &BootInfo) -> CaseResult {
    use guest_lib::dice;
    use pvmkit_abi::pvmfw::{DICE_HANDOVER_BASE, DICE_HANDOVER_SIZE};
    use sha2::{Digest, Sha256};
    let (base, size) = dice::region(&boot.dt).map_err(|e| alloc::format!("{e}"))?;
    ensure_eq!((base, size), (DICE_HANDOVER_BASE, DICE_HANDOVER_SIZE));
    // SAFETY: pvmfw's google,open-dice page: this VM's memory (the runtime maps the DT
    // area as RAM), used by nothing else.
    let taken = unsafe { dice::take(base, size) }.map_err(|e| alloc::format!("{e}"))?;
    // Taken once: the page is zero now.
    // SAFETY: as above.
    let page = unsafe { core::slice::from_raw_parts(base as *const u8, size as usize) };
    ensure!(page.iter().all(|&b| b == 0), "the DICE page still holds bytes after take");
    ensure!(dice::parse(page).is_err(), "a wiped page parsed as a handover");
    let hex = |bytes: &[u8]| bytes.iter().map(|b| alloc::format!("{b:02x}")).collect::<alloc::string::String>();
    let fingerprint = |cdi: &[u8]| hex(&Sha256::digest(cdi)[..8]);
    println!(
        "[test-guest] dice: cdi-attest {} cdi-seal {} chain {} bytes",
        fingerprint(&taken.cdi_attest),
        fingerprint(&taken.cdi_seal),
        taken.chain.len()
    );
    let lines = taken.chain.chunks(CHAIN_BYTES_PER_LINE);
    let count = lines.len();
    for (i, chunk) in lines.enumerate() {
        println!("[test-guest] dice-chain {}/{count} {}", i + 1, hex(chunk));
    }
    Ok(())
}

fn handover(boot: &BootInfo) -> CaseResult {
    let dt = &boot.dt;
    ensure_eq!(dt.memory, Some((0x8000_0000, 256 << 20)));
    ensure!(dt.uart.is_some(), "no console in pvmfw's DT");
    ensure_eq!(dt.virtio_mmio().count(), 3);
    ensure!(dt.bootarg(pvmkit_abi::guest_console::MODE).is_some(), "the command line was not passed on");
    // pvmfw's region, its configuration data (the DICE secrets) included, was erased:
    // no page of it still starts with the configuration data's magic.
    for page in (PVMFW_BASE..PVMFW_BASE + PVMFW_SIZE).step_by(4096) {
        // SAFETY: pvmfw's former region, guest memory the runtime maps as RAM.
        let first = unsafe { core::ptr::read_volatile(page as *const u32) };
        ensure!(first != CONFIG_MAGIC, "pvmfw's configuration data is still at {page:#x}");
    }
    Ok(())
}
