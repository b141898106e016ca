//! The device-tree code pvmkit's parts share: [`read`], the decoding hyp's platform
//! reader, guest-lib and pvmfw's host-DT check each did on their own; and [`mod@write`]
//! (feature `write`), the common nodes `pvmkit` (as the host VMM) and pvmfw (for its
//! payload) both write.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "write")]
extern crate alloc;

pub mod read;
#[cfg(feature = "write")]
pub mod write;
