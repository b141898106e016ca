//! Instance storage's rules, each a case, and the record's sealing shown to hold:
//! every byte of a sealed sector matters, and so do the disk and the sealing CDI.

use super::*;
use pvmkit_abi::instance_disk::InstanceDiskError;

const DISK: [u8; 32] = [0xd1; 32];
const CDI: [u8; 32] = [0xc5; 32];

fn record(rollback_index: u64) -> Record {
    Record { code_hash: [1; 64], authority_hash: [2; 64], mode: Mode::Normal, salt: [3; 64], rollback_index }
}

#[test]
fn a_sealed_record_opens_only_on_its_disk_under_its_cdi() {
    let keys = Keys::derive(&CDI, &DISK);
    let sector = seal(&record(7), &keys, &DISK);
    assert_eq!(open(&sector, &keys, &DISK), Ok(Some(record(7))));
    assert_eq!(open(&[0; 512], &keys, &DISK), Ok(None), "before the first boot");
    // The plaintext is not in the sector.
    assert!(!sector.windows(64).any(|w| w == [1; 64] || w == [3; 64]));
    // Another disk, another pvmfw or device (CDI_Seal).
    assert_eq!(open(&sector, &keys, &[0xd2; 32]), Err(InstanceError::Tampered));
    let other = Keys::derive(&[0xc6; 32], &DISK);
    assert_eq!(open(&sector, &other, &DISK), Err(InstanceError::Tampered));
    // Every byte: the framing and padding are malformed, the rest does not open.
    for at in 0..512 {
        let mut bad = sector;
        bad[at] ^= 0x40;
        let e = open(&bad, &keys, &DISK).unwrap_err();
        let expected = if (16..245).contains(&at) {
            InstanceError::Tampered
        } else {
            InstanceError::Disk(InstanceDiskError::MalformedRecord)
        };
        assert_eq!(e, expected, "byte {at}");
    }
    // Sealing is deterministic, and a different record takes a different nonce.
    assert_eq!(seal(&record(7), &keys, &DISK), sector);
    assert_ne!(seal(&record(8), &keys, &DISK)[16..28], sector[16..28]);
}

#[test]
fn a_boot_is_judged_against_the_record() {
    assert_eq!(judge(None, record(3)), Ok(Verdict::Create(record(3))));
    assert_eq!(judge(Some(record(3)), record(3)), Ok(Verdict::Same(record(3))));
    // A newer index is recorded; the recorded salt is kept, whatever the boot proposed.
    let proposed = Record { salt: [9; 64], ..record(5) };
    assert_eq!(judge(Some(record(3)), proposed), Ok(Verdict::Update(record(5))));
    assert_eq!(judge(Some(record(3)), record(2)), Err(InstanceError::RolledBack { recorded: 3, found: 2 }));
    let code = Record { code_hash: [8; 64], ..record(3) };
    assert_eq!(judge(Some(record(3)), code), Err(InstanceError::CodeHashMismatch));
    let key = Record { authority_hash: [8; 64], ..record(3) };
    assert_eq!(judge(Some(record(3)), key), Err(InstanceError::AuthorityHashMismatch));
    let mode = Record { mode: Mode::Debug, ..record(3) };
    assert_eq!(judge(Some(record(3)), mode), Err(InstanceError::ModeMismatch));
    assert!(Verdict::Same(record(1)).to_write().is_none() && Verdict::Create(record(1)).to_write().is_some());
}

#[test]
fn a_new_instances_salt_is_the_disks_unless_entropy_joins_it() {
    let keys = Keys::derive(&CDI, &DISK);
    assert_eq!(keys.new_salt(None), Keys::derive(&CDI, &DISK).new_salt(None), "derived: repeatable");
    assert_ne!(keys.new_salt(None), Keys::derive(&CDI, &[0xd2; 32]).new_salt(None), "per disk");
    assert_ne!(keys.new_salt(None), Keys::derive(&[0; 32], &DISK).new_salt(None), "per device");
    assert_ne!(keys.new_salt(Some(&[1; 32])), keys.new_salt(None));
    assert_ne!(keys.new_salt(Some(&[1; 32])), keys.new_salt(Some(&[2; 32])));
}

#[test]
fn keys_are_wiped_when_dropped_and_errors_say_what_they_are() {
    let mut keys = core::mem::ManuallyDrop::new(Keys::derive(&CDI, &DISK));
    assert_ne!(keys.aead, [0; 32]);
    // SAFETY: dropped once; only the plain arrays are read after.
    unsafe { core::mem::ManuallyDrop::drop(&mut keys) };
    assert_eq!((keys.aead, keys.nonce, keys.salt), ([0; 32], [0; 32], [0; 64]));
    let said = |e: InstanceError| e.to_string();
    assert!(said(InstanceError::Tampered).contains("does not open"));
    assert!(said(InstanceError::CodeHashMismatch).contains("code hash"));
    assert!(said(InstanceError::AuthorityHashMismatch).contains("authority hash"));
    assert!(said(InstanceError::ModeMismatch).contains("mode"));
    assert!(said(InstanceError::BadMode(7)).contains('7'));
    assert_eq!(
        said(InstanceError::RolledBack { recorded: 3, found: 2 }),
        "rollback index 2 is below the 3 this instance has booted"
    );
    assert!(said(InstanceError::Disk(InstanceDiskError::MalformedRecord)).contains("not a sealed record"));
}
