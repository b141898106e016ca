//! End-to-end on hyp: every payload pvmfw boots gets a DICE chain a relying party can
//! verify, whose leaf names exactly that payload (its code and authority hashes
//! recomputed here from the signed file and the key file), and CDIs that follow its
//! identity: the same across boots, different when what they measure changes.
//!
//! test-guest's `dice` scenario prints the chain (hex) and a fingerprint of each CDI.

mod common;

use std::path::{Path, PathBuf};

use common::{dice_output, pvmkit, DiceOutput};
use host_tools::dice;
use pvmkit_abi::avb::{Descriptor, SignedPayload};
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
    // Each run is a new instance (a fresh instance disk, a new salt) unless an instance
    // id or a kept instance disk says otherwise.
    let fresh = boot(&base, &[]);
    assert!(fresh.attest != boot(&base, &[]).attest, "two new instances share no secrets");
    let kept = dir.join("kept.instance");
    let kept_arg = ["--instance", kept.to_str().unwrap()];
    let first = boot(&base, &kept_arg);
    assert_eq!(boot(&base, &kept_arg), first, "the same payload and instance: the same CDIs and chain");

    // From here on each boot names one instance id (the salt is its hash, whatever the
    // instance disk), so that only what each case changes differs.
    let id = ["--instance-id", "vm-instance-one"];
    let first = boot(&base, &id);
    assert_eq!(boot(&base, &id), first, "the same instance id: the same CDIs on a fresh disk");

    // Another rollback index: another security version in the descriptor.
    let newer = boot(&sign(&dir, "newer.signed", image, &["--rollback-index", "2"]), &id);
    assert!(newer.attest != first.attest && newer.seal == first.seal, "{newer:?} vs {first:?}");

    // Another image (the same one padded by a page): another code hash.
    let mut padded = std::fs::read(image).unwrap();
    padded.extend([0; 4096]);
    let padded_path = dir.join("padded.img");
    std::fs::write(&padded_path, padded).unwrap();
    let other_image = boot(&sign(&dir, "padded.signed", &padded_path, &["--rollback-index", "1"]), &id);
    assert!(other_image.attest != first.attest && other_image.seal == first.seal);

    // Another key: another authority hash.
    let key = Path::new(KEYS).join(format!("dice-e2e-{}.pem", std::process::id()));
    let (ok, out) = pvmkit(&["keygen", key.to_str().unwrap()]);
    assert!(ok, "{out}");
    let other_key = sign(&dir, "key.signed", image, &["--rollback-index", "1", "--key", key.to_str().unwrap()]);
    let public = key.with_extension("avbpubkey");
    let by_other = boot(&other_key, &[&id[..], &["--trusted-key", public.to_str().unwrap()]].concat());
    assert!(by_other.attest != first.attest && by_other.seal != first.seal);
    assert_eq!(dice::verify(&by_other.chain).unwrap()[1].authority_hash, expected_authority_hash(&public));
    std::fs::remove_file(&key).ok();
    std::fs::remove_file(&public).ok();

    // Another instance id: the instance hash enters the descriptor and the salt.
    let other_instance = boot(&base, &["--instance-id", "vm-instance-two"]);
    assert!(other_instance.attest != first.attest && other_instance.seal != first.seal);

    // The mode: one ramdisk, signed as initrd_normal or as initrd_debug.
    let ramdisk = dir.join("ramdisk.bin");
    std::fs::write(&ramdisk, vec![0x42; 8192]).unwrap();
    let r = ramdisk.to_str().unwrap();
    let normal = sign(&dir, "normal.signed", image, &["--initrd", r, "--initrd-name", "initrd_normal"]);
    let debug = sign(&dir, "debug.signed", image, &["--initrd", r, "--initrd-name", "initrd_debug"]);
    let (n, d) =
        (boot(&normal, &[&id[..], &["--initrd", r]].concat()), boot(&debug, &[&id[..], &["--initrd", r]].concat()));
    assert!(n.attest != d.attest && n.seal != d.seal, "the mode enters both CDIs");
    let (n, d) = (dice::verify(&n.chain).unwrap(), dice::verify(&d.chain).unwrap());
    assert_eq!((n[1].mode, d[1].mode), (Mode::Normal, Mode::Debug));
    // The code hash covers the ramdisk's digest: the descriptor the ramdisk matched.
    assert_eq!(n[1].code_hash, expected_code_hash(&normal, Some("initrd_normal")));
    assert_eq!(d[1].code_hash, expected_code_hash(&debug, Some("initrd_debug")));
}

