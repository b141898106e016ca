//! Android Verified Boot's on-disk formats, as a signed payload carries them: the
//! image, then the vbmeta image `avbtool add_hash_footer` appends (a 256-byte `AVB0`
//! header, the authentication block with the hash and signature, the auxiliary block
//! with the descriptors and the public key), then padding, then the 64-byte `AVBf`
//! footer at the very end. Every integer is big-endian. The layouts are those of
//! `external/avb` (`libavb/avb_footer.h`, `avb_vbmeta_image.h`, `avb_descriptor.h`,
//! `avb_hash_descriptor.h`, `avb_property_descriptor.h`, `avb_crypto.h`).
//!
//! Parsing never panics and never trusts a size: every offset and length is checked
//! against the bytes it claims, and a refusal names what was wrong ([`AvbError`]).
//! Checking the signature is the caller's (pvmfw's): this module says which bytes
//! are signed, which are the signature, and which the key.
//!
//! ```
//! use pvmkit_abi::avb::{footer, AvbError};
//!
//! assert_eq!(footer(&[0u8; 16]).unwrap_err(), AvbError::TooSmall("footer"));
//! ```

use core::fmt;

use zerocopy::byteorder::big_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The footer's magic.
pub const FOOTER_MAGIC: [u8; 4] = *b"AVBf";
/// The vbmeta header's magic.
pub const VBMETA_MAGIC: [u8; 4] = *b"AVB0";
/// The footer's size, at the very end of the payload.
pub const FOOTER_SIZE: usize = 64;
/// The vbmeta header's size.
pub const VBMETA_HEADER_SIZE: usize = 256;
/// The footer major version this reads.
pub const FOOTER_VERSION_MAJOR: u32 = 1;
/// The libavb major version a vbmeta image may require of its reader.
pub const LIBAVB_VERSION_MAJOR: u32 = 1;
/// vbmeta `flags`: hashtree verification disabled.
pub const FLAG_HASHTREE_DISABLED: u32 = 1 << 0;
/// vbmeta `flags`: verification disabled altogether.
pub const FLAG_VERIFICATION_DISABLED: u32 = 1 << 1;

/// Descriptor tags (`AvbDescriptorTag`).
pub mod tag {
    /// A property: a key and a value.
    pub const PROPERTY: u64 = 0;
    /// A hashtree (dm-verity) descriptor.
    pub const HASHTREE: u64 = 1;
    /// A hash of a whole partition.
    pub const HASH: u64 = 2;
    /// A kernel command-line fragment.
    pub const KERNEL_CMDLINE: u64 = 3;
    /// A chained partition.
    pub const CHAIN_PARTITION: u64 = 4;
}

/// `AvbFooter`: 64 bytes at the end of the payload.
#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug)]
pub struct Footer {
    /// `AVBf`.
    pub magic: [u8; 4],
    /// Major version (1).
    pub version_major: U32,
    /// Minor version.
    pub version_minor: U32,
    /// The image's size before anything was appended.
    pub original_image_size: U64,
    /// Where the vbmeta image starts.
    pub vbmeta_offset: U64,
    /// The vbmeta image's size (header and both blocks).
    pub vbmeta_size: U64,
    /// Zero.
    pub reserved: [u8; 28],
}

/// `AvbVBMetaImageHeader`: 256 bytes.
#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug)]
pub struct VbmetaHeader {
    /// `AVB0`.
    pub magic: [u8; 4],
    /// The libavb major version required to read it.
    pub required_libavb_version_major: U32,
    /// ... and minor.
    pub required_libavb_version_minor: U32,
    /// The authentication block's size (a multiple of 64).
    pub authentication_data_block_size: U64,
    /// The auxiliary block's size (a multiple of 64).
    pub auxiliary_data_block_size: U64,
    /// [`Algorithm`].
    pub algorithm_type: U32,
    /// The hash of the header and the auxiliary block, in the authentication block.
    pub hash_offset: U64,
    /// Its size.
    pub hash_size: U64,
    /// The signature, in the authentication block.
    pub signature_offset: U64,
    /// Its size.
    pub signature_size: U64,
    /// The public key, in the auxiliary block.
    pub public_key_offset: U64,
    /// Its size.
    pub public_key_size: U64,
    /// Public key metadata, in the auxiliary block.
    pub public_key_metadata_offset: U64,
    /// Its size.
    pub public_key_metadata_size: U64,
    /// The descriptors, in the auxiliary block.
    pub descriptors_offset: U64,
    /// Their size.
    pub descriptors_size: U64,
    /// The rollback index.
    pub rollback_index: U64,
    /// [`FLAG_HASHTREE_DISABLED`], [`FLAG_VERIFICATION_DISABLED`].
    pub flags: U32,
    /// Which rollback index slot.
    pub rollback_index_location: U32,
    /// NUL-terminated, e.g. `avbtool 1.3.0`.
    pub release_string: [u8; 48],
    /// Zero.
    pub reserved: [u8; 80],
}

