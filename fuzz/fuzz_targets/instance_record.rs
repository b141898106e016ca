//! The instance disk as the host hands it to pvmfw (`pvmkit_abi::instance_disk`,
//! `pvmfw::instance`): on any header and record sector, reading and opening return,
//! never panic; nothing opens that pvmfw did not seal (a forged sector does not pass
//! AES-GCM), and what it sealed opens to the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pvmfw::instance::{judge, open, seal, Keys, Record};
use pvmkit_abi::instance_disk::{read_header, read_record, SECTOR_SIZE};
use pvmkit_dice::Mode;

fuzz_target!(|data: &[u8]| {
    let mut header = [0u8; SECTOR_SIZE];
    let mut record = [0u8; SECTOR_SIZE];
    let (h, r) = data.split_at(data.len().min(SECTOR_SIZE));
    header[..h.len()].copy_from_slice(h);
    record[..r.len().min(SECTOR_SIZE)].copy_from_slice(&r[..r.len().min(SECTOR_SIZE)]);
    let disk_id = read_header(&header).unwrap_or([0; 32]);
    let _ = read_record(&record);
    let keys = Keys::derive(&[0x5e; 32], &disk_id);
    let opened = open(&record, &keys, &disk_id);
    // Only an all-zero sector (no record) opens without a tag made with the key.
    if let Ok(Some(r)) = &opened {
        assert_eq!(seal(r, &keys, &disk_id), record, "an opened record is one pvmfw sealed");
    }
    let measured = Record {
        code_hash: [1; 64],
        authority_hash: [2; 64],
        mode: Mode::Normal,
        salt: [3; 64],
        rollback_index: data.len() as u64,
    };
    let sealed = seal(&measured, &keys, &disk_id);
    assert_eq!(open(&sealed, &keys, &disk_id), Ok(Some(measured.clone())));
    let _ = judge(opened.ok().flatten(), measured);
});
