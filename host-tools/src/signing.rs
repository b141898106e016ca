//! Keys and signatures the AVB way: `pvmkit keygen` (an RSA-4096 private key as PEM,
//! what openssl and avbtool read, and its `.avbpubkey`, what `avbtool
//! extract_public_key` writes), `pvmkit sign` (avbtool's `add_hash_footer` for the
//! `boot` partition, [`crate::avb_sign`]), and the development key `pvmkit` makes on
//! first use. The development key lives under `target/pvmkit/keys/` (never in git) and
//! its name says what it is.

use std::io::Read;
use std::path::{Path, PathBuf};

use pvmkit_abi::avb::Algorithm;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::rand_core::{CryptoRng, RngCore};
use rsa::RsaPrivateKey;
use sha2::{Digest, Sha256};

use crate::avb_sign::{self, Ramdisk, SignOptions};
use crate::Workspace;

/// The development key's file name.
pub const DEV_KEY_NAME: &str = "pvmkit-DEVELOPMENT-ONLY.pem";
/// The size of the keys `pvmkit keygen` makes (AVF's payload keys are RSA-4096).
pub const KEY_BITS: usize = 4096;
/// The release string pvmkit's signatures carry in vbmeta.
pub const RELEASE: &str = concat!("pvmkit ", env!("CARGO_PKG_VERSION"));

/// `n` bytes from the operating system's random source.
pub fn random(n: usize) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut out))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    Ok(out)
}

/// The operating system's random source as the RNG RSA key generation draws from. A
/// failed read is remembered (the trait's `fill_bytes` cannot fail) and the key made
/// with it is thrown away.
struct Urandom {
    file: std::fs::File,
    failed: bool,
}

impl RngCore for Urandom {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.failed |= self.file.read_exact(dest).is_err();
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Urandom {}

/// The `.avbpubkey` file beside a key file.
pub fn public_path(key: &Path) -> PathBuf {
    key.with_extension("avbpubkey")
}

/// A new RSA key of `bits`, from the operating system's random source.
fn new_key(bits: usize) -> Result<RsaPrivateKey, String> {
    let file = std::fs::File::open("/dev/urandom").map_err(|e| format!("opening /dev/urandom: {e}"))?;
    let mut rng = Urandom { file, failed: false };
    let key = RsaPrivateKey::new(&mut rng, bits).map_err(|e| format!("making an RSA key: {e}"))?;
    if rng.failed {
        return Err("reading /dev/urandom failed while making a key".into());
    }
    Ok(key)
}

/// Writes `key` as a PKCS#8 PEM file at `path` and its `.avbpubkey` beside it; refuses
/// to overwrite. Returns the public key.
fn write_key(path: &Path, key: &RsaPrivateKey) -> Result<Vec<u8>, String> {
    let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| format!("encoding the key: {e}"))?;
    if !create_once(path, pem.as_bytes())? {
        return Err(format!("{} exists; not overwriting a key", path.display()));
    }
    let public = avb_sign::public_key(key);
    std::fs::write(public_path(path), &public).map_err(|e| format!("writing the public key: {e}"))?;
    Ok(public)
}

/// Makes an RSA-4096 key at `path` (PEM) and `path.avbpubkey`; refuses to overwrite.
pub fn keygen(path: &Path) -> Result<Vec<u8>, String> {
    if path.exists() {
        return Err(format!("{} exists; not overwriting a key", path.display()));
    }
    write_key(path, &new_key(KEY_BITS)?)
}

/// Reads a PEM private key (PKCS#8, or PKCS#1 as `openssl genrsa` writes it).
pub fn load_key(path: &Path) -> Result<RsaPrivateKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    RsaPrivateKey::from_pkcs8_pem(&text)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(&text))
        .map_err(|_| format!("{} is not an RSA private key in PEM (PKCS#8 or PKCS#1)", path.display()))
}

/// Reads a public key in AVB's format (a `.avbpubkey`), checked.
pub fn load_public(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    pvmkit_abi::avb::PublicKey::parse(&bytes)
        .map_err(|e| format!("{} is not an AVB public key (avbtool extract_public_key): {e}", path.display()))?;
    Ok(bytes)
}

