//! The instance disk (the role of AVF's `instance.img`): a virtio-blk disk the host
//! keeps per VM instance, on which pvmfw records what it booted. The format is
//! pvmkit's own:
//!
//! | sector | bytes | what |
//! |---|---|---|
//! | 0 | 0..16 | [`HEADER_MAGIC`] (`"pvmkit instance\0"`) |
//! | 0 | 16..20 | [`VERSION`] (1), little-endian |
//! | 0 | 20..24 | zero |
//! | 0 | 24..56 | the disk id: 32 random bytes the host writes when it creates the disk |
//! | 0 | 56..512 | zero |
//! | 1 | 0..512 | pvmfw's record ([`SealedRecord`]), or 512 zero bytes before the first boot |
//!
//! The record, sealed by pvmfw with AES-256-GCM under a key only it can derive:
//!
//! | bytes | what |
//! |---|---|
//! | 0..8 | [`RECORD_MAGIC`] (`"PVMFWREC"`) |
//! | 8..12 | [`VERSION`] (1), little-endian |
//! | 12..16 | the plaintext's length ([`RECORD_PLAINTEXT_SIZE`]), little-endian |
//! | 16..28 | the nonce |
//! | 28..229 | the ciphertext |
//! | 229..245 | the tag |
//! | 245..512 | zero |
//!
//! The plaintext: code hash (64) ‖ authority hash (64) ‖ mode (1) ‖ salt (64) ‖ rollback
//! index (8, little-endian). Bytes 0..16 of the record and the disk id are the
//! associated data: a record moved to another disk, or its framing edited, does not open.

use core::fmt;

/// Bytes of a sector.
pub const SECTOR_SIZE: usize = 512;
/// The sector of the header.
pub const HEADER_SECTOR: u64 = 0;
/// The sector of pvmfw's record.
pub const RECORD_SECTOR: u64 = 1;
/// The smallest instance disk: the header and the record.
pub const MIN_SECTORS: u64 = 2;
/// The header's magic.
pub const HEADER_MAGIC: [u8; 16] = *b"pvmkit instance\0";
/// The record's magic.
pub const RECORD_MAGIC: [u8; 8] = *b"PVMFWREC";
/// The format's version.
pub const VERSION: u32 = 1;
/// Bytes of the disk id.
pub const DISK_ID_SIZE: usize = 32;
/// Bytes of the record's plaintext.
pub const RECORD_PLAINTEXT_SIZE: usize = 64 + 64 + 1 + 64 + 8;
/// Bytes of the nonce.
pub const NONCE_SIZE: usize = 12;
/// Bytes of the tag.
pub const TAG_SIZE: usize = 16;
/// Where the nonce starts in the record sector.
const NONCE_AT: usize = 16;
/// Where the ciphertext starts.
const CIPHERTEXT_AT: usize = NONCE_AT + NONCE_SIZE;
/// Where the tag starts.
const TAG_AT: usize = CIPHERTEXT_AT + RECORD_PLAINTEXT_SIZE;
/// The bytes of the record sector its AEAD covers as associated data (with the disk id).
pub const RECORD_FRAMING: usize = 16;

/// Why an instance disk was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceDiskError {
    /// Sector 0 is not an instance disk's header.
    NotAnInstanceDisk,
    /// A version other than 1.
    UnknownVersion(u32),
    /// Reserved header bytes are not zero.
    DirtyHeader,
    /// The record sector is neither empty nor a record of this format.
    MalformedRecord,
}

impl fmt::Display for InstanceDiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnInstanceDisk => write!(f, "the disk does not start with an instance disk's header"),
            Self::UnknownVersion(v) => write!(f, "instance disk version {v} (this pvmfw reads 1)"),
            Self::DirtyHeader => write!(f, "the instance disk's header has non-zero reserved bytes"),
            Self::MalformedRecord => write!(f, "the instance record is not a sealed record of version 1"),
        }
    }
}

/// The header sector of a new disk with `disk_id`.
pub fn header(disk_id: &[u8; DISK_ID_SIZE]) -> [u8; SECTOR_SIZE] {
    let mut sector = [0u8; SECTOR_SIZE];
    sector[..16].copy_from_slice(&HEADER_MAGIC);
    sector[16..20].copy_from_slice(&VERSION.to_le_bytes());
    sector[24..24 + DISK_ID_SIZE].copy_from_slice(disk_id);
    sector
}

/// The disk id of a header sector.
pub fn read_header(sector: &[u8; SECTOR_SIZE]) -> Result<[u8; DISK_ID_SIZE], InstanceDiskError> {
    if sector[..16] != HEADER_MAGIC {
        return Err(InstanceDiskError::NotAnInstanceDisk);
    }
    let version = u32::from_le_bytes([sector[16], sector[17], sector[18], sector[19]]);
    if version != VERSION {
        return Err(InstanceDiskError::UnknownVersion(version));
    }
    if sector[20..24].iter().chain(&sector[24 + DISK_ID_SIZE..]).any(|&b| b != 0) {
        return Err(InstanceDiskError::DirtyHeader);
    }
    let mut id = [0u8; DISK_ID_SIZE];
    id.copy_from_slice(&sector[24..24 + DISK_ID_SIZE]);
    Ok(id)
}

