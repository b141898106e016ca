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
//! use pvmkit_abi::bundle::{encode, encoded_len, Bundle, EntryKind, EntrySpec, VmConfig};
//!
//! let config = VmConfig { ram_base: 0x8000_0000, ram_size: 256 << 20, entry_ipa: 0x8020_0000, virtio_slots: 0, vcpus: 1 }
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

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::memory_map::{Region, GRANULE};

/// First eight bytes of every bundle.
pub const MAGIC: [u8; 8] = *b"PVMKBNDL";
/// The format version this crate reads and writes (2: kind 5 is the ramdisk; in 1 it
/// was a per-VM secret for pvmfw, which AVF's contract has no place for).
pub const VERSION: u32 = 2;
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
    /// The ramdisk, where the guest DT's `/chosen` `linux,initrd-start` says.
    Ramdisk = 5,
}

impl EntryKind {
    /// Every kind, in numeric order.
    pub const ALL: [EntryKind; 5] = [Self::VmConfig, Self::Payload, Self::GuestDt, Self::Pvmfw, Self::Ramdisk];

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
            Self::Ramdisk => "ramdisk",
        }
    }
}

/// The header, as it lies in the file.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct RawHeader {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`VERSION`].
    pub version: U32,
    /// Entries in the table after the header.
    pub entry_count: U32,
    /// Bytes of the whole bundle.
    pub total_size: U64,
    /// Zero.
    pub reserved: U64,
}

/// One entry of the table, as it lies in the file.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct RawEntry {
    /// An [`EntryKind`].
    pub kind: U32,
    /// Zero.
    pub flags: U32,
    /// Where the data starts, from the bundle's start.
    pub offset: U64,
    /// Bytes of data.
    pub size: U64,
    /// Where it goes in guest RAM.
    pub load_ipa: U64,
    /// How much guest RAM it takes.
    pub mem_size: U64,
}

/// The VM configuration entry's data, as it lies in the file.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct RawVmConfig {
    /// [`VmConfig::ram_base`].
    pub ram_base: U64,
    /// [`VmConfig::ram_size`].
    pub ram_size: U64,
    /// [`VmConfig::entry_ipa`].
    pub entry_ipa: U64,
    /// [`VmConfig::virtio_slots`].
    pub virtio_slots: U32,
    /// [`VmConfig::vcpus`].
    pub vcpus: U32,
}

const _: () = assert!(size_of::<RawHeader>() == HEADER_SIZE);
const _: () = assert!(size_of::<RawEntry>() == ENTRY_SIZE);
const _: () = assert!(size_of::<RawVmConfig>() == VM_CONFIG_SIZE);

/// The entry of `kind` in a bundle's table, for editing in place (tools and tests);
/// `None` if the table does not hold one.
pub fn entry_mut(bytes: &mut [u8], kind: EntryKind) -> Option<&mut RawEntry> {
    let (header, rest) = RawHeader::mut_from_prefix(bytes).ok()?;
    let count = (header.entry_count.get() as usize).min(MAX_ENTRIES);
    let (table, _) = <[RawEntry]>::mut_from_prefix_with_elems(rest, count).ok()?;
    table.iter_mut().find(|e| e.kind.get() == kind as u32)
}

/// The VM's configuration, the data of the [`EntryKind::VmConfig`] entry:
/// `ram_base u64 | ram_size u64 | entry_ipa u64 | virtio_slots u32 | vcpus u32`.
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
    /// The vCPUs the VM is given, 1 to [`MAX_VCPUS`]: vCPU 0 starts at `entry_ipa`, the
    /// others powered off until the guest starts them (PSCI CPU_ON). vCPU `i`'s MPIDR
    /// affinity is `i` (Aff0), as QEMU `virt` and KVM number them.
    pub vcpus: u32,
}

/// The most vCPUs a VM may have.
pub const MAX_VCPUS: u32 = 8;

impl VmConfig {
    /// Encodes the configuration as entry data.
    pub fn to_bytes(&self) -> [u8; VM_CONFIG_SIZE] {
        let raw = RawVmConfig {
            ram_base: self.ram_base.into(),
            ram_size: self.ram_size.into(),
            entry_ipa: self.entry_ipa.into(),
            virtio_slots: self.virtio_slots.into(),
            vcpus: self.vcpus.into(),
        };
        let mut out = [0u8; VM_CONFIG_SIZE];
        out.copy_from_slice(raw.as_bytes());
        out
    }

