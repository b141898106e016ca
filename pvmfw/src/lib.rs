//! pvmkit's protected-VM firmware: runs first in every pVM, checks the host's device
//! tree, verifies the payload's signature, hands over a rebuilt device tree and a derived
//! secret, and fails closed.
//!
//! Not built yet: it arrives with the pvmfw issue. Until then `hyp` enters the payload
//! directly and `pvmkit` has no pvmfw image to pack; nothing here pretends otherwise.
#![cfg_attr(not(test), no_std)]
