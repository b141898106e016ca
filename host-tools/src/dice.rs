//! DICE on the host: playing the device's boot stages (a UDS-rooted chain with one
//! bootloader layer, the handover a device's bootloader gives pvmfw) and checking a
//! chain as a relying party would (`pvmkit dice root`, `pvmkit dice verify`).
//!
//! Verification reads the chain with `coset`/`ciborium` (COSE as AOSP reads it) and
//! checks each certificate's Ed25519 signature with the previous layer's key, the
//! profile's required fields, the key usage, issuer/subject continuity and that
//! profile names never go backwards. Derivation is [`pvmkit_dice`]'s, which is held to
//! open-dice's known answers.

use ciborium::value::{Integer, Value};
use coset::iana::{Algorithm, EnumI64, KeyType, OkpKeyParameter};
use coset::{AsCborValue, CborSerializable, CoseKey, CoseSign1, KeyOperation, Label, RegisteredLabelWithPrivate};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use pvmkit_dice::certificate::{self, config_label, label};
use pvmkit_dice::{Cdis, Config, InputValues, Mode};
use sha2::{Digest, Sha256, Sha512};

/// The UDS `pvmkit` roots its chains in when none is given: SHA-256 of its own name.
/// A test secret, known to everyone.
pub fn test_uds() -> [u8; 32] {
    Sha256::digest(b"pvmkit test UDS: not a device secret").into()
}

/// The bootloader stage pvmkit plays.
pub const BOOTLOADER_NAME: &str = "pvmkit test bootloader";

/// The handover a device's bootloader would give pvmfw: the root public key derived
/// from `uds`, one layer (the bootloader, measured by stand-in hashes of its name and
/// certified by the UDS key), its CDIs. As open-dice's `DiceAndroidHandoverMainFlow`
/// does for a handover without a chain, with CDI_Attest = CDI_Seal = UDS.
pub fn root_handover(uds: &[u8; 32]) -> Vec<u8> {
    let root = Cdis { attest: *uds, seal: *uds };
    let descriptor = {
        let mut w = pvmkit_dice::cbor::Writer::default();
        w.map(2).int(config_label::COMPONENT_NAME).text(BOOTLOADER_NAME);
        w.int(config_label::SECURITY_VERSION).uint(0);
        w.out
    };
    let input = InputValues {
        code_hash: Sha512::digest(format!("{BOOTLOADER_NAME}: code")).into(),
        code_descriptor: &[],
        config: Config::Descriptor(&descriptor),
        authority_hash: Sha512::digest(format!("{BOOTLOADER_NAME}: authority")).into(),
        authority_descriptor: &[],
        mode: Mode::Normal,
        hidden: [0; 64],
    };
    let root_key = pvmkit_dice::key_pair(uds).verifying_key().to_bytes();
    let mut chain = vec![0x81];
    chain.extend(certificate::cose_key(&root_key));
    pvmkit_dice::next_handover(&root, &chain, &input).expect("a one-item chain takes a certificate")
}

/// One layer of a verified chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// The component name (configuration descriptor -70002), if named.
    pub component_name: Option<String>,
    /// The security version (-70005), if given.
    pub security_version: Option<u64>,
    /// The code hash.
    pub code_hash: Vec<u8>,
    /// The authority hash.
    pub authority_hash: Vec<u8>,
    /// The mode.
    pub mode: Mode,
    /// The profile name, if named.
    pub profile: Option<String>,
    /// The configuration descriptor's bytes.
    pub config_descriptor: Vec<u8>,
    /// The subject's public key (Ed25519).
    pub subject_key: [u8; 32],
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): mode {:?}, security version {}, code hash {}, authority hash {}",
            self.component_name.as_deref().unwrap_or("(unnamed)"),
            self.profile.as_deref().unwrap_or("no profile"),
            self.mode,
            self.security_version.map_or("(none)".into(), |v| v.to_string()),
            hex(&self.code_hash[..8]) + "…",
            hex(&self.authority_hash[..8]) + "…",
        )
    }
}

