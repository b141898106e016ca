//! PSCI: the calls a guest needs to ask about and end its life, and to start and stop
//! its other CPUs (see [`crate::smp`]).
//!
//! ```
//! # use guest_lib::conduit::Conduit;
//! struct Psci11;
//! impl Conduit for Psci11 {
//!     fn call(&self, _function: u32, _args: [u64; 3]) -> [u64; 4] {
//!         [0x1_0001, 0, 0, 0] // PSCI_VERSION: 1.1
//!     }
//! }
//! assert_eq!(guest_lib::psci::version(&Psci11), Ok((1, 1)));
//! ```

use core::fmt;

use smccc::psci::{self, Error};

use crate::conduit::Conduit;

/// A PSCI error code (decoded by the smccc crate's [`smccc::psci::Error`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PsciError(pub i64);

impl PsciError {
    /// The error, as the smccc crate decodes it.
    pub fn error(self) -> Error {
        Error::from(self.0)
    }
}

impl fmt::Display for PsciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PSCI {:?} ({})", self.error(), self.0)
    }
}

/// PSCI_VERSION as (major, minor).
pub fn version<C: Conduit>(conduit: &C) -> Result<(u16, u16), PsciError> {
    let x0 = conduit.call(psci::PSCI_VERSION, [0; 3])[0] as i64;
    if x0 < 0 {
        return Err(PsciError(x0));
    }
    Ok(pvmkit_abi::smccc::version_parts(x0 as u32))
}

/// PSCI_FEATURES: `Ok(flags)` when `function` is implemented.
pub fn features<C: Conduit>(conduit: &C, function: u32) -> Result<u32, PsciError> {
    let x0 = conduit.call(psci::PSCI_FEATURES, [function as u64, 0, 0])[0] as i64;
    if x0 < 0 {
        Err(PsciError(x0))
    } else {
        Ok(x0 as u32)
    }
}

fn status(x0: u64) -> Result<(), PsciError> {
    match x0 as i64 {
        0 => Ok(()),
        error => Err(PsciError(error)),
    }
}

/// CPU_ON (64-bit): starts the powered-off CPU whose MPIDR affinity is `mpidr` at
/// `entry` (a physical address, MMU off) with `context` in its x0. The CPU may not have
/// run yet when this returns. Errors as the PSCI specification names them: an unknown
/// `mpidr` or a bad `entry` is `InvalidParameters`/`InvalidAddress`, a CPU already on
/// `AlreadyOn`, one being started `OnPending`.
pub fn cpu_on<C: Conduit>(conduit: &C, mpidr: u64, entry: u64, context: u64) -> Result<(), PsciError> {
    status(conduit.call(psci::PSCI_CPU_ON_64, [mpidr, entry, context])[0])
}

/// CPU_OFF: powers the calling CPU off; returns only if the call failed (`Denied`).
pub fn cpu_off<C: Conduit>(conduit: &C) -> PsciError {
    PsciError(conduit.call(psci::PSCI_CPU_OFF, [0; 3])[0] as i64)
}

/// A CPU's power state as AFFINITY_INFO tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AffinityState {
    /// Running.
    On,
    /// Powered off.
    Off,
    /// Being started (CPU_ON accepted, not yet running).
    OnPending,
}

/// AFFINITY_INFO (64-bit) of the CPU whose MPIDR affinity is `mpidr` (level 0).
pub fn affinity_info<C: Conduit>(conduit: &C, mpidr: u64) -> Result<AffinityState, PsciError> {
    match conduit.call(psci::PSCI_AFFINITY_INFO_64, [mpidr, 0, 0])[0] as i64 {
        0 => Ok(AffinityState::On),
        1 => Ok(AffinityState::Off),
        2 => Ok(AffinityState::OnPending),
        error => Err(PsciError(error)),
    }
}

/// Asks for SYSTEM_OFF. Returns only if the call failed.
pub fn system_off<C: Conduit>(conduit: &C) -> PsciError {
    PsciError(conduit.call(psci::PSCI_SYSTEM_OFF, [0; 3])[0] as i64)
}

/// Asks for SYSTEM_RESET. Returns only if the call failed.
pub fn system_reset<C: Conduit>(conduit: &C) -> PsciError {
    PsciError(conduit.call(psci::PSCI_SYSTEM_RESET, [0; 3])[0] as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conduit::fake::FakeConduit;

    #[test]
    fn decodes_answers() {
        let fake = FakeConduit::new(|f, a| match (f, a[0]) {
            (0x8400_0000, _) => [0x10001, 0, 0, 0],
            (0x8400_000a, 0x8400_0008) => [0, 0, 0, 0],
            _ => [u64::MAX, 0, 0, 0],
        });
        assert_eq!(version(&fake), Ok((1, 1)));
        assert_eq!(features(&fake, 0x8400_0008), Ok(0));
        assert_eq!(features(&fake, 0xc400_0003), Err(PsciError(-1)));
        assert_eq!(system_off(&fake), PsciError(-1));
        assert_eq!(fake.calls.borrow()[3], (0x8400_0008, [0, 0, 0]));
        assert_eq!(PsciError(-1).to_string(), "PSCI NotSupported (-1)");
        assert_eq!(PsciError(-3).error(), Error::Denied);
    }

    /// CPU_ON, CPU_OFF and AFFINITY_INFO: their function ids and arguments as the PSCI
    /// specification (DEN0022) numbers them, and its return codes decoded.
    #[test]
    fn cpu_power_calls() {
        let fake = FakeConduit::new(|f, a| match (f, a[0]) {
            (0xc400_0003, 1) => [0, 0, 0, 0],
            (0xc400_0003, 0) => [(-4i64) as u64, 0, 0, 0], // ALREADY_ON
            (0xc400_0004, 1) => [1, 0, 0, 0],
            (0xc400_0004, 2) => [2, 0, 0, 0],
            (0xc400_0004, 0) => [0, 0, 0, 0],
            (0x8400_0002, _) => [(-3i64) as u64, 0, 0, 0], // DENIED
            _ => [(-2i64) as u64, 0, 0, 0],                // INVALID_PARAMETERS
        });
        assert_eq!(cpu_on(&fake, 1, 0x8020_0000, 42), Ok(()));
        assert_eq!(fake.calls.borrow()[0], (0xc400_0003, [1, 0x8020_0000, 42]));
        assert_eq!(cpu_on(&fake, 0, 0x8020_0000, 0).map_err(PsciError::error), Err(Error::AlreadyOn));
        assert_eq!(cpu_on(&fake, 9, 0, 0).map_err(PsciError::error), Err(Error::InvalidParameters));
        assert_eq!(affinity_info(&fake, 0), Ok(AffinityState::On));
        assert_eq!(affinity_info(&fake, 1), Ok(AffinityState::Off));
        assert_eq!(affinity_info(&fake, 2), Ok(AffinityState::OnPending));
        assert_eq!(affinity_info(&fake, 9), Err(PsciError(-2)));
        assert_eq!(fake.calls.borrow()[6], (0xc400_0004, [9, 0, 0]));
        assert_eq!(cpu_off(&fake).error(), Error::Denied);
    }
}
