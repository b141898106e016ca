//! A layer's CBOR certificate, as open-dice's `cbor_cert_op.c` writes it for Ed25519: a
//! COSE_Sign1 (RFC 9052) whose protected header names EdDSA and whose payload is a
//! CWT-style map with the specification's labels, signed by the authority's key (the
//! previous layer's, from its CDI_Attest) over the `Signature1` structure.

use alloc::string::String;
use alloc::vec::Vec;

use ed25519_dalek::Signer;
use sha2::{Digest, Sha512};

use crate::cbor::Writer;
use crate::{certificate_id, key_pair, Config, InputValues, CDI_SIZE};

/// The certificate payload's labels: the CWT ones (RFC 8392) and the Open Profile for
/// DICE's.
pub mod label {
    /// The issuer (a certificate ID in hex).
    pub const ISSUER: i64 = 1;
    /// The subject (a certificate ID in hex).
    pub const SUBJECT: i64 = 2;
    /// The code hash.
    pub const CODE_HASH: i64 = -4670545;
    /// The code descriptor.
    pub const CODE_DESCRIPTOR: i64 = -4670546;
    /// The configuration hash.
    pub const CONFIG_HASH: i64 = -4670547;
    /// The configuration descriptor (or an inline configuration value).
    pub const CONFIG_DESCRIPTOR: i64 = -4670548;
    /// The authority hash.
    pub const AUTHORITY_HASH: i64 = -4670549;
    /// The authority descriptor.
    pub const AUTHORITY_DESCRIPTOR: i64 = -4670550;
    /// The mode (one byte).
    pub const MODE: i64 = -4670551;
    /// The subject's public key (a COSE_Key).
    pub const SUBJECT_PUBLIC_KEY: i64 = -4670552;
    /// The key usage.
    pub const KEY_USAGE: i64 = -4670553;
    /// The profile name.
    pub const PROFILE_NAME: i64 = -4670554;
}

/// The Android profile's configuration descriptor labels (AVF's
/// `dice_for_avf_guest.cddl`).
pub mod config_label {
    /// The component name (text).
    pub const COMPONENT_NAME: i64 = -70002;
    /// The component version.
    pub const COMPONENT_VERSION: i64 = -70003;
    /// Resettable (null).
    pub const RESETTABLE: i64 = -70004;
    /// The security version (unsigned).
    pub const SECURITY_VERSION: i64 = -70005;
    /// The RKP-VM marker (null).
    pub const RKP_VM_MARKER: i64 = -70006;
    /// The instance hash (AVF's).
    pub const INSTANCE_HASH: i64 = -71003;
}

/// COSE's numbers (RFC 9052/9053): the algorithm header, EdDSA, the OKP key type and
/// its labels, Ed25519, the verify operation.
mod cose {
    pub const ALG: i64 = 1;
    pub const EDDSA: i64 = -8;
    pub const KEY_TYPE: i64 = 1;
    pub const OKP: i64 = 1;
    pub const KEY_ALG: i64 = 3;
    pub const KEY_OPS: i64 = 4;
    pub const VERIFY: i64 = 2;
    pub const CURVE: i64 = -1;
    pub const ED25519: i64 = 6;
    pub const X: i64 = -2;
}

/// RFC 5280's keyCertSign bit, as the key-usage byte.
const KEY_USAGE_CERT_SIGN: u8 = 32;

/// `bytes` as lowercase hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().flat_map(|b| [b >> 4, b & 0xf]).map(|d| char::from_digit(d.into(), 16).unwrap_or('0')).collect()
}

/// A public key as a COSE_Key: OKP, EdDSA, verify only, Ed25519, x.
pub fn cose_key(public_key: &[u8; 32]) -> Vec<u8> {
    let mut w = Writer::default();
    w.map(5).int(cose::KEY_TYPE).int(cose::OKP).int(cose::KEY_ALG).int(cose::EDDSA);
    w.int(cose::KEY_OPS).array(1).int(cose::VERIFY);
    w.int(cose::CURVE).int(cose::ED25519).int(cose::X).bytes(public_key);
    w.out
}

/// The certificate of the layer whose CDI_Attest is `subject_cdi_attest`, measured by
/// `input`, issued by the layer whose CDI_Attest is `authority_cdi_attest`, naming
/// `profile` (the Android profile's name) when given.
pub fn certificate(
    subject_cdi_attest: &[u8; CDI_SIZE],
    authority_cdi_attest: &[u8; CDI_SIZE],
    input: &InputValues<'_>,
    profile: Option<&str>,
) -> Vec<u8> {
    let subject = key_pair(subject_cdi_attest).verifying_key().to_bytes();
    let authority = key_pair(authority_cdi_attest);
    let protected = {
        let mut w = Writer::default();
        w.map(1).int(cose::ALG).int(cose::EDDSA);
        w.out
    };
    let payload = {
        let descriptor = matches!(input.config, Config::Descriptor(_));
        let optional = [!input.code_descriptor.is_empty(), descriptor, !input.authority_descriptor.is_empty()];
        let pairs = 8 + optional.iter().filter(|&&o| o).count() as u64 + u64::from(profile.is_some());
        let mut w = Writer::default();
        w.map(pairs);
        w.int(label::ISSUER).text(&hex(&certificate_id(&authority.verifying_key().to_bytes())));
        w.int(label::SUBJECT).text(&hex(&certificate_id(&subject)));
        w.int(label::CODE_HASH).bytes(&input.code_hash);
        if !input.code_descriptor.is_empty() {
            w.int(label::CODE_DESCRIPTOR).bytes(input.code_descriptor);
        }
        match input.config {
            Config::Descriptor(bytes) => {
                w.int(label::CONFIG_DESCRIPTOR).bytes(bytes);
                w.int(label::CONFIG_HASH).bytes(&Sha512::digest(bytes));
            }
            // open-dice writes an inline value under the descriptor's label.
            Config::Inline(value) => {
                w.int(label::CONFIG_DESCRIPTOR).bytes(&value);
            }
        }
        w.int(label::AUTHORITY_HASH).bytes(&input.authority_hash);
        if !input.authority_descriptor.is_empty() {
            w.int(label::AUTHORITY_DESCRIPTOR).bytes(input.authority_descriptor);
        }
        w.int(label::MODE).bytes(&[input.mode as u8]);
        w.int(label::SUBJECT_PUBLIC_KEY).bytes(&cose_key(&subject));
        w.int(label::KEY_USAGE).bytes(&[KEY_USAGE_CERT_SIGN]);
        if let Some(name) = profile {
            w.int(label::PROFILE_NAME).text(name);
        }
        w.out
    };
    let to_be_signed = {
        let mut w = Writer::default();
        w.array(4).text("Signature1").bytes(&protected).bytes(&[]).bytes(&payload);
        w.out
    };
    let signature = authority.sign(&to_be_signed).to_bytes();
    let mut w = Writer::default();
    w.array(4).bytes(&protected).map(0).bytes(&payload).bytes(&signature);
    w.out
}
