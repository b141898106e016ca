//! Signing a payload the AVB way, as `avbtool add_hash_footer --dynamic_partition_size`
//! does: the image, zero padding to a 4 KiB block, the vbmeta image (header,
//! authentication block with the hash and the RSA signature, auxiliary block with the
//! descriptors and the public key), zero padding, and the footer in the last 64 bytes
//! of a "partition" 68 KiB larger than the image, rounded up to a block. Given the same
//! key, salt, properties, rollback index and release string, the bytes are avbtool's
//! (PKCS#1 v1.5 signatures are deterministic): the tests hold them to avbtool's output.
//!
//! The layouts are [`pvmkit_abi::avb`]'s; this module only writes them.

use pvmkit_abi::avb::{
    tag, Algorithm, DescriptorHeader, Footer, HashDescriptorFields, PropertyDescriptorFields, PublicKeyHeader,
    VbmetaHeader, FOOTER_MAGIC, FOOTER_SIZE, VBMETA_HEADER_SIZE, VBMETA_MAGIC,
};
use rsa::pkcs1v15::Pkcs1v15Sign;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPrivateKey};
use sha2::{Digest, Sha256, Sha512};
use zerocopy::IntoBytes;

/// The block size avbtool pads to.
pub const BLOCK: usize = 4096;
/// What avbtool reserves for the vbmeta image (64 KiB) and the footer (4 KiB) when it
/// sizes the partition itself.
pub const MAX_METADATA: usize = 64 * 1024 + 4096;
/// The release string avbtool writes by default (pvmkit's own signatures name pvmkit).
pub const AVBTOOL_RELEASE: &str = "avbtool 1.3.0";

/// What to sign with and what to say.
#[derive(Clone, Debug)]
pub struct SignOptions<'a> {
    /// The signing key.
    pub key: &'a RsaPrivateKey,
    /// The signature algorithm (its key size must be the key's).
    pub algorithm: Algorithm,
    /// The hash descriptor's partition name (`boot` for a kernel).
    pub partition_name: &'a str,
    /// Hashed before the image (avbtool's default: as many random bytes as the hash).
    pub salt: &'a [u8],
    /// Property descriptors, in order.
    pub properties: &'a [(&'a str, &'a [u8])],
    /// The rollback index.
    pub rollback_index: u64,
    /// The vbmeta release string (at most 47 bytes).
    pub release: &'a str,
    /// Ramdisks whose hash descriptors the kernel's vbmeta carries (what avbtool's
    /// `--include_descriptors_from_image` copies from each ramdisk's own footer).
    pub ramdisks: &'a [Ramdisk<'a>],
}

/// A ramdisk the kernel vouches for.
#[derive(Clone, Copy, Debug)]
pub struct Ramdisk<'a> {
    /// `initrd_normal` or `initrd_debug`.
    pub partition_name: &'a str,
    /// Its bytes.
    pub bytes: &'a [u8],
    /// Its descriptor's salt.
    pub salt: &'a [u8],
}

/// `value` rounded up to a multiple of `to`.
fn round_up(value: usize, to: usize) -> usize {
    value.div_ceil(to) * to
}

/// A descriptor: `tag`, the size of `body` padded to 8, `body`, the padding.
fn descriptor(tag: u64, body: &[u8]) -> Vec<u8> {
    let padded = round_up(body.len(), 8);
    let header = DescriptorHeader { tag: tag.into(), num_bytes_following: (padded as u64).into() };
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(body);
    out.resize(16 + padded, 0);
    out
}

fn hash_descriptor(image_size: u64, partition: &str, salt: &[u8], digest: &[u8]) -> Vec<u8> {
    let mut hash_algorithm = [0u8; 32];
    hash_algorithm[..6].copy_from_slice(b"sha256");
    let fields = HashDescriptorFields {
        image_size: image_size.into(),
        hash_algorithm,
        partition_name_len: (partition.len() as u32).into(),
        salt_len: (salt.len() as u32).into(),
        digest_len: (digest.len() as u32).into(),
        flags: 0.into(),
        reserved: [0; 60],
    };
    let body = [fields.as_bytes(), partition.as_bytes(), salt, digest].concat();
    descriptor(tag::HASH, &body)
}

fn property_descriptor(key: &str, value: &[u8]) -> Vec<u8> {
    let fields = PropertyDescriptorFields {
        key_num_bytes: (key.len() as u64).into(),
        value_num_bytes: (value.len() as u64).into(),
    };
    let body = [fields.as_bytes(), key.as_bytes(), &[0], value, &[0]].concat();
    descriptor(tag::PROPERTY, &body)
}

