//! hyp's firmware binary: entry, traps and the VM's one run. The decisions live in
//! the `hyp` library, which is host-tested; this file wires them to the hardware.
#![cfg_attr(target_os = "none", no_std, no_main)]

// The firmware's parts, by concern: `boot` (platform, bundle, stage 2, load, enter),
// `trap_path` (every guest exit, decoded once), `device_access` (the console and the
// virtio transports a guest's accesses reach), `virtio_transports` (hyp's device side
// wired to QEMU's registers and guest RAM), `vm_state` (what the handlers keep between
// exits), `work_meter` (hyp's counted work, for the bench), `exit_summary` (what hyp
// refused along the way), `exit_path` (the exit line, `fail!`), `console` (hyp's lines),
// `virtual_interrupts` (the guest's vGIC wired to the physical GIC: forwarded
// interrupts, SGIs, WFI), `arch` (assembly, system registers, the tick, the GIC,
// register values).
#[cfg(target_os = "none")]
#[macro_use]
mod exit_path;
#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod device_access;
#[cfg(target_os = "none")]
mod exit_summary;
#[cfg(target_os = "none")]
mod trap_path;
#[cfg(target_os = "none")]
mod virtio_transports;
#[cfg(target_os = "none")]
mod virtual_interrupts;
#[cfg(target_os = "none")]
mod vm_state;
#[cfg(target_os = "none")]
mod work_meter;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("hyp is EL2 firmware for aarch64-unknown-none-softfloat; `cargo pvmkit build` builds it");
    std::process::exit(2);
}