/// `bytes` in lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The chain in `bytes`: a whole handover (`{1, 2, 3}`) or a chain alone.
pub fn chain_of(bytes: &[u8]) -> Result<Vec<u8>, String> {
    match pvmkit_abi::dice_handover::DiceHandover::parse(bytes) {
        Ok(handover) => Ok(handover.chain.to_vec()),
        Err(_) if bytes.first().is_some_and(|b| b >> 5 == 4) => Ok(bytes.to_vec()),
        Err(e) => Err(format!("neither a DICE handover nor a chain: {e}")),
    }
}

/// Verifies `chain` (a DICE chain: the root's COSE_Key, then certificates) and returns
/// its layers, root first.
pub fn verify(chain: &[u8]) -> Result<Vec<Layer>, String> {
    let value: Value = ciborium::de::from_reader(chain).map_err(|e| format!("the chain is not CBOR: {e}"))?;
    let Value::Array(items) = value else { return Err("the chain is not a CBOR array".into()) };
    let mut items = items.into_iter();
    let root = items.next().ok_or("the chain is empty")?;
    let root = CoseKey::from_cbor_value(root).map_err(|e| format!("the root is not a COSE_Key: {e}"))?;
    let mut key = ed25519_key(&root).map_err(|e| format!("the root key: {e}"))?;
    let mut issuer = id_text(&key);
    let mut profile: Option<String> = None;
    let mut layers = Vec::new();
    for (i, item) in items.enumerate() {
        let at = |e: String| format!("certificate {}: {e}", i + 1);
        let layer = certificate_layer(item, &key, &issuer).map_err(at)?;
        if let (Some(before), Some(now)) = (&profile, &layer.profile) {
            if android_version(now) < android_version(before) {
                return Err(at(format!("profile {now} is older than the previous certificate's {before}")));
            }
        }
        profile = layer.profile.clone().or(profile);
        key = VerifyingKey::from_bytes(&layer.subject_key).map_err(|e| at(format!("subject key: {e}")))?;
        issuer = id_text(&key);
        layers.push(layer);
    }
    if layers.is_empty() {
        return Err("the chain has a root key but no certificate".into());
    }
    Ok(layers)
}