/// `key`'s public half in AVB's format (what `avbtool extract_public_key` writes):
/// key_num_bits, n0inv = -1 / n mod 2³², n, then R² mod n with R = 2^bits, all
/// big-endian.
pub fn public_key(key: &RsaPrivateKey) -> Vec<u8> {
    let n = key.n();
    let bits = n.bits();
    let len = bits.div_ceil(8);
    // The inverse of n mod 2^32 by Newton's iteration (n is odd), negated.
    let n0 = n.to_bytes_le().iter().take(4).rev().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
    let mut inverse = n0;
    for _ in 0..5 {
        inverse = inverse.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inverse)));
    }
    let rr = (BigUint::from(1u8) << (2 * bits)) % n;
    let header = PublicKeyHeader { key_num_bits: (bits as u32).into(), n0inv: inverse.wrapping_neg().into() };
    let mut out = header.as_bytes().to_vec();
    for value in [n, &rr] {
        let bytes = value.to_bytes_be();
        out.resize(out.len() + len - bytes.len(), 0);
        out.extend_from_slice(&bytes);
    }
    out
}

/// The vbmeta image for `descriptors`, signed with `options.key`.
fn vbmeta(descriptors: &[u8], options: &SignOptions<'_>) -> Result<Vec<u8>, String> {
    let algorithm = options.algorithm;
    let key = public_key(options.key);
    if options.key.n().bits() != algorithm.key_bits() as usize {
        return Err(format!("a {}-bit key cannot sign {algorithm:?}", options.key.n().bits()));
    }
    if options.release.len() >= 48 {
        return Err(format!("release string '{}' is longer than 47 bytes", options.release));
    }
    let (hash_size, signature_size) = (algorithm.hash_size(), algorithm.key_bits() as usize / 8);
    let aux_size = round_up(descriptors.len() + key.len(), 64);
    let auth_size = round_up(hash_size + signature_size, 64);
    let algorithm_type = match algorithm {
        Algorithm::Sha256Rsa2048 => 1u32,
        Algorithm::Sha256Rsa4096 => 2,
        Algorithm::Sha256Rsa8192 => 3,
        Algorithm::Sha512Rsa2048 => 4,
        Algorithm::Sha512Rsa4096 => 5,
        Algorithm::Sha512Rsa8192 => 6,
    };
    let mut release = [0u8; 48];
    release[..options.release.len()].copy_from_slice(options.release.as_bytes());
    let header = VbmetaHeader {
        magic: VBMETA_MAGIC,
        required_libavb_version_major: 1.into(), // libavb 1.0
        required_libavb_version_minor: 0.into(),
        authentication_data_block_size: (auth_size as u64).into(),
        auxiliary_data_block_size: (aux_size as u64).into(),
        algorithm_type: algorithm_type.into(),
        // In the authentication block: the hash, then the signature.
        hash_offset: 0.into(),
        hash_size: (hash_size as u64).into(),
        signature_offset: (hash_size as u64).into(),
        signature_size: (signature_size as u64).into(),
        // In the auxiliary block: the descriptors, the public key, no key metadata.
        public_key_offset: (descriptors.len() as u64).into(),
        public_key_size: (key.len() as u64).into(),
        public_key_metadata_offset: ((descriptors.len() + key.len()) as u64).into(),
        public_key_metadata_size: 0.into(),
        descriptors_offset: 0.into(),
        descriptors_size: (descriptors.len() as u64).into(),
        rollback_index: options.rollback_index.into(),
        flags: 0.into(),
        rollback_index_location: 0.into(),
        release_string: release,
        reserved: [0; 80],
    };
    let header = header.as_bytes();

    let mut aux = Vec::with_capacity(aux_size);
    aux.extend_from_slice(descriptors);
    aux.extend_from_slice(&key);
    aux.resize(aux_size, 0);

    let (hash, scheme) = if hash_size == 32 {
        let hash = Sha256::new().chain_update(header).chain_update(&aux).finalize().to_vec();
        (hash, Pkcs1v15Sign::new::<Sha256>())
    } else {
        let hash = Sha512::new().chain_update(header).chain_update(&aux).finalize().to_vec();
        (hash, Pkcs1v15Sign::new::<Sha512>())
    };
    let signature = options.key.sign(scheme, &hash).map_err(|e| format!("signing: {e}"))?;
    let mut out = header.to_vec();
    out.extend_from_slice(&hash);
    out.extend_from_slice(&signature);
    out.resize(VBMETA_HEADER_SIZE + auth_size, 0);
    out.extend_from_slice(&aux);
    Ok(out)
}

