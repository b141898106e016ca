//! The guest's interrupts, wired: its vGIC's registers (`hyp::vgic`), the physical
//! interrupts hyp forwards to it (the virtual timer, the console, the virtio
//! transports), the SGIs its vCPUs send, and WFI.
//!
//! Each vCPU runs on the physical CPU of its number, so the list registers and the
//! virtual timer are the vCPU's own. Its redistributor is `vm.vgics[cpu]`; the
//! distributor's registers are written to every vCPU's model alike; SPIs are routed
//! (physically) to CPU 0 and delivered to vCPU 0. An SGI for another vCPU is pended in
//! its model and its CPU kicked (`gic::kick`), to deliver it at its next exit.
//!
//! A forwarded interrupt is physically enabled exactly while the guest has its virtual
//! twin enabled. When it fires, hyp drops its priority, leaves it active and hands it
//! to a list register with the hardware bit: the guest's deactivation ends it, and a
//! level source (a timer, a device with work to report) signals again only then.

use hyp::device::devices::VIRTUAL_TIMER_INTID;
use hyp::device::virtio::AccessError;
use hyp::trap::sysreg::SysregAccess;
use hyp::vgic::delivery::{self, CpuInterface};
use hyp::vgic::forwarded::PhysicalEnables;
use hyp::vgic::forwarding::{self, Forward, Withdraw};
use hyp::vgic::list_register::ListRegister;
use hyp::vgic::{sgi, Effect, Frame};

use crate::arch::{gic, this_cpu, GuestRegs};
use crate::vm_state::Vm;

/// The vCPU whose state holds `intid`: this CPU's for an SGI or PPI, vCPU 0's for an SPI.
fn owner(intid: u32) -> usize {
    if intid < 32 {
        this_cpu()
    } else {
        0
    }
}

/// The physical GIC's enables, as the forwarded sources' decisions reach them.
struct PhysicalGic;

