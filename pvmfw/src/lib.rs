//! pvmfw: the protected-VM firmware. It runs first in every pVM, trusts nothing the host
//! gave it, and starts only a payload signed by a key it trusts, with a device tree it
//! rebuilt itself and a secret bound to exactly that payload. Every refusal ends the VM
//! (fail closed).
//!
//! This library is pvmfw's decisions, host-tested: [`verify`] (the signed payload),
//! [`host_dt`] (the hostile device tree, checked), [`handover_dt`] (the fresh one),
//! [`secret`] (the payload's secret), [`bootargs`] (what of the host's command line
//! passes), [`layout`] (where everything pvmfw writes goes), [`placement`] (where the
//! payload may go). `main.rs` runs them in order and hands over.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

extern crate alloc;

pub mod avb_properties;
pub mod avb_verify;
pub mod bootargs;
pub mod handover_dt;
pub mod host_dt;
pub mod layout;
pub mod placement;
pub mod reference_dt;
pub mod refusal;
pub mod secret;
pub mod verify;
