//! What the bundle asks of the VM, checked with the code hyp uses (`pvmkit_abi::bundle`): its
//! RAM, what to load where, where the vCPU starts and where its DT is.

use pvmkit_abi::bundle::{Bundle, EntryKind};
use pvmkit_abi::memory_map::Region;

/// The VM a bundle describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan<'a> {
    /// Guest RAM (identity mapped, as under hyp).
    pub ram: Region,
    /// What goes where: `(ipa, bytes)`; the rest of RAM starts zero.
    pub loads: Vec<(u64, &'a [u8])>,
    /// Where the vCPU starts.
    pub entry: u64,
    /// The DT's IPA, for x0.
    pub dt: u64,
    /// The virtio-mmio transports the VM is given (bit `i`: QEMU's slot `i`).
    pub virtio_slots: u32,
    /// The vCPUs (vCPU 0 starts at `entry`, the others powered off).
    pub vcpus: u32,
}

/// Reads a bundle.
pub fn plan(bundle: &[u8]) -> Result<Plan<'_>, String> {
    let bundle = Bundle::parse(bundle).map_err(|e| format!("bad bundle: {e}"))?;
    let layout = bundle.layout().map_err(|e| format!("bad bundle layout: {e}"))?;
    let loads = bundle.entries().filter(|e| e.kind != EntryKind::VmConfig).map(|e| (e.load_ipa, e.data)).collect();
    Ok(Plan {
        ram: layout.ram,
        loads,
        entry: layout.entry_ipa,
        dt: layout.dt.start,
        virtio_slots: bundle.config().virtio_slots,
        vcpus: bundle.config().vcpus,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pvmkit_abi::bundle::{encode, encoded_len, EntrySpec, VmConfig};

    #[test]
    fn a_bundle_becomes_a_plan_and_a_bad_one_an_error() {
        let config =
            VmConfig { ram_base: 0x8000_0000, ram_size: 16 << 20, entry_ipa: 0x8020_0000, virtio_slots: 4, vcpus: 2 }
                .to_bytes();
        let entries = [
            EntrySpec { kind: EntryKind::VmConfig, load_ipa: 0, mem_size: 32, data: &config },
            EntrySpec { kind: EntryKind::Payload, load_ipa: 0x8020_0000, mem_size: 0x1000, data: &[1, 2, 3, 4] },
            EntrySpec { kind: EntryKind::GuestDt, load_ipa: 0x8000_0000, mem_size: 0x1000, data: &[5; 8] },
        ];
        let mut bytes = vec![0; encoded_len(&entries)];
        encode(&entries, &mut bytes).unwrap();
        let p = plan(&bytes).unwrap();
        assert_eq!(p.ram, Region { start: 0x8000_0000, end: 0x8100_0000 });
        assert_eq!(p.loads, vec![(0x8020_0000, &[1u8, 2, 3, 4][..]), (0x8000_0000, &[5u8; 8][..])]);
        assert_eq!((p.entry, p.dt, p.virtio_slots, p.vcpus), (0x8020_0000, 0x8000_0000, 4, 2));
        assert!(plan(&bytes[..40]).unwrap_err().starts_with("bad bundle"));
    }
}
