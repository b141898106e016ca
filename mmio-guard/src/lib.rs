//! Client of the pKVM MMIO guard: a protected VM registers every MMIO granule it uses,
//! and the hypervisor aborts any other access instead of letting the host emulate it.
//!
//! Two forms exist (`pvmkit_abi::kvm`): Android's INFO/ENROLL/MAP/UNMAP calls (plus the ranged
//! MAP/UNMAP where advertised) and upstream Linux's single MMIO_GUARD call, which has no
//! enrolment and no unmap. [`Form::detect`] tells them apart from the KVM features
//! bitmap; [`MmioGuard`] maps and unmaps any range granule by granule, counting users
//! per granule so that two users of one granule never unmap each other, and
//! [`MmioGuard::guard`] returns a handle that unmaps on drop.
//!
//! ```
//! use pvmkit_abi::kvm::Features;
//! use mmio_guard::{Ipa, MmioGuard};
//! # use pvmkit_abi::smccc::Conduit;
//! # struct Nothing;
//! # impl Conduit for Nothing {
//! #     fn call(&self, _: u32, _: [u64; 3]) -> [u64; 4] { [u64::MAX, 0, 0, 0] }
//! # }
//!
//! // No guard advertised (an upstream Linux 7.3 pKVM, or no pKVM): every call succeeds
//! // and makes none; with Android's guard the same code registers each granule.
//! let guard = MmioGuard::new(Nothing, Features([0; 4])).unwrap();
//! assert_eq!(guard.form(), None);
//! guard.enroll().unwrap();
//! let console = guard.guard(Ipa(0x0900_0000), 0x1000).unwrap(); // unmapped when dropped
//! assert_eq!(guard.users(Ipa(0x0900_0000)), 1);
//! drop(console);
//! assert_eq!(guard.users(Ipa(0x0900_0000)), 0);
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

extern crate alloc;

mod client;
mod form;

pub use client::{GuardError, Guarded, MmioGuard, MmioGuarded};
pub use form::Form;
/// The guest physical addresses the guard registers.
pub use pvmkit_abi::address::Ipa;