/// Boots `signed` on the instance disk `instance` and returns pvmkit's output.
fn run_on(signed: &Path, instance: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["run", "--scenario", "dice", "--signed-payload", signed.to_str().unwrap()];
    args.extend(["--instance", instance.to_str().unwrap()]);
    args.extend_from_slice(extra);
    pvmkit(&args)
}

fn assert_refused(out: &(bool, String), refusal: pvmkit_abi::pvmfw::Refusal, detail: &str) {
    let start = refusal.line_start().to_string();
    assert!(!out.0 && out.1.contains(&start) && out.1.contains(detail), "expected {start} … {detail}:\n{}", out.1);
    assert!(!out.1.contains("test dice_handover"), "the payload must not have run:\n{}", out.1);
}

/// Instance storage: a kept instance disk takes its own payload again, and a newer
/// rollback index of it, and refuses another payload, another key, an older index and
/// a tampered record, each by name.
#[test]
fn a_kept_instance_refuses_substitution_rollback_and_tampering() {
    use pvmkit_abi::pvmfw::Refusal;
    build();
    let dir = scratch("instance");
    let image = Path::new(TEST_GUEST_IMAGE);
    let instance = dir.join("instance.img");
    let v2 = sign(&dir, "v2.signed", image, &["--reproducible", "--rollback-index", "2"]);
    let (ok, out) = run_on(&v2, &instance, &[]);
    assert!(ok && out.contains("instance storage: a new instance, recorded at rollback index 2"), "{out}");
    let created = dice_output(&out).unwrap();
    let (ok, out) = run_on(&v2, &instance, &[]);
    assert!(ok && out.contains("instance storage: the instance's payload, rollback index 2"), "{out}");
    assert_eq!(dice_output(&out).unwrap(), created, "the recorded salt: the same secrets");

    // Another image, or the same image signed by another key (signed reproducibly, so
    // that the descriptor's digest, and so the code hash, is the same).
    let mut padded = std::fs::read(image).unwrap();
    padded.extend([0; 4096]);
    let padded_path = dir.join("padded.img");
    std::fs::write(&padded_path, padded).unwrap();
    let substitute = sign(&dir, "substitute.signed", &padded_path, &["--reproducible", "--rollback-index", "2"]);
    assert_refused(&run_on(&substitute, &instance, &[]), Refusal::Instance, "code hash");
    let key = Path::new(KEYS).join(format!("dice-instance-{}.pem", std::process::id()));
    let (ok, out) = pvmkit(&["keygen", key.to_str().unwrap()]);
    assert!(ok, "{out}");
    let foreign = sign(
        &dir,
        "foreign.signed",
        image,
        &["--reproducible", "--rollback-index", "2", "--key", key.to_str().unwrap()],
    );
    let public = key.with_extension("avbpubkey");
    let out = run_on(&foreign, &instance, &["--trusted-key", public.to_str().unwrap()]);
    assert_refused(&out, Refusal::Instance, "authority hash");
    std::fs::remove_file(&key).ok();
    std::fs::remove_file(&public).ok();

    // An older rollback index is refused; a newer one is recorded, and then the old
    // one is refused too.
    let v1 = sign(&dir, "v1.signed", image, &["--reproducible", "--rollback-index", "1"]);
    assert_refused(&run_on(&v1, &instance, &[]), Refusal::Rollback, "rollback index 1 is below the 2");
    let v3 = sign(&dir, "v3.signed", image, &["--reproducible", "--rollback-index", "3"]);
    let (ok, out) = run_on(&v3, &instance, &[]);
    assert!(ok && out.contains("its rollback index raised to 3"), "{out}");
    assert_eq!(dice_output(&out).unwrap().seal, created.seal, "an update keeps the sealing CDI");
    assert_refused(&run_on(&v2, &instance, &[]), Refusal::Rollback, "rollback index 2 is below the 3");

    // The record tampered with (one byte of its ciphertext), or its framing; the
    // header made unrecognisable; a record copied onto another instance disk.
    let bytes = std::fs::read(&instance).unwrap();
    let edited = |name: &str, at: usize| {
        let mut b = bytes.clone();
        b[at] ^= 1;
        let path = dir.join(name);
        std::fs::write(&path, b).unwrap();
        path
    };
    assert_refused(&run_on(&v3, &edited("ct.img", 512 + 100), &[]), Refusal::Instance, "does not open");
    assert_refused(&run_on(&v3, &edited("framing.img", 512 + 9), &[]), Refusal::Instance, "not a sealed record");
    assert_refused(&run_on(&v3, &edited("header.img", 3), &[]), Refusal::Instance, "no instance disk");
    let other = dir.join("other.img");
    let (ok, out) = run_on(&v3, &other, &[]);
    assert!(ok, "{out}");
    let mut moved = std::fs::read(&other).unwrap();
    moved[512..1024].copy_from_slice(&bytes[512..1024]);
    std::fs::write(&other, moved).unwrap();
    assert_refused(&run_on(&v3, &other, &[]), Refusal::Instance, "does not open");
    // The kept disk itself is untouched by all this and still boots its payload.
    let (ok, out) = run_on(&v3, &instance, &[]);
    assert!(ok && out.contains("the instance's payload, rollback index 3"), "{out}");
}

