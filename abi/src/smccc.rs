//! SMC Calling Convention (Arm DEN 0028, "SMCCC") basics.
//!
//! Source: Arm DEN 0028 §2.5 (function identifiers), §7 (return codes), §7.2–7.3
//! (SMCCC_VERSION, SMCCC_ARCH_FEATURES); Linux `include/linux/arm-smccc.h`.
//!
//! ```
//! use pvmkit_abi::smccc::{fast_call_id, number_of, owner_of, SMCCC_VERSION};
//!
//! let id = fast_call_id(false, 0, 0); // SMC32, Arm architecture service, function 0
//! assert_eq!(id, SMCCC_VERSION);
//! assert_eq!((owner_of(pvmkit_abi::kvm::MEM_SHARE), number_of(pvmkit_abi::kvm::MEM_SHARE)), (6, 3));
//! ```

/// Bit 31 of a function ID: set for fast calls.
pub const FAST_CALL: u32 = 1 << 31;
/// Bit 30 of a function ID: set for the SMC64/HVC64 calling convention.
pub const CONV_64: u32 = 1 << 30;

/// Owning-entity numbers (bits 29:24 of a function ID), SMCCC table 6-2.
pub mod owner {
    /// Arm architecture calls.
    pub const ARCH: u32 = 0;
    /// Standard secure service calls (PSCI lives here).
    pub const STANDARD: u32 = 4;
    /// Standard hypervisor service calls.
    pub const STANDARD_HYP: u32 = 5;
    /// Vendor-specific hypervisor service calls (KVM and pKVM live here).
    pub const VENDOR_HYP: u32 = 6;
}

/// Builds a fast-call function ID from its convention, owner and number
/// (`ARM_SMCCC_CALL_VAL` in Linux).
pub const fn fast_call_id(is_64: bool, owner: u32, number: u32) -> u32 {
    FAST_CALL | if is_64 { CONV_64 } else { 0 } | ((owner & 0x3f) << 24) | (number & 0xffff)
}

/// The owning entity of a function ID.
pub const fn owner_of(function_id: u32) -> u32 {
    (function_id >> 24) & 0x3f
}

/// The function number (bits 15:0) of a function ID.
pub const fn number_of(function_id: u32) -> u32 {
    function_id & 0xffff
}

/// SMCCC return code: success (DEN 0028 §7, table 7-1 and Linux `SMCCC_RET_SUCCESS`).
pub const SUCCESS: i64 = 0;
/// SMCCC return code: the function is not implemented (`SMCCC_RET_NOT_SUPPORTED`).
pub const NOT_SUPPORTED: i64 = -1;
/// SMCCC return code: the call is not needed on this system (`SMCCC_RET_NOT_REQUIRED`).
pub const NOT_REQUIRED: i64 = -2;
/// SMCCC return code: an argument is wrong (`SMCCC_RET_INVALID_PARAMETER`).
pub const INVALID_PARAMETER: i64 = -3;

/// `SMCCC_VERSION` (DEN 0028 §7.2): returns the implemented SMCCC version.
pub const SMCCC_VERSION: u32 = 0x8000_0000;
/// `SMCCC_ARCH_FEATURES` (DEN 0028 §7.3): x1 = a function ID of the Arm architecture
/// service; returns 0 when it is implemented, NOT_SUPPORTED otherwise.
pub const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;

/// SMCCC version 1.1 as returned by `SMCCC_VERSION` (major in bits 30:16, minor 15:0).
pub const VERSION_1_1: u32 = 0x0001_0001;
/// SMCCC version 1.2.
pub const VERSION_1_2: u32 = 0x0001_0002;
/// `SMCCC_ARCH_SOC_ID`.
pub const SMCCC_ARCH_SOC_ID: u32 = 0x8000_0002;
/// `SMCCC_ARCH_WORKAROUND_1` (Spectre v2 firmware mitigation).
pub const ARCH_WORKAROUND_1: u32 = 0x8000_8000;
/// `SMCCC_ARCH_WORKAROUND_2` (Spectre v4).
pub const ARCH_WORKAROUND_2: u32 = 0x8000_7fff;
/// `SMCCC_ARCH_WORKAROUND_3` (Spectre-BHB).
pub const ARCH_WORKAROUND_3: u32 = 0x8000_3fff;
/// `ARCH_FEATURES` answer for a workaround the CPU does not need.
pub const WORKAROUND_UNAFFECTED: i64 = 1;
/// Paravirtualised time: `PV_TIME_FEATURES` (standard hypervisor service).
pub const PV_TIME_FEATURES: u32 = 0xc500_0020;
/// Paravirtualised time: `PV_TIME_ST` (the stolen-time structure's address).
pub const PV_TIME_ST: u32 = 0xc500_0021;
/// The Arm TRNG's `TRNG_VERSION` (DEN 0098).
pub const TRNG_VERSION: u32 = 0x8400_0050;
/// `TRNG_FEATURES`.
pub const TRNG_FEATURES: u32 = 0x8400_0051;
/// `TRNG_GET_UUID`.
pub const TRNG_GET_UUID: u32 = 0x8400_0052;
/// `TRNG_RND32`.
pub const TRNG_RND32: u32 = 0x8400_0053;
/// `TRNG_RND64`.
pub const TRNG_RND64: u32 = 0xc400_0053;
/// `TRNG_VERSION`'s answer for version 1.0.
pub const TRNG_VERSION_1_0: i64 = 0x1_0000;

/// Splits an SMCCC/PSCI version word into (major, minor).
pub const fn version_parts(version: u32) -> (u16, u16) {
    ((version >> 16) as u16 & 0x7fff, version as u16)
}

/// Reads a return register as the signed SMCCC status it carries.
pub const fn status(x0: u64) -> i64 {
    x0 as i64
}

/// Something that makes SMCCC fast calls: x0 = function ID, x1..x3 = arguments;
/// returns x0..x3. Guests implement it over HVC or SMC; tests over a fake.
pub trait Conduit {
    /// Makes one call.
    fn call(&self, function: u32, args: [u64; 3]) -> [u64; 4];
}

impl<C: Conduit + ?Sized> Conduit for &C {
    fn call(&self, function: u32, args: [u64; 3]) -> [u64; 4] {
        (**self).call(function, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_ids_encode_like_linux() {
        assert_eq!(fast_call_id(false, owner::VENDOR_HYP, 0xff01), 0x8600_ff01);
        assert_eq!(fast_call_id(true, owner::VENDOR_HYP, 3), 0xc600_0003);
        assert_eq!(fast_call_id(false, owner::ARCH, 0), SMCCC_VERSION);
        assert_eq!(owner_of(0xc600_0003), owner::VENDOR_HYP);
        assert_eq!(number_of(0xc600_0003), 3);
    }

    #[test]
    fn version_splits_into_major_and_minor() {
        assert_eq!(version_parts(VERSION_1_1), (1, 1));
        assert_eq!(version_parts(0x0001_0002), (1, 2));
        assert_eq!(status(u64::MAX), NOT_SUPPORTED);
    }
}
