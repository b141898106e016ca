//! Mapping, unmapping and reference counting.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use pvmkit_abi::address::Ipa;
use pvmkit_abi::kvm::{self, Features};
use pvmkit_abi::smccc::{self, Conduit};
use spinning_top::Spinlock;

use crate::Form;

/// Why a guard operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardError {
    /// The hypervisor refused a granule. Granules this call had mapped were unmapped
    /// again where the form allows it (Android).
    Refused {
        /// The granule refused.
        ipa: Ipa,
        /// The hypervisor's SMCCC code.
        code: i64,
    },
    /// The range is empty or wraps.
    BadRange {
        /// Start of the range.
        addr: Ipa,
        /// Its length.
        len: u64,
    },
    /// Unmapping a granule nobody mapped.
    NotMapped(Ipa),
    /// The hypervisor reported a granule size this client cannot use.
    BadGranule(u64),
    /// A ranged call reported an impossible amount of progress.
    BadProgress {
        /// Where the call started.
        ipa: Ipa,
        /// What it said it did.
        done: u64,
    },
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused { ipa, code } => {
                write!(f, "MMIO guard refused granule {ipa:#x} with {code}")
            }
            Self::BadRange { addr, len } => {
                write!(f, "MMIO range {addr:#x}+{len:#x} is empty or wraps")
            }
            Self::NotMapped(ipa) => write!(f, "MMIO granule {ipa:#x} is not mapped"),
            Self::BadGranule(g) => write!(f, "MMIO guard granule {g:#x} is unusable"),
            Self::BadProgress { ipa, done } => {
                write!(f, "MMIO guard said it did {done} granules at {ipa:#x}")
            }
        }
    }
}

/// The MMIO guard capability: a protected VM registers every MMIO granule it uses
/// before touching it. [`MmioGuard`] implements it for both forms (and as a successful
/// no-op where the hypervisor has no guard).
pub trait MmioGuarded {
    /// Registers every granule `[addr, addr + len)` touches. All or nothing.
    fn map(&self, addr: Ipa, len: u64) -> Result<(), GuardError>;
    /// Drops one use of every granule `[addr, addr + len)` touches.
    fn unmap(&self, addr: Ipa, len: u64) -> Result<(), GuardError>;
}

impl<C: Conduit> MmioGuarded for MmioGuard<C> {
    fn map(&self, addr: Ipa, len: u64) -> Result<(), GuardError> {
        MmioGuard::map(self, addr, len)
    }
    fn unmap(&self, addr: Ipa, len: u64) -> Result<(), GuardError> {
        MmioGuard::unmap(self, addr, len)
    }
}

/// Registers MMIO ranges with the hypervisor, counting users per granule.
pub struct MmioGuard<C: Conduit> {
    conduit: C,
    form: Option<Form>,
    granule: u64,
    users: Spinlock<BTreeMap<u64, u32>>,
}

/// The most granules one ranged call is asked for.
const MAX_RANGED: u64 = 512;

impl<C: Conduit> MmioGuard<C> {
    /// Detects the form from `features` and asks for the granule: INFO (Android) or
    /// HYP_MEMINFO (upstream). Without an MMIO guard every operation succeeds and makes
    /// no call.
    pub fn new(conduit: C, features: Features) -> Result<Self, GuardError> {
        let form = Form::detect(features);
        let granule = match form {
            None => 4096,
            Some(Form::Android { .. }) => conduit.call(kvm::MMIO_GUARD_INFO, [0; 3])[0],
            Some(Form::Upstream) => conduit.call(kvm::HYP_MEMINFO, [0; 3])[0],
        };
        if !granule.is_power_of_two() || !(4096..=65536).contains(&granule) {
            return Err(GuardError::BadGranule(granule));
        }
        Ok(Self { conduit, form, granule, users: Spinlock::new(BTreeMap::new()) })
    }

    /// The form in use, if any.
    pub fn form(&self) -> Option<Form> {
        self.form
    }

    /// The guard granule.
    pub fn granule(&self) -> u64 {
        self.granule
    }

    /// Enrols the VM (Android; a no-op for upstream, which has no enrolment, and when
    /// there is no guard).
    pub fn enroll(&self) -> Result<(), GuardError> {
        if let Some(Form::Android { .. }) = self.form {
            let code = smccc::status(self.conduit.call(kvm::MMIO_GUARD_ENROLL, [0; 3])[0]);
            if code != smccc::SUCCESS {
                return Err(GuardError::Refused { ipa: Ipa(0), code });
            }
        }
        Ok(())
    }

    fn granules(&self, start: Ipa, len: u64) -> Result<impl Iterator<Item = u64>, GuardError> {
        let addr = start.get();
        let last =
            len.checked_sub(1).and_then(|l| addr.checked_add(l)).ok_or(GuardError::BadRange { addr: start, len })?;
        let mask = !(self.granule - 1);
        Ok((addr & mask..=last & mask).step_by(self.granule as usize))
    }

