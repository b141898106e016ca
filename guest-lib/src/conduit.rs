//! SMCCC calls, generic over the conduit so that everything built on them is testable
//! on the host with a fake.
//!
//! ```
//! use guest_lib::conduit::{Conduit, SystemConduit};
//!
//! // The DT's `/psci` method picks the instruction; a test or a host tool can stand in
//! // for the hypervisor with any `Conduit`.
//! assert_eq!(SystemConduit::from_method("hvc"), Some(SystemConduit::Hvc));
//! struct Scripted;
//! impl Conduit for Scripted {
//!     fn call(&self, function: u32, _args: [u64; 3]) -> [u64; 4] {
//!         [u64::from(function == 0x8000_0000), 0, 0, 0]
//!     }
//! }
//! assert_eq!(Scripted.call(0x8000_0000, [0; 3])[0], 1);
//! ```

pub use pvmkit_abi::smccc::Conduit;

/// The instruction a guest uses to reach its hypervisor (the DT's `/psci` `method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemConduit {
    /// `hvc #0`: what a pVM uses.
    Hvc,
    /// `smc #0`: trapped by the hypervisor (HCR_EL2.TSC) or served by firmware.
    Smc,
}

impl SystemConduit {
    /// The conduit a DT `method` string names.
    pub fn from_method(method: &str) -> Option<Self> {
        match method {
            "hvc" => Some(Self::Hvc),
            "smc" => Some(Self::Smc),
            _ => None,
        }
    }
}

// On the host the impl exists for the documentation only (no HVC to make there).
#[cfg(any(target_arch = "aarch64", doc))]
impl Conduit for SystemConduit {
    #[cfg(not(target_arch = "aarch64"))]
    fn call(&self, _function: u32, _args: [u64; 3]) -> [u64; 4] {
        unreachable!("SMCCC calls are made on aarch64 only")
    }

    #[cfg(target_arch = "aarch64")]
    fn call(&self, function: u32, args: [u64; 3]) -> [u64; 4] {
        crate::stats::count_hypercall();
        let mut all = [0u64; 17];
        all[..3].copy_from_slice(&args);
        let r = match self {
            Self::Hvc => smccc::hvc64(function, all),
            Self::Smc => smccc::smc64(function, all),
        };
        [r[0], r[1], r[2], r[3]]
    }
}

/// A conduit for host tests: answers through a closure and records every call.
#[cfg(test)]
pub mod fake {
    use super::Conduit;
    use core::cell::RefCell;

    /// A scripted hypervisor.
    pub struct FakeConduit<F: Fn(u32, [u64; 3]) -> [u64; 4]> {
        answer: F,
        /// Every call made: (function, args).
        pub calls: RefCell<Vec<(u32, [u64; 3])>>,
    }

    impl<F: Fn(u32, [u64; 3]) -> [u64; 4]> FakeConduit<F> {
        /// A fake that answers with `answer`.
        pub fn new(answer: F) -> Self {
            Self { answer, calls: RefCell::new(Vec::new()) }
        }
    }

    impl<F: Fn(u32, [u64; 3]) -> [u64; 4]> Conduit for FakeConduit<F> {
        fn call(&self, function: u32, args: [u64; 3]) -> [u64; 4] {
            self.calls.borrow_mut().push((function, args));
            (self.answer)(function, args)
        }
    }
}
