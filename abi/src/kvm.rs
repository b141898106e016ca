//! The KVM vendor-hypervisor service and the pKVM guest calls.
//!
//! Sources: Linux `include/linux/arm-smccc.h` (IDs, UID), Linux
//! `Documentation/virt/kvm/arm/hypercalls.rst` (features bitmap, MEMINFO, MEM_SHARE,
//! MEM_UNSHARE, MMIO_GUARD), Android Common Kernel 6.1/6.12 `arm-smccc.h` and
//! `arch/arm64/kvm/hyp/nvhe/pkvm.c` (the Android numbering: MMIO guard INFO/ENROLL/MAP/
//! UNMAP, MEM_RELINQUISH, the ranged forms and `KVM_FUNC_HAS_RANGE`).
//!
//! ```
//! use pvmkit_abi::kvm::{func, Features};
//!
//! // The bitmap KVM_FEATURES returns: which vendor-hypervisor functions exist.
//! let features = Features::with(&[func::FEATURES, func::PTP, func::HYP_MEMINFO]);
//! assert!(features.has(func::HYP_MEMINFO) && !features.has(func::MMIO_GUARD_MAP));
//! assert_eq!(Features::from_regs(features.to_regs()), features);
//! ```

use crate::smccc::{fast_call_id, owner};

/// `ARM_SMCCC_VENDOR_HYP_CALL_UID_FUNC_ID`: returns the hypervisor's UID in w0..w3.
pub const VENDOR_HYP_CALL_UID: u32 = 0x8600_ff01;

/// The UID KVM returns (`28b46fb6-2ec5-11e9-a9ca-4b564d003a74`), as w0..w3
/// (`ARM_SMCCC_VENDOR_HYP_UID_KVM_REG_0..3`).
pub const KVM_UID: [u32; 4] = [0xb66f_b428, 0xe911_c52e, 0x564b_caa9, 0x743a_004d];

/// Function numbers of the KVM vendor-hypervisor service. A function's bit in the
/// features bitmap is its number. Where the two forms differ, both names are given.
pub mod func {
    /// `ARM_SMCCC_KVM_FUNC_FEATURES`: the features bitmap itself.
    pub const FEATURES: u32 = 0;
    /// `ARM_SMCCC_KVM_FUNC_PTP`: host/guest clock pairs (not for pVMs).
    pub const PTP: u32 = 1;
    /// `ARM_SMCCC_KVM_FUNC_HYP_MEMINFO`: the memory-protection granule.
    pub const HYP_MEMINFO: u32 = 2;
    /// `ARM_SMCCC_KVM_FUNC_MEM_SHARE`: share guest memory with the host.
    pub const MEM_SHARE: u32 = 3;
    /// `ARM_SMCCC_KVM_FUNC_MEM_UNSHARE`: take shared memory back.
    pub const MEM_UNSHARE: u32 = 4;
    /// Android `ARM_SMCCC_KVM_FUNC_MMIO_GUARD_INFO` (upstream: reserved).
    pub const MMIO_GUARD_INFO: u32 = 5;
    /// Android `ARM_SMCCC_KVM_FUNC_MMIO_GUARD_ENROLL` (upstream: reserved).
    pub const MMIO_GUARD_ENROLL: u32 = 6;
    /// Android `ARM_SMCCC_KVM_FUNC_MMIO_GUARD_MAP`; upstream `ARM_SMCCC_KVM_FUNC_MMIO_GUARD`
    /// (one call, no enrolment). Same number, same argument for the map direction.
    pub const MMIO_GUARD_MAP: u32 = 7;
    /// Android `ARM_SMCCC_KVM_FUNC_MMIO_GUARD_UNMAP` (upstream: reserved).
    pub const MMIO_GUARD_UNMAP: u32 = 8;
    /// Android `ARM_SMCCC_KVM_FUNC_MEM_RELINQUISH` (upstream: reserved).
    pub const MEM_RELINQUISH: u32 = 9;
    /// Android `ARM_SMCCC_KVM_FUNC_MMIO_RGUARD_MAP`, the ranged map (upstream: reserved).
    pub const MMIO_RGUARD_MAP: u32 = 10;
    /// Android `ARM_SMCCC_KVM_FUNC_MMIO_RGUARD_UNMAP`, the ranged unmap (upstream: reserved).
    pub const MMIO_RGUARD_UNMAP: u32 = 11;
}

