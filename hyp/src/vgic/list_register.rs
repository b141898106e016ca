//! `ICH_LR<n>_EL2`: how an interrupt is handed to the guest's virtual CPU interface.

/// LR.State: pending.
const STATE_PENDING: u64 = 1 << 62;
/// LR.State: active.
const STATE_ACTIVE: u64 = 1 << 63;
/// LR.State: both bits (pending, active).
const STATE_MASK: u64 = 3 << 62;
/// LR.HW: the virtual interrupt is tied to a physical one, deactivated with it.
const HW: u64 = 1 << 61;
/// LR.Group: group 1.
const GROUP1: u64 = 1 << 60;
const PRIORITY_SHIFT: u32 = 48;
const PINTID_SHIFT: u32 = 32;
const PINTID_MASK: u64 = 0x1fff;

/// A list register's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListRegister(pub u64);

impl ListRegister {
    /// `vintid` pending, in group 1 or 0, at `priority`; with `physical`, tied to that
    /// physical INTID, which the guest's deactivation deactivates.
    pub const fn pending(vintid: u32, group1: bool, priority: u8, physical: Option<u32>) -> Self {
        let mut lr = STATE_PENDING | (priority as u64) << PRIORITY_SHIFT | vintid as u64;
        if group1 {
            lr |= GROUP1;
        }
        if let Some(p) = physical {
            lr |= HW | (p as u64 & PINTID_MASK) << PINTID_SHIFT;
        }
        Self(lr)
    }

    /// Whether it still holds an interrupt (pending, active or both).
    pub const fn in_use(self) -> bool {
        self.0 & STATE_MASK != 0
    }

    /// Whether it holds a pending interrupt (one that would wake a WFI).
    pub const fn is_pending(self) -> bool {
        self.0 & STATE_PENDING != 0
    }

    /// Whether it holds a pending interrupt the guest has not acknowledged yet.
    pub const fn pending_only(self) -> bool {
        self.0 & STATE_MASK == STATE_PENDING
    }

    /// The physical INTID it is tied to, if it is (LR.HW).
    pub const fn physical(self) -> Option<u32> {
        if self.0 & HW != 0 {
            Some(((self.0 >> PINTID_SHIFT) & PINTID_MASK) as u32)
        } else {
            None
        }
    }

    /// The virtual INTID.
    pub const fn vintid(self) -> u32 {
        self.0 as u32
    }

    /// Its priority.
    pub const fn priority(self) -> u8 {
        (self.0 >> PRIORITY_SHIFT) as u8
    }

    /// Whether the guest acknowledged it (active, or active and pending).
    pub const fn is_active(self) -> bool {
        self.0 & STATE_ACTIVE != 0
    }

    /// The same interrupt once the guest deactivated it: pending if it was pending
    /// again, else empty (what the CPU interface does on the guest's deactivation).
    pub const fn deactivated(self) -> Self {
        if self.is_pending() {
            Self(self.0 & !STATE_ACTIVE)
        } else {
            Self(0)
        }
    }

    /// The same interrupt with its pending state cleared: active if it was, else empty.
    pub const fn without_pending(self) -> Self {
        if self.is_active() {
            Self(self.0 & !STATE_PENDING)
        } else {
            Self(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guest's deactivation of an interrupt that is active and pending again
    /// leaves it pending only (ICH_LR<n>_EL2.State 0b11 -> 0b01).
    #[test]
    fn deactivating_an_active_and_pending_interrupt_leaves_it_pending() {
        let pending = ListRegister::pending(27, true, 0xa0, None);
        let both = ListRegister(pending.0 | STATE_ACTIVE);
        assert_eq!(both.deactivated(), pending);
        assert_eq!(ListRegister(pending.0 & !STATE_PENDING | STATE_ACTIVE).deactivated(), ListRegister(0));
    }

    #[test]
    fn encodes_the_architectural_fields() {
        // The virtual timer tied to its physical PPI, group 1, priority 0xa0.
        let lr = ListRegister::pending(27, true, 0xa0, Some(27));
        assert_eq!(lr.0, (1 << 62) | (1 << 61) | (1 << 60) | (0xa0 << 48) | (27 << 32) | 27);
        assert!(lr.in_use() && lr.is_pending() && lr.pending_only());
        assert_eq!((lr.vintid(), lr.physical()), (27, Some(27)));
        assert_eq!(ListRegister::pending(33, true, 0, None).physical(), None);
        // A software SGI in group 0.
        assert_eq!(ListRegister::pending(1, false, 0, None).0, (1 << 62) | 1);
        // Active only (the guest acknowledged it), and empty.
        let active = ListRegister(2 << 62 | 27);
        assert!(active.in_use() && !active.is_pending() && !active.pending_only());
        assert!(!ListRegister(3 << 62).pending_only(), "active and pending");
        assert!(!ListRegister(27).in_use());
        assert_eq!(lr.priority(), 0xa0);
        assert!(active.is_active() && !lr.is_active());
        // Clearing the pending state: an acknowledged one stays active, else it is gone.
        assert_eq!(ListRegister(3 << 62 | 5).without_pending(), ListRegister(2 << 62 | 5));
        assert_eq!(lr.without_pending(), ListRegister(0));
    }
}