/// `AvbDescriptor`: every descriptor's first 16 bytes.
#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug)]
pub struct DescriptorHeader {
    /// [`tag`].
    pub tag: U64,
    /// The bytes after this header (a multiple of 8).
    pub num_bytes_following: U64,
}

/// `AvbHashDescriptor` after its [`DescriptorHeader`]; the partition name, the salt and
/// the digest follow.
#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug)]
pub struct HashDescriptorFields {
    /// The hashed image's size.
    pub image_size: U64,
    /// NUL-padded, e.g. `sha256`.
    pub hash_algorithm: [u8; 32],
    /// The partition name's length.
    pub partition_name_len: U32,
    /// The salt's length.
    pub salt_len: U32,
    /// The digest's length.
    pub digest_len: U32,
    /// Flags.
    pub flags: U32,
    /// Zero.
    pub reserved: [u8; 60],
}

/// `AvbPropertyDescriptor` after its [`DescriptorHeader`]; the key, a NUL, the value and
/// a NUL follow.
#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug)]
pub struct PropertyDescriptorFields {
    /// The key's length (without its NUL).
    pub key_num_bytes: U64,
    /// The value's length (without its NUL).
    pub value_num_bytes: U64,
}

/// `AvbRSAPublicKeyHeader`: the public key's first 8 bytes; `n` and `rr`
/// (R² mod n), each `key_num_bits / 8` bytes, follow.
#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug)]
pub struct PublicKeyHeader {
    /// The modulus's size in bits.
    pub key_num_bits: U32,
    /// -1 / n mod 2³² (of the modulus's lowest 32 bits).
    pub n0inv: U32,
}

/// A signature algorithm (`AvbAlgorithmType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// SHA-256, RSA-2048 (PKCS#1 v1.5).
    Sha256Rsa2048,
    /// SHA-256, RSA-4096.
    Sha256Rsa4096,
    /// SHA-256, RSA-8192.
    Sha256Rsa8192,
    /// SHA-512, RSA-2048.
    Sha512Rsa2048,
    /// SHA-512, RSA-4096.
    Sha512Rsa4096,
    /// SHA-512, RSA-8192.
    Sha512Rsa8192,
}

impl Algorithm {
    /// From `algorithm_type`; `None` for NONE (0, unsigned) and unknown values.
    pub const fn from_type(value: u32) -> Option<Self> {
        Some(match value {
            1 => Self::Sha256Rsa2048,
            2 => Self::Sha256Rsa4096,
            3 => Self::Sha256Rsa8192,
            4 => Self::Sha512Rsa2048,
            5 => Self::Sha512Rsa4096,
            6 => Self::Sha512Rsa8192,
            _ => return None,
        })
    }

    /// The digest's size in bytes: 32 (SHA-256) or 64 (SHA-512).
    pub const fn hash_size(self) -> usize {
        match self {
            Self::Sha256Rsa2048 | Self::Sha256Rsa4096 | Self::Sha256Rsa8192 => 32,
            _ => 64,
        }
    }

    /// The RSA modulus's size in bits.
    pub const fn key_bits(self) -> u32 {
        match self {
            Self::Sha256Rsa2048 | Self::Sha512Rsa2048 => 2048,
            Self::Sha256Rsa4096 | Self::Sha512Rsa4096 => 4096,
            Self::Sha256Rsa8192 | Self::Sha512Rsa8192 => 8192,
        }
    }
}

