//! Verifying an AVB-signed payload the way AVF's pvmfw does: the vbmeta image's key
//! must be the one pvmfw trusts (embedded at build time), its hash must be that of its
//! header and auxiliary block, its RSA signature (PKCS#1 v1.5) must verify with that
//! key, and the `boot` hash descriptor's digest must be SHA-256 of its salt and the
//! image. Verification that the vbmeta flags turn off is refused: a payload either
//! verifies or does not boot.
//!
//! A ramdisk is verified against the kernel's `initrd_normal` descriptor, else its
//! `initrd_debug` one (which makes the payload debuggable); one that matches neither,
//! a ramdisk the kernel has no descriptor for and a kernel with ramdisk descriptors
//! booted without one are refused. The hash descriptors may name only these three
//! partitions, each once.
//!
//! The formats are [`pvmkit_abi::avb`]'s; the arithmetic is RustCrypto's (`rsa`, `sha2`).

use core::fmt;

use pvmkit_abi::avb::{AvbError, Descriptor, HashDescriptor, SignedPayload};
use rsa::pkcs1v15::Pkcs1v15Sign;
use rsa::{BigUint, RsaPublicKey};
use sha2::{Digest, Sha256, Sha512};

/// The partition name of the kernel's hash descriptor.
pub const BOOT_PARTITION: &[u8] = b"boot";
/// The ramdisk of a normal boot.
pub const INITRD_NORMAL: &[u8] = b"initrd_normal";
/// The ramdisk of a debuggable boot.
pub const INITRD_DEBUG: &[u8] = b"initrd_debug";
/// The one hash algorithm AVF accepts in a hash descriptor.
pub const HASH_ALGORITHM: &[u8] = b"sha256";
/// AVB's RSA public exponent (its key format stores none: libavb assumes 65537).
const RSA_EXPONENT: u32 = 65537;

/// Why a signed payload was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AvbVerifyError {
    /// The AVB data is malformed.
    Format(AvbError),
    /// The vbmeta flags disable verification.
    VerificationDisabled(u32),
    /// The vbmeta image's key is not the one pvmfw trusts.
    UntrustedKey,
    /// The key pvmfw trusts is not a usable RSA key.
    BadTrustedKey,
    /// The vbmeta hash is not that of its header and auxiliary block.
    VbmetaHashMismatch,
    /// The signature does not verify with the trusted key.
    BadSignature,
    /// No hash descriptor for the `boot` partition.
    NoBootDescriptor,
    /// The hash descriptor names another algorithm than sha256.
    UnsupportedHash,
    /// The descriptor's image size is not the image's.
    ImageSizeMismatch,
    /// The image's digest is not the descriptor's.
    DigestMismatch,
    /// A hash descriptor for a partition other than boot and the two ramdisks.
    UnexpectedPartition,
    /// Two hash descriptors for one partition.
    DuplicatePartition,
    /// A ramdisk, but the kernel has no ramdisk descriptor.
    NoInitrdDescriptor,
    /// Ramdisk descriptors, but no ramdisk.
    InitrdMissing,
    /// The ramdisk matches neither descriptor.
    InitrdMismatch,
}

impl From<AvbError> for AvbVerifyError {
    fn from(e: AvbError) -> Self {
        Self::Format(e)
    }
}

impl fmt::Display for AvbVerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Format(e) => write!(f, "{e}"),
            Self::VerificationDisabled(flags) => write!(f, "vbmeta flags {flags:#x} disable verification"),
            Self::UntrustedKey => write!(f, "the vbmeta image is signed with a key pvmfw does not trust"),
            Self::BadTrustedKey => write!(f, "pvmfw's trusted key is not a usable RSA key"),
            Self::VbmetaHashMismatch => write!(f, "the vbmeta hash does not match its header and auxiliary block"),
            Self::BadSignature => write!(f, "the vbmeta signature does not verify with the trusted key"),
            Self::NoBootDescriptor => write!(f, "no hash descriptor for partition 'boot'"),
            Self::UnsupportedHash => write!(f, "the boot hash descriptor's algorithm is not sha256"),
            Self::ImageSizeMismatch => write!(f, "the boot hash descriptor's image size is not the image's"),
            Self::DigestMismatch => write!(f, "the image does not match the boot hash descriptor's digest"),
            Self::UnexpectedPartition => write!(f, "a hash descriptor for a partition other than boot and initrd_*"),
            Self::DuplicatePartition => write!(f, "two hash descriptors for one partition"),
            Self::NoInitrdDescriptor => write!(f, "a ramdisk was loaded but the kernel has no ramdisk descriptor"),
            Self::InitrdMissing => write!(f, "the kernel names a ramdisk but none was loaded"),
            Self::InitrdMismatch => write!(f, "the ramdisk matches neither initrd_normal nor initrd_debug"),
        }
    }
}