/// A sealed record's parts, as they lie in its sector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealedRecord<'a> {
    /// Bytes 0..16: magic, version, length (associated data).
    pub framing: &'a [u8; RECORD_FRAMING],
    /// The nonce.
    pub nonce: &'a [u8; NONCE_SIZE],
    /// The ciphertext.
    pub ciphertext: &'a [u8; RECORD_PLAINTEXT_SIZE],
    /// The tag.
    pub tag: &'a [u8; TAG_SIZE],
}

/// The record in a record sector: `None` for an empty (all-zero) sector.
pub fn read_record(sector: &[u8; SECTOR_SIZE]) -> Result<Option<SealedRecord<'_>>, InstanceDiskError> {
    if sector.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    let bad = InstanceDiskError::MalformedRecord;
    let framing = record_framing();
    if sector[..RECORD_FRAMING] != framing || sector[TAG_AT + TAG_SIZE..].iter().any(|&b| b != 0) {
        return Err(bad);
    }
    let part = |at: usize, len: usize| &sector[at..at + len];
    Ok(Some(SealedRecord {
        framing: part(0, RECORD_FRAMING).try_into().map_err(|_| bad)?,
        nonce: part(NONCE_AT, NONCE_SIZE).try_into().map_err(|_| bad)?,
        ciphertext: part(CIPHERTEXT_AT, RECORD_PLAINTEXT_SIZE).try_into().map_err(|_| bad)?,
        tag: part(TAG_AT, TAG_SIZE).try_into().map_err(|_| bad)?,
    }))
}

/// The record's framing (its first 16 bytes).
pub fn record_framing() -> [u8; RECORD_FRAMING] {
    let mut framing = [0u8; RECORD_FRAMING];
    framing[..8].copy_from_slice(&RECORD_MAGIC);
    framing[8..12].copy_from_slice(&VERSION.to_le_bytes());
    framing[12..16].copy_from_slice(&(RECORD_PLAINTEXT_SIZE as u32).to_le_bytes());
    framing
}

/// The record sector holding `nonce`, `ciphertext` and `tag`.
pub fn write_record(
    nonce: &[u8; NONCE_SIZE],
    ciphertext: &[u8; RECORD_PLAINTEXT_SIZE],
    tag: &[u8; TAG_SIZE],
) -> [u8; SECTOR_SIZE] {
    let mut sector = [0u8; SECTOR_SIZE];
    sector[..RECORD_FRAMING].copy_from_slice(&record_framing());
    sector[NONCE_AT..CIPHERTEXT_AT].copy_from_slice(nonce);
    sector[CIPHERTEXT_AT..TAG_AT].copy_from_slice(ciphertext);
    sector[TAG_AT..TAG_AT + TAG_SIZE].copy_from_slice(tag);
    sector
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_round_trips_and_refuses_what_is_not_one() {
        let h = header(&[7; 32]);
        assert_eq!(&h[..16], b"pvmkit instance\0");
        assert_eq!(read_header(&h), Ok([7; 32]));
        assert_eq!(read_header(&[0; 512]), Err(InstanceDiskError::NotAnInstanceDisk));
        let mut v2 = h;
        v2[16] = 2;
        assert_eq!(read_header(&v2), Err(InstanceDiskError::UnknownVersion(2)));
        let mut dirty = h;
        dirty[100] = 1;
        assert_eq!(read_header(&dirty), Err(InstanceDiskError::DirtyHeader));
        assert!(InstanceDiskError::UnknownVersion(2).to_string().contains("version 2"));
        assert!(InstanceDiskError::NotAnInstanceDisk.to_string().contains("header"));
        assert!(InstanceDiskError::DirtyHeader.to_string().contains("reserved"));
    }

    #[test]
    fn the_record_sector_is_empty_or_a_record_of_this_layout() {
        assert_eq!(read_record(&[0; 512]), Ok(None));
        let sector = write_record(&[1; 12], &[2; RECORD_PLAINTEXT_SIZE], &[3; 16]);
        // The layout the module's table gives.
        assert_eq!(&sector[..8], b"PVMFWREC");
        assert_eq!(sector[12..16], (201u32).to_le_bytes());
        assert_eq!((sector[16], sector[28], sector[228], sector[229], sector[244], sector[245]), (1, 2, 2, 3, 3, 0));
        let r = read_record(&sector).unwrap().unwrap();
        assert_eq!((r.nonce, r.ciphertext[0], r.tag), (&[1; 12], 2, &[3; 16]));
        for at in [0, 8, 12, 300] {
            let mut bad = sector;
            bad[at] ^= 1;
            assert_eq!(read_record(&bad), Err(InstanceDiskError::MalformedRecord), "byte {at}");
        }
    }
}