/// `ARM_SMCCC_VENDOR_HYP_KVM_FEATURES_FUNC_ID` (HVC32): returns the features bitmap.
pub const KVM_FEATURES: u32 = fast_call_id(false, owner::VENDOR_HYP, func::FEATURES);
/// `ARM_SMCCC_VENDOR_HYP_KVM_PTP_FUNC_ID` (HVC32): x1 = [`PTP_VIRTUAL`] or
/// [`PTP_PHYSICAL`]; returns the host's wall clock (x0:x1, ns) and that counter (x2:x3).
pub const KVM_PTP: u32 = fast_call_id(false, owner::VENDOR_HYP, func::PTP);
/// `KVM_PTP`'s x1: the virtual counter.
pub const PTP_VIRTUAL: u64 = 0;
/// `KVM_PTP`'s x1: the physical counter.
pub const PTP_PHYSICAL: u64 = 1;
/// `ARM_SMCCC_VENDOR_HYP_KVM_HYP_MEMINFO_FUNC_ID` (HVC64).
pub const HYP_MEMINFO: u32 = fast_call_id(true, owner::VENDOR_HYP, func::HYP_MEMINFO);
/// `ARM_SMCCC_VENDOR_HYP_KVM_MEM_SHARE_FUNC_ID` (HVC64).
pub const MEM_SHARE: u32 = fast_call_id(true, owner::VENDOR_HYP, func::MEM_SHARE);
/// `ARM_SMCCC_VENDOR_HYP_KVM_MEM_UNSHARE_FUNC_ID` (HVC64).
pub const MEM_UNSHARE: u32 = fast_call_id(true, owner::VENDOR_HYP, func::MEM_UNSHARE);
/// Android `MMIO_GUARD_INFO` (HVC64).
pub const MMIO_GUARD_INFO: u32 = fast_call_id(true, owner::VENDOR_HYP, func::MMIO_GUARD_INFO);
/// Android `MMIO_GUARD_ENROLL` (HVC64).
pub const MMIO_GUARD_ENROLL: u32 = fast_call_id(true, owner::VENDOR_HYP, func::MMIO_GUARD_ENROLL);
/// Android `MMIO_GUARD_MAP` / upstream `MMIO_GUARD` (HVC64).
pub const MMIO_GUARD_MAP: u32 = fast_call_id(true, owner::VENDOR_HYP, func::MMIO_GUARD_MAP);
/// Android `MMIO_GUARD_UNMAP` (HVC64).
pub const MMIO_GUARD_UNMAP: u32 = fast_call_id(true, owner::VENDOR_HYP, func::MMIO_GUARD_UNMAP);
/// Android `MEM_RELINQUISH` (HVC64).
pub const MEM_RELINQUISH: u32 = fast_call_id(true, owner::VENDOR_HYP, func::MEM_RELINQUISH);

/// Android `MMIO_RGUARD_MAP` (HVC64): x1 = IPA, x2 = granules; x1 returns how many.
pub const MMIO_RGUARD_MAP: u32 = fast_call_id(true, owner::VENDOR_HYP, func::MMIO_RGUARD_MAP);
/// Android `MMIO_RGUARD_UNMAP` (HVC64): x1 = IPA, x2 = granules; x1 returns how many.
pub const MMIO_RGUARD_UNMAP: u32 = fast_call_id(true, owner::VENDOR_HYP, func::MMIO_RGUARD_UNMAP);

/// Android: bit 0 of MEMINFO's x1 (`KVM_FUNC_HAS_RANGE`): MEM_SHARE/UNSHARE take a
/// granule count in x2.
pub const MEMINFO_HAS_RANGE: u64 = 1 << 0;

/// The 128-bit features bitmap returned by `KVM_FEATURES` in w0..w3: bit `n` set means
/// function number `n` is available.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features(pub [u32; 4]);

impl Features {
    /// No function available.
    pub const NONE: Self = Self([0; 4]);

    /// The bitmap with exactly these function numbers set (numbers ≥ 128 are ignored).
    pub const fn with(functions: &[u32]) -> Self {
        let mut words = [0u32; 4];
        let mut i = 0;
        while i < functions.len() {
            let n = functions[i];
            if n < 128 {
                words[(n / 32) as usize] |= 1 << (n % 32);
            }
            i += 1;
        }
        Self(words)
    }

    /// Whether function number `n` is available.
    pub const fn has(&self, n: u32) -> bool {
        n < 128 && self.0[(n / 32) as usize] & (1 << (n % 32)) != 0
    }

    /// Builds the bitmap from the four return registers of `KVM_FEATURES`, keeping the
    /// low 32 bits of each as the ABI says.
    pub const fn from_regs(regs: [u64; 4]) -> Self {
        Self([regs[0] as u32, regs[1] as u32, regs[2] as u32, regs[3] as u32])
    }

    /// The four return registers that carry this bitmap.
    pub const fn to_regs(self) -> [u64; 4] {
        [self.0[0] as u64, self.0[1] as u64, self.0[2] as u64, self.0[3] as u64]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_the_published_values() {
        assert_eq!(KVM_FEATURES, 0x8600_0000);
        assert_eq!(HYP_MEMINFO, 0xc600_0002);
        assert_eq!(MEM_SHARE, 0xc600_0003);
        assert_eq!(MEM_UNSHARE, 0xc600_0004);
        assert_eq!(MMIO_GUARD_INFO, 0xc600_0005);
        assert_eq!(MMIO_GUARD_ENROLL, 0xc600_0006);
        assert_eq!(MMIO_GUARD_MAP, 0xc600_0007);
        assert_eq!(MMIO_GUARD_UNMAP, 0xc600_0008);
        assert_eq!(MEM_RELINQUISH, 0xc600_0009);
        assert_eq!(MMIO_RGUARD_MAP, 0xc600_000a);
        assert_eq!(MMIO_RGUARD_UNMAP, 0xc600_000b);
    }

    #[test]
    fn features_bitmap_round_trips() {
        let upstream = Features::with(&[func::FEATURES, func::HYP_MEMINFO, func::MEM_SHARE, func::MEM_UNSHARE]);
        assert_eq!(upstream.0, [0x1d, 0, 0, 0]);
        assert!(upstream.has(3) && !upstream.has(7) && !upstream.has(200));
        let wide = Features::with(&[0, 60, 127]);
        assert_eq!(wide.0, [1, 1 << 28, 0, 1 << 31]);
        assert_eq!(Features::from_regs(wide.to_regs()), wide);
        assert_eq!(Features::from_regs([0xffff_ffff_0000_0001, 0, 0, 0]).0[0], 1);
    }
}
