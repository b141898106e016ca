//! pvmfw: the protected-VM firmware. It runs first in every pVM, trusts nothing the host
//! gave it, and starts only a kernel signed the AVB way with the key embedded in it,
//! with a device tree it rebuilt itself. Every refusal ends the VM (fail closed). Its
//! contract is Android AVF's: the configuration data appended to its image, the kernel
//! and ramdisk verified where the host loaded them.
//!
//! This library is pvmfw's decisions, host-tested: [`avb_verify`] (the signed kernel and
//! ramdisk), [`avb_properties`] (what AVF's vbmeta properties ask), [`dice`] (the payload's DICE layer), [`kernel`] (where the
//! kernel lies), [`sha256`] (hashing a kernel at the SHA-2 instructions' pace), [`reference_dt`] (the VM reference DT), [`host_dt`] (the hostile device
//! tree, checked), [`handover_dt`] (the fresh one), [`bootargs`] (what of the host's
//! command line passes), [`layout`] (where the DTs go), [`placement`] (footprints, clear
//! of each other), [`refusal`] (each refusal's code), [`rollback`] (which rollback protection a payload gets), [`instance`] (the sealed per-instance record). `firmware.rs` runs them in order
//! and hands over.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

extern crate alloc;

pub mod avb_properties;
pub mod avb_verify;
pub mod bootargs;
pub mod dice;
pub mod handover_dt;
pub mod host_dt;
pub mod instance;
pub mod kernel;
pub mod layout;
pub mod placement;
pub mod reference_dt;
pub mod refusal;
pub mod rollback;
pub mod sha256;
