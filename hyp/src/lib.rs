//! hyp: a small EL2 hypervisor that runs one guest under QEMU and enforces the pKVM
//! rules, so that every mistake of pvmkit's guest side becomes visible.
//!
//! This library is the part of hyp that needs no hardware: decoding syndromes,
//! answering hypercalls, deciding what to do with an abort, building stage-2 tables,
//! reading QEMU's device tree and the bundle. It is unit-tested on the host. The
//! binary (`main.rs` and `arch/`) adds the entry code, vectors and system registers.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

pub use abi::esr;
pub mod devices;
pub mod exclusive;
pub mod exit;
pub mod guard_calls;
pub mod guest_exit;
pub mod hypercall;
pub mod inject;
pub mod memory_calls;
pub mod mmio;
pub mod mmio_guard;
pub mod ownership;
pub mod placement;
pub mod platform;
pub mod stage2;
pub mod virtio;
