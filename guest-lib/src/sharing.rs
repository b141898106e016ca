//! Sharing guest memory with the host (MEM_SHARE) and taking it back (MEM_UNSHARE).
//!
//! [`MemSharer`] shares any granule-aligned range: with the ranged form when MEMINFO
//! says the hypervisor has it (Android), one granule per call otherwise (upstream). A
//! failure midway undoes what the call already did and names the IPA and the
//! hypervisor's code, so a range is never left half shared. On a VM without the pKVM
//! memory services there is nothing to share with: the host can already see all
//! memory, and sharing is a successful no-op.
//!
//! ```
//! # use guest_lib::conduit::Conduit;
//! /// A conduit with nothing behind it: every call answers NOT_SUPPORTED (-1).
//! struct Nothing;
//! impl Conduit for Nothing {
//!     fn call(&self, _function: u32, _args: [u64; 3]) -> [u64; 4] {
//!         [u64::MAX, 0, 0, 0]
//!     }
//! }
//! use guest_lib::hypervisor::HypervisorInfo;
//! use guest_lib::sharing::MemSharer;
//! use guest_lib::Ipa;
//!
//! // In a VM without pKVM's memory services the host sees everything already:
//! // sharing succeeds and makes no call. In a pVM the same code shares for real.
//! let info = HypervisorInfo::discover(&Nothing);
//! let sharer = MemSharer::new(Nothing, &info).unwrap();
//! assert!(!sharer.is_protected());
//! sharer.share(Ipa(0x8040_0000), 2 * 4096).unwrap();
//! sharer.unshare(Ipa(0x8040_0000), 2 * 4096).unwrap();
//! ```

use core::fmt;

use pvmkit_abi::address::Ipa;
use pvmkit_abi::kvm::{self, MEMINFO_HAS_RANGE};
use pvmkit_abi::smccc;

use crate::conduit::Conduit;
use crate::hypervisor::HypervisorInfo;
use crate::stats;

/// Why sharing failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareError {
    /// The address or length is not a multiple of the granule.
    Unaligned {
        /// The address given.
        addr: Ipa,
        /// The length given.
        len: u64,
    },
    /// The hypervisor refused a granule; everything done before it was undone.
    Refused {
        /// The granule it refused.
        ipa: Ipa,
        /// Its SMCCC error code.
        code: i64,
    },
    /// The hypervisor refused a granule, and undoing the granules before it failed too:
    /// the range is now in a mixed state.
    RollbackFailed {
        /// The granule it first refused.
        ipa: Ipa,
        /// Its SMCCC error code.
        code: i64,
        /// The granule whose rollback failed.
        rollback_ipa: Ipa,
    },
    /// The hypervisor reported a granule size guest-lib cannot use.
    BadGranule(u64),
    /// An Android ranged call reported a count of pages done that is out of range.
    BadProgress {
        /// The granule the call started at.
        ipa: Ipa,
        /// What it said it did.
        done: u64,
    },
}

impl fmt::Display for ShareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unaligned { addr, len } => {
                write!(f, "range {addr:#x}+{len:#x} is not granule aligned")
            }
            Self::Refused { ipa, code } => {
                write!(f, "hypervisor refused granule {ipa:#x} with {code}")
            }
            Self::RollbackFailed { ipa, code, rollback_ipa } => {
                write!(f, "hypervisor refused granule {ipa:#x} with {code}, and undoing {rollback_ipa:#x} failed")
            }
            Self::BadGranule(g) => write!(f, "hypervisor granule {g:#x} is not a power of two from 4 KiB to 64 KiB"),
            Self::BadProgress { ipa, done } => {
                write!(f, "hypervisor said it did {done} granules at {ipa:#x}")
            }
        }
    }
}

/// Which way a range moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Share,
    Unshare,
}

impl Direction {
    fn function(self) -> u32 {
        match self {
            Self::Share => kvm::MEM_SHARE,
            Self::Unshare => kvm::MEM_UNSHARE,
        }
    }

    fn reverse(self) -> Self {
        match self {
            Self::Share => Self::Unshare,
            Self::Unshare => Self::Share,
        }
    }
}

/// The memory-sharing capability of a protected VM's hypervisor
/// ([`crate::backend`]): what the host may see, a granule at a time.
pub trait MemSharing {
    /// The sharing granule (the page size where nothing needs sharing).
    fn granule(&self) -> u64;
    /// Shares `[addr, addr + len)` with the host. All or nothing.
    fn share(&self, addr: Ipa, len: u64) -> Result<(), ShareError>;
    /// Takes `[addr, addr + len)` back from the host. All or nothing.
    fn unshare(&self, addr: Ipa, len: u64) -> Result<(), ShareError>;
}

