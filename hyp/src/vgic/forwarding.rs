//! What hyp does with a physical interrupt it acknowledged, and with a list register
//! whose source may have gone quiet: the decisions, apart from the registers
//! (`virtual_interrupts.rs` in the firmware carries them out).

use super::list_register::ListRegister;
use super::Deliverable;

/// What becomes of a physical interrupt hyp acknowledged (its priority dropped, still
/// active).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forward {
    /// Into list register `n` with the hardware bit: the guest's deactivation ends it.
    ToListRegister(usize, ListRegister),
    /// Every list register is busy: deactivate it and keep the source disabled until
    /// one frees (else a level source would signal again at once, for good).
    HoldBack,
    /// Not the guest's to have (not forwarded, or disabled by the guest): deactivate it;
    /// `resync` says whether the physical enables must follow the guest's again.
    Drop {
        /// The source is a forwarded one.
        resync: bool,
    },
}

/// Decides for `intid`: whether it is a source hyp forwards, the guest's vGIC state of
/// it, and a free list register, if any.
pub fn forward(intid: u32, forwarded: bool, deliverable: Option<Deliverable>, free: Option<usize>) -> Forward {
    match (deliverable.filter(|_| forwarded), free) {
        (Some(d), Some(n)) => {
            Forward::ToListRegister(n, ListRegister::pending(intid, d.group1, d.priority, Some(intid)))
        }
        (Some(_), None) => Forward::HoldBack,
        (None, _) => Forward::Drop { resync: forwarded },
    }
}

/// Why a list register's interrupt is taken back before the guest acknowledged it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Withdraw {
    /// A forwarded interrupt whose source stopped asserting it, or that the guest
    /// disabled: deactivate the physical one (a level source signals again once it is
    /// asserted and enabled).
    Physical(u32),
    /// A software interrupt (an SGI, an ISPENDR write) the guest disabled: it stays
    /// pending in the vGIC, delivered when enabled again.
    Repend(u32),
}

/// Whether list register `lr` must be withdrawn: only an interrupt the guest has not
/// acknowledged is, if the guest disabled it (`enabled` answers for a virtual INTID) or,
/// forwarded, its source no longer asserts it (`asserted`, for a physical INTID).
pub fn withdraw(
    lr: ListRegister,
    enabled: impl FnOnce(u32) -> bool,
    asserted: impl FnOnce(u32) -> bool,
) -> Option<Withdraw> {
    if !lr.pending_only() {
        return None;
    }
    let disabled = !enabled(lr.vintid());
    match lr.physical() {
        Some(physical) => (disabled || !asserted(physical)).then_some(Withdraw::Physical(physical)),
        None => disabled.then_some(Withdraw::Repend(lr.vintid())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMER: Deliverable = Deliverable { intid: 27, group1: true, priority: 0xa0 };

    #[test]
    fn an_enabled_forwarded_interrupt_goes_to_a_free_list_register() {
        assert_eq!(
            forward(27, true, Some(TIMER), Some(2)),
            Forward::ToListRegister(2, ListRegister::pending(27, true, 0xa0, Some(27)))
        );
        assert_eq!(forward(27, true, Some(TIMER), None), Forward::HoldBack);
        assert_eq!(forward(27, true, None, Some(0)), Forward::Drop { resync: true }, "the guest disabled it");
        // Not a source hyp forwards (e.g. the maintenance interrupt): never the guest's.
        assert_eq!(forward(25, false, Some(TIMER), Some(0)), Forward::Drop { resync: false });
    }

    #[test]
    fn only_an_unacknowledged_interrupt_of_a_quiet_source_or_disabled_is_withdrawn() {
        let on = |_| true;
        let pending = ListRegister::pending(27, true, 0xa0, Some(27));
        assert_eq!(withdraw(pending, on, |_| false), Some(Withdraw::Physical(27)));
        assert_eq!(withdraw(pending, on, |_| true), None, "still asserted");
        assert_eq!(withdraw(pending, |_| false, |_| true), Some(Withdraw::Physical(27)), "disabled by the guest");
        // The guest acknowledged it (active): its deactivation ends it.
        assert_eq!(withdraw(ListRegister(pending.0 ^ (3 << 62)), |_| false, |_| false), None);
        // Software interrupts (an SGI) have no source to ask; disabled, they wait.
        let sgi = ListRegister::pending(3, true, 0xa0, None);
        assert_eq!(withdraw(sgi, on, |_| false), None);
        assert_eq!(withdraw(sgi, |_| false, |_| true), Some(Withdraw::Repend(3)));
    }
}
