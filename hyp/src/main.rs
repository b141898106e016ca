//! hyp's firmware binary: entry, traps and the VM's one run. The decisions live in
//! the `hyp` library, which is host-tested; this file wires them to the hardware.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod single_core;
#[cfg(target_os = "none")]
mod virtio_side;
#[cfg(target_os = "none")]
mod vm;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("hyp is EL2 firmware for aarch64-unknown-none-softfloat; `cargo pvmkit build` builds it");
    std::process::exit(2);
}
