//! Verification held to avbtool's vectors (`abi/testdata/avb`): what avbtool signed
//! verifies; each tampering is refused by name; and, re-signed with the vectors'
//! throwaway keys, payloads that are validly signed but wrong inside are refused by
//! the check that concerns them (so no check hides behind another).

use super::*;
use rsa::pkcs8::DecodePrivateKey;
use rsa::RsaPrivateKey;

const SHA256_RSA4096: &[u8] = include_bytes!("../../../abi/testdata/avb/sha256-rsa4096.img");
const SHA512_RSA2048: &[u8] = include_bytes!("../../../abi/testdata/avb/sha512-rsa2048.img");
const KEY4096: &[u8] = include_bytes!("../../../abi/testdata/avb/key4096.avbpubkey");
const KEY2048: &[u8] = include_bytes!("../../../abi/testdata/avb/key2048.avbpubkey");
const PEM4096: &str = include_str!("../../../abi/testdata/avb/key4096.pem");

/// Offsets in the 4096-bit vector: the vbmeta image, its auxiliary block, and in the
/// authentication block the hash and the signature.
struct Layout {
    vbmeta: usize,
    aux: usize,
    hash: usize,
    signature: usize,
    descriptors: usize,
}

fn layout() -> Layout {
    let v = SignedPayload::parse(SHA256_RSA4096).unwrap().vbmeta;
    let vbmeta = pvmkit_abi::avb::footer(SHA256_RSA4096).unwrap().vbmeta_offset.get() as usize;
    let auth = vbmeta + 256;
    let aux = auth + v.header.authentication_data_block_size.get() as usize;
    Layout {
        vbmeta,
        aux,
        hash: auth + v.header.hash_offset.get() as usize,
        signature: auth + v.header.signature_offset.get() as usize,
        descriptors: aux + v.header.descriptors_offset.get() as usize,
    }
}

/// Recomputes the vbmeta hash of `payload` (the 4096-bit vector, edited) and, with
/// `sign`, its signature with the vector's own private key.
fn reseal(payload: &mut [u8], sign: bool) {
    let l = layout();
    let aux_len = SignedPayload::parse(SHA256_RSA4096).unwrap().vbmeta.header.auxiliary_data_block_size.get() as usize;
    let digest: [u8; 32] = Sha256::new()
        .chain_update(&payload[l.vbmeta..l.vbmeta + 256])
        .chain_update(&payload[l.aux..l.aux + aux_len])
        .finalize()
        .into();
    payload[l.hash..l.hash + 32].copy_from_slice(&digest);
    if sign {
        let key = RsaPrivateKey::from_pkcs8_pem(PEM4096).unwrap();
        let signature = key.sign(Pkcs1v15Sign::new::<Sha256>(), &digest).unwrap();
        payload[l.signature..l.signature + 512].copy_from_slice(&signature);
    }
}

#[test]
fn what_avbtool_signed_verifies() {
    let v = verify(SHA256_RSA4096, KEY4096, None).unwrap();
    assert_eq!((v.image.len(), v.rollback_index), (4096, 5));
    assert!(v.image.iter().enumerate().all(|(i, &b)| b == ((7 * i + 3) & 0xff) as u8));
    let v = verify(SHA512_RSA2048, KEY2048, None).unwrap();
    assert_eq!((v.image.len(), v.rollback_index), (4096, 0));
}

/// PKCS#1 v1.5 is deterministic: re-signing avbtool's vbmeta with its key gives
/// avbtool's signature byte for byte (what `pvmkit sign` must match).
#[test]
fn resigning_reproduces_avbtools_signature() {
    let mut again = SHA256_RSA4096.to_vec();
    reseal(&mut again, true);
    assert_eq!(again, SHA256_RSA4096);
}

#[test]
fn tampering_is_refused_by_name() {
    let l = layout();
    assert_eq!(verify(SHA256_RSA4096, KEY2048, None).unwrap_err(), AvbVerifyError::UntrustedKey);
    assert_eq!(verify(SHA512_RSA2048, KEY4096, None).unwrap_err(), AvbVerifyError::UntrustedKey);
    let tampered = |at: usize| {
        let mut p = SHA256_RSA4096.to_vec();
        p[at] ^= 1;
        verify(&p, KEY4096, None).unwrap_err()
    };
    assert_eq!(tampered(100), AvbVerifyError::DigestMismatch, "an image byte");
    assert_eq!(tampered(l.descriptors + 200), AvbVerifyError::VbmetaHashMismatch, "a descriptor byte");
    assert_eq!(tampered(l.signature + 7), AvbVerifyError::BadSignature, "a signature byte");
    assert_eq!(tampered(l.hash), AvbVerifyError::VbmetaHashMismatch, "a hash byte");
    // The hash made to match an edited auxiliary block, the signature not redone.
    let mut p = SHA256_RSA4096.to_vec();
    p[l.descriptors + 200] ^= 1;
    reseal(&mut p, false);
    assert_eq!(verify(&p, KEY4096, None).unwrap_err(), AvbVerifyError::BadSignature);
    // Verification disabled in the flags (header offset 120).
    let mut p = SHA256_RSA4096.to_vec();
    p[l.vbmeta + 123] = 2;
    assert_eq!(verify(&p, KEY4096, None).unwrap_err(), AvbVerifyError::VerificationDisabled(2));
}

