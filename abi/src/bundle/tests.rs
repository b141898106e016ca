use super::*;

const RAM: u64 = 0x8000_0000;

fn config(entry: u64) -> [u8; VM_CONFIG_SIZE] {
    VmConfig { ram_base: RAM, ram_size: 256 << 20, entry_ipa: entry, virtio_slots: 1 << 31, vcpus: 1 }.to_bytes()
}

fn build(entries: &[EntrySpec<'_>]) -> Vec<u8> {
    let mut out = vec![0u8; encoded_len(entries)];
    let n = encode(entries, &mut out).expect("encode");
    assert_eq!(n, out.len());
    out
}

fn good() -> Vec<u8> {
    let cfg = config(RAM + 0x20_0000);
    build(&[
        EntrySpec { kind: EntryKind::VmConfig, load_ipa: 0, mem_size: 32, data: &cfg },
        EntrySpec { kind: EntryKind::Payload, load_ipa: RAM + 0x20_0000, mem_size: 0x10_0000, data: &[0xaa; 100] },
        EntrySpec { kind: EntryKind::GuestDt, load_ipa: RAM, mem_size: 0x1000, data: &[0xd0; 64] },
    ])
}

#[test]
fn round_trip() {
    let bytes = good();
    let bundle = Bundle::parse(&bytes).expect("parse");
    let payload = bundle.entry(EntryKind::Payload).unwrap();
    assert_eq!(payload.data, &[0xaa; 100][..]);
    assert_eq!(payload.load_ipa, RAM + 0x20_0000);
    assert_eq!(bundle.entry(EntryKind::GuestDt).unwrap().data, &[0xd0; 64][..]);
    assert!(bundle.entry(EntryKind::Pvmfw).is_none());
    let layout = bundle.layout().expect("layout");
    assert_eq!(layout.entry_ipa, RAM + 0x20_0000);
    assert_eq!(layout.payload.size(), 0x10_0000);
    assert_eq!(layout.dt, Region { start: RAM, end: RAM + 0x1000 });
}

#[test]
fn vm_config_round_trips_and_checks_reserved() {
    let bytes = good();
    let config = Bundle::parse(&bytes).unwrap().config();
    assert_eq!(config.virtio_slots, 1 << 31);
    let mut raw = config.to_bytes();
    assert_eq!(VmConfig::from_bytes(&raw), Ok(config));
    // The vCPU count (bytes 28..32): 1 to 8, never 0 or more.
    raw[28..32].copy_from_slice(&8u32.to_le_bytes());
    assert_eq!(VmConfig::from_bytes(&raw).map(|c| c.vcpus), Ok(8));
    for bad in [0u32, 9, 1 << 16] {
        raw[28..32].copy_from_slice(&bad.to_le_bytes());
        assert_eq!(VmConfig::from_bytes(&raw), Err(BundleError::BadVcpus(bad)));
    }
}

#[test]
fn trailing_bytes_after_total_size_are_ignored() {
    let mut bytes = good();
    bytes.extend_from_slice(&[0xff; 4096]);
    assert!(Bundle::parse(&bytes).is_ok());
}

#[test]
fn header_errors() {
    let bytes = good();
    assert_eq!(Bundle::parse(&bytes[..10]).unwrap_err(), BundleError::TooShort(10));
    let mut b = bytes.clone();
    b[0] = b'X';
    assert_eq!(Bundle::parse(&b).unwrap_err(), BundleError::BadMagic);
    let mut b = bytes.clone();
    b[8] = 1;
    assert_eq!(Bundle::parse(&b).unwrap_err(), BundleError::UnsupportedVersion(1), "the old secret-carrying format");
    let mut b = bytes.clone();
    b[12] = 0;
    assert_eq!(Bundle::parse(&b).unwrap_err(), BundleError::BadEntryCount(0));
    let mut b = bytes.clone();
    b[12] = 9;
    assert_eq!(Bundle::parse(&b).unwrap_err(), BundleError::BadEntryCount(9));
    let mut b = bytes.clone();
    b[16..24].copy_from_slice(&(bytes.len() as u64 + 1).to_le_bytes());
    assert!(matches!(Bundle::parse(&b).unwrap_err(), BundleError::BadTotalSize { .. }));
    let mut b = bytes.clone();
    b[24] = 1;
    assert_eq!(Bundle::parse(&b).unwrap_err(), BundleError::ReservedNotZero);
    // Truncated anywhere: an error, never a panic.
    for len in 0..bytes.len() {
        assert!(Bundle::parse(&bytes[..len]).is_err(), "len {len}");
    }
}

fn entry_field(b: &mut [u8], index: usize, off: usize, value: u64) {
    let at = HEADER_SIZE + index * ENTRY_SIZE + off;
    b[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

#[test]
fn entry_errors() {
    let bytes = good();
    let mut b = bytes.clone();
    b[HEADER_SIZE] = 77;
    assert_eq!(Bundle::parse(&b).unwrap_err(), BundleError::UnknownKind(77));
    let mut b = bytes.clone();
    b[HEADER_SIZE + ENTRY_SIZE] = EntryKind::GuestDt as u8;
    assert_eq!(Bundle::parse(&b).unwrap_err(), BundleError::DuplicateKind(EntryKind::GuestDt));
    let mut b = bytes.clone();
    entry_field(&mut b, 1, 8, u64::MAX - 10); // offset that wraps with size
    assert_eq!(Bundle::parse(&b).unwrap_err(), BundleError::EntryOutOfBounds(EntryKind::Payload));
    let mut b = bytes.clone();
    entry_field(&mut b, 1, 8, 0); // data overlapping the header
    assert_eq!(Bundle::parse(&b).unwrap_err(), BundleError::EntryOutOfBounds(EntryKind::Payload));
    let mut b = bytes.clone();
    entry_field(&mut b, 1, 16, 1 << 40); // size past the end
    assert_eq!(Bundle::parse(&b).unwrap_err(), BundleError::EntryOutOfBounds(EntryKind::Payload));
    let mut b = bytes.clone();
    entry_field(&mut b, 1, 32, 10);
    assert_eq!(Bundle::parse(&b).unwrap_err(), BundleError::MemSizeTooSmall(EntryKind::Payload));
    let mut b = bytes.clone();
    b[HEADER_SIZE + 4] = 1; // flags
    assert_eq!(Bundle::parse(&b).unwrap_err(), BundleError::ReservedNotZero);
}

#[test]
fn missing_kinds_and_bad_config() {
    let cfg = config(RAM);
    let only_cfg = build(&[EntrySpec { kind: EntryKind::VmConfig, load_ipa: 0, mem_size: 32, data: &cfg }]);
    assert_eq!(Bundle::parse(&only_cfg).unwrap_err(), BundleError::MissingKind(EntryKind::Payload));
    let short = build(&[
        EntrySpec { kind: EntryKind::VmConfig, load_ipa: 0, mem_size: 8, data: &cfg[..8] },
        EntrySpec { kind: EntryKind::Payload, load_ipa: RAM, mem_size: 4, data: &[0; 4] },
        EntrySpec { kind: EntryKind::GuestDt, load_ipa: RAM, mem_size: 4, data: &[0; 4] },
    ]);
    assert_eq!(Bundle::parse(&short).unwrap_err(), BundleError::BadVmConfigSize(8));
}

fn layout_of(payload_ipa: u64, payload_mem: u64, dt_ipa: u64, entry: u64) -> Result<GuestLayout, LayoutError> {
    let cfg = config(entry);
    let bytes = build(&[
        EntrySpec { kind: EntryKind::VmConfig, load_ipa: 0, mem_size: 32, data: &cfg },
        EntrySpec { kind: EntryKind::Payload, load_ipa: payload_ipa, mem_size: payload_mem, data: &[1; 64] },
        EntrySpec { kind: EntryKind::GuestDt, load_ipa: dt_ipa, mem_size: 0x1000, data: &[2; 64] },
    ]);
    Bundle::parse(&bytes).expect("container is fine").layout()
}

#[test]
fn layout_errors() {
    let p = RAM + 0x20_0000;
    assert!(layout_of(p, 0x1000, RAM, p).is_ok());
    assert_eq!(layout_of(0x4000_0000, 0x1000, RAM, 0x4000_0000), Err(LayoutError::OutsideRam(EntryKind::Payload)));
    assert_eq!(
        layout_of(RAM + (256 << 20) - 0x1000, 0x2000, RAM, RAM + (256 << 20) - 0x1000),
        Err(LayoutError::OutsideRam(EntryKind::Payload))
    );
    assert_eq!(layout_of(u64::MAX - 0xfff, 0x2000, RAM, p), Err(LayoutError::OutsideRam(EntryKind::Payload)));
    assert_eq!(layout_of(p + 4, 0x1000, RAM, p + 4), Err(LayoutError::Unaligned(EntryKind::Payload)));
    assert_eq!(layout_of(p, 0x1000, p, p), Err(LayoutError::Overlap(EntryKind::Payload, EntryKind::GuestDt)));
    assert_eq!(layout_of(p, 0x1000, RAM, p + 64), Err(LayoutError::EntryOutsidePayload(p + 64)));
    assert_eq!(layout_of(p, 0x1000, RAM, p + 2), Err(LayoutError::EntryOutsidePayload(p + 2)));
}

#[test]
fn random_bytes_never_panic() {
    // A small deterministic fuzz: mutate a good bundle byte by byte.
    let bytes = good();
    let mut seed = 0x1234_5678_9abc_def0u64;
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut b = bytes.clone();
        let at = (seed as usize) % b.len();
        b[at] = (seed >> 32) as u8;
        if let Ok(bundle) = Bundle::parse(&b) {
            let _ = bundle.layout();
        }
    }
}
