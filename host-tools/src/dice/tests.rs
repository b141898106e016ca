//! The relying party's checks, each shown to catch what it should: every tamper below is
//! refused, and by the check that names it.

use super::*;
use ed25519_dalek::{Signer, SigningKey};

/// A root handover and the payload layer pvmfw would append (profile android.16).
fn two_layers() -> Vec<u8> {
    let root = root_handover(&test_uds());
    let handover = pvmkit_abi::dice_handover::DiceHandover::parse(&root).unwrap();
    let current = Cdis { attest: *handover.cdi_attest, seal: *handover.cdi_seal };
    let descriptor = {
        let mut w = pvmkit_dice::cbor::Writer::default();
        w.map(2).int(-70002).text("vm_entry").int(-70005).uint(7);
        w.out
    };
    let input = InputValues {
        code_hash: [0xc0; 64],
        code_descriptor: &[],
        config: Config::Descriptor(&descriptor),
        authority_hash: [0xa0; 64],
        authority_descriptor: &[],
        mode: Mode::Debug,
        hidden: [0; 64],
    };
    pvmkit_dice::next_handover(&current, handover.chain, &input).unwrap()
}

/// The issuer key of the chain's last certificate (the bootloader's, from its CDI).
fn bootloader_key() -> SigningKey {
    let root = root_handover(&test_uds());
    pvmkit_dice::key_pair(pvmkit_abi::dice_handover::DiceHandover::parse(&root).unwrap().cdi_attest)
}

#[test]
fn the_root_and_the_payload_layer_verify() {
    let layers = verify(&chain_of(&root_handover(&test_uds())).unwrap()).unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0].component_name.as_deref(), Some(BOOTLOADER_NAME));
    assert_eq!((layers[0].profile.as_deref(), layers[0].security_version), (Some("android.16"), Some(0)));
    let layers = verify(&chain_of(&two_layers()).unwrap()).unwrap();
    assert_eq!(layers.len(), 2);
    let payload = &layers[1];
    assert_eq!((payload.component_name.as_deref(), payload.security_version), (Some("vm_entry"), Some(7)));
    assert_eq!((payload.code_hash.clone(), payload.authority_hash.clone()), (vec![0xc0; 64], vec![0xa0; 64]));
    assert_eq!(payload.mode, Mode::Debug);
    assert!(payload.to_string().contains("vm_entry (android.16): mode Debug, security version 7"), "{payload}");
    // Another UDS: another root, another chain; each verifies alone.
    assert_ne!(root_handover(&[1; 32]), root_handover(&test_uds()));
    assert!(verify(&chain_of(&root_handover(&[1; 32])).unwrap()).is_ok());
}

/// The chain's items; the last certificate as COSE_Sign1.
fn split(chain: &[u8]) -> (Vec<Value>, CoseSign1) {
    let Value::Array(mut items) = ciborium::de::from_reader(chain).unwrap() else { panic!() };
    let last = CoseSign1::from_cbor_value(items.pop().unwrap()).unwrap();
    (items, last)
}

fn join(items: Vec<Value>, last: CoseSign1) -> Vec<u8> {
    let mut items = items;
    items.push(last.to_cbor_value().unwrap());
    let mut out = Vec::new();
    ciborium::ser::into_writer(&Value::Array(items), &mut out).unwrap();
    out
}

/// The chain with its last certificate's payload map edited by `edit` and signed again
/// by `key`.
fn resigned(edit: impl Fn(&mut Vec<(Value, Value)>), key: &SigningKey) -> Vec<u8> {
    let (items, mut last) = split(&chain_of(&two_layers()).unwrap());
    let Value::Map(mut entries) = ciborium::de::from_reader(&last.payload.clone().unwrap()[..]).unwrap() else {
        panic!()
    };
    edit(&mut entries);
    let mut payload = Vec::new();
    ciborium::ser::into_writer(&Value::Map(entries), &mut payload).unwrap();
    last.payload = Some(payload);
    let data = last.tbs_data(b"");
    last.signature = key.sign(&data).to_bytes().to_vec();
    join(items, last)
}

