//! The MMIO guard calls, per ABI form (`shared/reference/pkvm-abi.md` §4):
//!
//! - android: INFO (granule, x1 = ranged calls offered), ENROLL (the VM is enrolled
//!   from creation: always succeeds), MAP (x2/x3 ignored, as Android's hypervisor does;
//!   x1 returns 1), UNMAP (a granule not registered is a no-op), and the ranged
//!   RGUARD_MAP/RGUARD_UNMAP (x2 = granules, 0 means 1; at most
//!   [`ANDROID_MAX_GRANULES_PER_CALL`]; all or nothing; x1 returns how many).
//! - upstream: the single MMIO_GUARD call: x1 = IPA, x2 and x3 must be 0.
//!
//! Every refusal is INVALID_PARAMETER.

use abi::bundle::Region;
use abi::hyp_options::AbiForm;
use abi::smccc::{INVALID_PARAMETER, SUCCESS};

use crate::hypercall::Reply;
use crate::mmio::DeviceWindow;
use crate::mmio_guard::{GuardTable, GRANULE};

/// The most granules one ranged call registers.
pub const ANDROID_MAX_GRANULES_PER_CALL: u64 = 512;

/// The VM facts a guard call checks against.
#[derive(Clone, Copy, Debug)]
pub struct GuardVm<'a> {
    /// The VM's devices.
    pub devices: &'a [DeviceWindow],
    /// Guest RAM.
    pub ram: Region,
}

fn status(code: i64) -> Reply {
    Reply::four([code as u64, 0, 0, 0])
}

/// MMIO_GUARD_INFO (Android).
pub fn info(args: [u64; 3]) -> Reply {
    if args != [0; 3] {
        return status(INVALID_PARAMETER);
    }
    Reply::four([GRANULE, 1, 0, 0])
}

/// MMIO_GUARD_ENROLL (Android): the VM was enrolled when it was created.
pub fn enroll() -> Reply {
    status(SUCCESS)
}

/// MMIO_GUARD_MAP (Android) / MMIO_GUARD (upstream).
pub fn map(form: AbiForm, table: &mut GuardTable, vm: GuardVm<'_>, args: [u64; 3]) -> Reply {
    let [ipa, x2, x3] = args;
    if form == AbiForm::Upstream && (x2 != 0 || x3 != 0) {
        return status(INVALID_PARAMETER);
    }
    match (table.map(ipa, vm.devices, vm.ram), form) {
        (Err(_), _) => status(INVALID_PARAMETER),
        (Ok(()), AbiForm::Android) => Reply::four([SUCCESS as u64, 1, 0, 0]),
        (Ok(()), AbiForm::Upstream) => status(SUCCESS),
    }
}

/// MMIO_GUARD_UNMAP (Android).
pub fn unmap(table: &mut GuardTable, args: [u64; 3]) -> Reply {
    match table.unmap(args[0]) {
        Ok(()) => status(SUCCESS),
        Err(_) => status(INVALID_PARAMETER),
    }
}

