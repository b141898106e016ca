//! The vGIC together with the list registers: once an interrupt is in a list register,
//! its pending and active state live there, not in the model. These functions read
//! and change the two as one GIC, so that the guest sees what a GIC shows:
//! - ISPENDR/ISACTIVER read the list registers' state too, and ICPENDR takes back an
//!   interrupt already handed over (a GIC answers 1023 from ICC_IAR1 then);
//! - an interrupt has one pending state: pending it again while a list register holds
//!   it pending changes nothing (a burst of one SGI is delivered once);
//! - list registers are filled highest priority first, and a pending software
//!   interrupt of lower priority makes way for a higher one when none is free (as
//!   KVM's vGIC, which rebuilds its list registers from a priority-sorted list).
//!
//! The registers themselves are the firmware's; [`CpuInterface`] is all of them this
//! needs, so every decision here is host-tested.

use super::list_register::ListRegister;
use super::{BadAccess, Effect, Frame, StateRegister, Vgic, WORDS};

/// What of the physical CPU interface delivery touches.
pub trait CpuInterface {
    /// How many list registers there are.
    fn list_registers(&self) -> usize;
    /// List register `n`.
    fn read_list_register(&self, n: usize) -> ListRegister;
    /// Writes list register `n`.
    fn write_list_register(&mut self, n: usize, lr: ListRegister);
    /// Deactivates physical interrupt `intid` (one tied to a list register that was
    /// taken back: a level source still asserting it signals again).
    fn deactivate_physical(&mut self, intid: u32);
}

fn list_registers(cpu: &impl CpuInterface) -> impl Iterator<Item = (usize, ListRegister)> + '_ {
    (0..cpu.list_registers()).map(|n| (n, cpu.read_list_register(n)))
}

/// The INTIDs the list registers hold in a state `which` picks, one bit each.
fn held(cpu: &impl CpuInterface, which: impl Fn(ListRegister) -> bool) -> [u32; WORDS] {
    let mut words = [0; WORDS];
    for (_, lr) in list_registers(cpu) {
        let intid = lr.vintid() as usize;
        if lr.in_use() && which(lr) && intid < WORDS * 32 {
            words[intid / 32] |= 1 << (intid % 32);
        }
    }
    words
}

/// Whether a list register holds `intid` pending (acknowledged or not).
pub fn pending_in_list_register(cpu: &impl CpuInterface, intid: u32) -> bool {
    list_registers(cpu).any(|(_, lr)| lr.in_use() && lr.is_pending() && lr.vintid() == intid)
}

/// A guest load from its GIC.
pub fn read(vgic: &Vgic, cpu: &impl CpuInterface, frame: Frame, offset: u64, width: u8) -> Result<u64, BadAccess> {
    let value = vgic.read(frame, offset, width)?;
    let Some((register, word)) = vgic.state_register(frame, offset) else { return Ok(value) };
    let in_list_registers = match register {
        StateRegister::SetPending | StateRegister::ClearPending => held(cpu, ListRegister::is_pending),
        StateRegister::SetActive | StateRegister::ClearActive => held(cpu, ListRegister::is_active),
    };
    Ok(value | u64::from(in_list_registers[word]))
}

/// A guest store to its GIC, and what follows from it.
pub fn write(
    vgic: &mut Vgic,
    cpu: &mut impl CpuInterface,
    frame: Frame,
    offset: u64,
    width: u8,
    value: u64,
) -> Result<Effect, BadAccess> {
    let state = vgic.state_register(frame, offset).filter(|_| width == 4);
    match state {
        Some((StateRegister::SetPending, word)) => {
            // Already pending in a list register: it stays pending once.
            let value = value & !u64::from(held(cpu, ListRegister::is_pending)[word]);
            vgic.write(frame, offset, width, value)
        }
        Some((StateRegister::ClearPending, word)) => {
            let effect = vgic.write(frame, offset, width, value)?;
            clear_pending(cpu, word, value as u32);
            Ok(effect)
        }
        _ => vgic.write(frame, offset, width, value),
    }
}

/// Takes the pending state of the INTIDs of `mask` (in `word`) out of the list
/// registers: an unacknowledged one is gone (its physical source deactivated, if it
/// has one), an acknowledged one stays active.
fn clear_pending(cpu: &mut impl CpuInterface, word: usize, mask: u32) {
    for n in 0..cpu.list_registers() {
        let lr = cpu.read_list_register(n);
        let intid = lr.vintid() as usize;
        let chosen = intid / 32 == word && mask & (1 << (intid % 32)) != 0;
        if !(lr.in_use() && lr.is_pending() && chosen) {
            continue;
        }
        cpu.write_list_register(n, lr.without_pending());
        if let (Some(physical), false) = (lr.physical(), lr.is_active()) {
            cpu.deactivate_physical(physical);
        }
    }
}

/// An SGI the guest sent itself: pending once, however often it is sent before the
/// guest takes it. `group1_allowed` says whether the register written may send a group 1
/// SGI (ICC_SGI1R_EL1 sends either group; ICC_SGI0R_EL1 and, with one security state,
/// ICC_ASGI1R_EL1 only group 0 ones).
pub fn send_sgi(vgic: &mut Vgic, cpu: &impl CpuInterface, intid: u32, group1_allowed: bool) {
    if !(group1_allowed || vgic.is_group0(intid)) || pending_in_list_register(cpu, intid) {
        return;
    }
    vgic.pend(intid);
}

/// Hands software-pending interrupts to list registers, highest priority first. With
/// none free, an unacknowledged software interrupt of lower priority goes back to the
/// vGIC to make way (one tied to a physical source stays: it would signal again at
/// once). Returns how many were handed over.
pub fn deliver(vgic: &mut Vgic, cpu: &mut impl CpuInterface) -> usize {
    let mut delivered = 0;
    loop {
        let in_use = held(cpu, |_| true);
        let free_of_list_registers = |intid: u32| {
            let intid = intid as usize;
            in_use[intid / 32] & (1 << (intid % 32)) == 0
        };
        let Some(next) = vgic.next_deliverable(free_of_list_registers) else { break };
        let free = list_registers(cpu).find(|(_, lr)| !lr.in_use()).map(|(n, _)| n);
        let slot = free.or_else(|| {
            let (n, lowest) = list_registers(cpu)
                .filter(|(_, lr)| lr.pending_only() && lr.physical().is_none())
                .max_by_key(|(n, lr)| (lr.priority(), lr.vintid(), *n))?;
            (lowest.priority() > next.priority).then(|| {
                vgic.pend(lowest.vintid());
                n
            })
        });
        let Some(n) = slot else { break };
        vgic.take_deliverable(|i| i == next.intid);
        cpu.write_list_register(n, ListRegister::pending(next.intid, next.group1, next.priority, None));
        delivered += 1;
    }
    delivered
}

#[cfg(test)]
mod tests;