/// Why a payload's AVB data was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AvbError {
    /// Fewer bytes than the named structure needs.
    TooSmall(&'static str),
    /// The named structure's magic is wrong.
    BadMagic(&'static str),
    /// The footer's or the required libavb major version is not 1.
    UnsupportedVersion(&'static str, u32),
    /// The named region overflows, runs past what holds it or overlaps another.
    OutOfBounds(&'static str),
    /// A block size is not a multiple of 64.
    Misaligned(&'static str),
    /// An algorithm that is unknown, or NONE (an unsigned image).
    UnsupportedAlgorithm(u32),
    /// The hash or the signature is not the algorithm's size.
    WrongSize(&'static str),
    /// A descriptor runs past the descriptor area, or its fields past itself.
    BadDescriptor(&'static str),
    /// The public key's header says another size than the algorithm's.
    BadPublicKey,
}

impl fmt::Display for AvbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooSmall(what) => write!(f, "too small for the AVB {what}"),
            Self::BadMagic(what) => write!(f, "the AVB {what} has a bad magic"),
            Self::UnsupportedVersion(what, v) => write!(f, "unsupported {what} major version {v}"),
            Self::OutOfBounds(what) => write!(f, "the vbmeta {what} is out of bounds"),
            Self::Misaligned(what) => write!(f, "the vbmeta {what} size is not a multiple of 64"),
            Self::UnsupportedAlgorithm(a) => write!(f, "unsupported vbmeta algorithm {a} (0 is an unsigned image)"),
            Self::WrongSize(what) => write!(f, "the vbmeta {what} is not the algorithm's size"),
            Self::BadDescriptor(what) => write!(f, "malformed AVB descriptor: {what}"),
            Self::BadPublicKey => write!(f, "the vbmeta public key does not match its algorithm"),
        }
    }
}

/// The footer at the end of `payload`.
pub fn footer(payload: &[u8]) -> Result<&Footer, AvbError> {
    let at = payload.len().checked_sub(FOOTER_SIZE).ok_or(AvbError::TooSmall("footer"))?;
    let footer = Footer::ref_from_bytes(&payload[at..]).map_err(|_| AvbError::TooSmall("footer"))?;
    if footer.magic != FOOTER_MAGIC {
        return Err(AvbError::BadMagic("footer"));
    }
    if footer.version_major.get() != FOOTER_VERSION_MAJOR {
        return Err(AvbError::UnsupportedVersion("footer", footer.version_major.get()));
    }
    Ok(footer)
}

/// A payload split as its footer says: the image, and the vbmeta image after it.
#[derive(Clone, Copy, Debug)]
pub struct SignedPayload<'a> {
    /// The image as it was before signing.
    pub image: &'a [u8],
    /// The vbmeta image.
    pub vbmeta: Vbmeta<'a>,
}

impl<'a> SignedPayload<'a> {
    /// Splits `payload` (image, vbmeta image, padding, footer). The vbmeta image must
    /// start at or after the image's end and end before the footer.
    pub fn parse(payload: &'a [u8]) -> Result<Self, AvbError> {
        let footer = footer(payload)?;
        let footer_at = (payload.len() - FOOTER_SIZE) as u64;
        let image_size = footer.original_image_size.get();
        let (offset, size) = (footer.vbmeta_offset.get(), footer.vbmeta_size.get());
        let end = offset.checked_add(size).ok_or(AvbError::OutOfBounds("image"))?;
        if image_size > offset || end > footer_at {
            return Err(AvbError::OutOfBounds("image"));
        }
        // Each now fits in the payload, so in usize.
        let image = &payload[..image_size as usize];
        let vbmeta = Vbmeta::parse(&payload[offset as usize..end as usize])?;
        Ok(Self { image, vbmeta })
    }
}

/// A vbmeta image, its regions checked.
#[derive(Clone, Copy, Debug)]
pub struct Vbmeta<'a> {
    /// The header.
    pub header: &'a VbmetaHeader,
    /// The signature algorithm.
    pub algorithm: Algorithm,
    header_bytes: &'a [u8],
    auth: &'a [u8],
    aux: &'a [u8],
}

/// `len` bytes at `offset` of `block`, or the named refusal.
fn region<'a>(block: &'a [u8], offset: u64, len: u64, what: &'static str) -> Result<&'a [u8], AvbError> {
    let end = offset.checked_add(len).ok_or(AvbError::OutOfBounds(what))?;
    if end > block.len() as u64 {
        return Err(AvbError::OutOfBounds(what));
    }
    Ok(&block[offset as usize..end as usize])
}

impl<'a> Vbmeta<'a> {
    /// Checks a vbmeta image: magic, version, block sizes, every region inside its
    /// block, the algorithm, the hash's and the signature's sizes.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, AvbError> {
        let (header, rest) = VbmetaHeader::ref_from_prefix(bytes).map_err(|_| AvbError::TooSmall("vbmeta header"))?;
        if header.magic != VBMETA_MAGIC {
            return Err(AvbError::BadMagic("vbmeta header"));
        }
        let major = header.required_libavb_version_major.get();
        if major != LIBAVB_VERSION_MAJOR {
            return Err(AvbError::UnsupportedVersion("libavb", major));
        }
        let (auth_size, aux_size) =
            (header.authentication_data_block_size.get(), header.auxiliary_data_block_size.get());
        if auth_size % 64 != 0 {
            return Err(AvbError::Misaligned("authentication block"));
        }
        if aux_size % 64 != 0 {
            return Err(AvbError::Misaligned("auxiliary block"));
        }
        let auth = region(rest, 0, auth_size, "authentication block")?;
        let aux = region(rest, auth_size, aux_size, "auxiliary block")?;
        let raw = header.algorithm_type.get();
        let algorithm = Algorithm::from_type(raw).ok_or(AvbError::UnsupportedAlgorithm(raw))?;
        let vbmeta = Self { header, algorithm, header_bytes: &bytes[..VBMETA_HEADER_SIZE], auth, aux };
        if vbmeta.hash()?.len() != algorithm.hash_size() {
            return Err(AvbError::WrongSize("hash"));
        }
        if vbmeta.signature()?.len() != algorithm.key_bits() as usize / 8 {
            return Err(AvbError::WrongSize("signature"));
        }
        vbmeta.public_key()?;
        vbmeta.descriptor_bytes()?;
        region(aux, header.public_key_metadata_offset.get(), header.public_key_metadata_size.get(), "key metadata")?;
        Ok(vbmeta)
    }

    /// What the signature covers, in order: the header, then the auxiliary block.
    pub fn signed_parts(&self) -> [&'a [u8]; 2] {
        [self.header_bytes, self.aux]
    }

    /// The hash of [`Vbmeta::signed_parts`] the image claims.
    pub fn hash(&self) -> Result<&'a [u8], AvbError> {
        region(self.auth, self.header.hash_offset.get(), self.header.hash_size.get(), "hash")
    }

    /// The signature (PKCS#1 v1.5 over [`Vbmeta::signed_parts`]).
    pub fn signature(&self) -> Result<&'a [u8], AvbError> {
        region(self.auth, self.header.signature_offset.get(), self.header.signature_size.get(), "signature")
    }

    /// The public key, in AVB's format ([`PublicKey`]).
    pub fn public_key_bytes(&self) -> Result<&'a [u8], AvbError> {
        region(self.aux, self.header.public_key_offset.get(), self.header.public_key_size.get(), "public key")
    }

    /// The public key, checked against the algorithm.
    pub fn public_key(&self) -> Result<PublicKey<'a>, AvbError> {
        let key = PublicKey::parse(self.public_key_bytes()?)?;
        if key.bits != self.algorithm.key_bits() {
            return Err(AvbError::BadPublicKey);
        }
        Ok(key)
    }

    fn descriptor_bytes(&self) -> Result<&'a [u8], AvbError> {
        region(self.aux, self.header.descriptors_offset.get(), self.header.descriptors_size.get(), "descriptors")
    }

    /// The descriptors, in order; each parsed when reached.
    pub fn descriptors(&self) -> Descriptors<'a> {
        Descriptors { rest: self.descriptor_bytes().unwrap_or(&[]) }
    }

    /// The rollback index.
    pub fn rollback_index(&self) -> u64 {
        self.header.rollback_index.get()
    }

    /// The flags.
    pub fn flags(&self) -> u32 {
        self.header.flags.get()
    }
}