/// An edit of a certificate's payload map.
type Edit = Box<dyn Fn(&mut Vec<(Value, Value)>)>;

fn set(entries: &mut [(Value, Value)], label: i64, value: Value) {
    entries.iter_mut().find(|(k, _)| *k == Value::Integer(label.into())).unwrap().1 = value;
}

fn refused(chain: &[u8]) -> String {
    verify(chain).expect_err("a tampered chain verified")
}

#[test]
fn every_tamper_is_refused_by_name() {
    let good = chain_of(&two_layers()).unwrap();
    let key = bootloader_key();
    // Re-signing an unchanged payload with the issuer's key still verifies: the
    // harness below changes only what each case names.
    assert!(verify(&resigned(|_| {}, &key)).is_ok());

    // The signature: one bit of it, one bit of what it covers, another signer.
    let (items, mut last) = split(&good);
    last.signature[5] ^= 1;
    assert!(refused(&join(items, last)).contains("does not verify"));
    let (items, mut last) = split(&good);
    last.payload.as_mut().unwrap()[40] ^= 1;
    assert!(refused(&join(items, last)).contains("does not verify"));
    assert!(refused(&resigned(|_| {}, &SigningKey::from_bytes(&[9; 32]))).contains("does not verify"));

    // Fields the profile requires, each wrong in turn.
    let cases: Vec<(Edit, &str)> = vec![
        (Box::new(|e| set(e, 1, Value::Text("00".into()))), "issuer is not the previous layer's subject"),
        (Box::new(|e| set(e, 2, Value::Text("00".into()))), "subject is not the ID"),
        (Box::new(|e| set(e, -4670553, Value::Bytes(vec![0x21]))), "key usage"),
        (Box::new(|e| set(e, -4670551, Value::Bytes(vec![4]))), "mode"),
        (Box::new(|e| set(e, -4670547, Value::Bytes(vec![0; 64]))), "configuration hash"),
        (Box::new(|e| set(e, -4670545, Value::Bytes(vec![0; 32]))), "not 64 bytes"),
        (Box::new(|e| e.retain(|(k, _)| *k != Value::Integer((-4670549).into()))), "no authority hash"),
        (Box::new(|e| e.retain(|(k, _)| *k != Value::Integer((-4670552).into()))), "no subject public key"),
    ];
    for (edit, needle) in cases {
        let why = refused(&resigned(edit, &key));
        assert!(why.contains(needle), "{needle}: {why}");
    }
    // A descriptor without the security version the android.16 profile requires (its
    // hash kept right).
    let no_version = {
        let mut w = pvmkit_dice::cbor::Writer::default();
        w.map(1).int(-70002).text("vm_entry");
        w.out
    };
    let why = refused(&resigned(
        |e| {
            set(e, -4670548, Value::Bytes(no_version.clone()));
            set(e, -4670547, Value::Bytes(Sha512::digest(&no_version).to_vec()));
        },
        &key,
    ));
    assert!(why.contains("requires a security version"), "{why}");

    // The chain's shape: a root alone, a root that is not the UDS key.
    let (mut items, _) = split(&good);
    items.truncate(1);
    let mut root_only = Vec::new();
    ciborium::ser::into_writer(&Value::Array(items), &mut root_only).unwrap();
    assert!(refused(&root_only).contains("no certificate"));
    let (mut items, last) = split(&good);
    items[0] =
        CoseKey::from_slice(&certificate::cose_key(&SigningKey::from_bytes(&[3; 32]).verifying_key().to_bytes()))
            .unwrap()
            .to_cbor_value()
            .unwrap();
    assert!(refused(&join(items, last)).contains("certificate 1"));
    assert!(chain_of(b"\xa1\x01\x02").is_err());
}

#[test]
fn profiles_may_not_go_backwards() {
    let key = bootloader_key();
    let older = resigned(|e| set(e, -4670554, Value::Text("android.15".into())), &key);
    assert!(refused(&older).contains("older than the previous certificate's android.16"));
}
