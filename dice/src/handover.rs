//! The DICE handover a layer passes on (open-dice's Android profile, `android.h`): the
//! CBOR map `{1: CDI_Attest, 2: CDI_Seal, 3: chain}`, keys in that order, the chain an
//! array whose first item is the root's public key and whose others are the layers'
//! certificates. A layer keeps the chain it received and appends its own certificate
//! (AVF's form; the older one truncated the chain).

use alloc::vec::Vec;
use core::fmt;

use crate::cbor::Writer;
use crate::Cdis;

/// Why a chain could not take another certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainError {
    /// The chain is not a CBOR array of definite length.
    NotAnArray,
    /// The array's length does not fit its head (more than 2⁶⁴ − 1 items).
    TooLong,
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnArray => write!(f, "the DICE chain is not a definite-length CBOR array"),
            Self::TooLong => write!(f, "the DICE chain cannot take another item"),
        }
    }
}

/// The handover: `cdis` and `chain` (one CBOR item, as it is).
pub fn encode(cdis: &Cdis, chain: &[u8]) -> Vec<u8> {
    let mut w = Writer::default();
    w.map(3).int(1).bytes(&cdis.attest).int(2).bytes(&cdis.seal).int(3);
    w.out.extend_from_slice(chain);
    w.out
}

/// `chain` with `certificate` (one CBOR item) appended: its array head rewritten for
/// one more item, its items kept byte for byte.
pub fn append_certificate(chain: &[u8], certificate: &[u8]) -> Result<Vec<u8>, ChainError> {
    let (&initial, rest) = chain.split_first().ok_or(ChainError::NotAnArray)?;
    if initial >> 5 != 4 {
        return Err(ChainError::NotAnArray);
    }
    let (len, items) = match initial & 0x1f {
        n @ 0..=23 => (u64::from(n), rest),
        n @ 24..=27 => {
            let size = 1usize << (n - 24);
            let (bytes, items) = rest.split_at_checked(size).ok_or(ChainError::NotAnArray)?;
            (bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)), items)
        }
        // Reserved values and the indefinite length (31).
        _ => return Err(ChainError::NotAnArray),
    };
    let mut w = Writer::default();
    w.array(len.checked_add(1).ok_or(ChainError::TooLong)?);
    w.out.extend_from_slice(items);
    w.out.extend_from_slice(certificate);
    Ok(w.out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn the_handover_is_the_three_keys_in_order() {
        let cdis = Cdis { attest: [1; 32], seal: [2; 32] };
        let out = encode(&cdis, &[0x80]);
        assert_eq!(out[..4], [0xa3, 0x01, 0x58, 32]);
        assert_eq!(out[4..36], [1; 32]);
        assert_eq!(out[36..39], [0x02, 0x58, 32]);
        assert_eq!(out[39..71], [2; 32]);
        assert_eq!(out[71..], [0x03, 0x80]);
    }

    #[test]
    fn a_certificate_is_appended_and_the_chain_kept() {
        // One item (a root key stand-in) becomes two.
        assert_eq!(append_certificate(&[0x81, 0x41, 0xaa], &[0x42, 1, 2]), Ok(vec![0x82, 0x41, 0xaa, 0x42, 1, 2]));
        // 23 items take a one-byte head; 24 need a longer one.
        let mut chain = vec![0x97];
        chain.extend([0x00; 23]);
        let out = append_certificate(&chain, &[0x01]).unwrap();
        assert_eq!(out[..2], [0x98, 24]);
        assert_eq!(out.len(), 2 + 23 + 1);
        // A long head is read, and grown.
        assert_eq!(append_certificate(&[0x98, 30], &[0x07]), Ok(vec![0x98, 31, 0x07]));
        assert_eq!(append_certificate(&[0x99, 0x01, 0x00], &[]), Ok(vec![0x99, 0x01, 0x01]));
        // Not a definite-length array: refused by name.
        for bad in [&[][..], &[0xa1, 1, 2], &[0x9f, 0xff], &[0x9c], &[0x98]] {
            assert_eq!(append_certificate(bad, &[1]), Err(ChainError::NotAnArray), "{bad:x?}");
        }
        let full = [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(append_certificate(&full, &[1]), Err(ChainError::TooLong));
    }
}