/// Validly signed, wrong inside: another partition name, another hash algorithm,
/// another image size.
#[test]
fn a_validly_signed_payload_with_a_wrong_descriptor_is_refused() {
    let l = layout();
    // The hash descriptor's fields, 16 bytes into it: image_size (8), the algorithm
    // name (32); the partition name follows the 116 fixed bytes.
    let fields = l.descriptors + 16;
    let edit = |at: usize, bytes: &[u8]| {
        let mut p = SHA256_RSA4096.to_vec();
        p[at..at + bytes.len()].copy_from_slice(bytes);
        reseal(&mut p, true);
        verify(&p, KEY4096, None).unwrap_err()
    };
    assert_eq!(edit(fields + 116, b"bood"), AvbVerifyError::UnexpectedPartition);
    assert_eq!(edit(fields + 8, b"sha512"), AvbVerifyError::UnsupportedHash);
    assert_eq!(edit(fields, &4095u64.to_be_bytes()), AvbVerifyError::ImageSizeMismatch);
    let salt_at = fields + 116 + 4;
    assert_eq!(edit(salt_at, &[0xff]), AvbVerifyError::DigestMismatch, "another salt");
}

const WITH_INITRDS: &[u8] = include_bytes!("../../../abi/testdata/avb/kernel-with-initrds.img");
const INITRD_NORMAL_BYTES: &[u8] = include_bytes!("../../../abi/testdata/avb/initrd-normal.bin");
const INITRD_DEBUG_BYTES: &[u8] = include_bytes!("../../../abi/testdata/avb/initrd-debug.bin");

/// A kernel carrying both ramdisks' descriptors, as avbtool's
/// `--include_descriptors_from_image` writes it: the ramdisk's bytes decide which one
/// it is; anything else is refused by name.
#[test]
fn a_ramdisk_is_normal_or_debug_by_its_bytes() {
    let verified = |initrd| verify(WITH_INITRDS, KEY4096, initrd).map(|v| v.initrd);
    assert_eq!(verified(Some(INITRD_NORMAL_BYTES)), Ok(Some(Initrd::Normal)));
    assert_eq!(verified(Some(INITRD_DEBUG_BYTES)), Ok(Some(Initrd::Debug)));
    // The digests DICE measures are the matched descriptors', as avbtool info_image
    // printed them (kernel-with-initrds.info.txt).
    let hex = |d: &[u8; 32]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let v = verify(WITH_INITRDS, KEY4096, Some(INITRD_DEBUG_BYTES)).unwrap();
    assert_eq!(hex(v.kernel_digest), "9fd24d9524bf2c8ac4a9996325bb1eaba60980b8e652c204991f4583260c0bac");
    assert_eq!(v.initrd_digest.map(hex).unwrap(), "1c0f9648751c7a5cc48b5875bfc6b96d3b2fc3b0ef38db997b59be916c0f21d3");
    let v = verify(WITH_INITRDS, KEY4096, Some(INITRD_NORMAL_BYTES)).unwrap();
    assert_eq!(v.initrd_digest.map(hex).unwrap(), "26e8d1728b6e7efea5cc5fcb1ee223ee9a6c2f249422cab88758273edeb38c67");
    assert_eq!(verify(SHA256_RSA4096, KEY4096, None).unwrap().initrd_digest, None);
    let mut tampered = INITRD_NORMAL_BYTES.to_vec();
    tampered[10] ^= 1;
    assert_eq!(verified(Some(&tampered)), Err(AvbVerifyError::InitrdMismatch));
    assert_eq!(verified(Some(&INITRD_NORMAL_BYTES[..1000])), Err(AvbVerifyError::InitrdMismatch), "a short one");
    assert_eq!(verified(None), Err(AvbVerifyError::InitrdMissing));
    // A kernel without ramdisk descriptors takes no ramdisk.
    assert_eq!(
        verify(SHA256_RSA4096, KEY4096, Some(INITRD_NORMAL_BYTES)).unwrap_err(),
        AvbVerifyError::NoInitrdDescriptor
    );
}

