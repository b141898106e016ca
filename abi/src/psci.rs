//! PSCI (Arm DEN 0022) calls used by pvmkit.
//!
//! Source: Arm DEN 0022 §5.1 (function IDs), §5.2.2 (return codes); Linux
//! `include/uapi/linux/psci.h`.

/// `PSCI_VERSION`: returns the implemented PSCI version (major 31:16, minor 15:0).
pub const PSCI_VERSION: u32 = 0x8400_0000;
/// `CPU_OFF`.
pub const CPU_OFF: u32 = 0x8400_0002;
/// `CPU_ON` (SMC64 form).
pub const CPU_ON_64: u32 = 0xc400_0003;
/// `SYSTEM_OFF`: powers the system off; does not return.
pub const SYSTEM_OFF: u32 = 0x8400_0008;
/// `SYSTEM_RESET`: resets the system; does not return.
pub const SYSTEM_RESET: u32 = 0x8400_0009;
/// `PSCI_FEATURES`: x1 = a function ID; returns 0 (or feature flags) when implemented,
/// NOT_SUPPORTED otherwise.
pub const PSCI_FEATURES: u32 = 0x8400_000a;

/// PSCI 1.1 as returned by `PSCI_VERSION`.
pub const VERSION_1_1: u32 = 0x0001_0001;

/// PSCI return code: success.
pub const SUCCESS: i64 = 0;
/// PSCI return code: not supported.
pub const NOT_SUPPORTED: i64 = -1;
/// PSCI return code: invalid parameters.
pub const INVALID_PARAMETERS: i64 = -2;
/// PSCI return code: denied.
pub const DENIED: i64 = -3;