/// Which ramdisk descriptor a ramdisk matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Initrd {
    /// `initrd_normal`.
    Normal,
    /// `initrd_debug`: the payload is debuggable (DICE's debug mode).
    Debug,
}

/// A payload that verified.
#[derive(Clone, Copy, Debug)]
pub struct Verified<'a> {
    /// The image the descriptor's digest covers.
    pub image: &'a [u8],
    /// The ramdisk's kind, when one was verified.
    pub initrd: Option<Initrd>,
    /// The kernel's hash-descriptor digest (SHA-256).
    pub kernel_digest: &'a [u8; 32],
    /// The digest of the ramdisk descriptor it matched.
    pub initrd_digest: Option<&'a [u8; 32]>,
    /// The vbmeta rollback index (DICE's security version).
    pub rollback_index: u64,
    /// The vbmeta image, for its properties.
    pub payload: SignedPayload<'a>,
}

/// The hash descriptors for `boot`, `initrd_normal` and `initrd_debug`, in that order;
/// any other partition, or one named twice, is refused.
pub fn hash_descriptors<'a>(
    descriptors: impl Iterator<Item = Result<Descriptor<'a>, AvbError>>,
) -> Result<[Option<HashDescriptor<'a>>; 3], AvbVerifyError> {
    let mut found: [Option<HashDescriptor<'a>>; 3] = [None; 3];
    for descriptor in descriptors {
        let Descriptor::Hash(h) = descriptor? else { continue };
        let slot = match h.partition_name {
            BOOT_PARTITION => 0,
            INITRD_NORMAL => 1,
            INITRD_DEBUG => 2,
            _ => return Err(AvbVerifyError::UnexpectedPartition),
        };
        if found[slot].replace(h).is_some() {
            return Err(AvbVerifyError::DuplicatePartition);
        }
    }
    Ok(found)
}

/// Refuses a descriptor whose hash is not AVF's (SHA-256, a 32-byte digest).
fn supported(descriptor: &HashDescriptor<'_>) -> Result<(), AvbVerifyError> {
    if descriptor.hash_algorithm != HASH_ALGORITHM || descriptor.digest.len() != 32 {
        return Err(AvbVerifyError::UnsupportedHash);
    }
    Ok(())
}

/// Whether SHA-256 of the descriptor's salt and `bytes` is its digest: the hash of a
/// whole kernel, with the ARMv8 SHA-2 instructions where the build enables them.
fn digest_matches(descriptor: &HashDescriptor<'_>, bytes: &[u8]) -> bool {
    crate::sha256::digest::<crate::sha256::Platform>(&[descriptor.salt, bytes]) == descriptor.digest
}

/// Whether `bytes` match `descriptor`: a supported hash, the size and the digest.
fn matches(descriptor: &HashDescriptor<'_>, bytes: &[u8]) -> Result<bool, AvbVerifyError> {
    supported(descriptor)?;
    Ok(descriptor.image_size == bytes.len() as u64 && digest_matches(descriptor, bytes))
}

/// What verification cost, in the ticks of the clock [`verify_timed`] was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// The vbmeta image's hash and RSA signature.
    pub signature: u64,
    /// Hashing the kernel and the ramdisk.
    pub hashing: u64,
    /// Bytes hashed: the kernel's and the ramdisk's.
    pub hashed_bytes: u64,
}

/// Verifies `payload` (image, vbmeta image, footer) against `trusted_key`, in AVB's
/// public-key format, and `initrd` (the loaded ramdisk, if any) against the kernel's
/// ramdisk descriptors.
pub fn verify<'a>(
    payload: &'a [u8],
    trusted_key: &[u8],
    initrd: Option<&[u8]>,
) -> Result<Verified<'a>, AvbVerifyError> {
    verify_timed(payload, trusted_key, initrd, &|| 0).map(|(verified, _)| verified)
}

