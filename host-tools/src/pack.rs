//! The bundle `pvmkit` hands hyp: VM config, payload and guest device tree, laid out by
//! pvmkit's memory map and checked with the same code hyp uses.

use abi::bundle::{self, Bundle, EntryKind, EntrySpec, VmConfig};
use abi::memory_map::{GUEST_DT_BASE, GUEST_DT_MAX_SIZE, GUEST_RAM_BASE, GUEST_RAM_SIZE};

use crate::firmware::FlatImage;

/// Packs a payload and a guest DT into a bundle for a VM with pvmkit's default RAM and
/// the virtio-mmio transports in `virtio_slots` (bit `i`: QEMU's transport `i`).
pub fn pack(payload: &FlatImage, guest_dt: &[u8], virtio_slots: u32) -> Result<Vec<u8>, String> {
    if guest_dt.len() as u64 > GUEST_DT_MAX_SIZE {
        return Err(format!("guest device tree is {} bytes, more than {GUEST_DT_MAX_SIZE}", guest_dt.len()));
    }
    let config =
        VmConfig { ram_base: GUEST_RAM_BASE, ram_size: GUEST_RAM_SIZE, entry_ipa: payload.entry, virtio_slots }
            .to_bytes();
    let entries = [
        EntrySpec { kind: EntryKind::VmConfig, load_ipa: 0, mem_size: config.len() as u64, data: &config },
        EntrySpec {
            kind: EntryKind::Payload,
            load_ipa: payload.load_address,
            mem_size: payload.mem_size,
            data: &payload.bytes,
        },
        EntrySpec { kind: EntryKind::GuestDt, load_ipa: GUEST_DT_BASE, mem_size: GUEST_DT_MAX_SIZE, data: guest_dt },
    ];
    let mut out = vec![0u8; bundle::encoded_len(&entries)];
    bundle::encode(&entries, &mut out).ok_or("bundle encoding failed")?;
    // Refuse here, with the same checks, what hyp would refuse.
    let parsed = Bundle::parse(&out).map_err(|e| format!("bundle: {e}"))?;
    parsed.layout().map_err(|e| format!("payload does not fit the guest's memory map: {e}"))?;
    Ok(out)
}

/// Packs a VM that boots through pvmfw: pvmfw in its region (entered first), the per-VM
/// secret in pvmfw's last page, the signed payload staged where the host DT's
/// `/config` says, and the host DT.
pub fn pack_with_pvmfw(
    pvmfw: &FlatImage,
    vm_secret: &[u8; 32],
    signed: &[u8],
    host_dt: &[u8],
    virtio_slots: u32,
) -> Result<Vec<u8>, String> {
    use abi::pvmfw::{PVMFW_BASE, PVMFW_SIZE, SIGNED_PAYLOAD_STAGING, VM_SECRET_IPA};
    if pvmfw.load_address != PVMFW_BASE || pvmfw.mem_size > PVMFW_SIZE - 4096 {
        return Err(format!("pvmfw must be linked at {PVMFW_BASE:#x} and fit {:#x} bytes", PVMFW_SIZE - 4096));
    }
    let config =
        VmConfig { ram_base: PVMFW_BASE, ram_size: PVMFW_SIZE + GUEST_RAM_SIZE, entry_ipa: PVMFW_BASE, virtio_slots }
            .to_bytes();
    let staged = (signed.len() as u64).div_ceil(4096).max(1) * 4096;
    let entries = [
        EntrySpec { kind: EntryKind::VmConfig, load_ipa: 0, mem_size: config.len() as u64, data: &config },
        EntrySpec { kind: EntryKind::Pvmfw, load_ipa: PVMFW_BASE, mem_size: pvmfw.mem_size, data: &pvmfw.bytes },
        EntrySpec { kind: EntryKind::VmSecret, load_ipa: VM_SECRET_IPA, mem_size: 4096, data: vm_secret },
        EntrySpec { kind: EntryKind::Payload, load_ipa: SIGNED_PAYLOAD_STAGING, mem_size: staged, data: signed },
        EntrySpec { kind: EntryKind::GuestDt, load_ipa: GUEST_DT_BASE, mem_size: GUEST_DT_MAX_SIZE, data: host_dt },
    ];
    if host_dt.len() as u64 > GUEST_DT_MAX_SIZE {
        return Err(format!("host device tree is {} bytes, more than {GUEST_DT_MAX_SIZE}", host_dt.len()));
    }
    let mut out = vec![0u8; bundle::encoded_len(&entries)];
    bundle::encode(&entries, &mut out).ok_or("bundle encoding failed")?;
    let parsed = Bundle::parse(&out).map_err(|e| format!("bundle: {e}"))?;
    parsed.layout().map_err(|e| format!("signed payload does not fit the staging area: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(at: u64, mem_size: u64) -> FlatImage {
        FlatImage { load_address: at, bytes: vec![0x14; 64], mem_size, entry: at }
    }

    #[test]
    fn packs_a_payload_hyp_accepts() {
        let bytes = pack(&payload(0x8020_0000, 0x10_0000), &[0xd0; 100], 0).unwrap();
        let b = Bundle::parse(&bytes).unwrap();
        assert_eq!(b.entry(EntryKind::Payload).unwrap().load_ipa, 0x8020_0000);
        assert_eq!(b.config().entry_ipa, 0x8020_0000);
        assert_eq!(b.entry(EntryKind::GuestDt).unwrap().data.len(), 100);
    }

    #[test]
    fn refuses_payloads_outside_the_map() {
        let err = pack(&payload(0x4008_0000, 0x1000), &[0; 8], 0).unwrap_err();
        assert!(err.contains("payload does not fit"), "{err}");
        let err = pack(&payload(0x8000_0000, 0x1000), &[0; 8], 0).unwrap_err();
        assert!(err.contains("overlaps"), "{err}");
        let err = pack(&payload(0x8020_0000, 1 << 30), &[0; 8], 0).unwrap_err();
        assert!(err.contains("does not fit inside guest RAM"), "{err}");
    }
}