/// The hash descriptors name boot and the two ramdisks only, each once, and boot is
/// among them.
#[test]
fn hash_descriptors_name_known_partitions_once() {
    let hash = |partition_name: &'static [u8]| {
        Ok(Descriptor::Hash(HashDescriptor {
            image_size: 1,
            hash_algorithm: b"sha256",
            partition_name,
            salt: &[],
            digest: &[0; 32],
            flags: 0,
        }))
    };
    let of = |names: &[&'static [u8]]| hash_descriptors(names.iter().map(|&n| hash(n)));
    let all = of(&[b"initrd_debug", b"boot", b"initrd_normal"]).unwrap();
    let names: Vec<_> = all.iter().map(|d| d.map(|d| d.partition_name)).collect();
    assert_eq!(names, [Some(&b"boot"[..]), Some(&b"initrd_normal"[..]), Some(&b"initrd_debug"[..])]);
    assert_eq!(of(&[b"boot", b"vendor_boot"]), Err(AvbVerifyError::UnexpectedPartition));
    assert_eq!(of(&[b"boot", b"initrd_normal", b"initrd_normal"]), Err(AvbVerifyError::DuplicatePartition));
    assert_eq!(of(&[b"boot", b"boot"]), Err(AvbVerifyError::DuplicatePartition));
    // Only ramdisk descriptors: verification finds no kernel descriptor.
    let only_initrd = of(&[b"initrd_normal"]).unwrap();
    assert!(only_initrd[0].is_none());
}

/// The cost is read around the signature check and the hashing, and counts the bytes
/// hashed: the kernel's and the ramdisk's.
#[test]
fn the_cost_splits_signature_from_hashing() {
    // The clock reads 0, then 10, then 110: 10 ticks of signature, 100 of hashing.
    let readings = core::cell::Cell::new(0usize);
    let clock = || {
        let i = readings.replace(readings.get() + 1);
        [0, 10, 110][i]
    };
    let (_, cost) = verify_timed(WITH_INITRDS, KEY4096, Some(INITRD_NORMAL_BYTES), &clock).unwrap();
    assert_eq!((cost.signature, cost.hashing), (10, 100));
    assert_eq!(cost.hashed_bytes, 4096 + 1024);
    let (_, cost) = verify_timed(SHA256_RSA4096, KEY4096, None, &|| 0).unwrap();
    assert_eq!(cost, Cost { signature: 0, hashing: 0, hashed_bytes: 4096 });
}

/// What `pvmkit sign` wrote and avbtool's `verify_image` accepted verifies here too,
/// with its ramdisk, and nothing else passes for that ramdisk.
#[test]
fn what_pvmkit_signed_and_avbtool_accepted_verifies() {
    const SIGNED: &[u8] = include_bytes!("../../../abi/testdata/avb/pvmkit-signed.img");
    const RAMDISK: &[u8] = include_bytes!("../../../abi/testdata/avb/pvmkit-ramdisk.bin");
    let verified = verify(SIGNED, KEY4096, Some(RAMDISK)).unwrap();
    assert_eq!((verified.initrd, verified.rollback_index, verified.image.len()), (Some(Initrd::Normal), 3, 8192));
    let properties = crate::avb_properties::read(verified.payload.vbmeta.descriptors()).unwrap();
    assert_eq!(properties.name, Some("avbtool-check"));
    assert!(properties.capabilities.remote_attest);
    let mut tampered = RAMDISK.to_vec();
    tampered[100] ^= 1;
    assert_eq!(verify(SIGNED, KEY4096, Some(&tampered)).unwrap_err(), AvbVerifyError::InitrdMismatch);
}

/// SHA512_RSA8192, avbtool's: the largest key verifies, and a flipped signature byte
/// does not.
#[test]
fn an_8192_bit_signature_verifies() {
    const SIGNED: &[u8] = include_bytes!("../../../abi/testdata/avb/sha512-rsa8192.img");
    const KEY8192: &[u8] = include_bytes!("../../../abi/testdata/avb/key8192.avbpubkey");
    let verified = verify(SIGNED, KEY8192, None).unwrap();
    assert_eq!((verified.rollback_index, verified.image.len()), (9, 6000));
    assert_eq!(verified.payload.vbmeta.algorithm, pvmkit_abi::avb::Algorithm::Sha512Rsa8192);
    assert_eq!(verify(SIGNED, KEY4096, None).unwrap_err(), AvbVerifyError::UntrustedKey);
    let mut tampered = SIGNED.to_vec();
    let vbmeta = pvmkit_abi::avb::footer(SIGNED).unwrap().vbmeta_offset.get() as usize;
    tampered[vbmeta + 256 + 64 + 100] ^= 1; // inside the signature (after the 64-byte hash)
    assert_eq!(verify(&tampered, KEY8192, None).unwrap_err(), AvbVerifyError::BadSignature);
}
