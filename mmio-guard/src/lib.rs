//! Client of the pKVM MMIO guard: a protected VM registers every MMIO granule it uses,
//! and the hypervisor aborts any other access instead of letting the host emulate it.
//!
//! Two forms exist (`abi::kvm`): Android's INFO/ENROLL/MAP/UNMAP calls (plus the ranged
//! MAP/UNMAP where advertised) and upstream Linux's single MMIO_GUARD call, which has no
//! enrolment and no unmap. [`Form::detect`] tells them apart from the KVM features
//! bitmap; [`MmioGuard`] maps and unmaps any range granule by granule, counting users
//! per granule so that two users of one granule never unmap each other, and
//! [`MmioGuard::guard`] returns a handle that unmaps on drop.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

extern crate alloc;

mod client;
mod form;

pub use client::{GuardError, Guarded, MmioGuard};
pub use form::Form;