/// The development key, made on first use.
pub fn dev_key(ws: &Workspace) -> Result<PathBuf, String> {
    let path = ws.out_dir().join("keys").join(DEV_KEY_NAME);
    if !path.exists() {
        // Of two pvmkits racing, one writes the key; the other finds it there.
        match write_key(&path, &new_key(KEY_BITS)?) {
            Ok(_) => eprintln!(
                "pvmkit: made a DEVELOPMENT signing key at {} (for local testing only: never ship it)",
                path.display()
            ),
            Err(_) if path.exists() => {}
            Err(e) => return Err(e),
        }
    }
    // The public half is written after the key: wait for a racing writer's.
    for _ in 0..100 {
        if public_path(&path).exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(path)
}

/// Writes `path` with `bytes` unless it exists, atomically: of two `pvmkit`s racing,
/// one wins and both then use its file. Returns whether this call created it.
fn create_once(path: &Path, bytes: &[u8]) -> Result<bool, String> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    std::fs::write(&tmp, bytes).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    let linked = std::fs::hard_link(&tmp, path);
    std::fs::remove_file(&tmp).ok();
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(format!("creating {}: {e}", path.display())),
    }
}

/// Parses `--algorithm` (avbtool's names).
pub fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    Ok(match name {
        "SHA256_RSA2048" => Algorithm::Sha256Rsa2048,
        "SHA256_RSA4096" => Algorithm::Sha256Rsa4096,
        "SHA256_RSA8192" => Algorithm::Sha256Rsa8192,
        "SHA512_RSA2048" => Algorithm::Sha512Rsa2048,
        "SHA512_RSA4096" => Algorithm::Sha512Rsa4096,
        "SHA512_RSA8192" => Algorithm::Sha512Rsa8192,
        other => {
            return Err(format!("unknown --algorithm '{other}' (SHA256_RSA2048/4096/8192 or SHA512_RSA2048/4096/8192)"))
        }
    })
}

/// The signature algorithm for `key` with SHA-256 (avbtool's choice for a key of that
/// size, and AVF's).
pub fn default_algorithm(key: &RsaPrivateKey) -> Algorithm {
    use rsa::traits::PublicKeyParts;
    match key.n().bits() {
        2048 => Algorithm::Sha256Rsa2048,
        8192 => Algorithm::Sha256Rsa8192,
        _ => Algorithm::Sha256Rsa4096,
    }
}

/// What `pvmkit sign` puts in the vbmeta image besides the kernel's own descriptor.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The signature algorithm (default: SHA-256 with the key's size).
    pub algorithm: Option<Algorithm>,
    /// The rollback index (DICE's security version).
    pub rollback_index: u64,
    /// Property descriptors, `key:value`, in order.
    pub properties: Vec<(String, Vec<u8>)>,
    /// Ramdisks the kernel vouches for: (`initrd_normal` or `initrd_debug`, bytes).
    pub ramdisks: Vec<(String, Vec<u8>)>,
    /// Salt each hash descriptor with SHA-256 of its partition's name and bytes instead
    /// of random bytes, so that signing the same payload again gives the same signed
    /// image (and so the same DICE code hash): `pvmkit run`'s own signing, which would
    /// otherwise make every run a different payload to a kept instance disk.
    pub reproducible: bool,
}

/// Parses `--prop KEY:VALUE`.
pub fn parse_property(text: &str) -> Result<(String, Vec<u8>), String> {
    let (key, value) = text.split_once(':').ok_or_else(|| format!("malformed --prop '{text}' (KEY:VALUE)"))?;
    Ok((key.to_string(), value.as_bytes().to_vec()))
}

