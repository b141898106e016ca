//! The values hyp programs into EL2 and EL1 control registers, each with its bits
//! named (issue 13 moves them onto aarch64-cpu's register types).

/// HCR_EL2: VM | SWIO | FMO | IMO | AMO | TWI | TWE | TSC | RW.
pub const HCR: u64 =
    (1 << 0) | (1 << 1) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 13) | (1 << 14) | (1 << 19) | (1 << 31);
/// CPTR_EL2 (nVHE): RES1 bits, TZ (trap SVE); FP/SIMD not trapped, so the guest uses it freely.
pub const CPTR: u64 = 0x33ff;
/// CNTHCTL_EL2: EL1PCTEN | EL1PCEN, the guest reads the counter and uses its timers.
pub const CNTHCTL: u64 = 0b11;
/// SCTLR_EL1 at guest entry: RES1 bits only; MMU and caches off.
pub const SCTLR_EL1_RESET: u64 = 0x30d0_0800;
/// SPSR_EL2 at guest entry: EL1h with D, A, I, F masked.
pub const SPSR_EL1H_MASKED: u64 = 0x3c5;
