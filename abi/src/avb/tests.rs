//! The parser held to avbtool's own output (`abi/testdata/avb/README.md`): every field
//! `avbtool info_image` printed for the two vectors, and a refusal for each way the
//! bytes can be wrong.

use super::*;

const SHA256_RSA4096: &[u8] = include_bytes!("../../testdata/avb/sha256-rsa4096.img");
const SHA512_RSA2048: &[u8] = include_bytes!("../../testdata/avb/sha512-rsa2048.img");
const KEY4096: &[u8] = include_bytes!("../../testdata/avb/key4096.avbpubkey");
const INFO4096: &str = include_str!("../../testdata/avb/sha256-rsa4096.info.txt");
const INFO2048: &str = include_str!("../../testdata/avb/sha512-rsa2048.info.txt");

/// The value avbtool printed for `label` (`Label:   value`).
fn info<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("avbtool printed no {label}"))
}

fn number(text: &str, label: &str) -> u64 {
    info(text, label).split_whitespace().next().unwrap().parse().unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn reads_what_avbtool_wrote() {
    for (payload, text, algorithm) in
        [(SHA256_RSA4096, INFO4096, Algorithm::Sha256Rsa4096), (SHA512_RSA2048, INFO2048, Algorithm::Sha512Rsa2048)]
    {
        assert_eq!(payload.len() as u64, number(text, "Image size"));
        let footer = footer(payload).unwrap();
        assert_eq!(footer.original_image_size.get(), number(text, "Original image size"));
        assert_eq!(footer.vbmeta_offset.get(), number(text, "VBMeta offset"));
        assert_eq!(footer.vbmeta_size.get(), number(text, "VBMeta size"));
        let signed = SignedPayload::parse(payload).unwrap();
        let vbmeta = signed.vbmeta;
        assert_eq!(signed.image.len() as u64, number(text, "Original image size"));
        assert_eq!(vbmeta.algorithm, algorithm);
        assert_eq!(format!("{:?}", vbmeta.algorithm).to_uppercase(), info(text, "Algorithm").replace('_', ""));
        assert_eq!(vbmeta.header.authentication_data_block_size.get(), number(text, "Authentication Block"));
        assert_eq!(vbmeta.header.auxiliary_data_block_size.get(), number(text, "Auxiliary Block"));
        assert_eq!(vbmeta.rollback_index(), number(text, "Rollback Index"));
        assert_eq!(u64::from(vbmeta.flags()), number(text, "Flags"));
        assert_eq!(vbmeta.hash().unwrap().len(), algorithm.hash_size());
        assert_eq!(vbmeta.public_key().unwrap().bits, algorithm.key_bits());
        let release = &vbmeta.header.release_string;
        let release = &release[..release.iter().position(|&b| b == 0).unwrap()];
        assert_eq!(format!("'{}'", core::str::from_utf8(release).unwrap()), info(text, "Release String"));
        let hashes: Vec<HashDescriptor<'_>> = vbmeta
            .descriptors()
            .filter_map(|d| match d.unwrap() {
                Descriptor::Hash(h) => Some(h),
                _ => None,
            })
            .collect();
        assert_eq!(hashes.len(), 1);
        let h = hashes[0];
        assert_eq!(h.image_size, number(text, "Image Size"));
        assert_eq!(h.hash_algorithm, info(text, "Hash Algorithm").as_bytes());
        assert_eq!(h.partition_name, info(text, "Partition Name").as_bytes());
        assert_eq!(hex(h.salt), info(text, "Salt"));
        assert_eq!(hex(h.digest), info(text, "Digest"));
        assert_eq!(u64::from(h.flags), number(text, "Flags"));
    }
}

#[test]
fn reads_the_properties_and_the_key_avbtool_extracted() {
    let vbmeta = SignedPayload::parse(SHA256_RSA4096).unwrap().vbmeta;
    let properties: Vec<(&[u8], &[u8])> = vbmeta
        .descriptors()
        .filter_map(|d| match d.unwrap() {
            Descriptor::Property { key, value } => Some((key, value)),
            _ => None,
        })
        .collect();
    // As avbtool printed them: `Prop: KEY -> 'VALUE'`.
    let printed: Vec<(String, String)> = INFO4096
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Prop: "))
        .map(|l| {
            let (k, v) = l.split_once(" -> ").unwrap();
            (k.to_string(), v.trim_matches('\'').to_string())
        })
        .collect();
    assert_eq!((properties.len(), printed.len()), (2, 2));
    for ((key, value), (k, v)) in properties.iter().zip(&printed) {
        assert_eq!((*key, *value), (k.as_bytes(), v.as_bytes()));
    }
    // The key in the vbmeta image is byte for byte what `avbtool extract_public_key`
    // wrote.
    assert_eq!(vbmeta.public_key_bytes().unwrap(), KEY4096);
    let key = PublicKey::parse(KEY4096).unwrap();
    assert_eq!((key.bits, key.n.len(), key.rr.len()), (4096, 512, 512));
    // n0inv * n[0] = -1 mod 2^32, as AVB defines n0inv.
    let n_low = u32::from_be_bytes(key.n[508..].try_into().unwrap());
    assert_eq!(key.n0inv.wrapping_mul(n_low), u32::MAX);
    assert_eq!(PublicKey::parse(&KEY4096[..KEY4096.len() - 1]), Err(AvbError::BadPublicKey));
}

/// Where the vbmeta image starts in the 4096-bit vector.
fn vbmeta_at() -> usize {
    footer(SHA256_RSA4096).unwrap().vbmeta_offset.get() as usize
}

/// The 4096-bit vector with `bytes` written at `offset` from the vbmeta image's start.
fn with_vbmeta_bytes(offset: usize, bytes: &[u8]) -> Vec<u8> {
    let mut payload = SHA256_RSA4096.to_vec();
    let at = vbmeta_at() + offset;
    payload[at..at + bytes.len()].copy_from_slice(bytes);
    payload
}

fn with_vbmeta_u64(offset: usize, value: u64) -> Vec<u8> {
    with_vbmeta_bytes(offset, &value.to_be_bytes())
}

fn with_vbmeta_u32(offset: usize, value: u32) -> Vec<u8> {
    with_vbmeta_bytes(offset, &value.to_be_bytes())
}

fn refusal(payload: &[u8]) -> AvbError {
    SignedPayload::parse(payload).unwrap_err()
}

#[test]
fn refuses_a_bad_footer_by_name() {
    let end = SHA256_RSA4096.len();
    let mut bad = SHA256_RSA4096.to_vec();
    bad[end - 64] = b'X';
    assert_eq!(refusal(&bad), AvbError::BadMagic("footer"));
    let mut bad = SHA256_RSA4096.to_vec();
    bad[end - 60..end - 56].copy_from_slice(&2u32.to_be_bytes());
    assert_eq!(refusal(&bad), AvbError::UnsupportedVersion("footer", 2));
    // vbmeta_offset past the footer, vbmeta_size wrapping, the image overlapping it.
    for (field, value) in [(20, end as u64), (28, u64::MAX), (12, 4097)] {
        let mut bad = SHA256_RSA4096.to_vec();
        bad[end - 64 + field..end - 56 + field].copy_from_slice(&value.to_be_bytes());
        assert_eq!(refusal(&bad), AvbError::OutOfBounds("image"), "footer field at {field}");
    }
    assert_eq!(refusal(&SHA256_RSA4096[..63]), AvbError::TooSmall("footer"));
}

#[test]
fn refuses_a_bad_vbmeta_header_by_name() {
    assert_eq!(refusal(&with_vbmeta_bytes(0, b"AVB1")), AvbError::BadMagic("vbmeta header"));
    assert_eq!(refusal(&with_vbmeta_u32(4, 2)), AvbError::UnsupportedVersion("libavb", 2));
    assert_eq!(refusal(&with_vbmeta_u64(12, 100)), AvbError::Misaligned("authentication block"));
    assert_eq!(refusal(&with_vbmeta_u64(20, 100)), AvbError::Misaligned("auxiliary block"));
    assert_eq!(refusal(&with_vbmeta_u64(20, 1 << 62)), AvbError::OutOfBounds("auxiliary block"));
    assert_eq!(refusal(&with_vbmeta_u64(12, u64::MAX - 63)), AvbError::OutOfBounds("authentication block"));
    assert_eq!(refusal(&with_vbmeta_u32(28, 0)), AvbError::UnsupportedAlgorithm(0), "NONE: unsigned");
    assert_eq!(refusal(&with_vbmeta_u32(28, 7)), AvbError::UnsupportedAlgorithm(7));
    // SHA-512 named over this image's 32-byte hash.
    assert_eq!(refusal(&with_vbmeta_u32(28, 5)), AvbError::WrongSize("hash"));
    assert_eq!(refusal(&with_vbmeta_u64(32, u64::MAX)), AvbError::OutOfBounds("hash"));
    assert_eq!(refusal(&with_vbmeta_u64(56, 256)), AvbError::WrongSize("signature"));
    assert_eq!(refusal(&with_vbmeta_u64(64, u64::MAX - 7)), AvbError::OutOfBounds("public key"));
    assert_eq!(refusal(&with_vbmeta_u64(104, 1 << 40)), AvbError::OutOfBounds("descriptors"));
    assert_eq!(refusal(&with_vbmeta_u64(88, 1 << 40)), AvbError::OutOfBounds("key metadata"));
    // RSA-4096 named, with a key header that says 2048 bits.
    let vbmeta = SignedPayload::parse(SHA256_RSA4096).unwrap().vbmeta;
    let key_at = 256
        + vbmeta.header.authentication_data_block_size.get() as usize
        + vbmeta.header.public_key_offset.get() as usize;
    assert_eq!(refusal(&with_vbmeta_u32(key_at, 2048)), AvbError::BadPublicKey);
    assert!(AvbError::OutOfBounds("descriptors").to_string().contains("descriptors"));
}

#[test]
fn refuses_bad_descriptors_by_name_and_stops() {
    let vbmeta = SignedPayload::parse(SHA256_RSA4096).unwrap().vbmeta;
    let descriptors_at = 256
        + vbmeta.header.authentication_data_block_size.get() as usize
        + vbmeta.header.descriptors_offset.get() as usize;
    // The first descriptor (the hash) claims more than the area holds, or an odd size.
    for (size, why) in [(1 << 20, "runs past the descriptors"), (9, "size not a multiple of 8")] {
        let bad = with_vbmeta_u64(descriptors_at + 8, size);
        let all: Vec<_> = SignedPayload::parse(&bad).unwrap().vbmeta.descriptors().collect();
        assert_eq!(all, [Err(AvbError::BadDescriptor(why))], "one refusal ends the walk");
    }
    // The hash descriptor's salt length (16 + 8 + 32 + 4 bytes in) past its own end.
    let bad = with_vbmeta_u32(descriptors_at + 16 + 44, 0x1000);
    let first = SignedPayload::parse(&bad).unwrap().vbmeta.descriptors().next();
    assert_eq!(first, Some(Err(AvbError::BadDescriptor("hash salt"))));
}

/// Bytes from nowhere never panic the parser, and whatever it accepts stays inside the
/// bytes it was given.
#[test]
fn random_bytes_never_panic() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..2000 {
        let mut payload = SHA256_RSA4096.to_vec();
        for _ in 0..(next() % 8 + 1) {
            // Mostly in the vbmeta image and the footer, where the structure is.
            let at = if next() % 4 == 0 {
                (next() as usize) % payload.len()
            } else {
                vbmeta_at() + (next() as usize) % 2240
            };
            let at = at.min(payload.len() - 1);
            payload[at] = next() as u8;
        }
        let end = payload.len();
        payload[end - 64..].copy_from_slice(&SHA256_RSA4096[end - 64..]);
        let cut = (next() as usize) % payload.len();
        for bytes in [&payload[..], &payload[cut..]] {
            if let Ok(signed) = SignedPayload::parse(bytes) {
                let _ = signed.vbmeta.descriptors().count();
                let _ = (signed.vbmeta.hash(), signed.vbmeta.signature(), signed.vbmeta.public_key());
            }
        }
    }
}