    fn from_bytes(data: &[u8]) -> Result<Self, BundleError> {
        let raw = RawVmConfig::read_from_bytes(data).map_err(|_| BundleError::BadVmConfigSize(data.len()))?;
        let vcpus = raw.vcpus.get();
        if !(1..=MAX_VCPUS).contains(&vcpus) {
            return Err(BundleError::BadVcpus(vcpus));
        }
        Ok(Self {
            ram_base: raw.ram_base.get(),
            ram_size: raw.ram_size.get(),
            entry_ipa: raw.entry_ipa.get(),
            virtio_slots: raw.virtio_slots.get(),
            vcpus,
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
    /// A vCPU count of 0 or above [`MAX_VCPUS`].
    BadVcpus(u32),
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
            Self::BadVcpus(n) => write!(f, "bundle asks for {n} vCPUs (1..={MAX_VCPUS})"),
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

impl<'a> Bundle<'a> {
    /// Checks and parses a bundle. `bytes` may be longer than the bundle (QEMU rounds
    /// nothing, but a loader might); `total_size` says where it ends.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BundleError> {
        let (header, rest) = RawHeader::read_from_prefix(bytes).map_err(|_| BundleError::TooShort(bytes.len()))?;
        if header.magic != MAGIC {
            return Err(BundleError::BadMagic);
        }
        if header.version.get() != VERSION {
            return Err(BundleError::UnsupportedVersion(header.version.get()));
        }
        let count = header.entry_count.get();
        if count == 0 || count as usize > MAX_ENTRIES {
            return Err(BundleError::BadEntryCount(count));
        }
        let table_end = HEADER_SIZE + count as usize * ENTRY_SIZE;
        let total_size = header.total_size.get();
        if total_size < table_end as u64 || total_size > bytes.len() as u64 {
            return Err(BundleError::BadTotalSize { total_size, available: bytes.len() });
        }
        if header.reserved.get() != 0 {
            return Err(BundleError::ReservedNotZero);
        }
        let bytes = &bytes[..total_size as usize];
        let (table, _) = <[RawEntry]>::ref_from_prefix_with_elems(rest, count as usize)
            .map_err(|_| BundleError::BadTotalSize { total_size, available: bytes.len() })?;

        let mut entries: [Option<Entry<'a>>; MAX_ENTRIES] = [None; MAX_ENTRIES];
        for (raw, slot) in table.iter().zip(entries.iter_mut()) {
            let raw_kind = raw.kind.get();
            let kind = EntryKind::from_u32(raw_kind).ok_or(BundleError::UnknownKind(raw_kind))?;
            if raw.flags.get() != 0 {
                return Err(BundleError::ReservedNotZero);
            }
            let (offset, size, load_ipa, mem_size) =
                (raw.offset.get(), raw.size.get(), raw.load_ipa.get(), raw.mem_size.get());
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
    let header = RawHeader {
        magic: MAGIC,
        version: VERSION.into(),
        entry_count: (entries.len() as u32).into(),
        total_size: (total as u64).into(),
        reserved: 0.into(),
    };
    out[..HEADER_SIZE].copy_from_slice(header.as_bytes());
    let mut data_at = HEADER_SIZE + entries.len() * ENTRY_SIZE;
    for (i, e) in entries.iter().enumerate() {
        data_at = align8(data_at);
        let raw = RawEntry {
            kind: (e.kind as u32).into(),
            flags: 0.into(),
            offset: (data_at as u64).into(),
            size: (e.data.len() as u64).into(),
            load_ipa: e.load_ipa.into(),
            mem_size: e.mem_size.into(),
        };
        let at = HEADER_SIZE + i * ENTRY_SIZE;
        out[at..at + ENTRY_SIZE].copy_from_slice(raw.as_bytes());
        out[data_at..data_at + e.data.len()].copy_from_slice(e.data);
        data_at += e.data.len();
    }
    Some(total)
}

#[cfg(test)]
mod tests;
