//! The DICE handover one boot stage gives the next (open-dice's Android profile,
//! `AndroidDiceHandover`): the CBOR map `{1: CDI_Attest, 2: CDI_Seal, 3: chain}`, each
//! CDI a 32-byte byte string, keys in that order. The profile lets the chain be absent;
//! pvmkit (the bootloader's handover to pvmfw and pvmfw's to the payload) requires it.
//!
//! [`DiceHandover::parse`] reads one as it arrives from something it does not trust
//! (the host for pvmfw, memory for the payload): the chain must be one well-formed CBOR
//! item, a definite-length array of at least two items (the root's public key and one
//! certificate), and nothing may follow it. No allocation, bounded nesting.

use core::fmt;

/// Bytes of a CDI.
pub const CDI_SIZE: usize = 32;

/// The deepest CBOR nesting [`well_formed`] follows (a DICE chain needs five:
/// chain, certificate, header map, …).
pub const MAX_NESTING: usize = 16;

/// Why a DICE handover was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoverError {
    /// Not a CBOR map of three entries.
    NotAMap,
    /// A CDI is missing, out of order, or not a 32-byte byte string.
    BadCdi,
    /// Key 3 (the chain) is missing.
    NoChain,
    /// The chain is not well-formed CBOR (truncated, reserved values, too deep).
    MalformedCbor,
    /// The chain is not a definite-length array of a root key and certificates.
    NotAChain,
    /// Bytes follow the handover.
    TrailingBytes,
}

impl fmt::Display for HandoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotAMap => "the DICE handover is not a CBOR map of three entries",
            Self::BadCdi => "a CDI of the DICE handover is missing or not a 32-byte byte string",
            Self::NoChain => "the DICE handover has no chain (key 3)",
            Self::MalformedCbor => "the DICE chain is not well-formed CBOR",
            Self::NotAChain => "the DICE chain is not an array of a root key and at least one certificate",
            Self::TrailingBytes => "bytes follow the DICE handover",
        })
    }
}

/// A DICE handover, read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiceHandover<'a> {
    /// CDI_Attest.
    pub cdi_attest: &'a [u8; CDI_SIZE],
    /// CDI_Seal.
    pub cdi_seal: &'a [u8; CDI_SIZE],
    /// The DICE chain: one CBOR item, its bytes as they are.
    pub chain: &'a [u8],
}

impl<'a> DiceHandover<'a> {
    /// Reads `bytes`, all of them: a handover and nothing after it.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, HandoverError> {
        let (handover, rest) = Self::parse_prefix(bytes)?;
        if !rest.is_empty() {
            return Err(HandoverError::TrailingBytes);
        }
        Ok(handover)
    }

    /// Reads the handover at the start of `bytes` (a page that holds one, padded) and
    /// returns it with what follows it.
    pub fn parse_prefix(bytes: &'a [u8]) -> Result<(Self, &'a [u8]), HandoverError> {
        let rest = bytes.strip_prefix(&[0xa3]).ok_or(HandoverError::NotAMap)?;
        let cdi = |rest: &'a [u8], key: u8| -> Result<(&'a [u8; CDI_SIZE], &'a [u8]), HandoverError> {
            let rest = rest.strip_prefix(&[key, 0x58, CDI_SIZE as u8]).ok_or(HandoverError::BadCdi)?;
            rest.split_first_chunk::<CDI_SIZE>().ok_or(HandoverError::BadCdi)
        };
        let (cdi_attest, rest) = cdi(rest, 0x01)?;
        let (cdi_seal, rest) = cdi(rest, 0x02)?;
        let chain = rest.strip_prefix(&[0x03]).ok_or(HandoverError::NoChain)?;
        let len = well_formed(chain)?;
        let (chain, rest) = chain.split_at(len);
        match head(chain) {
            Some((4, Some(items), _)) if items >= 2 => Ok((Self { cdi_attest, cdi_seal, chain }, rest)),
            _ => Err(HandoverError::NotAChain),
        }
    }
}

/// A CBOR head: major type, argument (`None` for the indefinite length) and the bytes
/// after it. `None` when cut short or reserved (additional information 28–30).
pub fn head(bytes: &[u8]) -> Option<(u8, Option<u64>, &[u8])> {
    let (&initial, rest) = bytes.split_first()?;
    let (major, info) = (initial >> 5, initial & 0x1f);
    match info {
        0..=23 => Some((major, Some(info.into()), rest)),
        24..=27 => {
            let (arg, rest) = rest.split_at_checked(1 << (info - 24))?;
            Some((major, Some(arg.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))), rest))
        }
        31 if (2..=5).contains(&major) || major == 7 => Some((major, None, rest)),
        _ => None,
    }
}