/// An RSA public key in AVB's format (what `avbtool extract_public_key` writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey<'a> {
    /// The modulus's size in bits.
    pub bits: u32,
    /// -1 / n mod 2³².
    pub n0inv: u32,
    /// The modulus, big-endian.
    pub n: &'a [u8],
    /// R² mod n, big-endian.
    pub rr: &'a [u8],
}

impl<'a> PublicKey<'a> {
    /// Parses `bytes`: the header, then exactly `n` and `rr`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, AvbError> {
        let (header, rest) = PublicKeyHeader::ref_from_prefix(bytes).map_err(|_| AvbError::BadPublicKey)?;
        let bits = header.key_num_bits.get();
        if !matches!(bits, 2048 | 4096 | 8192) {
            return Err(AvbError::BadPublicKey);
        }
        let len = bits as usize / 8;
        if rest.len() != 2 * len {
            return Err(AvbError::BadPublicKey);
        }
        Ok(Self { bits, n0inv: header.n0inv.get(), n: &rest[..len], rr: &rest[len..] })
    }
}

/// A descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Descriptor<'a> {
    /// A hash of a whole partition's image.
    Hash(HashDescriptor<'a>),
    /// A property.
    Property {
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
    },
    /// Any other kind, by tag (not acted on).
    Other(u64),
}

