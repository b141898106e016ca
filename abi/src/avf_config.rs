//! The configuration data a bootloader appends to pvmfw's image, at the next 4 KiB
//! boundary, as AVF defines it (AOSP `guest/pvmfw/README.md`, "Configuration Data"):
//! a header (magic `pvmf`, version `major << 16 | minor`, total size, flags, all
//! little-endian `u32`), then one `(offset, size)` pair per entry, then the entries'
//! blobs, each 8-byte aligned, offsets from the header's start. A size of 0 means the
//! entry is absent.
//!
//! | entry | since | holds |
//! |---|---|---|
//! | 0 | 1.0 | the DICE handover (mandatory) |
//! | 1 | 1.0 | a debug-policy DTBO |
//! | 2 | 1.1 | a VM DTBO (device assignment) |
//! | 3 | 1.2 | the VM reference DT |
//!
//! A later 1.x minor is read as 1.2 (its extra entries are not pvmfw's to use), as AVF
//! reads it. Everything else wrong is refused by name ([`ConfigError`]).
//!
//! ```
//! use pvmkit_abi::avf_config::{parse, ConfigError};
//!
//! assert_eq!(parse(b"nope").unwrap_err(), ConfigError::TooSmall);
//! ```

use core::fmt;
use core::ops::Range;

pub use crate::dice_handover::{DiceHandover, HandoverError};

use zerocopy::byteorder::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `pvmf`, read as a little-endian `u32`.
pub const MAGIC: u32 = 0x666d_7670;
/// The version this reads fully: 1.2.
pub const VERSION_1_2: u32 = (1 << 16) | 2;
/// Entries of a 1.2 configuration.
pub const ENTRIES: usize = 4;
/// Where the configuration starts: the next multiple of this after pvmfw's image.
pub const ALIGN: usize = 4096;
/// Every blob's alignment.
pub const BLOB_ALIGN: u32 = 8;

/// The fixed header.
#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: U32,
    /// `major << 16 | minor`.
    pub version: U32,
    /// The configuration's size, header included.
    pub total_size: U32,
    /// Flags (none defined).
    pub flags: U32,
}

/// One entry's place.
#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug)]
pub struct EntryPlace {
    /// From the header's start.
    pub offset: U32,
    /// 0: absent.
    pub size: U32,
}

/// The entries, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The DICE handover: the CBOR map `{1: CDI_Attest, 2: CDI_Seal, 3: DICE chain}`.
    DiceHandover = 0,
    /// A debug-policy DTBO.
    DebugPolicy = 1,
    /// A VM DTBO for device assignment.
    VmDtbo = 2,
    /// The VM reference DT.
    VmReferenceDt = 3,
}

/// Why a configuration was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// Shorter than its header and entry table.
    TooSmall,
    /// Not `pvmf`.
    BadMagic(u32),
    /// A major version other than 1.
    UnsupportedVersion(u32),
    /// `total_size` is smaller than the header or larger than what was loaded.
    BadTotalSize(u32),
    /// The entry's blob runs past `total_size` or into the header.
    OutOfBounds(usize),
    /// The entry's offset is not 8-byte aligned.
    Misaligned(usize),
    /// The entry overlaps the one before it, or comes before it.
    Overlapping(usize),
    /// The mandatory DICE handover is absent.
    NoDiceHandover,
    /// The DICE handover is not the CBOR map it must be.
    BadDiceHandover(HandoverError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooSmall => write!(f, "configuration data: too small for its header"),
            Self::BadMagic(m) => write!(f, "configuration data: bad magic {m:#x} (not 'pvmf')"),
            Self::UnsupportedVersion(v) => {
                write!(f, "configuration data: unsupported version {}.{}", v >> 16, v & 0xffff)
            }
            Self::BadTotalSize(s) => write!(f, "configuration data: total size {s} does not fit what was loaded"),
            Self::OutOfBounds(i) => write!(f, "configuration data: entry {i} is out of bounds"),
            Self::Misaligned(i) => write!(f, "configuration data: entry {i} is not 8-byte aligned"),
            Self::Overlapping(i) => write!(f, "configuration data: entry {i} overlaps or precedes the one before"),
            Self::NoDiceHandover => write!(f, "configuration data: no DICE handover (entry 0)"),
            Self::BadDiceHandover(why) => write!(f, "configuration data: {why}"),
        }
    }
}

/// A checked configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config<'a> {
    /// Its version as written.
    pub version: u32,
    /// Its flags as written.
    pub flags: u32,
    bytes: &'a [u8],
    entries: [Option<Range<usize>>; ENTRIES],
}

/// How many entries a version has: 2 (1.0), 3 (1.1), 4 (1.2 and later minors).
pub const fn entries_of(version: u32) -> usize {
    match version & 0xffff {
        0 => 2,
        1 => 3,
        _ => 4,
    }
}

/// Checks the configuration at the start of `loaded` (which may run on past it).
pub fn parse(loaded: &[u8]) -> Result<Config<'_>, ConfigError> {
    let (header, rest) = Header::ref_from_prefix(loaded).map_err(|_| ConfigError::TooSmall)?;
    if header.magic.get() != MAGIC {
        return Err(ConfigError::BadMagic(header.magic.get()));
    }
    let version = header.version.get();
    if version >> 16 != 1 {
        return Err(ConfigError::UnsupportedVersion(version));
    }
    let count = entries_of(version);
    let (places, _) = <[EntryPlace]>::ref_from_prefix_with_elems(rest, count).map_err(|_| ConfigError::TooSmall)?;
    let table_end = core::mem::size_of::<Header>() + count * core::mem::size_of::<EntryPlace>();
    let total = header.total_size.get();
    if (total as usize) < table_end || total as usize > loaded.len() {
        return Err(ConfigError::BadTotalSize(total));
    }
    let mut entries: [Option<Range<usize>>; ENTRIES] = Default::default();
    let mut previous_end = table_end;
    for (i, place) in places.iter().enumerate() {
        let (offset, size) = (place.offset.get(), place.size.get());
        if size == 0 {
            continue;
        }
        if offset % BLOB_ALIGN != 0 {
            return Err(ConfigError::Misaligned(i));
        }
        let end = offset.checked_add(size).ok_or(ConfigError::OutOfBounds(i))?;
        if (offset as usize) < table_end || end > total {
            return Err(ConfigError::OutOfBounds(i));
        }
        if (offset as usize) < previous_end {
            return Err(ConfigError::Overlapping(i));
        }
        previous_end = end as usize;
        entries[i] = Some(offset as usize..end as usize);
    }
    let config = Config { version, flags: header.flags.get(), bytes: &loaded[..total as usize], entries };
    let handover = config.entry(Entry::DiceHandover).ok_or(ConfigError::NoDiceHandover)?;
    DiceHandover::parse(handover).map_err(ConfigError::BadDiceHandover)?;
    Ok(config)
}

impl<'a> Config<'a> {
    /// The blob of `entry`, if present.
    pub fn entry(&self, entry: Entry) -> Option<&'a [u8]> {
        self.entries[entry as usize].clone().map(|r| &self.bytes[r])
    }

    /// The DICE handover (checked by [`parse`]).
    pub fn dice_handover(&self) -> Result<DiceHandover<'a>, ConfigError> {
        DiceHandover::parse(self.entry(Entry::DiceHandover).ok_or(ConfigError::NoDiceHandover)?)
            .map_err(ConfigError::BadDiceHandover)
    }
}

#[cfg(test)]
mod tests;
