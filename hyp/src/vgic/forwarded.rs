//! The physical side of the sources hyp forwards to a vCPU (the virtual timer, the
//! console, the virtio transports): a source is physically enabled exactly while the
//! guest has its virtual twin enabled and it is not held back; a source whose
//! interrupt found no free list register is held back (physically off) until one is
//! free again. The firmware does the physical enabling ([`PhysicalEnables`]); the
//! decision is here, for every INTID the GIC has.

/// One bit per INTID, 0 to 1023.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IntidSet([u64; 16]);

impl IntidSet {
    /// No INTID.
    pub const EMPTY: Self = Self([0; 16]);

    fn place(intid: u32) -> Option<(usize, u64)> {
        let word = usize::try_from(intid / 64).ok().filter(|&w| w < 16)?;
        Some((word, 1 << (intid % 64)))
    }

    /// Whether `intid` is in the set (never, for an INTID beyond 1023).
    pub fn contains(&self, intid: u32) -> bool {
        Self::place(intid).is_some_and(|(w, bit)| self.0[w] & bit != 0)
    }

    /// Puts `intid` in or takes it out; `false` for an INTID beyond 1023, which no set
    /// holds.
    pub fn set(&mut self, intid: u32, member: bool) -> bool {
        let Some((w, bit)) = Self::place(intid) else { return false };
        if member {
            self.0[w] |= bit;
        } else {
            self.0[w] &= !bit;
        }
        true
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }
}

/// What only the firmware can do: enable or disable a physical interrupt.
pub trait PhysicalEnables {
    /// Enables (`true`) or disables `intid` at the physical GIC.
    fn set_enabled(&mut self, intid: u32, enabled: bool);
}

/// One vCPU's forwarded sources: which are physically enabled, which held back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForwardedSources {
    physically_enabled: IntidSet,
    held_back: IntidSet,
    /// Whether `held_back` has any member (checked at every exit: one word).
    any_held: bool,
}

impl ForwardedSources {
    /// None enabled, none held back.
    pub const NONE: Self = Self { physically_enabled: IntidSet::EMPTY, held_back: IntidSet::EMPTY, any_held: false };

    /// Makes `intid`'s physical enable follow the guest's (`guest_enabled`), unless it
    /// is held back: only a change reaches the GIC.
    pub fn sync(&mut self, intid: u32, guest_enabled: bool, gic: &mut impl PhysicalEnables) {
        let want = guest_enabled && !self.held_back.contains(intid);
        if want != self.physically_enabled.contains(intid) && self.physically_enabled.set(intid, want) {
            gic.set_enabled(intid, want);
        }
    }

    /// `intid` fired with no list register free: it stays physically off (after the
    /// next [`Self::sync`]) until [`Self::release_held_back`].
    pub fn hold_back(&mut self, intid: u32) {
        self.any_held |= self.held_back.set(intid, true);
    }

    /// A list register is free again: every held-back source may fire again (after the
    /// next sync). Returns whether any was held back.
    pub fn release_held_back(&mut self) -> bool {
        let any = self.any_held;
        (self.held_back, self.any_held) = (IntidSet::EMPTY, false);
        any
    }

    /// Whether any source is held back.
    pub fn any_held_back(&self) -> bool {
        self.any_held
    }

    /// Whether `intid` is physically enabled now.
    pub fn physically_enabled(&self, intid: u32) -> bool {
        self.physically_enabled.contains(intid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Gic(Vec<(u32, bool)>);

    impl PhysicalEnables for Gic {
        fn set_enabled(&mut self, intid: u32, enabled: bool) {
            self.0.push((intid, enabled));
        }
    }

    /// Every INTID a GIC has is tracked: above 127 too (a `u128` once dropped those
    /// silently, and such a source would never have been enabled).
    #[test]
    fn every_intid_of_the_gic_is_tracked() {
        let mut set = IntidSet::EMPTY;
        for intid in [0, 27, 63, 64, 127, 128, 200, 1019, 1023] {
            assert!(!set.contains(intid));
            assert!(set.set(intid, true));
            assert!(set.contains(intid), "{intid}");
        }
        assert!(!set.set(1024, true), "no GIC has INTID 1024");
        assert!(!set.contains(1024));
        assert!(set.set(200, false) && !set.contains(200) && set.contains(128));
        assert!(!set.is_empty());
    }

    #[test]
    fn the_physical_enable_follows_the_guest_and_only_changes_reach_the_gic() {
        let mut sources = ForwardedSources::NONE;
        let mut gic = Gic::default();
        for intid in [27, 48, 300] {
            sources.sync(intid, true, &mut gic);
            sources.sync(intid, true, &mut gic);
        }
        assert_eq!(gic.0, [(27, true), (48, true), (300, true)], "once each");
        sources.sync(300, false, &mut gic);
        assert_eq!(gic.0.last(), Some(&(300, false)));
        assert!(!sources.physically_enabled(300) && sources.physically_enabled(48));
    }

    #[test]
    fn a_held_back_source_stays_off_until_released() {
        let mut sources = ForwardedSources::NONE;
        let mut gic = Gic::default();
        sources.sync(48, true, &mut gic);
        sources.hold_back(48);
        sources.sync(48, true, &mut gic);
        assert_eq!(gic.0, [(48, true), (48, false)]);
        sources.sync(48, true, &mut gic);
        assert_eq!(gic.0.len(), 2, "still held back");
        assert!(sources.any_held_back());
        assert!(sources.release_held_back());
        assert!(!sources.any_held_back() && !sources.release_held_back(), "nothing left");
        sources.sync(48, true, &mut gic);
        assert_eq!(gic.0.last(), Some(&(48, true)));
    }
}