/// The kinds of rollback protection, chosen as AOSP's pvmfw chooses them: deferral
/// (asked by the host and able: `secretkeeper_protection`) needs an index above 0 and
/// changes the sealing CDI; an RKP VM (`remote_attest`) must carry index 1; a Trusty
/// security VM gets none from pvmfw; and a payload that cannot defer gets instance
/// storage even when the host asks.
#[test]
fn rollback_protection_is_chosen_as_aosps_pvmfw_chooses_it() {
    use pvmkit_abi::pvmfw::Refusal;
    build();
    let dir = scratch("kinds");
    let image = Path::new(TEST_GUEST_IMAGE);
    let id = ["--instance-id", "kinds"];
    let run = |signed: &Path, extra: &[&str]| {
        let mut args = vec!["run", "--scenario", "dice", "--signed-payload", signed.to_str().unwrap()];
        args.extend_from_slice(&id);
        args.extend_from_slice(extra);
        pvmkit(&args)
    };
    let defer = ["--defer-rollback-protection"];
    let sk = |index: &'static str| {
        vec!["--reproducible", "--prop", "com.android.virt.cap:secretkeeper_protection", "--rollback-index", index]
    };

    let sk1 = sign(&dir, "sk1.signed", image, &sk("1"));
    let (ok, out) = run(&sk1, &defer);
    assert!(ok && out.contains("rollback protection: deferred to the payload"), "{out}");
    let deferred = dice_output(&out).unwrap();
    // Able but not asked: instance storage, and the deferral flag no longer in the
    // hidden input: another sealing CDI.
    let (ok, out) = run(&sk1, &[]);
    assert!(ok && out.contains("rollback protection: instance storage"), "{out}");
    assert_ne!(dice_output(&out).unwrap().seal, deferred.seal, "deferral enters the sealing CDI");
    // Deferral with rollback index 0 is refused.
    let sk0 = sign(&dir, "sk0.signed", image, &sk("0"));
    assert_refused(&run(&sk0, &defer), Refusal::Rollback, "needs a rollback index above 0");
    // Asked, but the payload cannot defer: instance storage.
    let plain = sign(&dir, "plain.signed", image, &["--rollback-index", "0"]);
    let (ok, out) = run(&plain, &defer);
    assert!(ok && out.contains("rollback protection: instance storage"), "{out}");

    // The RKP VM: index 1 only; its descriptor carries the RKP-VM marker.
    let rkp = |index: &'static str| vec!["--prop", "com.android.virt.cap:remote_attest", "--rollback-index", index];
    let (ok, out) = run(&sign(&dir, "rkp1.signed", image, &rkp("1")), &[]);
    assert!(ok && out.contains("rollback protection: the RKP VM's fixed rollback index"), "{out}");
    let leaf = &dice::verify(&dice_output(&out).unwrap().chain).unwrap()[1];
    let marker = [0x3a, 0x00, 0x01, 0x11, 0x75, 0xf6]; // -70006: null
    assert!(leaf.config_descriptor.windows(6).any(|w| w == marker), "no RKP-VM marker");
    assert_refused(
        &run(&sign(&dir, "rkp2.signed", image, &rkp("2")), &[]),
        Refusal::Rollback,
        "must carry rollback index 1",
    );

    // A Trusty security VM: none by pvmfw.
    let trusty = ["--prop", "com.android.virt.cap:trusty_security_vm"];
    let (ok, out) = run(&sign(&dir, "trusty.signed", image, &trusty), &[]);
    assert!(ok && out.contains("rollback protection: none by pvmfw (trusty_security_vm)"), "{out}");
}
