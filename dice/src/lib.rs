//! The Open Profile for DICE's derivation of the next layer (open-dice
//! `docs/specification.md`), computed as open-dice's reference code computes it with
//! SHA-512 and HKDF-SHA-512: the next CDI_Attest and CDI_Seal from the current ones and
//! the layer's input values, the layer's Ed25519 key pair from its CDI_Attest, and the
//! certificate ID of a public key. Held byte for byte to open-dice's known-answer
//! values (`include/dice/known_test_values.h`, see the tests).
//!
//! [`certificate`] writes the layer's CBOR certificate as open-dice does for Ed25519;
//! [`handover`] passes the result on (the CDIs and the chain with the certificate
//! appended); [`profile`] picks the Android profile the certificate names;
//! [`next_handover`] does the whole step, as open-dice's `DiceAndroidHandoverMainFlow`.
#![no_std]
#![deny(missing_docs)]

extern crate alloc;

pub mod cbor;
pub mod certificate;
pub mod handover;
pub mod profile;

use alloc::vec::Vec;
use ed25519_dalek::SigningKey;
use hkdf::Hkdf;
use sha2::{Digest, Sha512};

/// Bytes of a CDI.
pub const CDI_SIZE: usize = 32;
/// Bytes of a hash input (code, authority) and of the hidden input.
pub const HASH_SIZE: usize = 64;
/// Bytes of an inline configuration value.
pub const INLINE_CONFIG_SIZE: usize = 64;
/// Bytes of a certificate ID.
pub const ID_SIZE: usize = 20;

/// The specification's fixed salt for deriving a layer's key pair from its CDI_Attest
/// (`ASYM_SALT`).
pub const ASYM_SALT: [u8; 64] = [
    0x63, 0xB6, 0xA0, 0x4D, 0x2C, 0x07, 0x7F, 0xC1, 0x0F, 0x63, 0x9F, 0x21, 0xDA, 0x79, 0x38, 0x44, 0x35, 0x6C, 0xC2,
    0xB0, 0xB4, 0x41, 0xB3, 0xA7, 0x71, 0x24, 0x03, 0x5C, 0x03, 0xF8, 0xE1, 0xBE, 0x60, 0x35, 0xD3, 0x1F, 0x28, 0x28,
    0x21, 0xA7, 0x45, 0x0A, 0x02, 0x22, 0x2A, 0xB1, 0xB3, 0xCF, 0xF1, 0x67, 0x9B, 0x05, 0xAB, 0x1C, 0xA5, 0xD1, 0xAF,
    0xFB, 0x78, 0x9C, 0xCD, 0x2B, 0x0B, 0x3B,
];

/// The specification's fixed salt for deriving a certificate ID from a public key
/// (`ID_SALT`).
pub const ID_SALT: [u8; 64] = [
    0xDB, 0xDB, 0xAE, 0xBC, 0x80, 0x20, 0xDA, 0x9F, 0xF0, 0xDD, 0x5A, 0x24, 0xC8, 0x3A, 0xA5, 0xA5, 0x42, 0x86, 0xDF,
    0xC2, 0x63, 0x03, 0x1E, 0x32, 0x9B, 0x4D, 0xA1, 0x48, 0x43, 0x06, 0x59, 0xFE, 0x62, 0xCD, 0xB5, 0xB7, 0xE1, 0xE0,
    0x0F, 0xC6, 0x80, 0x30, 0x67, 0x11, 0xEB, 0x44, 0x4A, 0xF7, 0x72, 0x09, 0x35, 0x94, 0x96, 0xFC, 0xFF, 0x1D, 0xB9,
    0x52, 0x0B, 0xA5, 0x1C, 0x7B, 0x29, 0xEA,
];

/// The DICE mode of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Not configured.
    NotInitialized = 0,
    /// Normal operation.
    Normal = 1,
    /// Debug: the layer's secrets are not to be relied on.
    Debug = 2,
    /// Maintenance or recovery.
    Maintenance = 3,
}

/// A layer's configuration input: 64 bytes as they are, or a descriptor whose SHA-512
/// stands in for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Config<'a> {
    /// An inline value.
    Inline([u8; INLINE_CONFIG_SIZE]),
    /// A configuration descriptor (the Android profile's CBOR map).
    Descriptor(&'a [u8]),
}

