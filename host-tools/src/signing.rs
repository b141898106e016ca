//! Keys and signatures: `pvmkit keygen`, `pvmkit sign`, the development key `pvmkit`
//! makes on first use, and the trusted key it writes into pvmfw's config block.
//!
//! A key file holds the 32-byte Ed25519 seed in hex; its `.pub` beside it the public
//! key in hex. The development key lives under `target/pvmkit/keys/` (never in git)
//! and its name says what it is.

use std::path::{Path, PathBuf};

use abi::signed_payload::{SIGNATURE_OFFSET, SIGNED_SIZE};
use ed25519_dalek::{Signer, SigningKey};

use crate::payload::Payload;
use crate::Workspace;

/// The development key's file name.
pub const DEV_KEY_NAME: &str = "pvmkit-DEVELOPMENT-ONLY.key";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// 32 bytes from the operating system's random source.
pub fn random32() -> Result<[u8; 32], String> {
    use std::io::Read;
    let mut out = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut out))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    Ok(out)
}

/// The public key file beside a key file.
pub fn public_path(key: &Path) -> PathBuf {
    key.with_extension("pub")
}

/// Makes a key pair at `path` (and `path.pub`); refuses to overwrite.
pub fn keygen(path: &Path) -> Result<[u8; 32], String> {
    if path.exists() {
        return Err(format!("{} exists; not overwriting a key", path.display()));
    }
    let key = SigningKey::from_bytes(&random32()?);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    std::fs::write(path, hex(&key.to_bytes()) + "\n").map_err(|e| format!("writing {}: {e}", path.display()))?;
    let public = key.verifying_key().to_bytes();
    std::fs::write(public_path(path), hex(&public) + "\n").map_err(|e| format!("writing the public key: {e}"))?;
    Ok(public)
}

/// Reads a key file.
pub fn load_key(path: &Path) -> Result<SigningKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    unhex32(&text)
        .map(|seed| SigningKey::from_bytes(&seed))
        .ok_or_else(|| format!("{} is not a pvmkit key (64 hex digits)", path.display()))
}

/// Reads a public key file.
pub fn load_public(path: &Path) -> Result<[u8; 32], String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    unhex32(&text).ok_or_else(|| format!("{} is not a pvmkit public key (64 hex digits)", path.display()))
}

/// The development key, made on first use.
pub fn dev_key(ws: &Workspace) -> Result<PathBuf, String> {
    let path = ws.out_dir().join("keys").join(DEV_KEY_NAME);
    if !path.exists() {
        let key = SigningKey::from_bytes(&random32()?);
        if create_once(&path, (hex(&key.to_bytes()) + "\n").as_bytes())? {
            let public = hex(&key.verifying_key().to_bytes()) + "\n";
            std::fs::write(public_path(&path), public).map_err(|e| format!("writing the public key: {e}"))?;
            eprintln!(
                "pvmkit: made a DEVELOPMENT signing key at {} (for local testing only: never ship it)",
                path.display()
            );
        }
    }
    Ok(path)
}

/// Writes `path` with `bytes` unless it exists, atomically: of two `pvmkit`s racing,
/// one wins and both then use its file. Returns whether this call created it.
fn create_once(path: &Path, bytes: &[u8]) -> Result<bool, String> {
    let dir = path.parent().ok_or("no directory")?;
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

/// Signs a payload: the signed payload pvmfw verifies. `mem_size` overrides the
/// payload's footprint (for tests of pvmfw's placement checks).
pub fn sign(payload: &Payload, key: &SigningKey, mem_size: Option<u64>) -> Vec<u8> {
    let (header, image) = payload.signed_header(mem_size);
    let mut header = header.to_bytes();
    let signature = key.sign(&header[..SIGNED_SIZE]);
    header[SIGNATURE_OFFSET..].copy_from_slice(&signature.to_bytes());
    let mut blob = header.to_vec();
    blob.extend_from_slice(image);
    blob
}

/// The per-VM secret hyp hands pvmfw: kept in `target/pvmkit/vm-secret.bin` so that
/// one payload gets the same secret run after run (as one VM instance would).
pub fn vm_secret(ws: &Workspace) -> Result<[u8; 32], String> {
    let path = ws.out_dir().join("vm-secret.bin");
    if let Ok(bytes) = std::fs::read(&path) {
        if let Ok(secret) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(secret);
        }
    }
    if create_once(&path, &random32()?)? {
        return vm_secret(ws);
    }
    // Another pvmkit made it first (or it was unreadable): read what is there.
    let bytes = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| format!("{} is not 32 bytes: delete it", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_signatures_verify() {
        let dir = std::env::temp_dir().join(format!("pvmkit-keys-{}", std::process::id()));
        let path = dir.join("test.key");
        let public = keygen(&path).unwrap();
        assert!(keygen(&path).unwrap_err().contains("not overwriting"));
        let key = load_key(&path).unwrap();
        assert_eq!(load_public(&public_path(&path)).unwrap(), public);
        let image = crate::firmware::FlatImage {
            load_address: 0x8020_0000,
            bytes: vec![0x14; 100],
            mem_size: 0x1000,
            entry: 0x8020_0000,
        };
        let image = Payload::Elf(image);
        let blob = sign(&image, &key, None);
        let (header, body) = abi::signed_payload::parse(&blob).unwrap();
        assert_eq!(body, &[0x14; 100][..]);
        assert_eq!(header.mem_size, 0x1000);
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&public).unwrap();
        let sig = ed25519_dalek::Signature::from_bytes(&header.signature);
        assert!(vk.verify_strict(&blob[..SIGNED_SIZE], &sig).is_ok());
        assert_eq!(abi::signed_payload::parse(&sign(&image, &key, Some(1 << 40))).unwrap().0.mem_size, 1 << 40);
        assert!(load_key(&public_path(&path)).is_ok(), "a 32-byte hex file reads as a key");
        // Created once: a second writer finds the file there and leaves it alone.
        let once = dir.join("once.bin");
        assert_eq!(create_once(&once, b"first"), Ok(true));
        assert_eq!(create_once(&once, b"second"), Ok(false));
        assert_eq!(std::fs::read(&once).unwrap(), b"first");
        std::fs::write(&path, "zz").unwrap();
        assert!(load_key(&path).unwrap_err().contains("not a pvmkit key"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
