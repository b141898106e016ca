//! The guest's interrupts, wired: its vGIC's registers (`hyp::vgic`), the physical
//! interrupts hyp forwards to it (the virtual timer, the console, the virtio
//! transports), the SGIs it sends itself, and WFI.
//!
//! A forwarded interrupt is physically enabled exactly while the guest has its virtual
//! twin enabled. When it fires, hyp drops its priority, leaves it active and hands it
//! to a list register with the hardware bit: the guest's deactivation ends it, and a
//! level source (a timer, a device with work to report) signals again only then.

use hyp::device::devices::VIRTUAL_TIMER_INTID;
use hyp::device::virtio::AccessError;
use hyp::trap::sysreg::SysregAccess;
use hyp::vgic::delivery::{self, CpuInterface};
use hyp::vgic::forwarding::{self, Forward, Withdraw};
use hyp::vgic::list_register::ListRegister;
use hyp::vgic::{sgi, Effect, Frame};

use crate::arch::{gic, GuestRegs};
use crate::vm_state::Vm;

fn bit(intid: u32) -> u128 {
    1u128.checked_shl(intid).unwrap_or(0)
}

/// The physical CPU interface's list registers, as the vGIC's delivery sees them.
struct PhysicalCpuInterface;

impl CpuInterface for PhysicalCpuInterface {
    fn list_registers(&self) -> usize {
        gic::list_registers()
    }
    fn read_list_register(&self, n: usize) -> ListRegister {
        ListRegister(gic::read_list_register(n))
    }
    fn write_list_register(&mut self, n: usize, lr: ListRegister) {
        gic::write_list_register(n, lr.0);
    }
    fn deactivate_physical(&mut self, intid: u32) {
        gic::deactivate(intid);
    }
}

/// A load from the guest's GIC.
pub fn read(vm: &Vm, frame: Frame, offset: u64, width: u8) -> Result<u64, AccessError> {
    delivery::read(&vm.vgic, &PhysicalCpuInterface, frame, offset, width).map_err(|_| AccessError::BadWidth)
}

/// A store to the guest's GIC, and what follows from it.
pub fn write(vm: &mut Vm, frame: Frame, offset: u64, width: u8, value: u64) -> Result<(), AccessError> {
    let effect = delivery::write(&mut vm.vgic, &mut PhysicalCpuInterface, frame, offset, width, value);
    match effect.map_err(|_| AccessError::BadWidth)? {
        Effect::EnablesChanged => sync_enables(vm),
        // Delivered by `flush` before the guest runs again.
        Effect::Pended | Effect::None => {}
    }
    Ok(())
}

/// Makes each forwarded source's physical enable follow the guest's (a source held
/// back for want of a list register stays off until `flush` finds it one).
pub fn sync_enables(vm: &mut Vm) {
    for intid in vm.devices.forwarded_interrupts() {
        let want = vm.vgic.enabled(intid) && vm.deferred & bit(intid) == 0;
        if want != (vm.physically_enabled & bit(intid) != 0) {
            gic::set_enabled(intid, want);
            vm.physically_enabled ^= bit(intid);
        }
    }
}

/// A physical interrupt hyp acknowledged and dropped the priority of: the guest's, if
/// it is a forwarded source the guest has enabled.
pub fn forward(vm: &mut Vm, intid: u32) {
    let forwarded = vm.devices.forwarded_interrupts().any(|i| i == intid);
    match forwarding::forward(intid, forwarded, vm.vgic.deliverable(intid), free_list_register()) {
        Forward::ToListRegister(n, lr) => gic::write_list_register(n, lr.0),
        Forward::HoldBack => {
            gic::deactivate(intid);
            vm.deferred |= bit(intid);
            sync_enables(vm);
        }
        Forward::Drop { resync } => {
            gic::deactivate(intid);
            if resync {
                sync_enables(vm);
            }
        }
    }
}

/// Before the guest runs again: an interrupt the guest has not acknowledged is
/// withdrawn if the guest disabled it or, forwarded, its source stopped asserting it
/// (as a level interrupt is: a timer the guest disabled no longer wakes its WFI);
/// held-back sources get another chance;
/// and interrupts pending in software (SGIs, ISPENDR writes) go to list registers,
/// highest priority first (`delivery::deliver`).
pub fn flush(vm: &mut Vm) {
    let count = gic::list_registers();
    // Up to 16 list registers: one bit each.
    let all = ((1u32 << count) - 1) as u16;
    if count > 0 && gic::empty_list_registers() & all != all {
        withdraw(vm, count);
    }
    if vm.deferred != 0 && free_list_register().is_some() {
        vm.deferred = 0;
        sync_enables(vm);
    }
    if vm.vgic.any_pending() {
        delivery::deliver(&mut vm.vgic, &mut PhysicalCpuInterface);
    }
}

/// A trapped system-register access: an SGI the guest sends (itself, the only vCPU),
/// or `false` for one hyp does not serve.
pub fn system_register(vm: &mut Vm, regs: &GuestRegs, access: SysregAccess) -> bool {
    let Some(register) = access.sgi_register() else { return false };
    let value = if access.rt == 31 { 0 } else { regs.x[access.rt as usize] };
    if let Some(intid) = sgi::to_self(value) {
        delivery::send_sgi(&mut vm.vgic, &PhysicalCpuInterface, intid, register.sends_group1());
    }
    true
}

/// A guest's WFI: wait for an interrupt if the guest could be woken by one and none is
/// pending for it yet. (A guest with no interrupt enabled, like one that polls its
/// devices, just yields.)
pub fn wait(vm: &Vm) {
    let pending = (0..gic::list_registers()).any(|i| ListRegister(gic::read_list_register(i)).is_pending());
    if vm.vgic.any_enabled() && !pending {
        gic::wait_for_interrupt();
    }
}

fn withdraw(vm: &mut Vm, count: usize) {
    let asserted = |physical: u32| {
        if physical == VIRTUAL_TIMER_INTID {
            gic::virtual_timer_asserted()
        } else {
            gic::is_pending(physical)
        }
    };
    for n in 0..count {
        let lr = ListRegister(gic::read_list_register(n));
        let Some(why) = forwarding::withdraw(lr, |intid| vm.vgic.enabled(intid), asserted) else { continue };
        gic::write_list_register(n, 0);
        match why {
            Withdraw::Physical(physical) => gic::deactivate(physical),
            Withdraw::Repend(intid) => vm.vgic.pend(intid),
        }
    }
}

fn free_list_register() -> Option<usize> {
    let count = gic::list_registers();
    if count == 0 {
        return None;
    }
    let empty = gic::empty_list_registers();
    (0..count).find(|&n| empty & (1 << n) != 0)
}
