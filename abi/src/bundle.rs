//! The bundle: what `pvmkit` (the host VMM) hands `hyp` through QEMU's `-initrd`.
//!
//! Layout, all integers little-endian:
//!
//! ```text
//! header (32 bytes)   magic "PVMKBNDL" | version u32 | entry_count u32 | total_size u64 | reserved u64 (0)
//! entry  (40 bytes)×n kind u32 | flags u32 (0) | offset u64 | size u64 | load_ipa u64 | mem_size u64
//! data                each entry's bytes at `offset` (from the bundle's start), `size` long
//! ```
//!
//! `load_ipa`/`mem_size` say where the entry goes in guest RAM: `size` bytes are copied
//! there and the rest of `mem_size` is zeroed (a payload's `.bss`, stack and heap). The
//! [`EntryKind::VmConfig`] entry is not loaded: its data is a [`VmConfig`].
//!
//! [`Bundle::parse`] checks the container; [`Bundle::layout`] checks where things go.
//! Both return errors, never panic, whatever the bytes.
//!
//! ```
//! use abi::bundle::{encode, encoded_len, Bundle, EntryKind, EntrySpec, VmConfig};
//!
//! let config = VmConfig { ram_base: 0x8000_0000, ram_size: 256 << 20, entry_ipa: 0x8020_0000, virtio_slots: 0 }
//!     .to_bytes();
//! let (code, dt) = ([0x14u8; 64], [0u8; 64]);
//! let entries = [
//!     EntrySpec { kind: EntryKind::VmConfig, load_ipa: 0, mem_size: config.len() as u64, data: &config },
//!     EntrySpec { kind: EntryKind::Payload, load_ipa: 0x8020_0000, mem_size: 0x1000, data: &code },
//!     EntrySpec { kind: EntryKind::GuestDt, load_ipa: 0x8000_0000, mem_size: 0x1000, data: &dt },
//! ];
//! let mut bytes = vec![0u8; encoded_len(&entries)];
//! encode(&entries, &mut bytes).unwrap();
//! let bundle = Bundle::parse(&bytes).unwrap();
//! assert_eq!(bundle.config().entry_ipa, 0x8020_0000);
//! assert_eq!(bundle.layout().unwrap().payload.start, 0x8020_0000);
//! ```

use core::fmt;

use crate::memory_map::{Region, GRANULE};

/// First eight bytes of every bundle.
pub const MAGIC: [u8; 8] = *b"PVMKBNDL";
/// The format version this crate reads and writes.
pub const VERSION: u32 = 1;
/// Size of the header.
pub const HEADER_SIZE: usize = 32;
/// Size of one entry in the table after the header.
pub const ENTRY_SIZE: usize = 40;
/// The most entries a bundle may have.
pub const MAX_ENTRIES: usize = 8;
/// Size of a [`VmConfig`] entry's data.
pub const VM_CONFIG_SIZE: usize = 32;

/// What an entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum EntryKind {
    /// The VM's configuration ([`VmConfig`]); not loaded into the guest.
    VmConfig = 1,
    /// The payload image (flat), entered at [`VmConfig::entry_ipa`].
    Payload = 2,
    /// The guest's device tree, written by the host; its IPA goes to the guest in x0.
    GuestDt = 3,
    /// The pvmfw image, entered first when present (at its load IPA, which must be the
    /// VM config's entry).
    Pvmfw = 4,
    /// The per-VM secret hyp gives pvmfw, loaded in pvmfw's private region.
    VmSecret = 5,
}

impl EntryKind {
    /// Every kind, in numeric order.
    pub const ALL: [EntryKind; 5] = [Self::VmConfig, Self::Payload, Self::GuestDt, Self::Pvmfw, Self::VmSecret];

    fn from_u32(value: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| *kind as u32 == value)
    }

    /// A short name for messages.
    pub const fn name(self) -> &'static str {
        match self {
            Self::VmConfig => "vm-config",
            Self::Payload => "payload",
            Self::GuestDt => "guest-dt",
            Self::Pvmfw => "pvmfw",
            Self::VmSecret => "vm-secret",
        }
    }
}

/// The VM's configuration, the data of the [`EntryKind::VmConfig`] entry:
/// `ram_base u64 | ram_size u64 | entry_ipa u64 | virtio_slots u32 | reserved u32 (0)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmConfig {
    /// Guest RAM base IPA (identity mapped: IPA = PA).
    pub ram_base: u64,
    /// Guest RAM size in bytes.
    pub ram_size: u64,
    /// Where the guest starts (inside the payload).
    pub entry_ipa: u64,
    /// The virtio-mmio transports the VM is given: bit `i` is QEMU's transport at
    /// [`crate::memory_map::virtio_mmio_slot`]`(i)`.
    pub virtio_slots: u32,
}

