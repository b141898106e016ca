//! Deciding what to do with a guest data abort outside guest RAM: emulate it on a
//! device the VM is given, or refuse it with an injected external abort.
//!
//! Emulation needs the syndrome (ISV=1: a single-register load or store without
//! writeback), a valid FAR, no stage-1 walk, the whole access inside one device window,
//! and (for an enforced VM) both ends of the access in granules registered with the
//! MMIO guard. Everything else is refused; hyp never decodes instructions.

use pvmkit_abi::address::{Ipa, PhysAddr};

use crate::esr::DataAbort;
use crate::pkvm::mmio_guard::{GuardDenial, GuardTable};
use crate::vgic::Frame;

/// What a device window is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// The PL011 console, shared with hyp.
    Console,
    /// A virtio-mmio transport of QEMU's, reached through hyp's device side
    /// ([`crate::device::virtio`]), which keeps every address from the device unless checked.
    Virtio {
        /// QEMU's transport index.
        slot: u32,
    },
    /// A frame of the guest's virtual GIC ([`crate::vgic`]), which hyp itself emulates:
    /// like pKVM's vGIC at EL2, it needs no MMIO guard.
    Gic(Frame),
}

/// A device hyp emulates for this VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceWindow {
    /// Guest IPA (and PA: devices are identity mapped) of the first register.
    pub base: u64,
    /// Size of the register window.
    pub size: u64,
    /// What it is.
    pub kind: DeviceKind,
}

/// One decoded MMIO access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Load into `reg` (31: discard), `width` bytes.
    Load {
        /// Destination register.
        reg: u8,
        /// Bytes: 1, 2, 4 or 8.
        width: u8,
        /// Sign-extend the value.
        sign_extend: bool,
        /// The destination is a 64-bit register (else the upper half is zeroed).
        sixty_four: bool,
    },
    /// Store `width` bytes from `reg` (31: zero).
    Store {
        /// Source register.
        reg: u8,
        /// Bytes: 1, 2, 4 or 8.
        width: u8,
    },
}

/// Why an abort is not emulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No syndrome (ISV=0): a pair, a writeback or a SIMD access.
    NoSyndrome,
    /// The fault came from a stage-1 table walk, or FAR is not valid.
    NotADeviceAccess,
    /// No device of this VM lives at the IPA.
    NoDevice,
    /// The access starts in a device window but does not end in it.
    CrossesWindow,
    /// The VM is enforced and the access is not registered with the MMIO guard.
    NotGuarded,
    /// Only pvmfw registered the granule, before the handover (policy
    /// `guard-inherited-from-pvmfw`): the VM ends with a violation.
    InheritedGuard,
    /// The device refused the access (e.g. a virtio register accessed with a width
    /// other than 32 bits).
    DeviceRefused,
}

impl Refusal {
    /// Words for reports.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::NoSyndrome => "access without syndrome (ISV=0) is never emulated",
            Self::NotADeviceAccess => "stage-1 walk or invalid FAR",
            Self::NoDevice => "no device of this VM at that address",
            Self::CrossesWindow => "access crosses the end of a device window",
            Self::NotGuarded => "not registered with the MMIO guard",
            Self::InheritedGuard => {
                "MMIO to a granule only pvmfw registered, never the payload (policy guard-inherited-from-pvmfw)"
            }
            Self::DeviceRefused => "the device does not take that access",
        }
    }
}

/// The decision for one abort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Do `access` at `pa` on `device`, then step over the instruction.
    Emulate {
        /// Physical address of the access (hyp maps guest IPAs to the same PAs).
        pa: PhysAddr,
        /// The access.
        access: Access,
        /// The device window it falls in.
        device: DeviceWindow,
    },
    /// Inject a synchronous external abort.
    Refuse(Refusal),
}

/// Decides what to do with a data abort at `ipa`.
pub fn decide(abort: &DataAbort, at: Ipa, devices: &[DeviceWindow], guard: &GuardTable) -> Decision {
    let ipa = at.get();
    if !abort.isv {
        return Decision::Refuse(Refusal::NoSyndrome);
    }
    if abort.s1ptw || abort.fnv || abort.cm {
        return Decision::Refuse(Refusal::NotADeviceAccess);
    }
    let width = abort.width();
    let Some(device) = devices.iter().find(|d| ipa >= d.base && ipa - d.base < d.size) else {
        return Decision::Refuse(Refusal::NoDevice);
    };
    if ipa - device.base + width as u64 > device.size {
        return Decision::Refuse(Refusal::CrossesWindow);
    }
    if !matches!(device.kind, DeviceKind::Gic(_)) {
        match guard.check(at, width) {
            Ok(()) => {}
            Err(GuardDenial::NotRegistered) => return Decision::Refuse(Refusal::NotGuarded),
            Err(GuardDenial::InheritedFromFirmware) => return Decision::Refuse(Refusal::InheritedGuard),
        }
    }
    let access = if abort.wnr {
        Access::Store { reg: abort.srt, width }
    } else {
        Access::Load { reg: abort.srt, width, sign_extend: abort.sse, sixty_four: abort.sf }
    };
    Decision::Emulate { pa: PhysAddr(ipa), access, device: *device }
}

