//! Verifying an AVB-signed payload the way AVF's pvmfw does: the vbmeta image's key
//! must be the one pvmfw trusts (embedded at build time), its hash must be that of its
//! header and auxiliary block, its RSA signature (PKCS#1 v1.5) must verify with that
//! key, and the `boot` hash descriptor's digest must be SHA-256 of its salt and the
//! image. Verification that the vbmeta flags turn off is refused: a payload either
//! verifies or does not boot.
//!
//! The formats are [`abi::avb`]'s; the arithmetic is RustCrypto's (`rsa`, `sha2`).

use core::fmt;

use abi::avb::{AvbError, Descriptor, SignedPayload};
use rsa::pkcs1v15::Pkcs1v15Sign;
use rsa::{BigUint, RsaPublicKey};
use sha2::{Digest, Sha256, Sha512};

/// The partition name of the kernel's hash descriptor.
pub const BOOT_PARTITION: &[u8] = b"boot";
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
    /// No hash descriptor for the `boot` partition, or more than one.
    BootDescriptor(usize),
    /// The hash descriptor names another algorithm than sha256.
    UnsupportedHash,
    /// The descriptor's image size is not the image's.
    ImageSizeMismatch,
    /// The image's digest is not the descriptor's.
    DigestMismatch,
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
            Self::BootDescriptor(n) => write!(f, "{n} hash descriptors for partition 'boot' (one needed)"),
            Self::UnsupportedHash => write!(f, "the boot hash descriptor's algorithm is not sha256"),
            Self::ImageSizeMismatch => write!(f, "the boot hash descriptor's image size is not the image's"),
            Self::DigestMismatch => write!(f, "the image does not match the boot hash descriptor's digest"),
        }
    }
}

/// A payload that verified.
#[derive(Clone, Copy, Debug)]
pub struct Verified<'a> {
    /// The image the descriptor's digest covers.
    pub image: &'a [u8],
    /// The vbmeta rollback index (DICE's security version).
    pub rollback_index: u64,
    /// The vbmeta image, for its properties.
    pub payload: SignedPayload<'a>,
}

/// Verifies `payload` (image, vbmeta image, footer) against `trusted_key`, in AVB's
/// public-key format.
pub fn verify<'a>(payload: &'a [u8], trusted_key: &[u8]) -> Result<Verified<'a>, AvbVerifyError> {
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
    let rsa_key = RsaPublicKey::new(BigUint::from_bytes_be(key.n), BigUint::from(RSA_EXPONENT))
        .map_err(|_| AvbVerifyError::BadTrustedKey)?;
    rsa_key.verify(scheme, digest, vbmeta.signature()?).map_err(|_| AvbVerifyError::BadSignature)?;

    let mut boot = None;
    let mut count = 0;
    for descriptor in vbmeta.descriptors() {
        if let Descriptor::Hash(h) = descriptor? {
            if h.partition_name == BOOT_PARTITION {
                boot = Some(h);
                count += 1;
            }
        }
    }
    let boot = match (boot, count) {
        (Some(h), 1) => h,
        _ => return Err(AvbVerifyError::BootDescriptor(count)),
    };
    if boot.hash_algorithm != HASH_ALGORITHM || boot.digest.len() != 32 {
        return Err(AvbVerifyError::UnsupportedHash);
    }
    if boot.image_size != signed.image.len() as u64 {
        return Err(AvbVerifyError::ImageSizeMismatch);
    }
    let image_digest = Sha256::new().chain_update(boot.salt).chain_update(signed.image).finalize();
    if image_digest.as_slice() != boot.digest {
        return Err(AvbVerifyError::DigestMismatch);
    }
    Ok(Verified { image: signed.image, rollback_index: vbmeta.rollback_index(), payload: signed })
}

#[cfg(test)]
mod tests;
