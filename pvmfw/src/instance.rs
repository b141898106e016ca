//! Instance storage: pvmfw's record of the payload a VM instance was created with,
//! sealed on the instance disk ([`pvmkit_abi::instance_disk`] lays it out), and the judgement
//! of each later boot against it.
//!
//! - The key: HKDF-SHA-256 of the CDI_Seal pvmfw *received* (so only this pvmfw on this
//!   device can open or forge a record; the payload never sees that CDI), info
//!   `"pvmkit instance record key"`. The nonce: the first 12 bytes of HMAC-style
//!   SHA-256 under a second derived key over the associated data and the plaintext, so
//!   no two different records ever share a nonce without any source of randomness.
//! - A first boot records the payload's code hash, authority hash, mode, salt and
//!   rollback index. A later boot must match the code hash, the authority hash and the
//!   mode; a higher rollback index is recorded, a lower one refused.
//! - The salt of a new instance: the instance hash when the host named an instance,
//!   else derived from the received CDI_Seal and the disk id (unique per disk, unknown
//!   to the host) mixed with the hypervisor's TRNG output where it offers one.

use core::fmt;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit};
use hkdf::Hkdf;
use pvmkit_abi::instance_disk::{
    read_record, record_framing, write_record, InstanceDiskError, DISK_ID_SIZE, NONCE_SIZE, RECORD_PLAINTEXT_SIZE,
    SECTOR_SIZE, TAG_SIZE,
};
use pvmkit_dice::{Mode, CDI_SIZE, HASH_SIZE};
use sha2::{Digest, Sha256, Sha512};

/// What pvmfw records of an instance's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The code hash.
    pub code_hash: [u8; HASH_SIZE],
    /// The authority hash.
    pub authority_hash: [u8; HASH_SIZE],
    /// The mode.
    pub mode: Mode,
    /// The DICE salt of the instance.
    pub salt: [u8; HASH_SIZE],
    /// The highest rollback index booted.
    pub rollback_index: u64,
}

/// Why instance storage refused a boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceError {
    /// The disk or its record is malformed.
    Disk(InstanceDiskError),
    /// The record does not open: tampered with, moved from another disk, or sealed by
    /// another pvmfw or device.
    Tampered,
    /// The record holds a mode that is not one.
    BadMode(u8),
    /// The payload's code is not the instance's.
    CodeHashMismatch,
    /// The payload is signed by another key than the instance's.
    AuthorityHashMismatch,
    /// The payload's mode is not the instance's.
    ModeMismatch,
    /// The payload's rollback index is below the recorded one.
    RolledBack {
        /// The recorded index.
        recorded: u64,
        /// The payload's.
        found: u64,
    },
}

impl From<InstanceDiskError> for InstanceError {
    fn from(e: InstanceDiskError) -> Self {
        Self::Disk(e)
    }
}

impl fmt::Display for InstanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disk(e) => write!(f, "{e}"),
            Self::Tampered => write!(f, "the instance record does not open: tampered with, or not sealed here"),
            Self::BadMode(m) => write!(f, "the instance record holds mode {m}"),
            Self::CodeHashMismatch => {
                write!(f, "the payload's code hash is not the one this instance was created with")
            }
            Self::AuthorityHashMismatch => {
                write!(f, "the payload's authority hash (its key) is not the one this instance was created with")
            }
            Self::ModeMismatch => write!(f, "the payload's DICE mode is not the one this instance was created with"),
            Self::RolledBack { recorded, found } => {
                write!(f, "rollback index {found} is below the {recorded} this instance has booted")
            }
        }
    }
}

/// The keys for one disk, from the CDI_Seal pvmfw received.
pub struct Keys {
    aead: [u8; 32],
    nonce: [u8; 32],
    salt: [u8; HASH_SIZE],
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.aead.fill(0);
        self.nonce.fill(0);
        self.salt.fill(0);
    }
}

impl Keys {
    /// The keys for the disk `disk_id` under `cdi_seal`.
    pub fn derive(cdi_seal: &[u8; CDI_SIZE], disk_id: &[u8; DISK_ID_SIZE]) -> Self {
        let sha256 = Hkdf::<Sha256>::new(None, cdi_seal);
        let mut keys = Keys { aead: [0; 32], nonce: [0; 32], salt: [0; HASH_SIZE] };
        // 32 bytes from HKDF-SHA-256 never exceed its limit (255 × 32).
        let _ = sha256.expand(b"pvmkit instance record key", &mut keys.aead);
        let _ = sha256.expand(b"pvmkit instance record nonce key", &mut keys.nonce);
        let _ = Hkdf::<Sha512>::new(Some(disk_id), cdi_seal).expand(b"pvmkit instance salt", &mut keys.salt);
        keys
    }

    /// The salt of a new instance on this disk: derived, mixed with `entropy` (the
    /// TRNG's, where the hypervisor offers one).
    pub fn new_salt(&self, entropy: Option<&[u8]>) -> [u8; HASH_SIZE] {
        match entropy {
            Some(random) => Sha512::new().chain_update(self.salt).chain_update(random).finalize().into(),
            None => self.salt,
        }
    }
}

