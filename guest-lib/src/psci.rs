//! PSCI: the calls a guest needs to ask about and end its life.
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
    Ok(abi::smccc::version_parts(x0 as u32))
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
}