/// `image` with its vbmeta image and footer appended, as avbtool's `add_hash_footer
/// --dynamic_partition_size` writes it.
pub fn add_hash_footer(image: &[u8], options: &SignOptions<'_>) -> Result<Vec<u8>, String> {
    let digest = Sha256::new().chain_update(options.salt).chain_update(image).finalize();
    let mut descriptors = hash_descriptor(image.len() as u64, options.partition_name, options.salt, &digest);
    for (key, value) in options.properties {
        descriptors.extend(property_descriptor(key, value));
    }
    // avbtool adds included hash descriptors last, sorted by partition name, one per
    // name (the last one given).
    let mut ramdisks: Vec<&Ramdisk<'_>> = Vec::new();
    for ramdisk in options.ramdisks {
        ramdisks.retain(|r| r.partition_name != ramdisk.partition_name);
        ramdisks.push(ramdisk);
    }
    ramdisks.sort_by_key(|r| r.partition_name);
    for r in ramdisks {
        let digest = Sha256::new().chain_update(r.salt).chain_update(r.bytes).finalize();
        descriptors.extend(hash_descriptor(r.bytes.len() as u64, r.partition_name, r.salt, &digest));
    }
    let vbmeta = vbmeta(&descriptors, options)?;
    let partition = round_up(image.len() + MAX_METADATA, BLOCK);
    let vbmeta_offset = round_up(image.len(), BLOCK);
    let mut out = image.to_vec();
    out.resize(vbmeta_offset, 0);
    out.extend_from_slice(&vbmeta);
    out.resize(partition - FOOTER_SIZE, 0);
    let footer = Footer {
        magic: FOOTER_MAGIC,
        version_major: 1.into(), // footer 1.0
        version_minor: 0.into(),
        original_image_size: (image.len() as u64).into(),
        vbmeta_offset: (vbmeta_offset as u64).into(),
        vbmeta_size: (vbmeta.len() as u64).into(),
        reserved: [0; 28],
    };
    out.extend_from_slice(footer.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::DecodePrivateKey;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../abi/testdata/avb");

    fn read(name: &str) -> Vec<u8> {
        std::fs::read(format!("{DIR}/{name}")).unwrap()
    }

    fn key(name: &str) -> RsaPrivateKey {
        RsaPrivateKey::from_pkcs8_pem(&String::from_utf8(read(name)).unwrap()).unwrap()
    }

    /// The payload the vectors were made from (`abi/testdata/avb/README.md`).
    fn payload() -> Vec<u8> {
        (0..4096usize).map(|i| ((7 * i + 3) & 0xff) as u8).collect()
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn the_public_key_is_what_avbtool_extracts() {
        assert_eq!(public_key(&key("key4096.pem")), read("key4096.avbpubkey"));
        assert_eq!(public_key(&key("key2048.pem")), read("key2048.avbpubkey"));
    }

    /// With avbtool's inputs, pvmkit's signed payload is avbtool's, byte for byte.
    #[test]
    fn signs_byte_for_byte_as_avbtool() {
        let k4096 = key("key4096.pem");
        let salt = hex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
        let properties: [(&str, &[u8]); 2] =
            [("com.android.virt.cap", b"remote_attest"), ("com.android.virt.name", b"pvmkit-test")];
        let options = SignOptions {
            key: &k4096,
            algorithm: Algorithm::Sha256Rsa4096,
            partition_name: "boot",
            salt: &salt,
            properties: &properties,
            rollback_index: 5,
            release: AVBTOOL_RELEASE,
            ramdisks: &[],
        };
        assert!(add_hash_footer(&payload(), &options).unwrap() == read("sha256-rsa4096.img"));
        let k2048 = key("key2048.pem");
        let salt = hex("0102030405060708");
        let options = SignOptions {
            key: &k2048,
            algorithm: Algorithm::Sha512Rsa2048,
            salt: &salt,
            properties: &[],
            rollback_index: 0,
            ..options
        };
        assert!(add_hash_footer(&payload(), &options).unwrap() == read("sha512-rsa2048.img"));
        // A kernel vouching for two ramdisks, given in either order.
        let (normal, debug) = (read("initrd-normal.bin"), read("initrd-debug.bin"));
        let (salt1, salt2, salt_boot) = (
            hex(&"11".repeat(32)),
            hex(&"22".repeat(32)),
            hex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"),
        );
        let ramdisks = [
            Ramdisk { partition_name: "initrd_normal", bytes: &normal, salt: &salt1 },
            Ramdisk { partition_name: "initrd_debug", bytes: &debug, salt: &salt2 },
        ];
        let options = SignOptions {
            key: &k4096,
            algorithm: Algorithm::Sha256Rsa4096,
            partition_name: "boot",
            salt: &salt_boot,
            properties: &[],
            rollback_index: 0,
            release: AVBTOOL_RELEASE,
            ramdisks: &ramdisks,
        };
        assert!(add_hash_footer(&payload(), &options).unwrap() == read("kernel-with-initrds.img"));
        let options = SignOptions { key: &k2048, algorithm: Algorithm::Sha512Rsa2048, ..options };
        // The wrong key size for the algorithm is refused by name.
        let wrong = SignOptions { algorithm: Algorithm::Sha256Rsa4096, ..options };
        assert_eq!(add_hash_footer(&payload(), &wrong).unwrap_err(), "a 2048-bit key cannot sign Sha256Rsa4096");
    }

    /// The largest keys: SHA512_RSA8192, as avbtool signed it.
    #[test]
    fn signs_with_an_8192_bit_key_as_avbtool() {
        let payload: Vec<u8> = (0..6000usize).map(|i| ((3 * i + 9) & 0xff) as u8).collect();
        let k8192 = key("key8192.pem");
        assert_eq!(public_key(&k8192), read("key8192.avbpubkey"));
        let properties: [(&str, &[u8]); 1] = [("com.android.virt.page_size", b"4")];
        let options = SignOptions {
            key: &k8192,
            algorithm: Algorithm::Sha512Rsa8192,
            partition_name: "boot",
            salt: &hex("0f1e2d3c4b5a69788796a5b4c3d2e1f0"),
            properties: &properties,
            rollback_index: 9,
            release: AVBTOOL_RELEASE,
            ramdisks: &[],
        };
        assert!(add_hash_footer(&payload, &options).unwrap() == read("sha512-rsa8192.img"));
    }

    /// What `pvmkit sign` wrote and avbtool's `verify_image` accepted
    /// (`abi/testdata/avb/README.md`): signing again with the salts it drew gives the
    /// same bytes, so today's pvmkit still writes what avbtool accepted.
    #[test]
    fn writes_what_avbtool_verified() {
        let k4096 = key("key4096.pem");
        let ramdisk = read("pvmkit-ramdisk.bin");
        let ramdisk_salt = hex("58d5f38641d38eca652e67176846fb1e3cef7bbc0b70bd7980a080f5950a9183");
        let ramdisks = [Ramdisk { partition_name: "initrd_normal", bytes: &ramdisk, salt: &ramdisk_salt }];
        let properties: [(&str, &[u8]); 2] =
            [("com.android.virt.name", b"avbtool-check"), ("com.android.virt.cap", b"remote_attest")];
        let options = SignOptions {
            key: &k4096,
            algorithm: Algorithm::Sha256Rsa4096,
            partition_name: "boot",
            salt: &hex("95a852a536700a6b385295f6ab427bf3ae3ca5da2969a9e8e042835b7e1f2f6a"),
            properties: &properties,
            rollback_index: 3,
            release: "pvmkit 0.1.0",
            ramdisks: &ramdisks,
        };
        assert!(add_hash_footer(&read("pvmkit-payload.img"), &options).unwrap() == read("pvmkit-signed.img"));
    }

    /// What pvmkit signs with its own release string and an image that is not a whole
    /// block parses and has the structure avbtool gives such an image.
    #[test]
    fn an_odd_sized_image_is_padded_to_a_block() {
        let k = key("key2048.pem");
        let image = vec![0x5a; 5000];
        let options = SignOptions {
            key: &k,
            algorithm: Algorithm::Sha256Rsa2048,
            partition_name: "boot",
            salt: &[1; 32],
            properties: &[],
            rollback_index: 0,
            release: "pvmkit 0.1.0",
            ramdisks: &[],
        };
        let signed = add_hash_footer(&image, &options).unwrap();
        assert_eq!(signed.len(), round_up(5000 + MAX_METADATA, BLOCK));
        let parsed = pvmkit_abi::avb::SignedPayload::parse(&signed).unwrap();
        assert_eq!(parsed.image, &image[..]);
        assert_eq!(pvmkit_abi::avb::footer(&signed).unwrap().vbmeta_offset.get(), 8192);
        assert_eq!(&parsed.vbmeta.header.release_string[..12], b"pvmkit 0.1.0");
    }
}