/// [`verify`], reading `clock` around the signature check and the hashing (pvmfw's
/// cost for `pvmkit bench`).
pub fn verify_timed<'a>(
    payload: &'a [u8],
    trusted_key: &[u8],
    initrd: Option<&[u8]>,
    clock: &dyn Fn() -> u64,
) -> Result<(Verified<'a>, Cost), AvbVerifyError> {
    let start = clock();
    let signed = SignedPayload::parse(payload)?;
    let vbmeta = signed.vbmeta;
    if vbmeta.flags() != 0 {
        return Err(AvbVerifyError::VerificationDisabled(vbmeta.flags()));
    }
    if vbmeta.public_key_bytes()? != trusted_key {
        return Err(AvbVerifyError::UntrustedKey);
    }
    let key = vbmeta.public_key()?;
    let [header, aux] = vbmeta.signed_parts();
    let hash_size = vbmeta.algorithm.hash_size();
    let mut digest = [0u8; 64];
    let scheme = if hash_size == 32 {
        digest[..32].copy_from_slice(&Sha256::new().chain_update(header).chain_update(aux).finalize());
        Pkcs1v15Sign::new::<Sha256>()
    } else {
        digest.copy_from_slice(&Sha512::new().chain_update(header).chain_update(aux).finalize());
        Pkcs1v15Sign::new::<Sha512>()
    };
    let digest = &digest[..hash_size];
    if vbmeta.hash()? != digest {
        return Err(AvbVerifyError::VbmetaHashMismatch);
    }
    // rsa refuses keys over 4096 bits unless told: AVB goes to 8192.
    let rsa_key = RsaPublicKey::new_with_max_size(BigUint::from_bytes_be(key.n), BigUint::from(RSA_EXPONENT), 8192)
        .map_err(|_| AvbVerifyError::BadTrustedKey)?;
    rsa_key.verify(scheme, digest, vbmeta.signature()?).map_err(|_| AvbVerifyError::BadSignature)?;

    let signature_done = clock();

    let [boot, normal, debug] = hash_descriptors(vbmeta.descriptors())?;
    let boot = boot.ok_or(AvbVerifyError::NoBootDescriptor)?;
    supported(&boot)?;
    if boot.image_size != signed.image.len() as u64 {
        return Err(AvbVerifyError::ImageSizeMismatch);
    }
    if !digest_matches(&boot, signed.image) {
        return Err(AvbVerifyError::DigestMismatch);
    }
    let initrd_bytes = initrd;
    let matched = match (initrd, normal, debug) {
        (None, None, None) => None,
        (None, _, _) => return Err(AvbVerifyError::InitrdMissing),
        (Some(_), None, None) => return Err(AvbVerifyError::NoInitrdDescriptor),
        (Some(bytes), normal, debug) => {
            if let Some(d) = normal.filter(|d| matches(d, bytes) == Ok(true)) {
                Some((Initrd::Normal, d))
            } else if let Some(d) = debug.filter(|d| matches(d, bytes) == Ok(true)) {
                Some((Initrd::Debug, d))
            } else {
                // An unsupported descriptor is named as such, not as a mismatch.
                for d in normal.iter().chain(debug.iter()) {
                    supported(d)?;
                }
                return Err(AvbVerifyError::InitrdMismatch);
            }
        }
    };
    let initrd = matched.map(|(kind, _)| kind);
    let digest32 = |d: &HashDescriptor<'a>| -> Result<&'a [u8; 32], AvbVerifyError> {
        d.digest.try_into().map_err(|_| AvbVerifyError::UnsupportedHash)
    };
    let kernel_digest = digest32(&boot)?;
    let initrd_digest = matched.map(|(_, d)| digest32(&d)).transpose()?;
    let cost = Cost {
        signature: signature_done.wrapping_sub(start),
        hashing: clock().wrapping_sub(signature_done),
        hashed_bytes: (signed.image.len() + initrd_bytes.map_or(0, <[u8]>::len)) as u64,
    };
    let verified = Verified {
        image: signed.image,
        initrd,
        kernel_digest,
        initrd_digest,
        rollback_index: vbmeta.rollback_index(),
        payload: signed,
    };
    Ok((verified, cost))
}

#[cfg(test)]
mod tests;
