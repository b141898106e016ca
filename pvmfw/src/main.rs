//! pvmfw's firmware binary: the checks of the `pvmfw` library, in order, on the real
//! memory of the VM, then the handover. Any refusal prints `[pvmfw] error: <reason>`
//! and resets the VM through PSCI: pvmfw fails closed.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod dice_layer;
#[cfg(target_os = "none")]
mod firmware;
#[cfg(target_os = "none")]
mod guest_memory;
#[cfg(target_os = "none")]
mod instance_device;

#[cfg(target_os = "none")]
guest_lib::entry!(firmware::main, platform = firmware::platform());

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("pvmfw is firmware for aarch64-unknown-none; `cargo pvmkit build` builds it");
    std::process::exit(2);
}