impl VmConfig {
    /// Encodes the configuration as entry data.
    pub fn to_bytes(&self) -> [u8; VM_CONFIG_SIZE] {
        let mut out = [0u8; VM_CONFIG_SIZE];
        out[0..8].copy_from_slice(&self.ram_base.to_le_bytes());
        out[8..16].copy_from_slice(&self.ram_size.to_le_bytes());
        out[16..24].copy_from_slice(&self.entry_ipa.to_le_bytes());
        out[24..28].copy_from_slice(&self.virtio_slots.to_le_bytes());
        out
    }

    fn from_bytes(data: &[u8]) -> Result<Self, BundleError> {
        if data.len() != VM_CONFIG_SIZE {
            return Err(BundleError::BadVmConfigSize(data.len()));
        }
        if read_u32(data, 28) != Some(0) {
            return Err(BundleError::ReservedNotZero);
        }
        Ok(Self {
            ram_base: read_u64(data, 0).unwrap_or(0),
            ram_size: read_u64(data, 8).unwrap_or(0),
            entry_ipa: read_u64(data, 16).unwrap_or(0),
            virtio_slots: read_u32(data, 24).unwrap_or(0),
        })
    }
}

/// One entry of a parsed bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// What the entry holds.
    pub kind: EntryKind,
    /// Where it goes in guest RAM (0 for [`EntryKind::VmConfig`]).
    pub load_ipa: u64,
    /// How much guest RAM it takes, at least `data.len()`.
    pub mem_size: u64,
    /// Its bytes.
    pub data: &'a [u8],
}

/// A bundle whose container has been checked: magic, version, bounds, kinds.
#[derive(Clone, Copy, Debug)]
pub struct Bundle<'a> {
    entries: [Option<Entry<'a>>; MAX_ENTRIES],
    config: VmConfig,
}

/// Why a bundle was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BundleError {
    /// Fewer bytes than a header.
    TooShort(usize),
    /// The first eight bytes are not [`MAGIC`].
    BadMagic,
    /// A version this reader does not know.
    UnsupportedVersion(u32),
    /// No entries, or more than [`MAX_ENTRIES`].
    BadEntryCount(u32),
    /// `total_size` is smaller than the header and table, or larger than the bytes given.
    BadTotalSize {
        /// The header's claim.
        total_size: u64,
        /// The bytes available.
        available: usize,
    },
    /// A reserved field or flag is not zero.
    ReservedNotZero,
    /// An entry kind this reader does not know.
    UnknownKind(u32),
    /// The same kind appears twice.
    DuplicateKind(EntryKind),
    /// A required kind is missing.
    MissingKind(EntryKind),
    /// An entry's data lies outside the bundle or overlaps the header and table.
    EntryOutOfBounds(EntryKind),
    /// An entry's `mem_size` is smaller than its data.
    MemSizeTooSmall(EntryKind),
    /// The VM config entry's data has the wrong size.
    BadVmConfigSize(usize),
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort(n) => write!(f, "bundle is {n} bytes, shorter than its header"),
            Self::BadMagic => write!(f, "bundle magic is not PVMKBNDL"),
            Self::UnsupportedVersion(v) => write!(f, "bundle version {v} is not supported"),
            Self::BadEntryCount(n) => write!(f, "bundle has {n} entries (1..={MAX_ENTRIES})"),
            Self::BadTotalSize { total_size, available } => {
                write!(f, "bundle total_size {total_size} does not fit the {available} bytes given")
            }
            Self::ReservedNotZero => write!(f, "a reserved bundle field is not zero"),
            Self::UnknownKind(k) => write!(f, "unknown bundle entry kind {k}"),
            Self::DuplicateKind(k) => write!(f, "bundle has two {} entries", k.name()),
            Self::MissingKind(k) => write!(f, "bundle has no {} entry", k.name()),
            Self::EntryOutOfBounds(k) => write!(f, "{} entry lies outside the bundle", k.name()),
            Self::MemSizeTooSmall(k) => {
                write!(f, "{} entry's mem_size is below its size", k.name())
            }
            Self::BadVmConfigSize(n) => {
                write!(f, "vm-config entry is {n} bytes, not {VM_CONFIG_SIZE}")
            }
        }
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    let mut word = [0u8; 8];
    word.copy_from_slice(b);
    Some(u64::from_le_bytes(word))
}

