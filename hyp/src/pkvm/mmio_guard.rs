//! The MMIO guard, hyp's side: which device granules the guest has registered, and
//! whether an access may be emulated.
//!
//! Only the Android profile has a guard: a VM that boots through pvmfw is enrolled from
//! its first instruction, any other from its ENROLL call. Once enrolled, an access to
//! an IPA that is not registered is never emulated. A granule may be registered when
//! it is page aligned and outside guest RAM (whether a device lives there or not, as
//! Android's hypervisor allows).

use core::fmt;

use pvmkit_abi::address::{Ipa, Page};
use pvmkit_abi::memory_map::Region;

use pvmkit_abi::memory_map::GRANULE;
/// The most granules a VM can register: more than all device pages hyp exposes (the
/// distributor's 16, 32 per vCPU's redistributor for up to 8, the console's 1 and the
/// 4 of QEMU's virtio-mmio transports: 277).
pub const MAX_GUARDED: usize = 320;

/// Why a granule cannot be registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardRefusal {
    /// Inside guest RAM.
    GuestRam(Page),
    /// The table is full.
    Full(Page),
}

impl fmt::Display for GuardRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::GuestRam(page) => write!(f, "IPA {page} is guest RAM"),
            Self::Full(page) => write!(f, "guard table full at {page}"),
        }
    }
}

/// Why an access is not let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardDenial {
    /// The granule is not registered (the ABI's refusal).
    NotRegistered,
    /// Only pvmfw registered the granule, before the handover, and the payload never
    /// did: the release lets it through (6.12's UNMAP is a no-op, so pvmfw's
    /// registrations outlive it), hyp's policy `guard-inherited-from-pvmfw` does not.
    InheritedFromFirmware,
}

/// The registered granules of one VM.
#[derive(Clone, Debug)]
pub struct GuardTable {
    granules: [Page; MAX_GUARDED],
    /// Per granule: registered before the handover and not since.
    inherited: [bool; MAX_GUARDED],
    len: usize,
    enforcing: bool,
    /// Where the VM's firmware (pvmfw) runs, when it boots through one: the handover is
    /// the first call or access from outside it.
    firmware: Option<Region>,
    handed_over: bool,
    allow_inherited: bool,
}

impl GuardTable {
    /// An empty table; `enforcing` says whether unregistered accesses are refused.
    pub const fn new(enforcing: bool) -> Self {
        Self {
            granules: [Page::FIRST; MAX_GUARDED],
            inherited: [false; MAX_GUARDED],
            len: 0,
            enforcing,
            firmware: None,
            handed_over: false,
            allow_inherited: false,
        }
    }

    /// The VM boots through the firmware at `region`: what it registers before the
    /// handover is the payload's only once the payload registers it too, unless
    /// `allow_inherited` (hyp option `inherited-guard=allow`).
    pub const fn with_firmware(mut self, region: Region, allow_inherited: bool) -> Self {
        self.firmware = Some(region);
        self.allow_inherited = allow_inherited;
        self
    }

    /// The guest runs at `pc` (at a call or an access): the first time that is outside
    /// the firmware, the handover has happened, and every granule registered so far
    /// becomes inherited.
    pub fn note_pc(&mut self, pc: u64) {
        if !self.handed_over && self.firmware.is_some_and(|f| !(f.start <= pc && pc < f.end)) {
            self.handed_over = true;
            self.inherited[..self.len].fill(true);
        }
    }

    /// Enrols the VM: unregistered accesses are refused from now on.
    pub fn enroll(&mut self) {
        self.enforcing = true;
    }

    /// How many more granules the table can take.
    pub fn room(&self) -> usize {
        MAX_GUARDED - self.len
    }

    /// Whether unregistered accesses are refused.
    pub fn is_enforcing(&self) -> bool {
        self.enforcing
    }

    /// Whether the granule holding `ipa` is registered.
    pub fn is_guarded(&self, ipa: Ipa) -> bool {
        self.granules[..self.len].contains(&ipa.page())
    }

