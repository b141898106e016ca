//! PSCI (Arm DEN 0022) calls used by pvmkit.
//!
//! Source: Arm DEN 0022 §5.1 (function IDs), §5.2.2 (return codes); Linux
//! `include/uapi/linux/psci.h`.
//!
//! ```
//! // PSCI 1.x functions are SMC32 fast calls owned by the standard secure service (4).
//! assert_eq!(pvmkit_abi::smccc::owner_of(pvmkit_abi::psci::SYSTEM_OFF), 4);
//! ```

/// `PSCI_VERSION`: returns the implemented PSCI version (major 31:16, minor 15:0).
pub const PSCI_VERSION: u32 = 0x8400_0000;
/// `CPU_SUSPEND` (SMC32 form).
pub const CPU_SUSPEND: u32 = 0x8400_0001;
/// `CPU_SUSPEND` (SMC64 form).
pub const CPU_SUSPEND_64: u32 = 0xc400_0001;
/// `CPU_OFF`.
pub const CPU_OFF: u32 = 0x8400_0002;
/// `CPU_ON` (SMC32 form).
pub const CPU_ON: u32 = 0x8400_0003;
/// `CPU_ON` (SMC64 form).
pub const CPU_ON_64: u32 = 0xc400_0003;
/// `AFFINITY_INFO` (SMC32 form).
pub const AFFINITY_INFO: u32 = 0x8400_0004;
/// `AFFINITY_INFO` (SMC64 form).
pub const AFFINITY_INFO_64: u32 = 0xc400_0004;
/// `MIGRATE_INFO_TYPE`.
pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
/// `SYSTEM_SUSPEND` (SMC32 form).
pub const SYSTEM_SUSPEND: u32 = 0x8400_000e;
/// `SYSTEM_SUSPEND` (SMC64 form).
pub const SYSTEM_SUSPEND_64: u32 = 0xc400_000e;
/// `SYSTEM_RESET2` (SMC32 form).
pub const SYSTEM_RESET2: u32 = 0x8400_0012;
/// `SYSTEM_RESET2` (SMC64 form).
pub const SYSTEM_RESET2_64: u32 = 0xc400_0012;
/// `SYSTEM_OFF2` (SMC32 form, PSCI 1.3).
pub const SYSTEM_OFF2: u32 = 0x8400_0015;
/// `SYSTEM_OFF2` (SMC64 form, PSCI 1.3).
pub const SYSTEM_OFF2_64: u32 = 0xc400_0015;
/// The bits of an MPIDR that name a CPU (Aff3, Aff2, Aff1, Aff0).
pub const MPIDR_HWID_MASK: u64 = 0xff_00ff_ffff;
/// `MIGRATE_INFO_TYPE`: a Trusted OS that needs no migration, or none.
pub const TOS_MP: i64 = 2;
/// `SYSTEM_OFF2`'s hibernate type, as PSCI_FEATURES reports it.
pub const OFF_TYPE_HIBERNATE: i64 = 1;
/// `SYSTEM_OFF`: powers the system off; does not return.
pub const SYSTEM_OFF: u32 = 0x8400_0008;
/// `SYSTEM_RESET`: resets the system; does not return.
pub const SYSTEM_RESET: u32 = 0x8400_0009;
/// `PSCI_FEATURES`: x1 = a function ID; returns 0 (or feature flags) when implemented,
/// NOT_SUPPORTED otherwise.
pub const PSCI_FEATURES: u32 = 0x8400_000a;

/// PSCI 1.1 as returned by `PSCI_VERSION`.
pub const VERSION_1_1: u32 = 0x0001_0001;
/// PSCI 1.3 as returned by `PSCI_VERSION`.
pub const VERSION_1_3: u32 = 0x0001_0003;

/// PSCI return code: success.
pub const SUCCESS: i64 = 0;
/// PSCI return code: not supported.
pub const NOT_SUPPORTED: i64 = -1;
/// PSCI return code: invalid parameters.
pub const INVALID_PARAMETERS: i64 = -2;
/// PSCI return code: denied.
pub const DENIED: i64 = -3;
/// PSCI return code: the CPU is already on.
pub const ALREADY_ON: i64 = -4;
/// AFFINITY_INFO: a CPU of that affinity is on.
pub const AFFINITY_LEVEL_ON: i64 = 0;
/// AFFINITY_INFO: every CPU of that affinity is off.
pub const AFFINITY_LEVEL_OFF: i64 = 1;