impl<'a> Bundle<'a> {
    /// Checks and parses a bundle. `bytes` may be longer than the bundle (QEMU rounds
    /// nothing, but a loader might); `total_size` says where it ends.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BundleError> {
        if bytes.len() < HEADER_SIZE {
            return Err(BundleError::TooShort(bytes.len()));
        }
        if bytes[0..8] != MAGIC {
            return Err(BundleError::BadMagic);
        }
        let version = read_u32(bytes, 8).unwrap_or(0);
        if version != VERSION {
            return Err(BundleError::UnsupportedVersion(version));
        }
        let count = read_u32(bytes, 12).unwrap_or(0);
        if count == 0 || count as usize > MAX_ENTRIES {
            return Err(BundleError::BadEntryCount(count));
        }
        let table_end = HEADER_SIZE + count as usize * ENTRY_SIZE;
        let total_size = read_u64(bytes, 16).unwrap_or(0);
        if total_size < table_end as u64 || total_size > bytes.len() as u64 {
            return Err(BundleError::BadTotalSize { total_size, available: bytes.len() });
        }
        if read_u64(bytes, 24) != Some(0) {
            return Err(BundleError::ReservedNotZero);
        }
        let bytes = &bytes[..total_size as usize];

        let mut entries: [Option<Entry<'a>>; MAX_ENTRIES] = [None; MAX_ENTRIES];
        for (i, slot) in entries.iter_mut().take(count as usize).enumerate() {
            let at = HEADER_SIZE + i * ENTRY_SIZE;
            let field = |off: usize| read_u64(bytes, at + off).unwrap_or(0);
            let raw_kind = read_u32(bytes, at).unwrap_or(0);
            let kind = EntryKind::from_u32(raw_kind).ok_or(BundleError::UnknownKind(raw_kind))?;
            if read_u32(bytes, at + 4) != Some(0) {
                return Err(BundleError::ReservedNotZero);
            }
            let (offset, size, load_ipa, mem_size) = (field(8), field(16), field(24), field(32));
            let end = offset.checked_add(size).ok_or(BundleError::EntryOutOfBounds(kind))?;
            if offset < table_end as u64 || end > total_size {
                return Err(BundleError::EntryOutOfBounds(kind));
            }
            if mem_size < size {
                return Err(BundleError::MemSizeTooSmall(kind));
            }
            *slot = Some(Entry { kind, load_ipa, mem_size, data: &bytes[offset as usize..end as usize] });
        }
        for (i, entry) in entries.iter().flatten().enumerate() {
            if entries[..i].iter().flatten().any(|e| e.kind == entry.kind) {
                return Err(BundleError::DuplicateKind(entry.kind));
            }
        }
        let find = |kind| entries.iter().flatten().find(|e| e.kind == kind).copied();
        for required in [EntryKind::VmConfig, EntryKind::Payload, EntryKind::GuestDt] {
            if find(required).is_none() {
                return Err(BundleError::MissingKind(required));
            }
        }
        let config_data = find(EntryKind::VmConfig).map(|e| e.data).unwrap_or(&[]);
        let config = VmConfig::from_bytes(config_data)?;
        Ok(Self { entries, config })
    }

    /// The VM configuration.
    pub fn config(&self) -> VmConfig {
        self.config
    }

    /// The entry of a kind, if present.
    pub fn entry(&self, kind: EntryKind) -> Option<Entry<'a>> {
        self.entries.iter().flatten().find(|e| e.kind == kind).copied()
    }

    /// Every entry, in table order.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'a>> + '_ {
        self.entries.iter().flatten().copied()
    }

    /// Checks where the loadable entries go: inside guest RAM, page aligned, clear of
    /// each other, and the entry point inside the payload's data.
    pub fn layout(&self) -> Result<GuestLayout, LayoutError> {
        let VmConfig { ram_base, ram_size, entry_ipa, .. } = self.config;
        let ram_end = ram_base.checked_add(ram_size).ok_or(LayoutError::RamInvalid)?;
        if ram_size == 0 || ram_base % GRANULE != 0 || ram_size % GRANULE != 0 {
            return Err(LayoutError::RamInvalid);
        }
        let ram = Region { start: ram_base, end: ram_end };
        let mut placed: [Option<(EntryKind, Region)>; MAX_ENTRIES] = [None; MAX_ENTRIES];
        for (i, entry) in self.entries().filter(|e| e.kind != EntryKind::VmConfig).enumerate() {
            let region = Region::new(entry.load_ipa, entry.mem_size).ok_or(LayoutError::OutsideRam(entry.kind))?;
            if entry.load_ipa % GRANULE != 0 {
                return Err(LayoutError::Unaligned(entry.kind));
            }
            if entry.mem_size == 0 || !ram.contains(&region) {
                return Err(LayoutError::OutsideRam(entry.kind));
            }
            if let Some((other, _)) = placed.iter().flatten().find(|(_, r)| r.overlaps(&region)) {
                return Err(LayoutError::Overlap(*other, entry.kind));
            }
            placed[i] = Some((entry.kind, region));
        }
        let region_of = |kind| placed.iter().flatten().find(|(k, _)| *k == kind).map(|(_, r)| *r);
        let (Some(payload), Some(dt)) = (region_of(EntryKind::Payload), region_of(EntryKind::GuestDt)) else {
            return Err(LayoutError::RamInvalid);
        };
        // With pvmfw, the VM starts in pvmfw; without, in the payload.
        let first = if self.entry(EntryKind::Pvmfw).is_some() { EntryKind::Pvmfw } else { EntryKind::Payload };
        let start = region_of(first).map_or(0, |r| r.start);
        let data = self.entry(first).map_or(0, |e| e.data.len() as u64);
        if !entry_ipa.is_multiple_of(4) || entry_ipa < start || entry_ipa >= start + data {
            return Err(LayoutError::EntryOutsidePayload(entry_ipa));
        }
        Ok(GuestLayout { ram, payload, dt, pvmfw: region_of(EntryKind::Pvmfw), entry_ipa })
    }
}