    /// Whether an access of `width` bytes at `ipa` may be emulated: always when not
    /// enforcing, else only when its first and last bytes lie in registered granules.
    pub fn allows(&self, ipa: Ipa, width: u8) -> bool {
        self.check(ipa, width).is_ok()
    }

    /// [`Self::allows`], with why not: unregistered, or (by policy) registered only by
    /// the firmware before the handover.
    pub fn check(&self, ipa: Ipa, width: u8) -> Result<(), GuardDenial> {
        if !self.enforcing {
            return Ok(());
        }
        let last = Ipa(ipa.get().saturating_add(width.max(1) as u64 - 1));
        let mut denial = Ok(());
        for at in [ipa, last] {
            let granule = at.page();
            match self.granules[..self.len].iter().position(|&g| g == granule) {
                None => return Err(GuardDenial::NotRegistered),
                Some(i) if self.inherited[i] && !self.allow_inherited => {
                    denial = Err(GuardDenial::InheritedFromFirmware)
                }
                Some(_) => {}
            }
        }
        denial
    }

    /// Checks that `page` may be registered, changing nothing.
    pub fn can_map(&self, page: Page, ram: Region) -> Result<(), GuardRefusal> {
        let start = page.ipa().get();
        let granule = Region { start, end: start.saturating_add(GRANULE) };
        if granule.overlaps(&ram) {
            return Err(GuardRefusal::GuestRam(page));
        }
        if !self.is_guarded(page.ipa()) && self.len == MAX_GUARDED {
            return Err(GuardRefusal::Full(page));
        }
        Ok(())
    }

    /// Registers `page` (registering it twice is fine; a granule the firmware
    /// registered becomes the payload's when the payload registers it).
    pub fn map(&mut self, page: Page, ram: Region) -> Result<(), GuardRefusal> {
        self.can_map(page, ram)?;
        match self.granules[..self.len].iter().position(|&g| g == page) {
            Some(i) => self.inherited[i] = false,
            None => {
                self.granules[self.len] = page;
                self.inherited[self.len] = false;
                self.len += 1;
            }
        }
        Ok(())
    }

