//! The payload's DICE inputs, each held to its definition (AOSP's pvmfw `dice.rs` and
//! `dice_for_avf_guest.cddl`), and the layer held to open-dice's derivation.

use super::*;
use crate::avb_properties::Capabilities;
use pvmkit_dice::{certificate, next_cdis};

fn verified<'a>(initrd: Option<&'a [u8; 32]>, name: Option<&'a str>, caps: Capabilities) -> Verified<'a> {
    Verified {
        kernel_digest: &[0x11; 32],
        initrd_digest: initrd,
        public_key: b"an AVB public key blob",
        debug: false,
        rollback_index: 42,
        properties: Properties { capabilities: caps, name },
    }
}

#[test]
fn the_code_and_authority_hashes_are_avfs() {
    let m = Measurements::new(&verified(Some(&[0x22; 32]), None, Capabilities::default()));
    let both: Vec<u8> = [[0x11u8; 32], [0x22; 32]].concat();
    assert_eq!(m.code_hash[..], Sha512::digest(&both)[..]);
    // No ramdisk: 32 zero bytes stand in for its digest.
    let none = Measurements::new(&verified(None, None, Capabilities::default()));
    let zeroes: Vec<u8> = [[0x11u8; 32], [0; 32]].concat();
    assert_eq!(none.code_hash[..], Sha512::digest(&zeroes)[..]);
    assert_eq!(m.authority_hash[..], Sha512::digest(b"an AVB public key blob")[..]);
    assert_eq!((m.mode, m.security_version, m.component_name.as_str()), (Mode::Normal, 42, "vm_entry"));
    let debug = Measurements::new(&Verified { debug: true, ..verified(None, Some("x"), Capabilities::default()) });
    assert_eq!((debug.mode, debug.component_name.as_str()), (Mode::Debug, "x"));
}

#[test]
fn the_rkp_vm_marker_follows_avfs_rule() {
    let marker = |caps| Measurements::new(&verified(None, None, caps)).rkp_vm_marker;
    assert!(!marker(Capabilities::default()));
    assert!(!marker(Capabilities { secretkeeper_protection: true, ..Capabilities::default() }));
    assert!(marker(Capabilities { remote_attest: true, ..Capabilities::default() }));
    assert!(marker(Capabilities { trusty_security_vm: true, ..Capabilities::default() }));
}

/// The descriptor, byte by byte (RFC 8949: -70002 is major type 1 with 70001 =
/// 0x11171 in four bytes; 42 fits the initial byte's argument).
#[test]
fn the_config_descriptor_is_canonical_cbor_in_avfs_order() {
    let plain = Measurements::new(&verified(None, None, Capabilities::default()));
    let mut expected = vec![0xa2, 0x3a, 0x00, 0x01, 0x11, 0x71, 0x68];
    expected.extend(b"vm_entry");
    expected.extend([0x3a, 0x00, 0x01, 0x11, 0x74, 0x18, 0x2a]);
    assert_eq!(plain.config_descriptor(None), expected);

    let rkp = Measurements::new(&verified(None, None, Capabilities { remote_attest: true, ..Default::default() }));
    let with_all = rkp.config_descriptor(Some(&[0x5a; 64]));
    let mut expected = vec![0xa4, 0x3a, 0x00, 0x01, 0x11, 0x71, 0x68];
    expected.extend(b"vm_entry");
    expected.extend([0x3a, 0x00, 0x01, 0x11, 0x74, 0x18, 0x2a]);
    expected.extend([0x3a, 0x00, 0x01, 0x11, 0x75, 0xf6]);
    expected.extend([0x3a, 0x00, 0x01, 0x15, 0x5a, 0x58, 0x40]);
    expected.extend([0x5a; 64]);
    assert_eq!(with_all, expected);
}

#[test]
fn the_hidden_input_packs_marker_salt_and_deferral() {
    let m = Measurements::new(&verified(None, None, Capabilities::default()));
    let salt = [0x33; 64];
    let mut packed = vec![0u8];
    packed.extend(salt);
    packed.push(1);
    assert_eq!(m.hidden(&salt, true)[..], Sha512::digest(&packed)[..]);
    // Each part changes it.
    let rkp = Measurements { rkp_vm_marker: true, ..m.clone() };
    let all = [m.hidden(&salt, true), m.hidden(&salt, false), m.hidden(&[0x34; 64], true), rkp.hidden(&salt, true)];
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[test]
fn the_instance_hash_is_sha512_of_the_prefixed_id() {
    assert_eq!(instance_hash(b"abc")[..], Sha512::digest(b"InstanceId:abc")[..]);
}

/// A handover from a one-key chain stand-in to the payload's: the CDIs are the
/// specification's derivation of these inputs, the chain keeps its items and gains a
/// certificate naming android.16 that open-dice's writer would produce.
#[test]
fn the_next_handover_is_the_derivation_of_these_inputs() {
    let root_key = certificate::cose_key(&[7; 32]);
    let bootloader = {
        let input = InputValues {
            code_hash: [1; 64],
            code_descriptor: &[],
            config: Config::Inline([0; 64]),
            authority_hash: [2; 64],
            authority_descriptor: &[],
            mode: Mode::Normal,
            hidden: [0; 64],
        };
        certificate::certificate(&[3; 32], &[4; 32], &input, Some("android.16"))
    };
    let chain: Vec<u8> = [&[0x82][..], &root_key, &bootloader].concat();
    let mut incoming = vec![0xa3, 0x01, 0x58, 0x20];
    incoming.extend([3; 32]);
    incoming.extend([0x02, 0x58, 0x20]);
    incoming.extend([5; 32]);
    incoming.push(0x03);
    incoming.extend(&chain);
    let incoming_handover = DiceHandover::parse(&incoming).unwrap();
    let m = Measurements::new(&verified(Some(&[0x22; 32]), None, Capabilities::default()));
    let salt = [9; 64];
    let out = next_handover(&incoming_handover, &m, &salt, Some(&instance_hash(b"id")), false).unwrap();
    let parsed = DiceHandover::parse(&out).unwrap();

    let descriptor = m.config_descriptor(Some(&instance_hash(b"id")));
    let input = InputValues {
        code_hash: m.code_hash,
        code_descriptor: &[],
        config: Config::Descriptor(&descriptor),
        authority_hash: m.authority_hash,
        authority_descriptor: &[],
        mode: Mode::Normal,
        hidden: m.hidden(&salt, false),
    };
    let expected = next_cdis(&Cdis { attest: [3; 32], seal: [5; 32] }, &input);
    assert_eq!((parsed.cdi_attest, parsed.cdi_seal), (&expected.attest, &expected.seal));
    let cert = certificate::certificate(&expected.attest, &[3; 32], &input, Some("android.16"));
    assert_eq!(parsed.chain, [&[0x83][..], &root_key, &bootloader, &cert].concat());
}
