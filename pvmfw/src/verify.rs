//! Verifying the signed payload: structure (abi's parser), the image's SHA-256, and the
//! Ed25519 signature over the header with a key pvmfw trusts.

use core::fmt;

use abi::signed_payload::{self, Header, HeaderError, SIGNED_SIZE};
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::refusal::Refused;
use abi::pvmfw::Refusal;

/// Why a payload was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// The header is malformed.
    Header(HeaderError),
    /// The trusted key in pvmfw's config is not a valid Ed25519 key.
    BadTrustedKey,
    /// The image's hash is not the one the header names.
    HashMismatch,
    /// The signature is not the trusted key's over this header.
    BadSignature,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(e) => write!(f, "{e}"),
            Self::BadTrustedKey => write!(f, "pvmfw's trusted key is not a valid Ed25519 key"),
            Self::HashMismatch => write!(f, "payload image does not match the hash in its signed header"),
            Self::BadSignature => {
                write!(f, "payload signature does not verify with the trusted key")
            }
        }
    }
}

/// Checks the header's structure.
pub fn parse(blob: &[u8]) -> Result<(Header, &[u8]), VerifyError> {
    signed_payload::parse(blob).map_err(VerifyError::Header)
}

/// Checks that `image` is what `header_bytes` (the whole 256-byte header) describes and
/// that the header carries the trusted key's signature.
pub fn check(
    header_bytes: &[u8; signed_payload::HEADER_SIZE],
    header: &Header,
    image: &[u8],
    trusted_key: &[u8; 32],
) -> Result<(), VerifyError> {
    let key = VerifyingKey::from_bytes(trusted_key).map_err(|_| VerifyError::BadTrustedKey)?;
    let signature = Signature::from_bytes(&header.signature);
    key.verify_strict(&header_bytes[..SIGNED_SIZE], &signature).map_err(|_| VerifyError::BadSignature)?;
    let hash: [u8; 32] = Sha256::digest(image).into();
    if hash != header.image_sha256 {
        return Err(VerifyError::HashMismatch);
    }
    Ok(())
}

/// An Image's own header (once verified) must describe the layout its signed header
/// placed it by: a signer that wrote another text_offset, or a footprint larger than
/// the signed one, made a malformed payload.
pub fn check_image_header(header: &Header, image: &[u8]) -> Result<(), Refused> {
    let own = abi::arm64_image::parse(image)?;
    if own.text_offset != header.text_offset || own.image_size > header.mem_size {
        return Err(Refused::new(
            Refusal::ImageHeader,
            format_args!(
                "payload: arm64 Image header (text_offset {:#x}, image_size {:#x}) does not match its signed \
                 layout (text_offset {:#x}, {:#x} bytes)",
                own.text_offset, own.image_size, header.text_offset, header.mem_size
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn signed(key: &SigningKey, image: &[u8]) -> Vec<u8> {
        let hash: [u8; 32] = Sha256::digest(image).into();
        let mut header = Header::flat(image.len() as u64, 0x8020_0000, 0x8020_0000, 0x10_0000, hash).to_bytes();
        let sig = key.sign(&header[..SIGNED_SIZE]);
        header[signed_payload::SIGNATURE_OFFSET..].copy_from_slice(&sig.to_bytes());
        let mut blob = header.to_vec();
        blob.extend_from_slice(image);
        blob
    }

    /// The signed payload's header, for editing its fields in place.
    fn header_of(blob: &mut [u8]) -> &mut signed_payload::RawHeader {
        use zerocopy::FromBytes;
        signed_payload::RawHeader::mut_from_prefix(blob).unwrap().0
    }

    fn verify_blob(blob: &[u8], key: &[u8; 32]) -> Result<(), VerifyError> {
        let (header, image) = parse(blob)?;
        let header_bytes: [u8; 256] = blob[..256].try_into().unwrap();
        check(&header_bytes, &header, image, key)
    }

    #[test]
    fn accepts_exactly_what_the_trusted_key_signed() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let trusted = key.verifying_key().to_bytes();
        let blob = signed(&key, b"the payload's code, all of it");
        assert_eq!(verify_blob(&blob, &trusted), Ok(()));
        // One byte of the image flipped.
        let mut b = blob.clone();
        *b.last_mut().unwrap() ^= 1;
        assert_eq!(verify_blob(&b, &trusted), Err(VerifyError::HashMismatch));
        // One byte of the header flipped (the entry point): the signature no longer holds.
        let mut b = blob.clone();
        header_of(&mut b).entry_ipa.set(0x8020_0004);
        assert_eq!(verify_blob(&b, &trusted), Err(VerifyError::BadSignature));
        // The hash in the header replaced to match a changed image.
        let mut b = blob.clone();
        *b.last_mut().unwrap() ^= 1;
        let new_hash: [u8; 32] = Sha256::digest(&b[256..]).into();
        header_of(&mut b).image_sha256 = new_hash;
        assert_eq!(verify_blob(&b, &trusted), Err(VerifyError::BadSignature));
        // Signed by another key.
        let other = SigningKey::from_bytes(&[2; 32]);
        assert_eq!(verify_blob(&signed(&other, b"x"), &trusted), Err(VerifyError::BadSignature));
        // A signature byte flipped.
        let mut b = blob.clone();
        header_of(&mut b).signature[8] ^= 0x80;
        assert_eq!(verify_blob(&b, &trusted), Err(VerifyError::BadSignature));
    }

    #[test]
    fn a_bad_trusted_key_refuses_everything() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let blob = signed(&key, b"code");
        // Not a point on the curve.
        let mut bad = [0xffu8; 32];
        bad[31] = 0x7f;
        assert!(matches!(verify_blob(&blob, &bad), Err(VerifyError::BadTrustedKey) | Err(VerifyError::BadSignature)));
    }

    /// The Image's own header against its signed layout: the same text_offset and a
    /// footprint no larger pass (equal included); anything else is refused by name.
    #[test]
    fn an_images_own_header_must_match_its_signed_layout() {
        let image = |text_offset: u64, image_size: u64| {
            let mut bytes = abi::arm64_image::header_bytes(text_offset, image_size, 0xa).to_vec();
            bytes.resize(0x1000, 0);
            bytes
        };
        let mut header = Header::flat(0x1000, 0, 0, 0x20_0000, [0; 32]);
        header.format = signed_payload::PayloadFormat::Arm64Image;
        header.text_offset = 0x8_0000;
        assert!(check_image_header(&header, &image(0x8_0000, 0x20_0000)).is_ok(), "the same footprint");
        assert!(check_image_header(&header, &image(0x8_0000, 0x10_0000)).is_ok(), "a smaller one");
        for (text_offset, image_size) in [(0, 0x20_0000), (0x8_0000, 0x20_1000)] {
            let refused = check_image_header(&header, &image(text_offset, image_size)).unwrap_err();
            assert_eq!(refused.reason, Refusal::ImageHeader, "{}", refused.detail);
        }
        assert_eq!(check_image_header(&header, &[0; 16]).unwrap_err().reason, Refusal::ImageHeader, "no header");
    }
}
