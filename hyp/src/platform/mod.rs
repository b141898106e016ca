//! The platform hyp runs on: QEMU's device tree ([`dtb`], whose items are re-exported
//! here), stage-2 tables ([`stage2`]) and where guest RAM may go ([`placement`]).

pub mod dtb;
pub mod placement;
pub mod stage2;

pub use dtb::*;