/// The associated data: the record's framing and the disk id.
fn associated_data(disk_id: &[u8; DISK_ID_SIZE]) -> [u8; 16 + DISK_ID_SIZE] {
    let mut aad = [0u8; 16 + DISK_ID_SIZE];
    aad[..16].copy_from_slice(&record_framing());
    aad[16..].copy_from_slice(disk_id);
    aad
}

fn plaintext(record: &Record) -> [u8; RECORD_PLAINTEXT_SIZE] {
    let mut p = [0u8; RECORD_PLAINTEXT_SIZE];
    p[..64].copy_from_slice(&record.code_hash);
    p[64..128].copy_from_slice(&record.authority_hash);
    p[128] = record.mode as u8;
    p[129..193].copy_from_slice(&record.salt);
    p[193..].copy_from_slice(&record.rollback_index.to_le_bytes());
    p
}

/// `record` sealed for the disk `disk_id`: the record sector.
pub fn seal(record: &Record, keys: &Keys, disk_id: &[u8; DISK_ID_SIZE]) -> [u8; SECTOR_SIZE] {
    let aad = associated_data(disk_id);
    let mut buffer = plaintext(record);
    let digest = Sha256::new().chain_update(keys.nonce).chain_update(aad).chain_update(buffer).finalize();
    let mut nonce = [0u8; NONCE_SIZE];
    nonce.copy_from_slice(&digest[..NONCE_SIZE]);
    let cipher = Aes256Gcm::new(&keys.aead.into());
    // A 201-byte message is far below AES-GCM's limit: sealing cannot fail.
    let tag = cipher.encrypt_in_place_detached(&nonce.into(), &aad, &mut buffer).unwrap_or_default();
    let mut tag_bytes = [0u8; TAG_SIZE];
    tag_bytes.copy_from_slice(&tag);
    write_record(&nonce, &buffer, &tag_bytes)
}

/// The record in `sector` of the disk `disk_id`, opened: `None` before the first boot.
pub fn open(
    sector: &[u8; SECTOR_SIZE],
    keys: &Keys,
    disk_id: &[u8; DISK_ID_SIZE],
) -> Result<Option<Record>, InstanceError> {
    let Some(sealed) = read_record(sector)? else { return Ok(None) };
    let aad = associated_data(disk_id);
    let mut buffer = *sealed.ciphertext;
    let cipher = Aes256Gcm::new(&keys.aead.into());
    cipher
        .decrypt_in_place_detached(sealed.nonce.into(), &aad, &mut buffer, sealed.tag.into())
        .map_err(|_| InstanceError::Tampered)?;
    let mode = match buffer[128] {
        1 => Mode::Normal,
        2 => Mode::Debug,
        m => return Err(InstanceError::BadMode(m)),
    };
    let take = |at: usize| -> [u8; HASH_SIZE] { buffer[at..at + HASH_SIZE].try_into().unwrap_or([0; HASH_SIZE]) };
    let mut index = [0u8; 8];
    index.copy_from_slice(&buffer[193..]);
    Ok(Some(Record {
        code_hash: take(0),
        authority_hash: take(64),
        mode,
        salt: take(129),
        rollback_index: u64::from_le_bytes(index),
    }))
}

/// What a boot does to the instance's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A new instance: write this record.
    Create(Record),
    /// The same payload at the recorded rollback index: nothing to write.
    Same(Record),
    /// The same payload at a higher rollback index: write this record.
    Update(Record),
}

impl Verdict {
    /// The record the boot goes on with.
    pub fn record(&self) -> &Record {
        match self {
            Self::Create(r) | Self::Same(r) | Self::Update(r) => r,
        }
    }

    /// What to write, if anything.
    pub fn to_write(&self) -> Option<&Record> {
        match self {
            Self::Create(r) | Self::Update(r) => Some(r),
            Self::Same(_) => None,
        }
    }
}

/// Judges the boot of `measured` (its salt the new instance's, used only if there is no
/// record) against `recorded`.
pub fn judge(recorded: Option<Record>, measured: Record) -> Result<Verdict, InstanceError> {
    let Some(recorded) = recorded else { return Ok(Verdict::Create(measured)) };
    if recorded.code_hash != measured.code_hash {
        return Err(InstanceError::CodeHashMismatch);
    }
    if recorded.authority_hash != measured.authority_hash {
        return Err(InstanceError::AuthorityHashMismatch);
    }
    if recorded.mode != measured.mode {
        return Err(InstanceError::ModeMismatch);
    }
    match measured.rollback_index.cmp(&recorded.rollback_index) {
        core::cmp::Ordering::Less => {
            Err(InstanceError::RolledBack { recorded: recorded.rollback_index, found: measured.rollback_index })
        }
        core::cmp::Ordering::Equal => Ok(Verdict::Same(recorded)),
        core::cmp::Ordering::Greater => {
            Ok(Verdict::Update(Record { rollback_index: measured.rollback_index, ..recorded }))
        }
    }
}

#[cfg(test)]
mod tests;