/// avbtool's `--include_descriptors_from_image` kernel: three hash descriptors, in the
/// order and with the salts and digests avbtool printed.
#[test]
fn reads_included_ramdisk_descriptors() {
    let payload = include_bytes!("../../testdata/avb/kernel-with-initrds.img");
    let text = include_str!("../../testdata/avb/kernel-with-initrds.info.txt");
    let vbmeta = SignedPayload::parse(payload).unwrap().vbmeta;
    let parsed: Vec<(String, String, String)> = vbmeta
        .descriptors()
        .filter_map(|d| match d.unwrap() {
            Descriptor::Hash(h) => {
                Some((String::from_utf8(h.partition_name.to_vec()).unwrap(), hex(h.salt), hex(h.digest)))
            }
            _ => None,
        })
        .collect();
    let field = |line: &str, label: &str| line.trim().strip_prefix(label).map(|v| v.trim().to_string());
    let names: Vec<String> = text.lines().filter_map(|l| field(l, "Partition Name:")).collect();
    let salts: Vec<String> = text.lines().filter_map(|l| field(l, "Salt:")).collect();
    let digests: Vec<String> = text.lines().filter_map(|l| field(l, "Digest:")).collect();
    assert_eq!(names, ["boot", "initrd_debug", "initrd_normal"]);
    let printed: Vec<(String, String, String)> =
        names.into_iter().zip(salts).zip(digests).map(|((n, s), d)| (n, s, d)).collect();
    assert_eq!(parsed, printed);
}