/// `N` of `android.N` (0 for another name).
fn android_version(name: &str) -> u32 {
    name.strip_prefix("android.").and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// A certificate ID as the specification prints it: the KDF of the key, in hex.
fn id_text(key: &VerifyingKey) -> String {
    hex(&pvmkit_dice::certificate_id(&key.to_bytes()))
}

/// An Ed25519 verify key from a COSE_Key.
fn ed25519_key(key: &CoseKey) -> Result<VerifyingKey, String> {
    if key.kty != coset::KeyType::Assigned(KeyType::OKP) {
        return Err("not an OKP key".into());
    }
    if key.alg != Some(coset::Algorithm::Assigned(Algorithm::EdDSA)) {
        return Err("not an EdDSA key".into());
    }
    if !key.key_ops.is_empty() && !key.key_ops.contains(&KeyOperation::Assigned(coset::iana::KeyOperation::Verify)) {
        return Err("a key not for verifying".into());
    }
    let param = |label: OkpKeyParameter| {
        key.params.iter().find(|(l, _)| *l == Label::Int(label.to_i64())).map(|(_, v)| v.clone())
    };
    if param(OkpKeyParameter::Crv) != Some(Value::Integer(Integer::from(coset::iana::EllipticCurve::Ed25519 as i64))) {
        return Err("not on Ed25519".into());
    }
    let Some(Value::Bytes(x)) = param(OkpKeyParameter::X) else { return Err("no x coordinate".into()) };
    let x: [u8; 32] = x.as_slice().try_into().map_err(|_| "x is not 32 bytes")?;
    VerifyingKey::from_bytes(&x).map_err(|e| format!("x is not a point: {e}"))
}

/// One certificate, checked against the issuer's key and ID.
fn certificate_layer(item: Value, issuer_key: &VerifyingKey, issuer_id: &str) -> Result<Layer, String> {
    let sign1 = CoseSign1::from_cbor_value(item).map_err(|e| format!("not a COSE_Sign1: {e}"))?;
    if sign1.protected.header.alg != Some(RegisteredLabelWithPrivate::Assigned(Algorithm::EdDSA)) {
        return Err("its protected header does not name EdDSA".into());
    }
    sign1.verify_signature(b"", |signature, data| {
        let signature = Signature::from_slice(signature).map_err(|e| e.to_string())?;
        issuer_key
            .verify(data, &signature)
            .map_err(|_| "the signature does not verify with the issuer's key".to_string())
    })?;
    let payload = sign1.payload.ok_or("no payload")?;
    let Value::Map(entries) = ciborium::de::from_reader(&payload[..]).map_err(|e| format!("payload: {e}"))? else {
        return Err("the payload is not a map".into());
    };
    let field =
        |label: i64| entries.iter().find(|(k, _)| *k == Value::Integer(Integer::from(label))).map(|(_, v)| v.clone());
    let bytes = |label: i64, name: &str| match field(label) {
        Some(Value::Bytes(b)) => Ok(b),
        Some(_) => Err(format!("{name} is not a byte string")),
        None => Err(format!("no {name}")),
    };
    let text = |label: i64, name: &str| match field(label) {
        Some(Value::Text(t)) => Ok(t),
        Some(_) => Err(format!("{name} is not text")),
        None => Err(format!("no {name}")),
    };
    if text(label::ISSUER, "issuer")? != issuer_id {
        return Err("its issuer is not the previous layer's subject".into());
    }
    let subject_key = CoseKey::from_slice(&bytes(label::SUBJECT_PUBLIC_KEY, "subject public key")?)
        .map_err(|e| format!("subject public key: {e}"))?;
    let subject_key = ed25519_key(&subject_key).map_err(|e| format!("subject public key: {e}"))?;
    if text(label::SUBJECT, "subject")? != id_text(&subject_key) {
        return Err("its subject is not the ID of its subject public key".into());
    }
    if bytes(label::KEY_USAGE, "key usage")? != [0x20] {
        return Err("its key usage is not keyCertSign alone".into());
    }
    let code_hash = bytes(label::CODE_HASH, "code hash")?;
    let authority_hash = bytes(label::AUTHORITY_HASH, "authority hash")?;
    if code_hash.len() != 64 || authority_hash.len() != 64 {
        return Err("a code or authority hash is not 64 bytes".into());
    }
    let mode = match bytes(label::MODE, "mode")?[..] {
        [0] => Mode::NotInitialized,
        [1] => Mode::Normal,
        [2] => Mode::Debug,
        [3] => Mode::Maintenance,
        _ => return Err("its mode is not one byte of 0..=3".into()),
    };
    let config_descriptor = bytes(label::CONFIG_DESCRIPTOR, "configuration descriptor")?;
    if let Some(hash) = field(label::CONFIG_HASH) {
        if hash != Value::Bytes(Sha512::digest(&config_descriptor).to_vec()) {
            return Err("its configuration hash is not that of its descriptor".into());
        }
    }
    let profile = match field(label::PROFILE_NAME) {
        Some(Value::Text(t)) => Some(t),
        Some(_) => return Err("its profile name is not text".into()),
        None => None,
    };
    let config: Value =
        ciborium::de::from_reader(&config_descriptor[..]).map_err(|e| format!("configuration descriptor: {e}"))?;
    let Value::Map(config) = config else { return Err("the configuration descriptor is not a map".into()) };
    let config_field =
        |label: i64| config.iter().find(|(k, _)| *k == Value::Integer(Integer::from(label))).map(|(_, v)| v);
    let component_name = match config_field(config_label::COMPONENT_NAME) {
        Some(Value::Text(t)) => Some(t.clone()),
        Some(_) => return Err("the component name is not text".into()),
        None => None,
    };
    let security_version = match config_field(config_label::SECURITY_VERSION) {
        Some(Value::Integer(n)) => Some(u64::try_from(*n).map_err(|_| "the security version is negative")?),
        Some(_) => return Err("the security version is not an integer".into()),
        None => None,
    };
    if profile.as_deref().is_some_and(|p| android_version(p) >= 16) && security_version.is_none() {
        return Err(format!("profile {} requires a security version (-70005)", profile.unwrap_or_default()));
    }
    Ok(Layer {
        component_name,
        security_version,
        code_hash,
        authority_hash,
        mode,
        profile,
        config_descriptor,
        subject_key: subject_key.to_bytes(),
    })
}

#[cfg(test)]
mod tests;