/// Where everything goes in guest RAM, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestLayout {
    /// Guest RAM.
    pub ram: Region,
    /// The payload's footprint (`mem_size`).
    pub payload: Region,
    /// The guest device tree's footprint.
    pub dt: Region,
    /// pvmfw's footprint, when the bundle has one.
    pub pvmfw: Option<Region>,
    /// The first guest instruction.
    pub entry_ipa: u64,
}

/// Why a bundle's layout was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// Guest RAM is empty, unaligned or wraps.
    RamInvalid,
    /// An entry does not fit inside guest RAM.
    OutsideRam(EntryKind),
    /// An entry's load address is not page aligned.
    Unaligned(EntryKind),
    /// Two entries overlap.
    Overlap(EntryKind, EntryKind),
    /// The entry point is not inside the data of what runs first (pvmfw, or else the
    /// payload).
    EntryOutsidePayload(u64),
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RamInvalid => write!(f, "guest RAM is empty, unaligned or wraps"),
            Self::OutsideRam(k) => write!(f, "{} does not fit inside guest RAM", k.name()),
            Self::Unaligned(k) => write!(f, "{} load address is not page aligned", k.name()),
            Self::Overlap(a, b) => write!(f, "{} overlaps {}", a.name(), b.name()),
            Self::EntryOutsidePayload(ipa) => {
                write!(f, "entry point {ipa:#x} is not inside the payload")
            }
        }
    }
}

/// An entry to write with [`encode`].
#[derive(Clone, Copy, Debug)]
pub struct EntrySpec<'a> {
    /// What it holds.
    pub kind: EntryKind,
    /// Where it goes in guest RAM.
    pub load_ipa: u64,
    /// How much guest RAM it takes (at least `data.len()`).
    pub mem_size: u64,
    /// Its bytes.
    pub data: &'a [u8],
}

/// The size [`encode`] needs for these entries (data is 8-byte aligned).
pub fn encoded_len(entries: &[EntrySpec<'_>]) -> usize {
    entries.iter().fold(HEADER_SIZE + entries.len() * ENTRY_SIZE, |at, e| align8(at) + e.data.len())
}

const fn align8(n: usize) -> usize {
    (n + 7) & !7
}

/// Writes a bundle into `out` (which must be [`encoded_len`] bytes) and returns its
/// length, or `None` if `out` is too small or there are too many entries.
pub fn encode(entries: &[EntrySpec<'_>], out: &mut [u8]) -> Option<usize> {
    let total = encoded_len(entries);
    if entries.is_empty() || entries.len() > MAX_ENTRIES || out.len() < total {
        return None;
    }
    let out = &mut out[..total];
    out.fill(0);
    out[0..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&(entries.len() as u32).to_le_bytes());
    out[16..24].copy_from_slice(&(total as u64).to_le_bytes());
    let mut data_at = HEADER_SIZE + entries.len() * ENTRY_SIZE;
    for (i, e) in entries.iter().enumerate() {
        data_at = align8(data_at);
        let at = HEADER_SIZE + i * ENTRY_SIZE;
        out[at..at + 4].copy_from_slice(&(e.kind as u32).to_le_bytes());
        out[at + 8..at + 16].copy_from_slice(&(data_at as u64).to_le_bytes());
        out[at + 16..at + 24].copy_from_slice(&(e.data.len() as u64).to_le_bytes());
        out[at + 24..at + 32].copy_from_slice(&e.load_ipa.to_le_bytes());
        out[at + 32..at + 40].copy_from_slice(&e.mem_size.to_le_bytes());
        out[data_at..data_at + e.data.len()].copy_from_slice(e.data);
        data_at += e.data.len();
    }
    Some(total)
}

#[cfg(test)]
mod tests;
