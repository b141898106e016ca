//! The payload's secret: HMAC-SHA256 keyed with the per-VM secret over a label, the
//! image's SHA-256 and the SHA-256 of its signed header (where it loads, how it starts,
//! how much memory it takes). The same payload always gets the same secret; a changed
//! image or header gets another, and without the VM secret none can be computed.

use abi::pvmfw::SECRET_LABEL;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Derives the payload's secret.
pub fn derive(vm_secret: &[u8; 32], image_sha256: &[u8; 32], header_sha256: &[u8; 32]) -> [u8; 32] {
    // An HMAC key of any length is accepted, so this cannot fail.
    let Ok(mut mac) = <Hmac<Sha256>>::new_from_slice(vm_secret) else {
        return [0; 32];
    };
    mac.update(SECRET_LABEL);
    mac.update(image_sha256);
    mac.update(header_sha256);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_secret_any_change_another() {
        let a = derive(&[1; 32], &[2; 32], &[3; 32]);
        assert_eq!(a, derive(&[1; 32], &[2; 32], &[3; 32]));
        assert_ne!(a, derive(&[9; 32], &[2; 32], &[3; 32]), "another VM");
        assert_ne!(a, derive(&[1; 32], &[9; 32], &[3; 32]), "another image");
        assert_ne!(a, derive(&[1; 32], &[2; 32], &[9; 32]), "another header");
        assert_ne!(a, [0; 32]);
    }
}