/// MMIO_RGUARD_MAP or MMIO_RGUARD_UNMAP (Android).
pub fn ranged(map: bool, table: &mut GuardTable, vm: GuardVm<'_>, args: [u64; 3]) -> Reply {
    let [ipa, count, x3] = args;
    if x3 != 0 {
        return status(INVALID_PARAMETER);
    }
    let granules = count.clamp(1, ANDROID_MAX_GRANULES_PER_CALL);
    let at = |i: u64| ipa.checked_add(i * GRANULE);
    for i in 0..granules {
        let Some(g) = at(i) else {
            return status(INVALID_PARAMETER);
        };
        let ok = if map { table.can_map(g, vm.devices, vm.ram).is_ok() } else { g.is_multiple_of(GRANULE) };
        if !ok {
            return status(INVALID_PARAMETER);
        }
    }
    for g in (0..granules).filter_map(at) {
        let result = if map { table.map(g, vm.devices, vm.ram) } else { table.unmap(g) };
        if result.is_err() {
            // Only a full table can fail here (two new granules where one slot was
            // left); what was registered stays registered, and the guest hears the error.
            return status(INVALID_PARAMETER);
        }
    }
    Reply::four([SUCCESS as u64, granules, 0, 0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mmio::DeviceKind;

    const INVAL: u64 = INVALID_PARAMETER as u64;
    const DEVICES: [DeviceWindow; 3] = [
        DeviceWindow { base: 0x0900_0000, size: 0x1000, kind: DeviceKind::Console },
        DeviceWindow { base: 0x0a00_2e00, size: 0x200, kind: DeviceKind::Virtio { slot: 23 } },
        DeviceWindow { base: 0x0a00_3e00, size: 0x200, kind: DeviceKind::Virtio { slot: 31 } },
    ];
    const VM: GuardVm<'static> = GuardVm { devices: &DEVICES, ram: Region { start: 0x8000_0000, end: 0x9000_0000 } };

    #[test]
    fn android_calls() {
        let mut t = GuardTable::new(true);
        assert_eq!(info([0; 3]).regs, [4096, 1, 0, 0]);
        assert_eq!(info([1, 0, 0]).regs[0], INVAL);
        assert_eq!(enroll().regs[0], 0);
        assert_eq!(
            map(AbiForm::Android, &mut t, VM, [0x0900_0000, 0xdead, 0xbeef]).regs,
            [0, 1, 0, 0],
            "x2/x3 ignored"
        );
        assert!(t.is_guarded(0x0900_0000));
        assert_eq!(map(AbiForm::Android, &mut t, VM, [0x8000_0000, 0, 0]).regs[0], INVAL, "RAM");
        assert_eq!(map(AbiForm::Android, &mut t, VM, [0x0900_0004, 0, 0]).regs[0], INVAL, "unaligned");
        assert_eq!(map(AbiForm::Android, &mut t, VM, [0x0c00_0000, 0, 0]).regs[0], INVAL, "no device");
        assert_eq!(unmap(&mut t, [0x0900_0000, 0, 0]).regs[0], 0);
        assert!(!t.is_guarded(0x0900_0000));
        assert_eq!(unmap(&mut t, [0x0900_0000, 0, 0]).regs[0], 0, "no-op");
        assert_eq!(unmap(&mut t, [0x0900_0001, 0, 0]).regs[0], INVAL);
    }

    #[test]
    fn android_ranges_are_all_or_nothing() {
        let mut t = GuardTable::new(true);
        // 0x0a00_2000 and 0x0a00_3000 both hold a transport.
        assert_eq!(ranged(true, &mut t, VM, [0x0a00_2000, 2, 0]).regs, [0, 2, 0, 0]);
        assert!(t.is_guarded(0x0a00_2000) && t.is_guarded(0x0a00_3000));
        assert_eq!(ranged(false, &mut t, VM, [0x0a00_2000, 2, 0]).regs, [0, 2, 0, 0]);
        // 0x0a00_4000 holds nothing: the whole call fails, nothing is registered.
        assert_eq!(ranged(true, &mut t, VM, [0x0a00_3000, 2, 0]).regs[0], INVAL);
        assert!(!t.is_guarded(0x0a00_3000));
        assert_eq!(ranged(true, &mut t, VM, [0x0a00_3000, 0, 0]).regs, [0, 1, 0, 0], "0 means one");
        assert_eq!(ranged(true, &mut t, VM, [0x0a00_3000, 1, 1]).regs[0], INVAL, "x3 reserved");
        assert_eq!(ranged(true, &mut t, VM, [!0xfff, 3, 0]).regs[0], INVAL, "wraps");
    }

    #[test]
    fn upstream_single_call() {
        let mut t = GuardTable::new(true);
        assert_eq!(map(AbiForm::Upstream, &mut t, VM, [0x0900_0000, 0, 0]).regs, [0, 0, 0, 0]);
        assert_eq!(map(AbiForm::Upstream, &mut t, VM, [0x0a00_3000, 1, 0]).regs[0], INVAL, "x2 reserved");
        assert_eq!(map(AbiForm::Upstream, &mut t, VM, [0x0a00_3000, 0, 1]).regs[0], INVAL, "x3 reserved");
        assert!(!t.is_guarded(0x0a00_3000));
    }
}