/// The low `width` bytes of a register, as a store writes them.
pub const fn store_value(reg_value: u64, width: u8) -> u64 {
    if width >= 8 {
        reg_value
    } else {
        reg_value & ((1u64 << (width as u32 * 8)) - 1)
    }
}

/// The value a load leaves in its register, from the `width` bytes read.
pub const fn load_result(raw: u64, width: u8, sign_extend: bool, sixty_four: bool) -> u64 {
    let bits = width as u32 * 8;
    let mut value = store_value(raw, width);
    if sign_extend && bits < 64 && value & (1 << (bits - 1)) != 0 {
        value |= !0u64 << bits;
    }
    if !sixty_four {
        value &= 0xffff_ffff;
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esr::Esr;
    use crate::testing::pg;

    const UART: DeviceWindow = DeviceWindow { base: 0x0900_0000, size: 0x1000, kind: DeviceKind::Console };
    const VIRTIO: DeviceWindow = DeviceWindow { base: 0x0a00_3e00, size: 0x200, kind: DeviceKind::Virtio { slot: 31 } };
    const OPEN: GuardTable = GuardTable::new(false);

    fn abort(esr: u64) -> DataAbort {
        Esr(esr).data_abort().unwrap()
    }

    #[test]
    fn emulates_single_register_accesses_on_a_device() {
        let store = decide(&abort(0x9301_0045), Ipa(0x0900_0000), &[UART], &OPEN);
        assert_eq!(
            store,
            Decision::Emulate { pa: PhysAddr(0x0900_0000), access: Access::Store { reg: 1, width: 1 }, device: UART }
        );
        let load = decide(&abort(0x9383_0005), Ipa(0x0900_0018), &[UART], &OPEN);
        assert_eq!(
            load,
            Decision::Emulate {
                pa: PhysAddr(0x0900_0018),
                access: Access::Load { reg: 3, width: 4, sign_extend: false, sixty_four: false },
                device: UART
            }
        );
    }

    #[test]
    fn refuses_everything_else() {
        assert_eq!(
            decide(&abort(0x9200_0005), Ipa(0x0900_0000), &[UART], &OPEN),
            Decision::Refuse(Refusal::NoSyndrome)
        );
        assert_eq!(decide(&abort(0x9383_0005), Ipa(0x0901_0000), &[UART], &OPEN), Decision::Refuse(Refusal::NoDevice));
        assert_eq!(decide(&abort(0x9383_0005), Ipa(0x0900_0000), &[], &OPEN), Decision::Refuse(Refusal::NoDevice));
        assert_eq!(decide(&abort(0x9383_0005), Ipa(0x08ff_fffc), &[UART], &OPEN), Decision::Refuse(Refusal::NoDevice));
        // A 4-byte load at the last byte of the window.
        assert_eq!(
            decide(&abort(0x9383_0005), Ipa(0x0900_0fff), &[UART], &OPEN),
            Decision::Refuse(Refusal::CrossesWindow)
        );
        // S1PTW and FnV.
        assert_eq!(
            decide(&abort(0x9383_0085), Ipa(0x0900_0000), &[UART], &OPEN),
            Decision::Refuse(Refusal::NotADeviceAccess)
        );
        assert_eq!(
            decide(&abort(0x9383_0405), Ipa(0x0900_0000), &[UART], &OPEN),
            Decision::Refuse(Refusal::NotADeviceAccess)
        );
    }

    #[test]
    fn the_inherited_guard_refusal_names_its_policy() {
        let policy = "guard-inherited-from-pvmfw";
        assert!(Refusal::InheritedGuard.describe().contains(policy));
        assert!(pvmkit_abi::profile::POLICIES.iter().any(|p| p.name == policy), "the policy is listed");
        use pvmkit_abi::memory_map::Region;
        let ram = Region { start: 0x8000_0000, end: 0x9000_0000 };
        let mut guard = GuardTable::new(true).with_firmware(Region { start: 0x7fc0_0000, end: 0x8000_0000 }, false);
        guard.map(pg(0x0900_0000), ram).unwrap();
        guard.note_pc(0x8020_0000);
        let load = abort(0x9300_0006);
        assert_eq!(decide(&load, Ipa(0x0900_0018), &[UART], &guard), Decision::Refuse(Refusal::InheritedGuard));
    }

    #[test]
    fn enforced_vms_need_the_guard() {
        let ram = pvmkit_abi::memory_map::Region { start: 0x8000_0000, end: 0x9000_0000 };
        let mut guard = GuardTable::new(true);
        let load = abort(0x9383_0005);
        assert_eq!(decide(&load, Ipa(0x0900_0018), &[UART], &guard), Decision::Refuse(Refusal::NotGuarded));
        guard.map(pg(0x0900_0000), ram).unwrap();
        assert!(matches!(decide(&load, Ipa(0x0900_0018), &[UART], &guard), Decision::Emulate { .. }));
        guard.unmap(pg(0x0900_0000));
        assert_eq!(decide(&load, Ipa(0x0900_0018), &[UART], &guard), Decision::Refuse(Refusal::NotGuarded));
        // hyp's own vGIC is no host device: the guard does not apply.
        let gicd = DeviceWindow { base: 0x0800_0000, size: 0x1_0000, kind: DeviceKind::Gic(Frame::Distributor) };
        assert!(
            matches!(decide(&load, Ipa(0x0800_ffe8), &[UART, gicd], &guard), Decision::Emulate { device, .. } if device == gicd)
        );
        // Not even a registered granule makes ISV=0 emulatable.
        guard.map(pg(0x0900_0000), ram).unwrap();
        assert_eq!(
            decide(&abort(0x9200_0005), Ipa(0x0900_0000), &[UART], &guard),
            Decision::Refuse(Refusal::NoSyndrome)
        );
    }

    #[test]
    fn virtio_transports_are_devices_too() {
        let devices = [UART, VIRTIO];
        assert!(matches!(
            decide(&abort(0x9383_0005), Ipa(0x0a00_3e00), &devices, &OPEN),
            Decision::Emulate { device: VIRTIO, .. }
        ));
        assert!(matches!(
            decide(&abort(0x9301_0045), Ipa(0x0a00_3e70), &devices, &OPEN),
            Decision::Emulate { device: VIRTIO, access: Access::Store { .. }, .. }
        ));
        assert_eq!(decide(&abort(0x9383_0005), Ipa(0x0a00_3c00), &devices, &OPEN), Decision::Refuse(Refusal::NoDevice));
    }

    #[test]
    fn load_results_extend_like_the_architecture() {
        assert_eq!(load_result(0xffff_ff80, 1, false, true), 0x80);
        assert_eq!(load_result(0x80, 1, true, true), 0xffff_ffff_ffff_ff80);
        assert_eq!(load_result(0x80, 1, true, false), 0xffff_ff80);
        assert_eq!(load_result(0x8000, 2, true, true), 0xffff_ffff_ffff_8000);
        assert_eq!(load_result(0x1234_5678_9abc_def0, 4, false, false), 0x9abc_def0);
        assert_eq!(load_result(0x1234_5678_9abc_def0, 8, false, true), 0x1234_5678_9abc_def0);
        assert_eq!(store_value(0x1234_5678_9abc_def0, 2), 0xdef0);
        assert_eq!(store_value(u64::MAX, 8), u64::MAX);
        // A positive byte stays positive; a doubleword has nothing to extend.
        assert_eq!(load_result(0x7f, 1, true, true), 0x7f);
        assert_eq!(load_result(0x8000_0000_0000_0000, 8, true, true), 0x8000_0000_0000_0000);
    }

    /// A window's edges: the first byte past it is no device; an access ending exactly
    /// at its end is inside.
    #[test]
    fn window_edges_are_exact() {
        let load = abort(0x9383_0005);
        assert_eq!(decide(&load, Ipa(0x0900_1000), &[UART], &OPEN), Decision::Refuse(Refusal::NoDevice));
        assert!(matches!(
            decide(&load, Ipa(0x0900_0ffc), &[UART], &OPEN),
            Decision::Emulate { pa: PhysAddr(0x0900_0ffc), .. }
        ));
        let names: Vec<&str> = [Refusal::NoSyndrome, Refusal::NoDevice, Refusal::CrossesWindow, Refusal::NotGuarded]
            .iter()
            .map(|r| r.describe())
            .collect();
        assert!(names.iter().all(|n| n.len() > 8), "{names:?}");
        assert!(names.windows(2).all(|w| w[0] != w[1]), "each refusal has its own words: {names:?}");
    }
}