/// A hash descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashDescriptor<'a> {
    /// The hashed image's size.
    pub image_size: u64,
    /// The hash algorithm's name, without its NUL padding (e.g. `sha256`).
    pub hash_algorithm: &'a [u8],
    /// The partition it is for (e.g. `boot`, `initrd_normal`).
    pub partition_name: &'a [u8],
    /// Hashed before the image.
    pub salt: &'a [u8],
    /// The digest of the salt and the image.
    pub digest: &'a [u8],
    /// Flags.
    pub flags: u32,
}

/// The descriptors of a vbmeta image, one by one.
#[derive(Clone, Debug)]
pub struct Descriptors<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Descriptors<'a> {
    type Item = Result<Descriptor<'a>, AvbError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let item = next_descriptor(self.rest);
        match item {
            Ok((descriptor, rest)) => {
                self.rest = rest;
                Some(Ok(descriptor))
            }
            Err(e) => {
                // One refusal ends the walk: what follows cannot be trusted.
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

fn next_descriptor(bytes: &[u8]) -> Result<(Descriptor<'_>, &[u8]), AvbError> {
    let (header, rest) = DescriptorHeader::ref_from_prefix(bytes).map_err(|_| AvbError::BadDescriptor("header"))?;
    let following = header.num_bytes_following.get();
    if following % 8 != 0 {
        return Err(AvbError::BadDescriptor("size not a multiple of 8"));
    }
    if following > rest.len() as u64 {
        return Err(AvbError::BadDescriptor("runs past the descriptors"));
    }
    let (body, rest) = rest.split_at(following as usize);
    let descriptor = match header.tag.get() {
        tag::HASH => Descriptor::Hash(hash_descriptor(body)?),
        tag::PROPERTY => property_descriptor(body)?,
        other => Descriptor::Other(other),
    };
    Ok((descriptor, rest))
}

/// `len` bytes from `at` of `body`, moving `at` past them.
fn take<'a>(body: &'a [u8], at: &mut u64, len: u64, what: &'static str) -> Result<&'a [u8], AvbError> {
    let bytes = region(body, *at, len, what).map_err(|_| AvbError::BadDescriptor(what))?;
    *at += len;
    Ok(bytes)
}

fn hash_descriptor(body: &[u8]) -> Result<HashDescriptor<'_>, AvbError> {
    let (fields, _) =
        HashDescriptorFields::ref_from_prefix(body).map_err(|_| AvbError::BadDescriptor("hash fields"))?;
    let mut at = core::mem::size_of::<HashDescriptorFields>() as u64;
    let partition_name = take(body, &mut at, fields.partition_name_len.get().into(), "hash partition name")?;
    let salt = take(body, &mut at, fields.salt_len.get().into(), "hash salt")?;
    let digest = take(body, &mut at, fields.digest_len.get().into(), "hash digest")?;
    let name_end = fields.hash_algorithm.iter().position(|&b| b == 0).unwrap_or(fields.hash_algorithm.len());
    Ok(HashDescriptor {
        image_size: fields.image_size.get(),
        hash_algorithm: &fields.hash_algorithm[..name_end],
        partition_name,
        salt,
        digest,
        flags: fields.flags.get(),
    })
}

fn property_descriptor(body: &[u8]) -> Result<Descriptor<'_>, AvbError> {
    let (fields, _) =
        PropertyDescriptorFields::ref_from_prefix(body).map_err(|_| AvbError::BadDescriptor("property fields"))?;
    let mut at = core::mem::size_of::<PropertyDescriptorFields>() as u64;
    let key_len = fields.key_num_bytes.get();
    let value_len = fields.value_num_bytes.get();
    let key = take(body, &mut at, key_len, "property key")?;
    if take(body, &mut at, 1, "property key")? != [0] {
        return Err(AvbError::BadDescriptor("property key not NUL-terminated"));
    }
    let value = take(body, &mut at, value_len, "property value")?;
    if take(body, &mut at, 1, "property value")? != [0] {
        return Err(AvbError::BadDescriptor("property value not NUL-terminated"));
    }
    Ok(Descriptor::Property { key, value })
}

#[cfg(test)]
mod tests;
