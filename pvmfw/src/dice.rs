//! The payload's DICE layer, with the inputs AVF's pvmfw gives it (AOSP `pvmfw/src/dice.rs`,
//! `docs/pvm_dice_chain.md`):
//!
//! - code hash: SHA-512 of the kernel's hash-descriptor digest (32 bytes) followed by the
//!   ramdisk's, or 32 zero bytes when there is none;
//! - authority hash: SHA-512 of the AVB public key blob the vbmeta image carries;
//! - mode: Normal, or Debug for a ramdisk that matched `initrd_debug`;
//! - configuration descriptor: the canonical CBOR map {-70002: component name
//!   (`com.android.virt.name`, default `"vm_entry"`), -70005: security version (the vbmeta
//!   rollback index), -70006: null for an RKP VM, -71003: the instance hash when the host
//!   named an instance}, keys in that order;
//! - hidden input: SHA-512 of 66 packed bytes: the RKP-VM marker (0/1), the 64-byte salt,
//!   the deferred-rollback-protection flag (0/1).
//!
//! The derivation itself is [`pvmkit_dice::next_handover`].

use alloc::string::String;
use alloc::vec::Vec;

use pvmkit_abi::dice_handover::DiceHandover;
use pvmkit_dice::cbor::Writer;
use pvmkit_dice::certificate::config_label as label;
use pvmkit_dice::handover::ChainError;
use pvmkit_dice::{Cdis, Config, InputValues, Mode, HASH_SIZE};
use sha2::{Digest, Sha512};

use crate::avb_properties::Properties;

/// The component name of a payload that names none (AVF's default).
pub const DEFAULT_COMPONENT_NAME: &str = "vm_entry";
/// What an instance id is prefixed with before it is hashed into the instance hash.
pub const INSTANCE_ID_PREFIX: &[u8] = b"InstanceId:";

/// What pvmfw measured of the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measurements {
    /// The code hash.
    pub code_hash: [u8; HASH_SIZE],
    /// The authority hash.
    pub authority_hash: [u8; HASH_SIZE],
    /// The mode.
    pub mode: Mode,
    /// The security version (the vbmeta rollback index).
    pub security_version: u64,
    /// The component name.
    pub component_name: String,
    /// Whether the payload is an RKP VM (AVF's rule: `remote_attest` or
    /// `trusty_security_vm`).
    pub rkp_vm_marker: bool,
}

/// What the verified payload is, for [`Measurements::new`].
#[derive(Clone, Copy, Debug)]
pub struct Verified<'a> {
    /// The kernel's hash-descriptor digest.
    pub kernel_digest: &'a [u8; 32],
    /// The ramdisk's, when there is one.
    pub initrd_digest: Option<&'a [u8; 32]>,
    /// The AVB public key blob of the vbmeta image.
    pub public_key: &'a [u8],
    /// Whether the ramdisk matched `initrd_debug`.
    pub debug: bool,
    /// The vbmeta rollback index.
    pub rollback_index: u64,
    /// The vbmeta properties.
    pub properties: Properties<'a>,
}

impl Measurements {
    /// The measurements of `payload`.
    pub fn new(payload: &Verified<'_>) -> Self {
        let initrd = payload.initrd_digest.copied().unwrap_or([0; 32]);
        let caps = payload.properties.capabilities;
        Self {
            code_hash: Sha512::new().chain_update(payload.kernel_digest).chain_update(initrd).finalize().into(),
            authority_hash: Sha512::digest(payload.public_key).into(),
            mode: if payload.debug { Mode::Debug } else { Mode::Normal },
            security_version: payload.rollback_index,
            component_name: payload.properties.name.unwrap_or(DEFAULT_COMPONENT_NAME).into(),
            rkp_vm_marker: caps.remote_attest || caps.trusty_security_vm,
        }
    }

    /// The configuration descriptor, with `instance_hash` when the host named an
    /// instance.
    pub fn config_descriptor(&self, instance_hash: Option<&[u8; HASH_SIZE]>) -> Vec<u8> {
        let pairs = 2 + u64::from(self.rkp_vm_marker) + u64::from(instance_hash.is_some());
        let mut w = Writer::default();
        w.map(pairs);
        w.int(label::COMPONENT_NAME).text(&self.component_name);
        w.int(label::SECURITY_VERSION).uint(self.security_version);
        if self.rkp_vm_marker {
            w.int(label::RKP_VM_MARKER).null();
        }
        if let Some(hash) = instance_hash {
            w.int(label::INSTANCE_HASH).bytes(hash);
        }
        w.out
    }

    /// The hidden input: SHA-512 of the marker, the salt and the deferral flag, packed.
    pub fn hidden(&self, salt: &[u8; HASH_SIZE], deferred_rollback_protection: bool) -> [u8; HASH_SIZE] {
        let mut packed = [0u8; 2 + HASH_SIZE];
        packed[0] = self.rkp_vm_marker.into();
        packed[1..=HASH_SIZE].copy_from_slice(salt);
        packed[HASH_SIZE + 1] = deferred_rollback_protection.into();
        let hidden = Sha512::digest(packed).into();
        packed.fill(0);
        hidden
    }
}

/// The instance hash of an instance id: SHA-512("InstanceId:" ‖ id).
pub fn instance_hash(instance_id: &[u8]) -> [u8; HASH_SIZE] {
    Sha512::new().chain_update(INSTANCE_ID_PREFIX).chain_update(instance_id).finalize().into()
}

/// The payload's handover: the next layer after `incoming`, measured by `measured`,
/// with `salt`, the instance hash and the deferral flag as rollback protection chose
/// them. The result holds the payload's CDIs.
pub fn next_handover(
    incoming: &DiceHandover<'_>,
    measured: &Measurements,
    salt: &[u8; HASH_SIZE],
    instance_hash: Option<&[u8; HASH_SIZE]>,
    deferred_rollback_protection: bool,
) -> Result<Vec<u8>, ChainError> {
    let descriptor = measured.config_descriptor(instance_hash);
    let input = InputValues {
        code_hash: measured.code_hash,
        code_descriptor: &[],
        config: Config::Descriptor(&descriptor),
        authority_hash: measured.authority_hash,
        authority_descriptor: &[],
        mode: measured.mode,
        hidden: measured.hidden(salt, deferred_rollback_protection),
    };
    let current = Cdis { attest: *incoming.cdi_attest, seal: *incoming.cdi_seal };
    pvmkit_dice::next_handover(&current, incoming.chain, &input)
}

#[cfg(test)]
mod tests;
