//! Playing the bootloader: the configuration data appended to pvmfw's image
//! ([`pvmkit_abi::avf_config`] reads it), written as AVF lays it out: at the next 4 KiB
//! boundary after the image, a 1.2 header, four `(offset, size)` entries and the blobs,
//! each at the next 8-byte boundary, in entry order.

use std::path::PathBuf;

use pvmkit_abi::avf_config::{Header, ALIGN, BLOB_ALIGN, ENTRIES, MAGIC, VERSION_1_2};
use zerocopy::IntoBytes;

/// The files whose bytes become the configuration's entries (`--dice-handover`,
/// `--debug-policy`, `--vm-dtbo`, `--vm-reference-dt`).
#[derive(Clone, Debug, Default)]
pub struct ConfigFiles {
    /// Entry 0 (default: [`test_dice_handover`]).
    pub dice_handover: Option<PathBuf>,
    /// Entry 1.
    pub debug_policy: Option<PathBuf>,
    /// Entry 2.
    pub vm_dtbo: Option<PathBuf>,
    /// Entry 3.
    pub vm_reference_dt: Option<PathBuf>,
}

impl ConfigFiles {
    /// The configuration data these files make.
    pub fn build(&self) -> Result<Vec<u8>, String> {
        let read = |path: &Option<PathBuf>| path.as_deref().map(crate::files::read).transpose();
        let handover = match read(&self.dice_handover)? {
            Some(bytes) => bytes,
            None => test_dice_handover(),
        };
        let (policy, dtbo, reference) = (read(&self.debug_policy)?, read(&self.vm_dtbo)?, read(&self.vm_reference_dt)?);
        build([Some(&handover), policy.as_deref(), dtbo.as_deref(), reference.as_deref()])
    }
}

/// The DICE handover `pvmkit` gives pvmfw when no other is named: what a device's
/// bootloader would hand over, rooted in pvmkit's fixed test UDS
/// ([`crate::dice::root_handover`]). It vouches for nothing real: everyone knows the UDS.
pub fn test_dice_handover() -> Vec<u8> {
    crate::dice::root_handover(&crate::dice::test_uds())
}

/// The configuration holding `entries` (in [`pvmkit_abi::avf_config::Entry`] order; `None`:
/// absent).
pub fn build(entries: [Option<&[u8]>; ENTRIES]) -> Result<Vec<u8>, String> {
    let table = core::mem::size_of::<Header>() + 8 * ENTRIES;
    let mut places = Vec::with_capacity(ENTRIES);
    let mut body: Vec<u8> = vec![0; table];
    for blob in entries {
        match blob {
            Some(bytes) if !bytes.is_empty() => {
                let at = body.len().next_multiple_of(BLOB_ALIGN as usize);
                body.resize(at, 0);
                body.extend_from_slice(bytes);
                let offset = u32::try_from(at).map_err(|_| "configuration data over 4 GiB")?;
                places.push((offset, bytes.len() as u32));
            }
            _ => places.push((0, 0)),
        }
    }
    let total = u32::try_from(body.len()).map_err(|_| "configuration data over 4 GiB")?;
    let header = Header { magic: MAGIC.into(), version: VERSION_1_2.into(), total_size: total.into(), flags: 0.into() };
    body[..16].copy_from_slice(header.as_bytes());
    for (i, (offset, size)) in places.into_iter().enumerate() {
        let at = 16 + 8 * i;
        body[at..at + 4].copy_from_slice(&offset.to_le_bytes());
        body[at + 4..at + 8].copy_from_slice(&size.to_le_bytes());
    }
    Ok(body)
}

/// `pvmfw` with `config` appended at the next [`ALIGN`] boundary.
pub fn append(pvmfw: &[u8], config: &[u8]) -> Vec<u8> {
    let mut out = pvmfw.to_vec();
    out.resize(pvmfw.len().next_multiple_of(ALIGN), 0);
    out.extend_from_slice(config);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pvmkit_abi::avf_config::{parse, Entry};

    fn handover() -> Vec<u8> {
        let mut h = vec![0xa3, 0x01, 0x58, 32];
        h.extend([1; 32]);
        h.extend([0x02, 0x58, 32]);
        h.extend([2; 32]);
        h.extend([0x03, 0x82, 0x40, 0x40]); // a stand-in chain: two empty byte strings
        h
    }

    #[test]
    fn what_the_bootloader_writes_pvmfw_reads() {
        let h = handover();
        let config = build([Some(&h), None, Some(b"dtbo"), Some(b"reference")]).unwrap();
        assert_eq!(&config[..4], b"pvmf");
        let parsed = parse(&config).unwrap();
        assert_eq!(parsed.version, (1 << 16) | 2);
        assert_eq!(parsed.entry(Entry::DiceHandover), Some(&h[..]));
        assert_eq!(parsed.entry(Entry::DebugPolicy), None);
        assert_eq!(parsed.entry(Entry::VmDtbo), Some(&b"dtbo"[..]));
        assert_eq!(parsed.entry(Entry::VmReferenceDt), Some(&b"reference"[..]));
        // The handover starts right after the 48-byte header and table; the next blob
        // at the next 8-byte boundary.
        assert_eq!(u32::from_le_bytes(config[16..20].try_into().unwrap()), 48);
        assert_eq!(u32::from_le_bytes(config[32..36].try_into().unwrap()), (48 + h.len() as u32).next_multiple_of(8));
        let image = append(&[0xaa; 5000], &config);
        assert_eq!(image.len(), 8192 + config.len());
        assert_eq!(parse(&image[8192..]).unwrap(), parsed);
        assert_eq!(
            build([None, None, None, None]).map(|c| parse(&c).unwrap_err()),
            Ok(pvmkit_abi::avf_config::ConfigError::NoDiceHandover)
        );
        // The default handover is one pvmfw reads: the test UDS's root handover.
        let config = ConfigFiles::default().build().unwrap();
        let handover = parse(&config).unwrap().dice_handover().unwrap();
        assert_eq!(handover, pvmkit_abi::dice_handover::DiceHandover::parse(&test_dice_handover()).unwrap());
        assert_eq!(crate::dice::verify(handover.chain).unwrap().len(), 1, "the bootloader's layer");
    }
}
