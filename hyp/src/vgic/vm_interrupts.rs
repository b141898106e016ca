//! The VM's interrupts as one piece: every vCPU's vGIC model, the physical side of the
//! sources hyp forwards, and the physical GIC behind [`PhysicalGic`] (the firmware's
//! `virtual_interrupts.rs` implements it with the system registers and does nothing
//! else). Every decision of the interrupt path is here, host-tested:
//! - which vCPU's model an access reaches (a redistributor by its frame, the
//!   distributor through this vCPU's model, mirrored to every other vCPU's);
//! - a physical interrupt hyp acknowledged: into a list register with the hardware
//!   bit, held back (physically off) for want of one, or dropped;
//! - before the guest runs again: list registers whose source went quiet or that the
//!   guest disabled are withdrawn, held-back sources get another chance, software
//!   interrupts are delivered;
//! - an SGI to itself goes straight into this vCPU's state, to another vCPU into its
//!   model, and that vCPU's CPU is kicked;
//! - whether a WFI waits.
//!
//! Each vCPU runs on the physical CPU of its number, so the list registers are the
//! vCPU's own; SPIs are routed physically to CPU 0 and delivered to vCPU 0.

use super::delivery::{self, CpuInterface};
use super::forwarded::{ForwardedSources, PhysicalEnables};
use super::forwarding::{self, Forward, Withdraw};
use super::{sgi, BadAccess, Effect, Frame, Vgic};
use crate::device::devices::DeviceList;

/// The physical SGI one CPU sends another to make it exit (to deliver what was pended
/// for its vCPU); never forwarded.
pub const KICK_SGI: u32 = 0;

/// What only the firmware can touch: the physical GIC's CPU interface (list
/// registers), its enables, its pending state, and the kick to another CPU.
pub trait PhysicalGic: CpuInterface + PhysicalEnables {
    /// The CPU (and vCPU) this exit runs on.
    fn this_cpu(&self) -> usize;
    /// Whether forwarded source `physical` still asserts its interrupt.
    fn asserted(&self, physical: u32) -> bool;
    /// Makes `cpu` exit soon, to deliver what was pended for its vCPU.
    fn kick(&mut self, cpu: usize);
    /// The list registers holding nothing, one bit each (up to 16; ICH_ELRSR_EL2 has
    /// them in one read).
    fn empty_list_registers(&self) -> u16 {
        let count = self.list_registers().min(16);
        (0..count).filter(|&n| !self.read_list_register(n).in_use()).fold(0, |bits, n| bits | (1 << n))
    }
}

/// The VM's interrupt state for one exit, with the physical GIC it reaches.
pub struct VmInterrupts<'a, G: PhysicalGic> {
    /// One model per vCPU: the slice's length is the VM's vCPU count.
    pub vgics: &'a mut [Vgic],
    /// Per vCPU, its forwarded sources' physical side (SPIs in vCPU 0's).
    pub forwarded: &'a mut [ForwardedSources],
    /// The devices, whose interrupts are the forwarded ones.
    pub devices: &'a DeviceList,
    /// The physical GIC.
    pub gic: G,
}

/// The vCPU whose state holds `intid` when vCPU `me()` asks: its own for an SGI or
/// PPI, vCPU 0's for an SPI (`me` is asked only for the former: reading it reads a
/// system register).
fn owner(intid: u32, me: impl FnOnce() -> usize) -> usize {
    if intid < 32 {
        me()
    } else {
        0
    }
}