/// What a layer measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputValues<'a> {
    /// The code hash.
    pub code_hash: [u8; HASH_SIZE],
    /// A code descriptor for the certificate (empty: none); it does not enter the CDIs.
    pub code_descriptor: &'a [u8],
    /// The configuration.
    pub config: Config<'a>,
    /// The authority hash.
    pub authority_hash: [u8; HASH_SIZE],
    /// An authority descriptor for the certificate (empty: none); it does not enter the
    /// CDIs.
    pub authority_descriptor: &'a [u8],
    /// The mode.
    pub mode: Mode,
    /// The hidden input (it enters the CDIs, never the certificate).
    pub hidden: [u8; HASH_SIZE],
}

/// A layer's two CDIs.
#[derive(Clone, PartialEq, Eq)]
pub struct Cdis {
    /// CDI_Attest: the layer's identity (its key pair is derived from it).
    pub attest: [u8; CDI_SIZE],
    /// CDI_Seal: the layer's sealing secret.
    pub seal: [u8; CDI_SIZE],
}

impl Drop for Cdis {
    fn drop(&mut self) {
        self.attest.fill(0);
        self.seal.fill(0);
    }
}

impl core::fmt::Debug for Cdis {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Cdis { .. }")
    }
}

/// HKDF-SHA-512: `N` bytes from `ikm` with `salt` and `info` (the specification's KDF).
fn kdf<const N: usize>(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; N] {
    // HKDF-SHA-512 expands to at most 255 × 64 bytes: checked when compiling.
    const { assert!(N <= 255 * 64) };
    let mut out = [0u8; N];
    let _ = Hkdf::<Sha512>::new(Some(salt), ikm).expand(info, &mut out);
    out
}

/// The next layer's CDIs: CDI_Attest from every input (code hash, configuration or its
/// descriptor's hash, authority hash, mode, hidden), CDI_Seal from the authority hash,
/// the mode and the hidden input only, each by the KDF with the current CDI as key
/// material and the inputs' SHA-512 as salt.
pub fn next_cdis(current: &Cdis, input: &InputValues<'_>) -> Cdis {
    let config: [u8; INLINE_CONFIG_SIZE] = match input.config {
        Config::Inline(value) => value,
        Config::Descriptor(descriptor) => Sha512::digest(descriptor).into(),
    };
    let mode = [input.mode as u8];
    let sealing = [&input.authority_hash[..], &mode, &input.hidden];
    let attest_salt = Sha512::new().chain_update(input.code_hash).chain_update(config);
    let attest_salt = sealing.iter().fold(attest_salt, |h, part| h.chain_update(part)).finalize();
    let seal_salt = sealing.iter().fold(Sha512::new(), |h, part| h.chain_update(part)).finalize();
    Cdis {
        attest: kdf(&current.attest, &attest_salt, b"CDI_Attest"),
        seal: kdf(&current.seal, &seal_salt, b"CDI_Seal"),
    }
}

/// A layer's Ed25519 key pair, from the seed the KDF derives from its CDI_Attest.
pub fn key_pair(cdi_attest: &[u8; CDI_SIZE]) -> SigningKey {
    let mut seed = kdf::<32>(cdi_attest, &ASYM_SALT, b"Key Pair");
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    key
}

/// A certificate ID: 20 bytes the KDF derives from a public key, top bit cleared so
/// that as an integer it is positive.
pub fn certificate_id(public_key: &[u8]) -> [u8; ID_SIZE] {
    let mut id = kdf::<ID_SIZE>(public_key, &ID_SALT, b"ID");
    id[0] &= 0x7f;
    id
}

/// The next layer's handover `{1: CDI_Attest, 2: CDI_Seal, 3: chain}`: its CDIs from
/// `current` and `input`, its certificate (issued with `current`'s key, naming the
/// profile [`profile::next_profile`] picks after `chain`'s last certificate) appended to
/// `chain`, which is kept. The result holds the new CDIs: the caller wipes it.
pub fn next_handover(current: &Cdis, chain: &[u8], input: &InputValues<'_>) -> Result<Vec<u8>, handover::ChainError> {
    let name = profile::next_profile(profile::last_certificate_profile(chain)?);
    let next = next_cdis(current, input);
    let certificate = certificate::certificate(&next.attest, &current.attest, input, Some(name));
    let chain = handover::append_certificate(chain, &certificate)?;
    Ok(handover::encode(&next, &chain))
}

#[cfg(test)]
mod tests;
