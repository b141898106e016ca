//! The devices a guest's accesses reach: the console (passed through), the virtio
//! transports (hyp's device side) and the vGIC; and what stops the VM when the device side finds
//! a violation or an inconsistency of hyp's own.

use hyp::device::devices::virtio_intid;
use hyp::device::virtio::AccessError;
use hyp::trap::exit::ExitReason;
use hyp::trap::mmio::{DeviceKind, DeviceWindow};
use pvmkit_abi::address::PhysAddr;

use crate::arch;
use crate::console::CONSOLE;
use crate::exit_path::exit;
use crate::virtio_transports;
use crate::virtual_interrupts;
use crate::vm_state::Vm;
use crate::work_meter;

/// A guest load from `device` at `pa` (inside its window, as `decide` placed it).
pub fn load(vm: &mut Vm, device: &DeviceWindow, pa: PhysAddr, width: u8) -> Result<u64, AccessError> {
    let offset = pa.get() - device.base;
    match device.kind {
        DeviceKind::Gic(frame) => virtual_interrupts::read(vm, frame, offset, width),
        // SAFETY: `decide` placed the access inside the console's window.
        DeviceKind::Console => Ok(unsafe { arch::device_read(pa.get(), width) }),
        DeviceKind::Virtio { slot } => virtio_transports::read(device, slot, offset, width),
    }
}

/// A guest store to `device` at `pa` (inside its window, as `decide` placed it).
pub fn store(vm: &mut Vm, device: &DeviceWindow, pa: PhysAddr, width: u8, value: u64) -> Result<(), AccessError> {
    let offset = pa.get() - device.base;
    match device.kind {
        DeviceKind::Gic(frame) => virtual_interrupts::write(vm, frame, offset, width, value),
        DeviceKind::Console => {
            // SAFETY: `decide` placed the access inside the console's window.
            unsafe { arch::device_write(pa.get(), width, value) };
            if offset == 0 {
                CONSOLE.note_guest_byte(value as u8);
            }
            Ok(())
        }
        DeviceKind::Virtio { slot } => {
            // Its SPI is vCPU 0's (every vCPU's model holds the distributor alike).
            let interrupt_driven = vm.vgics[0].enabled(virtio_intid(slot));
            virtio_transports::write(device, slot, offset, width, value, &mut vm.ownership, interrupt_driven)
        }
    }
}

/// A virtio access or completion hyp cannot let pass: a guest's violation, or an
/// inconsistency of hyp's own that must stop the VM rather than be ignored.
pub fn device_side_stop(device: u64, e: AccessError) -> ! {
    match e {
        AccessError::Violation(v) => exit(ExitReason::Violation {
            ipa: v.ipa,
            vcpu: Some(crate::arch::this_cpu() as u32),
            device: Some(device),
            queue: Some(v.queue),
            descriptor: v.descriptor,
            buffer: v.buffer,
            what: v.what,
        }),
        AccessError::HypBug { ipa, what } => fail!("virtio-mmio@{device:#x}: {what} (ipa {ipa:#x})"),
        AccessError::NoTransport => fail!("virtio-mmio@{device:#x}: hyp exposed a window it serves no transport for"),
        AccessError::BadWidth => fail!("virtio-mmio@{device:#x}: a completion reported a bad width"),
    }
}

/// Completions the device finished since the last exit go back to the guest now.
pub fn collect_completions(vm: &mut Vm) {
    let collected = work_meter::poll(|| virtio_transports::collect_all(&mut vm.ownership, &vm.devices));
    if let Err((device, e)) = collected {
        device_side_stop(device, e);
    }
}
