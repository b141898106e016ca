//! test-guest: the in-VM test suite. It runs in every mode `pvmkit` offers and checks
//! what the hypervisor below it does against what that mode promises.
//!
//! The suite is this library; two binaries link it: `test-guest` (an ELF where pvmkit
//! loads it) and `test-guest-image` (a position-independent arm64 `Image`, see
//! `build.rs`). Its `entry!` defines the symbols guest-lib's runtime calls.
#![cfg_attr(target_os = "none", no_std)]

#[cfg(target_os = "none")]
mod bench;
#[cfg(target_os = "none")]
mod cases;
#[cfg(target_os = "none")]
mod clock;
#[cfg(target_os = "none")]
mod conformance;
#[cfg(target_os = "none")]
mod conformance_smp;
#[cfg(target_os = "none")]
mod cpu_id;
#[cfg(target_os = "none")]
mod expect;
#[cfg(target_os = "none")]
mod guard_cases;
#[cfg(target_os = "none")]
mod hals;
#[cfg(target_os = "none")]
mod pvmfw_cases;
#[cfg(target_os = "none")]
mod racy_hal;
#[cfg(target_os = "none")]
mod raw_queue;
#[cfg(target_os = "none")]
mod sharing_cases;
#[cfg(target_os = "none")]
mod smp_cases;
#[cfg(target_os = "none")]
mod virtio_cases;

#[cfg(target_os = "none")]
guest_lib::entry!(cases::main);