impl<C: Conduit> MemSharing for MemSharer<C> {
    fn granule(&self) -> u64 {
        MemSharer::granule(self)
    }
    fn share(&self, addr: Ipa, len: u64) -> Result<(), ShareError> {
        MemSharer::share(self, addr, len)
    }
    fn unshare(&self, addr: Ipa, len: u64) -> Result<(), ShareError> {
        MemSharer::unshare(self, addr, len)
    }
}

/// Shares and unshares memory with the host: [`MemSharing`] for the pKVM backends
/// (and a successful no-op where nothing needs sharing).
#[derive(Clone, Copy, Debug)]
pub struct MemSharer<C: Conduit> {
    conduit: C,
    /// `None` when the VM is not protected.
    granule: Option<u64>,
    ranged: bool,
}

impl<C: Conduit> MemSharer<C> {
    /// Asks MEMINFO for the granule when the hypervisor offers the memory services.
    pub fn new(conduit: C, info: &HypervisorInfo) -> Result<Self, ShareError> {
        if !info.is_protected() {
            return Ok(Self { conduit, granule: None, ranged: false });
        }
        let [granule, flags, ..] = conduit.call(kvm::HYP_MEMINFO, [0; 3]);
        if !granule.is_power_of_two() || !(4096..=65536).contains(&granule) {
            return Err(ShareError::BadGranule(granule));
        }
        Ok(Self { conduit, granule: Some(granule), ranged: flags & MEMINFO_HAS_RANGE != 0 })
    }

    /// Whether this is a protected VM (sharing does something).
    pub fn is_protected(&self) -> bool {
        self.granule.is_some()
    }

    /// The sharing granule (the page size when not protected).
    pub fn granule(&self) -> u64 {
        self.granule.unwrap_or(4096)
    }

    /// Whether the hypervisor takes ranges in one call.
    pub fn is_ranged(&self) -> bool {
        self.ranged
    }

    /// The conduit.
    pub fn conduit(&self) -> &C {
        &self.conduit
    }

    /// Shares `[addr, addr + len)` with the host. All or nothing.
    pub fn share(&self, addr: Ipa, len: u64) -> Result<(), ShareError> {
        self.apply(Direction::Share, addr, len)
    }

    /// Takes `[addr, addr + len)` back from the host. All or nothing.
    pub fn unshare(&self, addr: Ipa, len: u64) -> Result<(), ShareError> {
        self.apply(Direction::Unshare, addr, len)
    }

    fn apply(&self, dir: Direction, start: Ipa, len: u64) -> Result<(), ShareError> {
        let granule = self.granule();
        let addr = start.get();
        if !addr.is_multiple_of(granule) || !len.is_multiple_of(granule) || addr.checked_add(len).is_none() {
            return Err(ShareError::Unaligned { addr: start, len });
        }
        if self.granule.is_none() {
            return Ok(());
        }
        let pages = len / granule;
        match self.walk(dir, addr, pages) {
            Ok(()) => {
                match dir {
                    Direction::Share => stats::pages_shared_add(pages),
                    Direction::Unshare => stats::pages_shared_sub(pages),
                }
                Ok(())
            }
            Err((done, error)) => {
                // Undo the granules done before the failure, newest first is not needed:
                // they are independent.
                if let Err((undone, _)) = self.walk(dir.reverse(), addr, done) {
                    let (ipa, code) = match error {
                        ShareError::Refused { ipa, code } => (ipa, code),
                        _ => (Ipa(addr + done * granule), smccc::INVALID_PARAMETER),
                    };
                    return Err(ShareError::RollbackFailed { ipa, code, rollback_ipa: Ipa(addr + undone * granule) });
                }
                Err(error)
            }
        }
    }

    /// Moves `pages` granules from `addr`; on failure returns how many were moved.
    fn walk(&self, dir: Direction, addr: u64, pages: u64) -> Result<(), (u64, ShareError)> {
        let granule = self.granule();
        let mut done = 0;
        while done < pages {
            let ipa = addr + done * granule;
            let left = pages - done;
            let count = if self.ranged { left } else { 0 };
            let [x0, x1, ..] = self.conduit.call(dir.function(), [ipa, count, 0]);
            let code = smccc::status(x0);
            if code != smccc::SUCCESS {
                return Err((done, ShareError::Refused { ipa: Ipa(ipa), code }));
            }
            let step = if self.ranged { x1 } else { 1 };
            if step == 0 || step > left {
                return Err((done, ShareError::BadProgress { ipa: Ipa(ipa), done: step }));
            }
            done += step;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