    /// Registers every granule `[addr, addr + len)` touches (a hypercall only for those
    /// no one has registered yet). All or nothing.
    pub fn map(&self, addr: Ipa, len: u64) -> Result<(), GuardError> {
        let granules: Vec<u64> = self.granules(addr, len)?.collect();
        let mut users = self.users.lock();
        let fresh: Vec<u64> = granules.iter().copied().filter(|g| !users.contains_key(g)).collect();
        if let Err((done, error)) = self.register(&fresh) {
            self.unregister(&fresh[..done]);
            return Err(error);
        }
        for g in granules {
            *users.entry(g).or_insert(0) += 1;
        }
        Ok(())
    }

    /// Drops one use of every granule `[addr, addr + len)` touches, unregistering those
    /// that no one uses any more (Android; upstream has no unmap, so they stay
    /// registered). All or nothing.
    pub fn unmap(&self, addr: Ipa, len: u64) -> Result<(), GuardError> {
        let granules: Vec<u64> = self.granules(addr, len)?.collect();
        let mut users = self.users.lock();
        if let Some(&g) = granules.iter().find(|g| !users.contains_key(g)) {
            return Err(GuardError::NotMapped(Ipa(g)));
        }
        let mut unused = Vec::new();
        for g in granules {
            let count = users.entry(g).or_insert(1);
            *count -= 1;
            if *count == 0 {
                users.remove(&g);
                unused.push(g);
            }
        }
        self.unregister(&unused);
        Ok(())
    }

    /// How many users a granule has.
    pub fn users(&self, ipa: Ipa) -> u32 {
        self.users.lock().get(&(ipa.get() & !(self.granule - 1))).copied().unwrap_or(0)
    }

    /// Maps `[addr, addr + len)` for as long as the returned handle lives: keep it (a
    /// handle dropped at once unregisters the range again).
    #[must_use = "the range is unregistered when the handle is dropped"]
    pub fn guard(&self, addr: Ipa, len: u64) -> Result<Guarded<'_, C>, GuardError> {
        self.map(addr, len)?;
        Ok(Guarded { guard: self, addr, len })
    }

    /// Registers `granules` (ascending); on failure, how many were registered.
    fn register(&self, granules: &[u64]) -> Result<(), (usize, GuardError)> {
        let Some(form) = self.form else { return Ok(()) };
        let mut done = 0;
        while done < granules.len() {
            let ipa = granules[done];
            let run = contiguous_run(&granules[done..], self.granule);
            let ([x0, x1, ..], ranged) = match form {
                Form::Android { ranged: true } if run > 1 => {
                    (self.conduit.call(kvm::MMIO_RGUARD_MAP, [ipa, run.min(MAX_RANGED), 0]), true)
                }
                _ => (self.conduit.call(kvm::MMIO_GUARD_MAP, [ipa, 0, 0]), false),
            };
            let code = smccc::status(x0);
            if code != smccc::SUCCESS {
                return Err((done, GuardError::Refused { ipa: Ipa(ipa), code }));
            }
            let step = if ranged { x1 } else { 1 };
            if step == 0 || step > run {
                return Err((done, GuardError::BadProgress { ipa: Ipa(ipa), done: step }));
            }
            done += step as usize;
        }
        Ok(())
    }

    /// Unregisters `granules` where the form allows it. Failures are ignored: the
    /// granule stays guarded, which keeps the guest's own access working and exposes
    /// nothing new to the host.
    fn unregister(&self, granules: &[u64]) {
        let Some(Form::Android { ranged }) = self.form else {
            return;
        };
        let mut done = 0;
        while done < granules.len() {
            let ipa = granules[done];
            let run = contiguous_run(&granules[done..], self.granule);
            let step = if ranged && run > 1 {
                let [x0, x1, ..] = self.conduit.call(kvm::MMIO_RGUARD_UNMAP, [ipa, run.min(MAX_RANGED), 0]);
                if smccc::status(x0) == smccc::SUCCESS && x1 > 0 && x1 <= run {
                    x1
                } else {
                    1
                }
            } else {
                self.conduit.call(kvm::MMIO_GUARD_UNMAP, [ipa, 0, 0]);
                1
            };
            done += step as usize;
        }
    }
}

/// How many of `granules` (ascending) follow each other from the first.
fn contiguous_run(granules: &[u64], granule: u64) -> u64 {
    granules.windows(2).take_while(|w| w[1] == w[0] + granule).count() as u64 + 1
}

/// A mapped range, unmapped when dropped.
pub struct Guarded<'a, C: Conduit> {
    guard: &'a MmioGuard<C>,
    addr: Ipa,
    len: u64,
}

impl<C: Conduit> Guarded<'_, C> {
    /// The range: (address, length).
    pub fn range(&self) -> (Ipa, u64) {
        (self.addr, self.len)
    }
}

impl<C: Conduit> Drop for Guarded<'_, C> {
    fn drop(&mut self) {
        // Mapped by `guard`, so every granule has a use to drop.
        let _ = self.guard.unmap(self.addr, self.len);
    }
}

#[cfg(test)]
mod tests;