impl PhysicalEnables for PhysicalGic {
    fn set_enabled(&mut self, intid: u32, enabled: bool) {
        gic::set_enabled(intid, enabled);
    }
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

/// Whose model an access at `offset` in `frame` reaches, and the offset within its
/// frame: the vCPU whose redistributor it falls in (the first redistributor's offset,
/// then one per vCPU), or this vCPU's for the distributor.
fn addressed(frame: Frame, offset: u64) -> (usize, u64) {
    match frame {
        Frame::Redistributor => {
            let size = pvmkit_abi::memory_map::GICR_SIZE;
            ((offset / size) as usize, offset % size)
        }
        Frame::Distributor => (this_cpu(), offset),
    }
}

/// A load from the guest's GIC: the distributor as this vCPU's model holds it, or a
/// vCPU's redistributor (with the list registers' state when it is this vCPU's).
pub fn read(vm: &Vm, frame: Frame, offset: u64, width: u8) -> Result<u64, AccessError> {
    let me = this_cpu();
    let (cpu, offset) = addressed(frame, offset);
    let vgic = vm.vgics.get(cpu).ok_or(AccessError::BadWidth)?;
    let value = if cpu == me {
        delivery::read(vgic, &PhysicalCpuInterface, frame, offset, width)
    } else {
        vgic.read(frame, offset, width)
    };
    value.map_err(|_| AccessError::BadWidth)
}

/// A store to the guest's GIC, and what follows from it: a distributor write reaches
/// every vCPU's model (its pending and active state only this vCPU's), a
/// redistributor write the vCPU's whose frame it is.
pub fn write(vm: &mut Vm, frame: Frame, offset: u64, width: u8, value: u64) -> Result<(), AccessError> {
    let me = this_cpu();
    let (cpu, offset) = addressed(frame, offset);
    let count = vm.vcpus.count();
    if cpu >= count {
        return Err(AccessError::BadWidth);
    }
    if cpu != me {
        // Another vCPU's redistributor: its model only (its list registers are its CPU's).
        vm.vgics[cpu].write(frame, offset, width, value).map_err(|_| AccessError::BadWidth)?;
        return Ok(());
    }
    let effect = delivery::write(&mut vm.vgics[me], &mut PhysicalCpuInterface, frame, offset, width, value);
    let effect = effect.map_err(|_| AccessError::BadWidth)?;
    if frame == Frame::Distributor && vm.vgics[me].state_register(frame, offset).is_none() {
        for other in (0..count).filter(|&c| c != me) {
            let _ = vm.vgics[other].write(frame, offset, width, value);
        }
    }
    match effect {
        Effect::EnablesChanged => sync_enables(vm),
        // Delivered by `flush` before the guest runs again.
        Effect::Pended | Effect::None => {}
    }
    Ok(())
}

/// Makes each forwarded source's physical enable follow the guest's (a source held
/// back for want of a list register stays off until `flush` finds it one): this
/// vCPU's PPIs (the timer), and the SPIs (vCPU 0's).
pub fn sync_enables(vm: &mut Vm) {
    for intid in vm.devices.forwarded_interrupts() {
        let cpu = owner(intid);
        vm.forwarded[cpu].sync(intid, vm.vgics[cpu].enabled(intid), &mut PhysicalGic);
    }
}

/// A physical interrupt hyp acknowledged and dropped the priority of: the guest's, if
/// it is a forwarded source the guest has enabled.
pub fn forward(vm: &mut Vm, intid: u32) {
    if intid == gic::KICK_SGI {
        // Another CPU pended something for this vCPU: `flush` delivers it.
        gic::deactivate(intid);
        return;
    }
    let cpu = owner(intid);
    let forwarded = vm.devices.forwarded_interrupts().any(|i| i == intid);
    match forwarding::forward(intid, forwarded, vm.vgics[cpu].deliverable(intid), free_list_register()) {
        Forward::ToListRegister(n, lr) => gic::write_list_register(n, lr.0),
        Forward::HoldBack => {
            gic::deactivate(intid);
            vm.forwarded[cpu].hold_back(intid);
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
    let me = this_cpu();
    let count = gic::list_registers();
    // Up to 16 list registers: one bit each.
    let all = ((1u32 << count) - 1) as u16;
    if count > 0 && gic::empty_list_registers() & all != all {
        withdraw(vm, count);
    }
    if vm.forwarded[me].any_held_back() && free_list_register().is_some() {
        vm.forwarded[me].release_held_back();
        sync_enables(vm);
    }
    if vm.vgics[me].any_pending() {
        delivery::deliver(&mut vm.vgics[me], &mut PhysicalCpuInterface);
    }
}

/// A trapped system-register access: an SGI a vCPU sends (to itself, straight into
/// its list registers; to others, pended in their models and their CPUs kicked), or
/// `false` for one hyp does not serve.
pub fn system_register(vm: &mut Vm, regs: &GuestRegs, access: SysregAccess) -> bool {
    let Some(register) = access.sgi_register() else { return false };
    let value = if access.rt == 31 { 0 } else { regs.x[access.rt as usize] };
    let me = this_cpu();
    let (intid, targets) = sgi::targets(value, me, vm.vcpus.count());
    let group1 = register.sends_group1();
    for cpu in (0..vm.vcpus.count()).filter(|c| targets & (1 << c) != 0) {
        if cpu == me {
            delivery::send_sgi(&mut vm.vgics[me], &PhysicalCpuInterface, intid, group1);
        } else if group1 || vm.vgics[cpu].is_group0(intid) {
            vm.vgics[cpu].pend(intid);
            gic::kick(cpu);
        }
    }
    true
}

/// A guest's WFI: whether to wait for an interrupt (the guest could be woken by one
/// and none is pending for it yet; a guest with no interrupt enabled, like one that
/// polls its devices, just yields). The caller waits with the VM unlocked, so that
/// other vCPUs go on (and may send this one what wakes it).
pub fn should_wait(vm: &Vm) -> bool {
    let me = this_cpu();
    let pending = (0..gic::list_registers()).any(|i| ListRegister(gic::read_list_register(i)).is_pending());
    vm.vgics[me].any_enabled() && !pending && !vm.vgics[me].any_pending()
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
        let enabled = |intid: u32| vm.vgics[owner(intid)].enabled(intid);
        let Some(why) = forwarding::withdraw(lr, enabled, asserted) else { continue };
        gic::write_list_register(n, 0);
        match why {
            Withdraw::Physical(physical) => gic::deactivate(physical),
            Withdraw::Repend(intid) => vm.vgics[this_cpu()].pend(intid),
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