/// Signs `image` as the `boot` partition, with random salts (as avbtool does) unless
/// the request asks for reproducible ones.
pub fn sign(image: &[u8], key: &RsaPrivateKey, request: &Request) -> Result<Vec<u8>, String> {
    for (name, _) in &request.ramdisks {
        if name != "initrd_normal" && name != "initrd_debug" {
            return Err(format!("ramdisk name '{name}' is neither initrd_normal nor initrd_debug"));
        }
    }
    let partitions = std::iter::once(("boot", image)).chain(request.ramdisks.iter().map(|(n, b)| (n.as_str(), &b[..])));
    let salts: Vec<Vec<u8>> = partitions
        .map(|(name, bytes)| match request.reproducible {
            true => Ok(Sha256::new().chain_update(name).chain_update(bytes).finalize().to_vec()),
            false => random(32),
        })
        .collect::<Result<_, _>>()?;
    let ramdisks: Vec<Ramdisk<'_>> = request
        .ramdisks
        .iter()
        .zip(&salts[1..])
        .map(|((name, bytes), salt)| Ramdisk { partition_name: name, bytes, salt })
        .collect();
    let properties: Vec<(&str, &[u8])> = request.properties.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
    let options = SignOptions {
        key,
        algorithm: request.algorithm.unwrap_or_else(|| default_algorithm(key)),
        partition_name: "boot",
        salt: &salts[0],
        properties: &properties,
        rollback_index: request.rollback_index,
        release: RELEASE,
        ramdisks: &ramdisks,
    };
    avb_sign::add_hash_footer(image, &options)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../abi/testdata/avb");

    #[test]
    fn a_pem_key_signs_what_its_public_key_verifies() {
        let dir = std::env::temp_dir().join(format!("pvmkit-keys-{}", std::process::id()));
        // avbtool's test key (PKCS#8 PEM) and its .avbpubkey, written by avbtool.
        let key = load_key(Path::new(&format!("{TESTDATA}/key2048.pem"))).unwrap();
        let public = load_public(Path::new(&format!("{TESTDATA}/key2048.avbpubkey"))).unwrap();
        assert_eq!(avb_sign::public_key(&key), public);
        // Written and read back, as PEM; never overwritten.
        let path = dir.join("copy.pem");
        assert_eq!(write_key(&path, &key).unwrap(), public);
        assert!(write_key(&path, &key).unwrap_err().contains("not overwriting"));
        assert_eq!(load_key(&path).unwrap(), key);
        assert_eq!(std::fs::read(public_path(&path)).unwrap(), public);
        assert!(std::fs::read_to_string(&path).unwrap().starts_with("-----BEGIN PRIVATE KEY-----"));
        // What it signs carries the key, the properties and the ramdisks' descriptors.
        let request = Request {
            algorithm: None,
            rollback_index: 3,
            properties: vec![parse_property("com.android.virt.name:demo").unwrap()],
            ramdisks: vec![("initrd_normal".into(), vec![1; 100])],
            reproducible: false,
        };
        let signed = sign(&[0x5a; 4096], &key, &request).unwrap();
        let parsed = pvmkit_abi::avb::SignedPayload::parse(&signed).unwrap();
        assert_eq!(parsed.vbmeta.public_key_bytes().unwrap(), &public[..]);
        assert_eq!((parsed.vbmeta.algorithm, parsed.vbmeta.rollback_index()), (Algorithm::Sha256Rsa2048, 3));
        assert_eq!(parsed.vbmeta.descriptors().count(), 3);
        // Two signings differ only by their salts: never the same bytes, unless asked to
        // be reproducible (salts hashed from the partitions: the same bytes each time,
        // other bytes for another payload).
        assert_ne!(sign(&[0x5a; 4096], &key, &request).unwrap(), signed);
        let reproducible = Request { reproducible: true, ..request.clone() };
        let again = sign(&[0x5a; 4096], &key, &reproducible).unwrap();
        assert_eq!(sign(&[0x5a; 4096], &key, &reproducible).unwrap(), again);
        assert_ne!(sign(&[0x5b; 4096], &key, &reproducible).unwrap()[4096..], again[4096..]);
        // Refused by name.
        let bad = Request { ramdisks: vec![("initrd_other".into(), vec![1])], ..Request::default() };
        assert!(sign(&[0; 64], &key, &bad).unwrap_err().contains("neither initrd_normal nor initrd_debug"));
        assert!(parse_property("novalue").unwrap_err().contains("KEY:VALUE"));
        assert!(parse_algorithm("SHA1_RSA2048").unwrap_err().contains("unknown --algorithm"));
        assert_eq!(parse_algorithm("SHA512_RSA8192"), Ok(Algorithm::Sha512Rsa8192));
        std::fs::write(&path, "not a key").unwrap();
        assert!(load_key(&path).unwrap_err().contains("not an RSA private key"));
        assert!(load_public(&path).unwrap_err().contains("not an AVB public key"));
        std::fs::remove_dir_all(&dir).ok();
    }

    /// `pvmkit keygen` makes RSA-4096, as AVF's payload keys are.
    #[test]
    fn keygen_makes_a_4096_bit_key() {
        use rsa::traits::PublicKeyParts;
        let dir = std::env::temp_dir().join(format!("pvmkit-keygen-{}", std::process::id()));
        let path = dir.join("new.pem");
        let public = keygen(&path).unwrap();
        assert_eq!(load_key(&path).unwrap().n().bits(), 4096);
        assert_eq!(pvmkit_abi::avb::PublicKey::parse(&public).unwrap().bits, 4096);
        assert!(keygen(&path).unwrap_err().contains("not overwriting"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
