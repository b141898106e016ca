//! The guest's interrupts, wired: the physical GIC as `hyp::vgic::vm_interrupts` needs
//! it (its list registers, enables, pending state and the kick between CPUs), and the
//! VM's interrupt state handed to it for one exit. Every decision is the library's.

use hyp::device::devices::VIRTUAL_TIMER_INTID;
use hyp::device::virtio::AccessError;
use hyp::trap::sysreg::SysregAccess;
use hyp::vgic::delivery::CpuInterface;
use hyp::vgic::forwarded::PhysicalEnables;
use hyp::vgic::list_register::ListRegister;
use hyp::vgic::vm_interrupts::{PhysicalGic, VmInterrupts};
use hyp::vgic::Frame;

use crate::arch::{gic, this_cpu, GuestRegs};
use crate::vm_state::Vm;

/// This CPU's physical GIC.
struct Physical;

impl CpuInterface for Physical {
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

impl PhysicalEnables for Physical {
    fn set_enabled(&mut self, intid: u32, enabled: bool) {
        gic::set_enabled(intid, enabled);
    }
}

impl PhysicalGic for Physical {
    fn this_cpu(&self) -> usize {
        this_cpu()
    }
    fn asserted(&self, physical: u32) -> bool {
        if physical == VIRTUAL_TIMER_INTID {
            gic::virtual_timer_asserted()
        } else {
            gic::is_pending(physical)
        }
    }
    fn kick(&mut self, cpu: usize) {
        gic::kick(cpu);
    }
    fn empty_list_registers(&self) -> u16 {
        gic::empty_list_registers()
    }
}

/// The VM's interrupt state with this CPU's GIC, for one exit.
fn interrupts(vm: &mut Vm) -> VmInterrupts<'_, Physical> {
    let count = vm.vcpus.count();
    VmInterrupts {
        vgics: &mut vm.vgics[..count],
        forwarded: &mut vm.forwarded[..count],
        devices: &vm.devices,
        gic: Physical,
    }
}

/// A load from the guest's GIC.
pub fn read(vm: &mut Vm, frame: Frame, offset: u64, width: u8) -> Result<u64, AccessError> {
    interrupts(vm).read(frame, offset, width).map_err(|_| AccessError::BadWidth)
}

/// A store to the guest's GIC.
pub fn write(vm: &mut Vm, frame: Frame, offset: u64, width: u8, value: u64) -> Result<(), AccessError> {
    interrupts(vm).write(frame, offset, width, value).map_err(|_| AccessError::BadWidth)
}

/// A physical interrupt hyp acknowledged and dropped the priority of.
pub fn forward(vm: &mut Vm, intid: u32) {
    interrupts(vm).forward(intid);
}

/// What must happen before the guest runs again.
pub fn flush(vm: &mut Vm) {
    interrupts(vm).flush();
}

/// A trapped system-register access: an SGI a vCPU sends, or `false` for one hyp does
/// not serve.
pub fn system_register(vm: &mut Vm, regs: &GuestRegs, access: SysregAccess) -> bool {
    let Some(register) = access.sgi_register() else { return false };
    let value = if access.rt == 31 { 0 } else { regs.x[access.rt as usize] };
    interrupts(vm).send_sgi(value, register.sends_group1());
    true
}

/// A guest's WFI: whether to wait for an interrupt. The caller waits with the VM
/// unlocked, so that other vCPUs go on (and may send this one what wakes it).
pub fn should_wait(vm: &mut Vm) -> bool {
    interrupts(vm).should_wait()
}
