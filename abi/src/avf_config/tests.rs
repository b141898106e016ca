//! Configurations assembled by hand, field by field as AVF's README lays them out.

use super::*;

/// A DICE handover as open-dice writes one: `{1: CDI_Attest, 2: CDI_Seal, 3: chain}`.
fn handover() -> Vec<u8> {
    let mut h = vec![0xa3, 0x01, 0x58, 32];
    h.extend([0xaa; 32]);
    h.extend([0x02, 0x58, 32]);
    h.extend([0xbb; 32]);
    h.extend([0x03, 0x82, 0x01, 0x02]); // a stand-in chain: the array [1, 2]
    h
}

/// A configuration of `version` with `blobs` (None: absent), each placed at the next
/// 8-byte boundary after the table, in order; `total_size` as computed.
fn config(version: u32, blobs: &[Option<&[u8]>]) -> Vec<u8> {
    let table = 16 + 8 * blobs.len();
    let mut places = Vec::new();
    let mut body = Vec::new();
    let mut at = table;
    for blob in blobs {
        match blob {
            Some(b) => {
                at = at.next_multiple_of(8);
                places.push((at as u32, b.len() as u32));
                body.resize(at - table, 0);
                body.extend_from_slice(b);
                at += b.len();
            }
            None => places.push((0, 0)),
        }
    }
    let total = (table + body.len()) as u32;
    let mut out = Vec::new();
    for word in [0x666d_7670u32, version, total, 0] {
        out.extend(word.to_le_bytes());
    }
    for (offset, size) in places {
        out.extend(offset.to_le_bytes());
        out.extend(size.to_le_bytes());
    }
    out.extend(body);
    out
}

#[test]
fn reads_every_version_and_entry() {
    let h = handover();
    let c = config(VERSION_1_2, &[Some(&h), None, Some(b"dtbo"), Some(b"ref-dt-bytes")]);
    assert_eq!(&c[..4], b"pvmf", "the magic reads 'pvmf' in memory");
    let parsed = parse(&c).unwrap();
    assert_eq!(parsed.entry(Entry::DiceHandover), Some(&h[..]));
    assert_eq!(parsed.entry(Entry::DebugPolicy), None);
    assert_eq!(parsed.entry(Entry::VmDtbo), Some(&b"dtbo"[..]));
    assert_eq!(parsed.entry(Entry::VmReferenceDt), Some(&b"ref-dt-bytes"[..]));
    let d = parsed.dice_handover().unwrap();
    assert_eq!((d.cdi_attest, d.cdi_seal, d.chain), (&[0xaa; 32], &[0xbb; 32], &[0x82, 1, 2][..]));
    // 1.0 has two entries, 1.1 three; a later 1.x minor is read as 1.2.
    let v10 = config(1 << 16, &[Some(&h), Some(b"policy")]);
    assert_eq!(parse(&v10).unwrap().entry(Entry::DebugPolicy), Some(&b"policy"[..]));
    let v11 = config((1 << 16) | 1, &[Some(&h), None, Some(b"dtbo")]);
    assert_eq!(parse(&v11).unwrap().entry(Entry::VmDtbo), Some(&b"dtbo"[..]));
    let v15 = config((1 << 16) | 5, &[Some(&h), None, None, Some(b"ref")]);
    assert_eq!(parse(&v15).unwrap().entry(Entry::VmReferenceDt), Some(&b"ref"[..]));
    // What follows the configuration in memory is not its.
    let mut longer = c.clone();
    longer.extend([0xff; 100]);
    assert_eq!(parse(&longer).unwrap(), parse(&c).unwrap());
}

/// Writes little-endian `value` at `at`.
fn poke(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

#[test]
fn refuses_each_malformation_by_name() {
    let h = handover();
    let good = config(VERSION_1_2, &[Some(&h), Some(b"policy!!"), None, None]);
    let with = |at: usize, value: u32| {
        let mut c = good.clone();
        poke(&mut c, at, value);
        parse(&c).unwrap_err()
    };
    assert_eq!(with(0, 0x666d_7671), ConfigError::BadMagic(0x666d_7671));
    assert_eq!(with(4, 2 << 16), ConfigError::UnsupportedVersion(2 << 16));
    assert_eq!(with(8, good.len() as u32 + 1), ConfigError::BadTotalSize(good.len() as u32 + 1), "past the load");
    assert_eq!(with(8, 40), ConfigError::BadTotalSize(40), "inside the table");
    // Entry 1 (at 24): misaligned, past the end, into the table, wrapping, overlapping 0.
    let offset1 = u32::from_le_bytes(good[24..28].try_into().unwrap());
    assert_eq!(with(24, offset1 + 4), ConfigError::Misaligned(1));
    assert_eq!(with(24, offset1 + 8), ConfigError::OutOfBounds(1));
    assert_eq!(with(24, 8), ConfigError::OutOfBounds(1));
    assert_eq!(with(28, u32::MAX), ConfigError::OutOfBounds(1));
    assert_eq!(with(24, 48), ConfigError::Overlapping(1), "inside the handover");
    // The handover absent, or not the map it must be.
    assert_eq!(with(20, 0), ConfigError::NoDiceHandover);
    let mut bad = h.clone();
    bad[0] = 0xa2;
    let c = config(VERSION_1_2, &[Some(&bad), None, None, None]);
    assert_eq!(parse(&c).unwrap_err(), ConfigError::BadDiceHandover(HandoverError::NotAMap));
    // 1 + 35 + 35 bytes: the two CDIs and nothing more.
    let c = config(VERSION_1_2, &[Some(&h[..71]), None, None, None]);
    assert_eq!(parse(&c).unwrap_err(), ConfigError::BadDiceHandover(HandoverError::NoChain));
    let c = config(VERSION_1_2, &[Some(&h[..72]), None, None, None]);
    assert_eq!(parse(&c).unwrap_err(), ConfigError::BadDiceHandover(HandoverError::MalformedCbor));
    let c = config(VERSION_1_2, &[Some(&h[..30]), None, None, None]);
    assert_eq!(parse(&c).unwrap_err(), ConfigError::BadDiceHandover(HandoverError::BadCdi));
    assert_eq!(parse(&good[..40]).unwrap_err(), ConfigError::TooSmall, "the table cut short");
    assert!(ConfigError::UnsupportedVersion(2 << 16).to_string().contains("2.0"));
}

#[test]
fn random_bytes_never_panic() {
    let h = handover();
    let good = config(VERSION_1_2, &[Some(&h), Some(b"policy!!"), Some(b"x"), Some(b"yz")]);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut c = good.clone();
        let at = (x as usize) % c.len();
        c[at] = (x >> 32) as u8;
        if let Ok(parsed) = parse(&c[..c.len() - (x >> 40) as usize % 8]) {
            for e in [Entry::DiceHandover, Entry::DebugPolicy, Entry::VmDtbo, Entry::VmReferenceDt] {
                let _ = parsed.entry(e);
            }
        }
    }
}
