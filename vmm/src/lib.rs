//! pvmkit's VMM for the real pKVM. It runs as `/init` of a Debian arm64 Linux host booted
//! in QEMU with `kvm-arm.mode=protected`, reads the bundle `pvmkit` packed (the same one
//! hyp reads), creates a protected VM (or, for the baseline, an ordinary one) on the
//! rust-vmm crates, loads pvmfw and the payload exactly where hyp would, emulates the
//! VM's devices and ends with an exit line in hyp's words.
//!
//! The logic is host-tested: [`machine`] (what the bundle asks for), [`pl011`] (the
//! console), [`virtio`] (the virtio-mmio transports and their devices, over real guest
//! memory), [`mmio`] (which device an access reaches), [`watch`] (a fault on a private
//! page named as a violation), [`exit`] (the exit line), [`stats`] (the exits it
//! reports to a bench guest), [`kick`] (stopping the other vCPU threads when one
//! ends the VM), [`power`] (telling a VM whose vCPUs are all off from a quiet one). The
//! KVM glue (`kvm.rs`) and the `/init` duties (`init.rs`) run only inside the pKVM host.

pub mod exit;
#[cfg(target_os = "linux")]
pub mod kick;
pub mod machine;
pub mod mmio;
pub mod pl011;
pub mod power;
pub mod stats;
pub mod virtio;
pub mod watch;

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
pub mod init;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
pub mod kvm;
