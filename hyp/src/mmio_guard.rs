//! The MMIO guard, hyp's side: which device granules the guest has registered, and
//! whether an access may be emulated.
//!
//! A protected VM is enforced from its first instruction (Android's pKVM enrols a pVM
//! when it is created; upstream guards every protected VM): an access to an IPA that
//! is not registered is never emulated. A granule may be registered only when it is
//! page aligned, outside guest RAM, and a device of this VM lives in it.

use core::fmt;

use abi::bundle::Region;

use crate::mmio::DeviceWindow;

/// The guard granule.
pub const GRANULE: u64 = 4096;
/// The most granules a VM can register (more than all device pages hyp exposes).
pub const MAX_GUARDED: usize = 64;

/// Why a granule cannot be registered or unregistered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardRefusal {
    /// Not granule aligned.
    Unaligned(u64),
    /// Inside guest RAM.
    GuestRam(u64),
    /// No device of this VM in that granule.
    NoDevice(u64),
    /// The table is full.
    Full(u64),
}

impl fmt::Display for GuardRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unaligned(ipa) => write!(f, "IPA {ipa:#x} is not granule aligned"),
            Self::GuestRam(ipa) => write!(f, "IPA {ipa:#x} is guest RAM"),
            Self::NoDevice(ipa) => write!(f, "no device of this VM at {ipa:#x}"),
            Self::Full(ipa) => write!(f, "guard table full at {ipa:#x}"),
        }
    }
}

/// The registered granules of one VM.
#[derive(Clone, Debug)]
pub struct GuardTable {
    granules: [u64; MAX_GUARDED],
    len: usize,
    enforcing: bool,
}

impl GuardTable {
    /// An empty table; `enforcing` says whether unregistered accesses are refused.
    pub const fn new(enforcing: bool) -> Self {
        Self { granules: [0; MAX_GUARDED], len: 0, enforcing }
    }

    /// Whether unregistered accesses are refused.
    pub fn is_enforcing(&self) -> bool {
        self.enforcing
    }

    /// Whether the granule holding `ipa` is registered.
    pub fn is_guarded(&self, ipa: u64) -> bool {
        let granule = ipa & !(GRANULE - 1);
        self.granules[..self.len].contains(&granule)
    }

    /// Whether an access of `width` bytes at `ipa` may be emulated: always when not
    /// enforcing, else only when its first and last bytes lie in registered granules.
    pub fn allows(&self, ipa: u64, width: u8) -> bool {
        let last = ipa.saturating_add(width.max(1) as u64 - 1);
        !self.enforcing || (self.is_guarded(ipa) && self.is_guarded(last))
    }

    /// Checks that `ipa` may be registered, changing nothing.
    pub fn can_map(&self, ipa: u64, devices: &[DeviceWindow], ram: Region) -> Result<(), GuardRefusal> {
        if !ipa.is_multiple_of(GRANULE) {
            return Err(GuardRefusal::Unaligned(ipa));
        }
        let granule = Region { start: ipa, end: ipa.saturating_add(GRANULE) };
        if granule.overlaps(&ram) {
            return Err(GuardRefusal::GuestRam(ipa));
        }
        let has_device = devices.iter().any(|d| granule.overlaps(&Region { start: d.base, end: d.base + d.size }));
        if !has_device {
            return Err(GuardRefusal::NoDevice(ipa));
        }
        if !self.is_guarded(ipa) && self.len == MAX_GUARDED {
            return Err(GuardRefusal::Full(ipa));
        }
        Ok(())
    }

    /// Registers the granule at `ipa` (registering it twice is fine).
    pub fn map(&mut self, ipa: u64, devices: &[DeviceWindow], ram: Region) -> Result<(), GuardRefusal> {
        self.can_map(ipa, devices, ram)?;
        if !self.is_guarded(ipa) {
            self.granules[self.len] = ipa;
            self.len += 1;
        }
        Ok(())
    }

    /// Unregisters the granule at `ipa` (a granule not registered is left as it is).
    pub fn unmap(&mut self, ipa: u64) -> Result<(), GuardRefusal> {
        if !ipa.is_multiple_of(GRANULE) {
            return Err(GuardRefusal::Unaligned(ipa));
        }
        if let Some(i) = self.granules[..self.len].iter().position(|&g| g == ipa) {
            self.granules[i] = self.granules[self.len - 1];
            self.len -= 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mmio::DeviceKind;

    const RAM: Region = Region { start: 0x8000_0000, end: 0x9000_0000 };
    const DEVICES: [DeviceWindow; 2] = [
        DeviceWindow { base: 0x0900_0000, size: 0x1000, kind: DeviceKind::Console },
        DeviceWindow { base: 0x0a00_3e00, size: 0x200, kind: DeviceKind::Virtio { slot: 31 } },
    ];

    #[test]
    fn registers_only_device_granules() {
        let mut t = GuardTable::new(true);
        assert_eq!(t.map(0x0900_0000, &DEVICES, RAM), Ok(()));
        assert_eq!(t.map(0x0a00_3000, &DEVICES, RAM), Ok(()), "the page holding the transport");
        assert_eq!(t.map(0x0a00_3000, &DEVICES, RAM), Ok(()), "twice is fine");
        assert_eq!(t.map(0x0a00_2000, &DEVICES, RAM), Err(GuardRefusal::NoDevice(0x0a00_2000)));
        assert_eq!(t.map(0x0901_0000, &DEVICES, RAM), Err(GuardRefusal::NoDevice(0x0901_0000)), "not this VM's");
        assert_eq!(t.map(0x8000_0000, &DEVICES, RAM), Err(GuardRefusal::GuestRam(0x8000_0000)));
        assert_eq!(t.map(0x0900_0008, &DEVICES, RAM), Err(GuardRefusal::Unaligned(0x0900_0008)));
        assert_eq!(t.map(!0xfff, &DEVICES, RAM), Err(GuardRefusal::NoDevice(!0xfff)));
        assert!(t.is_guarded(0x0a00_3e04));
        t.unmap(0x0a00_3000).unwrap();
        assert!(!t.is_guarded(0x0a00_3e04));
        assert!(t.is_guarded(0x0900_0018));
        assert_eq!(t.unmap(0x0a00_3000), Ok(()), "unmapping what is not mapped is a no-op");
        assert_eq!(t.unmap(0x0a00_3004), Err(GuardRefusal::Unaligned(0x0a00_3004)));
    }

    #[test]
    fn enforcement_decides_what_may_be_emulated() {
        let mut t = GuardTable::new(true);
        assert!(!t.allows(0x0900_0000, 4));
        t.map(0x0900_0000, &DEVICES, RAM).unwrap();
        assert!(t.allows(0x0900_0ffc, 4));
        assert!(!t.allows(0x0900_0ffe, 4), "last byte in an unregistered granule");
        let open = GuardTable::new(false);
        assert!(open.allows(0x0900_0000, 4), "an unprotected VM is not enforced");
    }

    #[test]
    fn the_table_has_a_bound() {
        let many: Vec<DeviceWindow> = (0..=MAX_GUARDED as u64)
            .map(|i| DeviceWindow { base: 0x1000_0000 + i * GRANULE, size: 0x10, kind: DeviceKind::Console })
            .collect();
        let mut t = GuardTable::new(true);
        for d in &many[..MAX_GUARDED] {
            t.map(d.base, &many, RAM).unwrap();
        }
        let last = many[MAX_GUARDED].base;
        assert_eq!(t.map(last, &many, RAM), Err(GuardRefusal::Full(last)));
    }
}
