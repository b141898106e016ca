//! hyp: a small EL2 hypervisor that runs one guest (one vCPU per QEMU CPU) under QEMU
//! and enforces the pKVM
//! rules, so that every mistake of pvmkit's guest side becomes visible.
//!
//! This library is the part of hyp that needs no hardware, unit-tested on the host,
//! laid out by concern:
//! - [`pkvm`]: the pKVM services: the hypercall dispatcher answering from the
//!   release's profile, page ownership, the memory actions, the MMIO guard;
//! - [`trap`]: the trap path's decisions: exits decoded once, emulate or refuse an
//!   access, inject an abort, the exit line;
//! - [`device`]: the device side: the VM's device windows and the virtio transports
//!   with their checked accessor and shadow rings;
//! - [`vcpus`]: the VM's vCPUs and their power (PSCI CPU_ON, CPU_OFF, AFFINITY_INFO);
//! - [`vgic`]: the guest's virtual GICv3 (distributor and redistributor emulated,
//!   list registers, SGIs);
//! - [`platform`]: QEMU's device tree, stage-2 tables, where guest RAM may go;
//! - [`exclusive`]: the checked single-borrow cells hyp's statics live in.
//!
//! The firmware binary (`src/fw/`: boot, the trap path, device access, the virtio
//! transports, virtual interrupts, the exit path, and `arch/`, the only assembly and
//! system-register code) wires them to the hardware.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

pub use pvmkit_abi::esr;
pub mod device;
pub mod exclusive;
pub mod pkvm;
pub mod platform;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod trap;
pub mod vcpus;
pub mod vgic;