/// The length of the well-formed CBOR item (RFC 8949 §5.3.1: heads, lengths that fit,
/// indefinite-length strings made of chunks of their own type, "break" only where it
/// ends something) at the start of `bytes`, nesting at most [`MAX_NESTING`] deep.
pub fn well_formed(bytes: &[u8]) -> Result<usize, HandoverError> {
    let rest = item(bytes, 0)?;
    Ok(bytes.len() - rest.len())
}

/// What follows the item at the start of `bytes`.
fn item(bytes: &[u8], depth: usize) -> Result<&[u8], HandoverError> {
    let bad = HandoverError::MalformedCbor;
    if depth >= MAX_NESTING {
        return Err(bad);
    }
    let (major, arg, rest) = head(bytes).ok_or(bad)?;
    match (major, arg) {
        (0 | 1, Some(_)) => Ok(rest),
        (2 | 3, Some(len)) => usize::try_from(len).ok().and_then(|len| rest.get(len..)).ok_or(bad),
        (2 | 3, None) => {
            // Chunks, each a definite-length string of the same major type, then break.
            let mut rest = rest;
            loop {
                match head(rest).ok_or(bad)? {
                    (7, None, after) => return Ok(after),
                    (m, Some(_), _) if m == major => rest = item(rest, depth + 1)?,
                    _ => return Err(bad),
                }
            }
        }
        (4 | 5, Some(count)) => {
            let items = if major == 5 { count.checked_mul(2).ok_or(bad)? } else { count };
            // Every item takes at least a byte: a count beyond the bytes left is cut short.
            if items > rest.len() as u64 {
                return Err(bad);
            }
            (0..items).try_fold(rest, |rest, _| item(rest, depth + 1))
        }
        (4 | 5, None) => {
            let mut rest = rest;
            let mut n = 0u64;
            loop {
                if rest.first() == Some(&0xff) {
                    // A map needs whole pairs.
                    return if major == 5 && n % 2 == 1 { Err(bad) } else { Ok(&rest[1..]) };
                }
                rest = item(rest, depth + 1)?;
                n += 1;
            }
        }
        (6, Some(_)) => item(rest, depth + 1),
        // Simple values and floats; 24 must carry a value of 32 or more.
        (7, Some(v)) if bytes[0] == 0xf8 && v < 32 => Err(bad),
        (7, Some(_)) => Ok(rest),
        // A "break" where no item may end.
        _ => Err(bad),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handover with `chain`.
    fn handover(chain: &[u8]) -> std::vec::Vec<u8> {
        let mut out = std::vec![0xa3, 0x01, 0x58, 32];
        out.extend([0x11; 32]);
        out.extend([0x02, 0x58, 32]);
        out.extend([0x22; 32]);
        out.push(0x03);
        out.extend_from_slice(chain);
        out
    }

    #[test]
    fn a_handover_is_read_and_its_chain_kept_whole() {
        // [root key (a map), certificate (an array of four)]
        let chain = [0x82, 0xa1, 0x01, 0x01, 0x84, 0x43, 0xa1, 0x01, 0x27, 0xa0, 0x40, 0x40];
        let bytes = handover(&chain);
        let parsed = DiceHandover::parse(&bytes).unwrap();
        assert_eq!((parsed.cdi_attest, parsed.cdi_seal, parsed.chain), (&[0x11; 32], &[0x22; 32], &chain[..]));
        // In a page: the padding after it is returned, and refused by parse.
        let mut page = bytes.clone();
        page.extend([0; 8]);
        assert_eq!(DiceHandover::parse_prefix(&page).unwrap().1, &[0; 8]);
        assert_eq!(DiceHandover::parse(&page), Err(HandoverError::TrailingBytes));
    }

    #[test]
    fn each_malformation_is_refused_by_name() {
        let good = handover(&[0x82, 0x40, 0x40]);
        let edit = |at: usize, byte: u8| {
            let mut b = good.clone();
            b[at] = byte;
            DiceHandover::parse(&b).map(|_| ())
        };
        assert_eq!(edit(0, 0xa2), Err(HandoverError::NotAMap));
        assert_eq!(edit(1, 0x02), Err(HandoverError::BadCdi));
        assert_eq!(edit(3, 31), Err(HandoverError::BadCdi));
        assert_eq!(edit(36, 0x01), Err(HandoverError::BadCdi));
        assert_eq!(edit(71, 0x04), Err(HandoverError::NoChain));
        assert_eq!(DiceHandover::parse(&good[..50]), Err(HandoverError::BadCdi));
        assert_eq!(DiceHandover::parse(&good[..71]), Err(HandoverError::NoChain));
        assert_eq!(DiceHandover::parse(&handover(&[0x81, 0x40])), Err(HandoverError::NotAChain));
        assert_eq!(DiceHandover::parse(&handover(&[0xa1, 0x40, 0x40])), Err(HandoverError::NotAChain));
        assert_eq!(DiceHandover::parse(&handover(&[0x9f, 0x40, 0x40, 0xff])), Err(HandoverError::NotAChain));
        for chain in [&[0x82, 0x40][..], &[0x82, 0x41], &[0x82, 0x40, 0x5c], &[0x82, 0x40, 0xff], &[0x9b, 0xff]] {
            assert_eq!(DiceHandover::parse(&handover(chain)), Err(HandoverError::MalformedCbor), "{chain:x?}");
        }
        assert!(HandoverError::NotAChain.to_string().contains("root key"));
    }

    #[test]
    fn well_formedness_follows_rfc_8949() {
        let ok: &[&[u8]] = &[
            &[0x00],
            &[0x3b, 0, 0, 0, 0, 0, 0, 0, 1],
            &[0x5f, 0x41, 0xaa, 0x40, 0xff],
            &[0x7f, 0x61, 0x61, 0xff],
            &[0x9f, 0x01, 0x82, 0x02, 0x03, 0xff],
            &[0xbf, 0x01, 0x02, 0xff],
            &[0xc1, 0x1a, 0, 0, 0, 1],
            &[0xf6],
            &[0xf8, 0x20],
            &[0xfb, 0, 0, 0, 0, 0, 0, 0, 0],
        ];
        for bytes in ok {
            assert_eq!(well_formed(bytes), Ok(bytes.len()), "{bytes:x?}");
        }
        let bad: &[&[u8]] = &[
            &[],
            &[0x1c],
            &[0xff],
            &[0x5f, 0x61, 0x61, 0xff],
            &[0x5f, 0x41],
            &[0xbf, 0x01, 0xff],
            &[0xf8, 0x10],
            &[0x1f],
            &[0xc1],
            &[0x9a, 0xff, 0xff, 0xff, 0xff],
        ];
        for bytes in bad {
            assert_eq!(well_formed(bytes), Err(HandoverError::MalformedCbor), "{bytes:x?}");
        }
        // Nesting is bounded: 16 arrays deep is refused, 15 read; and so through
        // indefinite arrays, tags and the chunks of an indefinite string.
        let deep = |n: usize| [std::vec![0x81; n], std::vec![0x00]].concat();
        assert_eq!(well_formed(&deep(MAX_NESTING - 1)), Ok(MAX_NESTING));
        assert_eq!(well_formed(&deep(MAX_NESTING)), Err(HandoverError::MalformedCbor));
        let nested = |n: usize, open: u8, close: &[u8]| {
            [std::vec![open; n], std::vec![0x00], close.repeat(if open == 0xc1 { 0 } else { n })].concat()
        };
        assert!(well_formed(&nested(MAX_NESTING - 1, 0x9f, &[0xff])).is_ok());
        assert_eq!(well_formed(&nested(MAX_NESTING, 0x9f, &[0xff])), Err(HandoverError::MalformedCbor));
        assert!(well_formed(&nested(MAX_NESTING - 1, 0xc1, &[])).is_ok());
        assert_eq!(well_formed(&nested(MAX_NESTING, 0xc1, &[])), Err(HandoverError::MalformedCbor));
        let chunked = |n: usize| [std::vec![0x81; n], std::vec![0x5f, 0x40, 0xff]].concat();
        assert!(well_formed(&chunked(MAX_NESTING - 2)).is_ok());
        assert_eq!(
            well_formed(&chunked(MAX_NESTING - 1)),
            Err(HandoverError::MalformedCbor),
            "the chunk is one deeper"
        );
    }

    #[test]
    fn heads_read_their_argument_big_endian() {
        assert_eq!(head(&[0x59, 0x01, 0x02, 0xaa]), Some((2, Some(0x102), &[0xaa][..])));
        assert_eq!(head(&[0x1b, 1, 2, 3, 4, 5, 6, 7, 8]), Some((0, Some(0x0102_0304_0506_0708), &[][..])));
        assert_eq!(head(&[0x9f]), Some((4, None, &[][..])));
        // The indefinite length only for strings, arrays, maps and "break".
        for initial in [0x1f, 0x3f, 0xdf] {
            assert_eq!(head(&[initial]), None, "{initial:#x}");
        }
        // A 256-byte string takes a two-byte length.
        let long = [&[0x59, 0x01, 0x00][..], &[0; 256]].concat();
        assert_eq!(well_formed(&long), Ok(259));
    }
}