impl<G: PhysicalGic> VmInterrupts<'_, G> {
    /// Whose model an access at `offset` in `frame` reaches, and the offset within its
    /// frame: the vCPU whose redistributor it falls in (one frame per vCPU), or this
    /// vCPU's for the distributor. `None` past the last vCPU's redistributor.
    fn addressed(&self, frame: Frame, offset: u64) -> Option<(usize, u64)> {
        let (cpu, offset) = match frame {
            Frame::Redistributor => {
                let size = pvmkit_abi::memory_map::GICR_SIZE;
                (usize::try_from(offset / size).ok()?, offset % size)
            }
            Frame::Distributor => (self.gic.this_cpu(), offset),
        };
        (cpu < self.vgics.len()).then_some((cpu, offset))
    }

    /// A load from the guest's GIC: the distributor as this vCPU's model holds it, or a
    /// vCPU's redistributor (with the list registers' state when it is this vCPU's).
    pub fn read(&self, frame: Frame, offset: u64, width: u8) -> Result<u64, BadAccess> {
        let (cpu, offset) = self.addressed(frame, offset).ok_or(BadAccess { offset, width })?;
        if cpu == self.gic.this_cpu() {
            delivery::read(&self.vgics[cpu], &self.gic, frame, offset, width)
        } else {
            self.vgics[cpu].read(frame, offset, width)
        }
    }

    /// A store to the guest's GIC, and what follows from it: a distributor write
    /// reaches every vCPU's model (its pending and active state only this vCPU's), a
    /// redistributor write the model of the vCPU whose frame it is.
    pub fn write(&mut self, frame: Frame, offset: u64, width: u8, value: u64) -> Result<(), BadAccess> {
        let me = self.gic.this_cpu();
        let (cpu, offset) = self.addressed(frame, offset).ok_or(BadAccess { offset, width })?;
        if cpu != me {
            // Another vCPU's redistributor: its model only (its list registers are its CPU's).
            self.vgics[cpu].write(frame, offset, width, value)?;
            return Ok(());
        }
        let effect = delivery::write(&mut self.vgics[me], &mut self.gic, frame, offset, width, value)?;
        if frame == Frame::Distributor && self.vgics[me].state_register(frame, offset).is_none() {
            for other in (0..self.vgics.len()).filter(|&c| c != me) {
                let _ = self.vgics[other].write(frame, offset, width, value);
            }
        }
        match effect {
            Effect::EnablesChanged => self.sync_enables(),
            // Delivered by `flush` before the guest runs again.
            Effect::Pended | Effect::None => {}
        }
        Ok(())
    }

    /// Makes each forwarded source's physical enable follow the guest's (a source held
    /// back for want of a list register stays off until `flush` finds it one): this
    /// vCPU's PPIs (the timer), and the SPIs (vCPU 0's).
    pub fn sync_enables(&mut self) {
        for intid in self.devices.forwarded_interrupts() {
            let cpu = owner(intid, || self.gic.this_cpu());
            if let (Some(sources), Some(vgic)) = (self.forwarded.get_mut(cpu), self.vgics.get(cpu)) {
                sources.sync(intid, vgic.enabled(intid), &mut self.gic);
            }
        }
    }

    /// A physical interrupt hyp acknowledged and dropped the priority of: the guest's,
    /// if it is a forwarded source the guest has enabled.
    pub fn forward(&mut self, intid: u32) {
        if intid == KICK_SGI {
            // Another CPU pended something for this vCPU: `flush` delivers it.
            self.gic.deactivate_physical(intid);
            return;
        }
        let cpu = owner(intid, || self.gic.this_cpu());
        let forwarded = self.devices.forwarded_interrupts().any(|i| i == intid);
        let deliverable = self.vgics.get(cpu).and_then(|v| v.deliverable(intid));
        match forwarding::forward(intid, forwarded, deliverable, self.free_list_register()) {
            Forward::ToListRegister(n, lr) => self.gic.write_list_register(n, lr),
            Forward::HoldBack => {
                self.gic.deactivate_physical(intid);
                if let Some(sources) = self.forwarded.get_mut(cpu) {
                    sources.hold_back(intid);
                }
                self.sync_enables();
            }
            Forward::Drop { resync } => {
                self.gic.deactivate_physical(intid);
                if resync {
                    self.sync_enables();
                }
            }
        }
    }

    /// Before the guest runs again: an interrupt the guest has not acknowledged is
    /// withdrawn if the guest disabled it or, forwarded, its source stopped asserting
    /// it (as a level interrupt is: a timer the guest disabled no longer wakes its
    /// WFI); held-back sources get another chance; and interrupts pending in software
    /// (SGIs, ISPENDR writes) go to list registers, highest priority first.
    pub fn flush(&mut self) {
        let me = self.gic.this_cpu();
        let count = self.gic.list_registers().min(16);
        let all = ((1u32 << count) - 1) as u16;
        if count > 0 && self.gic.empty_list_registers() & all != all {
            self.withdraw(count);
        }
        if self.forwarded.get(me).is_some_and(ForwardedSources::any_held_back) && self.free_list_register().is_some() {
            self.forwarded[me].release_held_back();
            self.sync_enables();
        }
        if let Some(vgic) = self.vgics.get_mut(me).filter(|v| v.any_pending()) {
            delivery::deliver(vgic, &mut self.gic);
        }
    }

    /// An SGI this vCPU sent by writing `value` to ICC_SGI1R_EL1 (`group1`) or a
    /// register that sends group 0 only: to itself, straight into its own state; to
    /// others, pended in their models and their CPUs kicked.
    pub fn send_sgi(&mut self, value: u64, group1: bool) {
        let me = self.gic.this_cpu();
        let count = self.vgics.len();
        let (intid, targets) = sgi::targets(value, me, count);
        for cpu in (0..count).filter(|c| targets & (1 << c) != 0) {
            if cpu == me {
                delivery::send_sgi(&mut self.vgics[me], &self.gic, intid, group1);
            } else if group1 || self.vgics[cpu].is_group0(intid) {
                self.vgics[cpu].pend(intid);
                self.gic.kick(cpu);
            }
        }
    }

    /// A guest's WFI: whether to wait for an interrupt (the guest could be woken by one
    /// and none is pending for it yet; a guest with no interrupt enabled, like one that
    /// polls its devices, just yields).
    pub fn should_wait(&self) -> bool {
        let Some(vgic) = self.vgics.get(self.gic.this_cpu()) else { return false };
        let pending = (0..self.gic.list_registers()).any(|n| self.gic.read_list_register(n).is_pending());
        vgic.any_enabled() && !pending && !vgic.any_pending()
    }

    fn withdraw(&mut self, count: usize) {
        let me = self.gic.this_cpu();
        for n in 0..count {
            let lr = self.gic.read_list_register(n);
            let gic = &self.gic;
            let vgics = &*self.vgics;
            let enabled = |intid: u32| vgics.get(owner(intid, || me)).is_some_and(|v| v.enabled(intid));
            let Some(why) = forwarding::withdraw(lr, enabled, |physical| gic.asserted(physical)) else { continue };
            self.gic.write_list_register(n, super::list_register::ListRegister(0));
            match why {
                Withdraw::Physical(physical) => self.gic.deactivate_physical(physical),
                Withdraw::Repend(intid) => self.vgics[me].pend(intid),
            }
        }
    }

    fn free_list_register(&self) -> Option<usize> {
        let count = self.gic.list_registers().min(16);
        let empty = self.gic.empty_list_registers();
        (0..count).find(|&n| empty & (1 << n) != 0)
    }
}

#[cfg(test)]
mod tests;