    /// Unregisters `page` (a granule not registered is left as it is).
    pub fn unmap(&mut self, page: Page) {
        if let Some(i) = self.granules[..self.len].iter().position(|&g| g == page) {
            self.granules[i] = self.granules[self.len - 1];
            self.inherited[i] = self.inherited[self.len - 1];
            self.len -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::pg as p;

    const RAM: Region = Region { start: 0x8000_0000, end: 0x9000_0000 };
    const PVMFW: Region = Region { start: 0x7fc0_0000, end: 0x8000_0000 };

    /// What pvmfw registered is the payload's only once the payload registers it too:
    /// before the handover pvmfw uses it freely; after, the payload's access to it is
    /// refused by policy (unless allowed), its own registration makes it usable, and a
    /// granule nobody registered stays the ABI's refusal.
    #[test]
    fn granules_only_pvmfw_registered_are_not_the_payloads() {
        let mut t = GuardTable::new(true).with_firmware(PVMFW, false);
        t.note_pc(PVMFW.start + 0x1000);
        t.map(p(0x0a00_3000), RAM).unwrap();
        t.map(p(0x0900_0000), RAM).unwrap();
        assert_eq!(t.check(Ipa(0x0a00_3e00), 4), Ok(()), "pvmfw's own use");
        t.note_pc(0x8020_0000);
        assert_eq!(t.check(Ipa(0x0a00_3e00), 4), Err(GuardDenial::InheritedFromFirmware));
        assert!(!t.allows(Ipa(0x0a00_3e00), 4));
        assert_eq!(t.check(Ipa(0x0b00_0000), 4), Err(GuardDenial::NotRegistered));
        t.map(p(0x0900_0000), RAM).unwrap();
        assert_eq!(t.check(Ipa(0x0900_0018), 4), Ok(()), "the payload registered it itself");
        assert_eq!(t.check(Ipa(0x0a00_3e00), 4), Err(GuardDenial::InheritedFromFirmware), "the other one still not");
        t.note_pc(PVMFW.start);
        assert_eq!(t.check(Ipa(0x0a00_3e00), 4), Err(GuardDenial::InheritedFromFirmware), "a handover happens once");
        // With the policy off the release's answer stands.
        let mut allowed = GuardTable::new(true).with_firmware(PVMFW, true);
        allowed.map(p(0x0a00_3000), RAM).unwrap();
        allowed.note_pc(0x8020_0000);
        assert_eq!(allowed.check(Ipa(0x0a00_3e00), 4), Ok(()));
        // Without a firmware nothing is inherited.
        let mut direct = GuardTable::new(true);
        direct.map(p(0x0a00_3000), RAM).unwrap();
        direct.note_pc(0x8020_0000);
        assert_eq!(direct.check(Ipa(0x0a00_3e00), 4), Ok(()));
    }

    #[test]
    fn registers_aligned_granules_outside_ram() {
        let mut t = GuardTable::new(true);
        assert_eq!(t.map(p(0x0900_0000), RAM), Ok(()));
        assert_eq!(t.map(p(0x0a00_3000), RAM), Ok(()), "the page holding a transport");
        assert_eq!(t.map(p(0x0a00_3000), RAM), Ok(()), "twice is fine");
        assert_eq!(t.map(p(0x0c00_0000), RAM), Ok(()), "no device there: Android accepts it too");
        assert_eq!(t.map(p(0x8000_0000), RAM), Err(GuardRefusal::GuestRam(p(0x8000_0000))));
        assert_eq!(t.map(p(0x8fff_f000), RAM), Err(GuardRefusal::GuestRam(p(0x8fff_f000))));
        assert!(Page::at(Ipa(0x0900_0008)).is_none(), "an unaligned granule cannot even be named");
        assert!(t.is_guarded(Ipa(0x0a00_3e04)));
        t.unmap(p(0x0a00_3000));
        assert!(!t.is_guarded(Ipa(0x0a00_3e04)));
        assert!(t.is_guarded(Ipa(0x0900_0018)));
        t.unmap(p(0x0a00_3000));
        assert!(!t.is_guarded(Ipa(0x0a00_3000)), "unmapping what is not mapped is a no-op");
        // Taking out the first of several keeps every other (the table's last entry moves
        // into the hole).
        t.map(p(0x0a00_3000), RAM).unwrap();
        t.unmap(p(0x0900_0000));
        assert!(!t.is_guarded(Ipa(0x0900_0000)));
        assert!(t.is_guarded(Ipa(0x0a00_3000)) && t.is_guarded(Ipa(0x0c00_0000)));
        assert_eq!(GuardRefusal::GuestRam(p(0x8000_0000)).to_string(), "IPA 0x80000000 is guest RAM");
    }

    #[test]
    fn enforcement_decides_what_may_be_emulated() {
        let mut t = GuardTable::new(true);
        assert!(!t.allows(Ipa(0x0900_0000), 4));
        t.map(p(0x0900_0000), RAM).unwrap();
        assert!(t.allows(Ipa(0x0900_0ffc), 4));
        assert!(!t.allows(Ipa(0x0900_0ffe), 4), "last byte in an unregistered granule");
        let mut open = GuardTable::new(false);
        assert!(open.allows(Ipa(0x0900_0000), 4), "not enrolled: not enforced");
        open.enroll();
        assert!(!open.allows(Ipa(0x0900_0000), 4), "enrolled: enforced");
    }

    #[test]
    fn the_table_has_a_bound() {
        let mut t = GuardTable::new(true);
        for i in 0..MAX_GUARDED as u64 {
            t.map(p(0x1000_0000 + i * GRANULE), RAM).unwrap();
        }
        let last = 0x1000_0000 + MAX_GUARDED as u64 * GRANULE;
        assert_eq!(t.map(p(last), RAM), Err(GuardRefusal::Full(p(last))));
    }
}
