//! End-to-end on hyp: every payload pvmfw boots gets a DICE chain a relying party can
//! verify, whose leaf names exactly that payload (its code and authority hashes
//! recomputed here from the signed file and the key file), and CDIs that follow its
//! identity: the same across boots, different when what they measure changes.
//!
//! test-guest's `dice` scenario prints the chain (hex) and a fingerprint of each CDI.

mod common;

use std::path::{Path, PathBuf};

use abi::avb::{Descriptor, SignedPayload};
use common::{dice_output, pvmkit, DiceOutput};
use host_tools::dice;
use pvmkit_dice::Mode;
use sha2::{Digest, Sha512};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/pvmkit/keys");
const DEV_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/pvmkit/keys/pvmkit-DEVELOPMENT-ONLY.pem");
const TEST_GUEST_IMAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/pvmkit/test-guest.img");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pvmkit-dice-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `pvmkit build`, so that the firmware and test-guest's Image exist.
fn build() {
    let (ok, out) = pvmkit(&["build"]);
    assert!(ok, "{out}");
}

/// Signs `payload` with `extra` arguments (the development key unless `--key` is among them).
fn sign(dir: &Path, name: &str, payload: &Path, extra: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut args = vec!["sign", "--payload", payload.to_str().unwrap(), "-o", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (ok, out) = pvmkit(&args);
    assert!(ok, "{out}");
    path
}

/// Boots `signed` through pvmfw with test-guest's `dice` scenario and `extra` arguments.
fn boot(signed: &Path, extra: &[&str]) -> DiceOutput {
    let mut args = vec!["run", "--scenario", "dice", "--signed-payload", signed.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (ok, out) = pvmkit(&args);
    assert!(ok && out.contains("test dice_handover ... ") && out.contains("2 passed, 0 failed"), "{out}");
    dice_output(&out).expect("test-guest printed the handover")
}

/// The digest of `partition`'s hash descriptor in a signed file.
fn descriptor_digest(signed: &Path, partition: &str) -> Vec<u8> {
    let bytes = std::fs::read(signed).unwrap();
    let payload = SignedPayload::parse(&bytes).unwrap();
    let digest = payload.vbmeta.descriptors().find_map(|d| match d.unwrap() {
        Descriptor::Hash(h) if h.partition_name == partition.as_bytes() => Some(h.digest.to_vec()),
        _ => None,
    });
    digest.unwrap()
}

/// The code hash AVF's pvmfw measures, from the file: SHA-512 of the boot descriptor's
/// digest and the ramdisk's (`initrd`'s descriptor), or 32 zero bytes.
fn expected_code_hash(signed: &Path, initrd: Option<&str>) -> Vec<u8> {
    let ramdisk = initrd.map_or(vec![0; 32], |name| descriptor_digest(signed, name));
    Sha512::new().chain_update(descriptor_digest(signed, "boot")).chain_update(ramdisk).finalize().to_vec()
}

/// The authority hash: SHA-512 of the key's AVB public key blob (the `.avbpubkey` file).
fn expected_authority_hash(avbpubkey: &Path) -> Vec<u8> {
    Sha512::digest(std::fs::read(avbpubkey).unwrap()).to_vec()
}

#[test]
fn the_chain_verifies_and_its_leaf_names_exactly_this_payload() {
    build();
    let dir = scratch("leaf");
    let image = Path::new(TEST_GUEST_IMAGE);
    let signed =
        sign(&dir, "named.signed", image, &["--rollback-index", "3", "--prop", "com.android.virt.name:dice-e2e"]);
    let b = boot(&signed, &[]);
    let layers = dice::verify(&b.chain).unwrap();
    assert_eq!(layers.len(), 2, "the bootloader's layer and the payload's");
    assert_eq!(layers[0].component_name.as_deref(), Some(dice::BOOTLOADER_NAME));
    let leaf = &layers[1];
    assert_eq!(leaf.code_hash, expected_code_hash(&signed, None));
    let dev_public = Path::new(DEV_KEY).with_extension("avbpubkey");
    assert_eq!(leaf.authority_hash, expected_authority_hash(&dev_public));
    assert_eq!(leaf.mode, Mode::Normal);
    assert_eq!((leaf.component_name.as_deref(), leaf.security_version), (Some("dice-e2e"), Some(3)));
    assert_eq!(leaf.profile.as_deref(), Some("android.16"));
    // The chain pvmfw received is kept whole, its certificate appended.
    let root = dice::chain_of(&dice::root_handover(&dice::test_uds())).unwrap();
    assert_eq!(b.chain[1..root.len()], root[1..], "the incoming chain's items, byte for byte");

    // `pvmkit dice verify` accepts it and prints each layer; one flipped byte is refused.
    let file = dir.join("chain.cbor");
    std::fs::write(&file, &b.chain).unwrap();
    let (ok, out) = pvmkit(&["dice", "verify", file.to_str().unwrap()]);
    assert!(ok && out.contains("layer 2: dice-e2e (android.16): mode Normal, security version 3"), "{out}");
    let mut tampered = b.chain.clone();
    let at = tampered.len() - 10;
    tampered[at] ^= 1;
    std::fs::write(&file, &tampered).unwrap();
    let (ok, out) = pvmkit(&["dice", "verify", file.to_str().unwrap()]);
    assert!(!ok && out.contains("certificate 2: the signature does not verify"), "{out}");

    // A handover rooted in another UDS: `pvmkit dice root`, then `run --dice-handover`.
    let uds = dir.join("uds.bin");
    std::fs::write(&uds, [0x5a; 32]).unwrap();
    let handover = dir.join("handover.cbor");
    let (ok, out) = pvmkit(&["dice", "root", "--uds", uds.to_str().unwrap(), "-o", handover.to_str().unwrap()]);
    assert!(ok, "{out}");
    let other = boot(&signed, &["--dice-handover", handover.to_str().unwrap()]);
    assert!(dice::verify(&other.chain).is_ok());
    assert_ne!((&other.attest, &other.seal), (&b.attest, &b.seal), "another device, other secrets");
    assert_eq!(dice::verify(&other.chain).unwrap()[1].code_hash, leaf.code_hash, "the same payload");
    // A UDS is 32 bytes: anything else is refused by name.
    std::fs::write(&uds, [0x5a; 31]).unwrap();
    let (ok, out) = pvmkit(&["dice", "root", "--uds", uds.to_str().unwrap(), "-o", handover.to_str().unwrap()]);
    assert!(!ok && out.contains("a UDS is 32 bytes"), "{out}");
}

/// CDI_Attest measures everything (code, configuration, authority, mode, hidden);
/// CDI_Seal only the authority, the mode and the hidden input (the specification's
/// split, so that a sealed secret survives an update of the code).
#[test]
fn cdis_follow_the_payloads_identity() {
    build();
    let dir = scratch("cdis");
    let image = Path::new(TEST_GUEST_IMAGE);
    let base = sign(&dir, "base.signed", image, &["--rollback-index", "1"]);
    let first = boot(&base, &[]);
    assert_eq!(boot(&base, &[]), first, "the same payload and instance: the same CDIs and chain");

    // Another rollback index: another security version in the descriptor.
    let newer = boot(&sign(&dir, "newer.signed", image, &["--rollback-index", "2"]), &[]);
    assert!(newer.attest != first.attest && newer.seal == first.seal, "{newer:?} vs {first:?}");

    // Another image (the same one padded by a page): another code hash.
    let mut padded = std::fs::read(image).unwrap();
    padded.extend([0; 4096]);
    let padded_path = dir.join("padded.img");
    std::fs::write(&padded_path, padded).unwrap();
    let other_image = boot(&sign(&dir, "padded.signed", &padded_path, &["--rollback-index", "1"]), &[]);
    assert!(other_image.attest != first.attest && other_image.seal == first.seal);

    // Another key: another authority hash.
    let key = Path::new(KEYS).join(format!("dice-e2e-{}.pem", std::process::id()));
    let (ok, out) = pvmkit(&["keygen", key.to_str().unwrap()]);
    assert!(ok, "{out}");
    let other_key = sign(&dir, "key.signed", image, &["--rollback-index", "1", "--key", key.to_str().unwrap()]);
    let public = key.with_extension("avbpubkey");
    let by_other = boot(&other_key, &["--trusted-key", public.to_str().unwrap()]);
    assert!(by_other.attest != first.attest && by_other.seal != first.seal);
    assert_eq!(dice::verify(&by_other.chain).unwrap()[1].authority_hash, expected_authority_hash(&public));
    std::fs::remove_file(&key).ok();
    std::fs::remove_file(&public).ok();

    // Another instance: the instance hash enters the descriptor and the salt.
    let instance = boot(&base, &["--instance-id", "vm-instance-one"]);
    assert!(instance.attest != first.attest && instance.seal != first.seal);
    assert_eq!(boot(&base, &["--instance-id", "vm-instance-one"]), instance, "the same instance again");
    let other_instance = boot(&base, &["--instance-id", "vm-instance-two"]);
    assert!(other_instance.attest != instance.attest && other_instance.seal != instance.seal);

    // The mode: one ramdisk, signed as initrd_normal or as initrd_debug.
    let ramdisk = dir.join("ramdisk.bin");
    std::fs::write(&ramdisk, vec![0x42; 8192]).unwrap();
    let r = ramdisk.to_str().unwrap();
    let normal = sign(&dir, "normal.signed", image, &["--initrd", r, "--initrd-name", "initrd_normal"]);
    let debug = sign(&dir, "debug.signed", image, &["--initrd", r, "--initrd-name", "initrd_debug"]);
    let (n, d) = (boot(&normal, &["--initrd", r]), boot(&debug, &["--initrd", r]));
    assert!(n.attest != d.attest && n.seal != d.seal, "the mode enters both CDIs");
    let (n, d) = (dice::verify(&n.chain).unwrap(), dice::verify(&d.chain).unwrap());
    assert_eq!((n[1].mode, d[1].mode), (Mode::Normal, Mode::Debug));
    // The code hash covers the ramdisk's digest: the descriptor the ramdisk matched.
    assert_eq!(n[1].code_hash, expected_code_hash(&normal, Some("initrd_normal")));
    assert_eq!(d[1].code_hash, expected_code_hash(&debug, Some("initrd_debug")));
}
