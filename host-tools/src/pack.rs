//! The bundle `pvmkit` hands hyp (and the VMM): VM config, pvmfw with its configuration
//! data, the kernel, the ramdisk and the guest device tree, laid out by pvmkit's memory
//! map and checked with the same code hyp uses.

use pvmkit_abi::bundle::{self, Bundle, EntryKind, EntrySpec, VmConfig};
use pvmkit_abi::memory_map::{GRANULE, GUEST_DT_BASE, GUEST_DT_MAX_SIZE, GUEST_RAM_BASE, GUEST_RAM_SIZE, RAMDISK_BASE};

use pvmkit_abi::memory_map::Region;

use crate::devices::virtio_slots;
use crate::firmware::{self, Firmware, FlatImage};
use crate::guest_dt::{self, GuestDtConfig};
use crate::payload::Payload;
use crate::run_config::RunConfig;
use crate::{files, signing, Workspace};

/// Packs a payload, a ramdisk (at [`RAMDISK_BASE`], if any) and a guest DT into a bundle
/// for a VM with pvmkit's default RAM and the virtio-mmio transports in `virtio_slots`
/// (bit `i`: QEMU's transport `i`) and `vcpus` vCPUs, entered at the payload's entry.
pub fn pack(
    payload: &FlatImage,
    ramdisk: Option<&[u8]>,
    guest_dt: &[u8],
    virtio_slots: u32,
    vcpus: u32,
) -> Result<Vec<u8>, String> {
    if guest_dt.len() as u64 > GUEST_DT_MAX_SIZE {
        return Err(format!("guest device tree is {} bytes, more than {GUEST_DT_MAX_SIZE}", guest_dt.len()));
    }
    let config =
        VmConfig { ram_base: GUEST_RAM_BASE, ram_size: GUEST_RAM_SIZE, entry_ipa: payload.entry, virtio_slots, vcpus }
            .to_bytes();
    let mut entries = vec![
        EntrySpec { kind: EntryKind::VmConfig, load_ipa: 0, mem_size: config.len() as u64, data: &config },
        EntrySpec {
            kind: EntryKind::Payload,
            load_ipa: payload.load_address,
            mem_size: payload.mem_size,
            data: &payload.bytes,
        },
        EntrySpec { kind: EntryKind::GuestDt, load_ipa: GUEST_DT_BASE, mem_size: GUEST_DT_MAX_SIZE, data: guest_dt },
    ];
    entries.extend(ramdisk.map(ramdisk_entry));
    let mut out = vec![0u8; bundle::encoded_len(&entries)];
    bundle::encode(&entries, &mut out).ok_or("bundle encoding failed")?;
    // Refuse here, with the same checks, what hyp would refuse.
    let parsed = Bundle::parse(&out).map_err(|e| format!("bundle: {e}"))?;
    parsed.layout().map_err(|e| format!("payload does not fit the guest's memory map: {e}"))?;
    Ok(out)
}

/// `n` rounded up to whole pages (at least one).
fn pages(n: u64) -> u64 {
    n.div_ceil(GRANULE).max(1) * GRANULE
}

/// The ramdisk's entry: at [`RAMDISK_BASE`], where the DT's `/chosen` says.
fn ramdisk_entry(data: &[u8]) -> EntrySpec<'_> {
    EntrySpec { kind: EntryKind::Ramdisk, load_ipa: RAMDISK_BASE, mem_size: pages(data.len() as u64), data }
}

/// A VM that boots through pvmfw, as AVF's VMM loads one.
#[derive(Clone, Copy, Debug)]
pub struct PvmfwVm<'a> {
    /// pvmfw's image with its configuration data appended
    /// ([`crate::firmware::pvmfw_image`]).
    pub pvmfw: &'a [u8],
    /// The signed kernel (Image, vbmeta, footer).
    pub kernel: &'a [u8],
    /// Where it goes (the host DT's `kernel-address`).
    pub kernel_address: u64,
    /// What its Image header says it takes (`image_size`).
    pub kernel_footprint: u64,
    /// The ramdisk, loaded at [`RAMDISK_BASE`].
    pub ramdisk: Option<&'a [u8]>,
    /// The host DT.
    pub host_dt: &'a [u8],
    /// The virtio-mmio transports the VM is given.
    pub virtio_slots: u32,
    /// The vCPUs the VM is given.
    pub vcpus: u32,
}

/// Packs a VM that boots through pvmfw: pvmfw and its configuration data in its
/// region (entered first), the signed kernel and the ramdisk where the host DT says,
/// and the host DT.
pub fn pack_with_pvmfw(vm: &PvmfwVm<'_>) -> Result<Vec<u8>, String> {
    use pvmkit_abi::pvmfw::{PVMFW_BASE, PVMFW_IMAGE_MAX, PVMFW_SIZE};
    if vm.pvmfw.len() as u64 > PVMFW_IMAGE_MAX {
        return Err(format!("pvmfw's image is {} bytes, more than {PVMFW_IMAGE_MAX}", vm.pvmfw.len()));
    }
    if vm.host_dt.len() as u64 > GUEST_DT_MAX_SIZE {
        return Err(format!("host device tree is {} bytes, more than {GUEST_DT_MAX_SIZE}", vm.host_dt.len()));
    }
    let config = VmConfig {
        ram_base: PVMFW_BASE,
        ram_size: PVMFW_SIZE + GUEST_RAM_SIZE,
        entry_ipa: PVMFW_BASE,
        virtio_slots: vm.virtio_slots,
        vcpus: vm.vcpus,
    }
    .to_bytes();
    let kernel_size = pages(vm.kernel_footprint.max(vm.kernel.len() as u64));
    let mut entries = vec![
        EntrySpec { kind: EntryKind::VmConfig, load_ipa: 0, mem_size: config.len() as u64, data: &config },
        EntrySpec { kind: EntryKind::Pvmfw, load_ipa: PVMFW_BASE, mem_size: PVMFW_SIZE, data: vm.pvmfw },
        EntrySpec { kind: EntryKind::Payload, load_ipa: vm.kernel_address, mem_size: kernel_size, data: vm.kernel },
        EntrySpec { kind: EntryKind::GuestDt, load_ipa: GUEST_DT_BASE, mem_size: GUEST_DT_MAX_SIZE, data: vm.host_dt },
    ];
    entries.extend(vm.ramdisk.map(ramdisk_entry));
    let mut out = vec![0u8; bundle::encoded_len(&entries)];
    bundle::encode(&entries, &mut out).ok_or("bundle encoding failed")?;
    let parsed = Bundle::parse(&out).map_err(|e| format!("bundle: {e}"))?;
    parsed.layout().map_err(|e| format!("the kernel or ramdisk does not fit the guest's memory map: {e}"))?;
    Ok(out)
}

/// Packs the bundle for a run under hyp (or the VMM): through pvmfw unless
/// `--no-pvmfw` (pvmfw with its trusted key and configuration data, the signed kernel
/// and the ramdisk where the host DT says), and the host DT pvmkit writes (or the one
/// given with `--host-dt`).
pub fn make_bundle(ws: &Workspace, fw: &Firmware, config: &RunConfig) -> Result<Vec<u8>, String> {
    let payload = || Payload::read(&config.payload);
    let ram = crate::payload::GUEST_RAM;
    let ramdisk = config.initrd.as_deref().map(files::read).transpose()?;
    let ramdisk_region = ramdisk.as_ref().map(|r| Region { start: RAMDISK_BASE, end: RAMDISK_BASE + r.len() as u64 });
    if !config.pvmfw {
        let dt = host_dt(config, None, ramdisk_region)?;
        let placed = payload()?.placed(ram).map_err(|e| format!("payload {}: {e}", config.payload.display()))?;
        return pack(&placed, ramdisk.as_deref(), &dt, virtio_slots(false), config.cpus);
    }
    let dev_key = signing::dev_key(ws)?;
    let (kernel, kernel_address, kernel_footprint) = match &config.signed_payload {
        Some(path) => {
            let signed = files::read(path)?;
            let (at, footprint) = crate::payload::signed_placement(&signed, ram);
            (signed, at, footprint)
        }
        None => {
            let (_, kernel) = crate::payload::read_kernel(&config.payload)?;
            let request = signing::Request {
                ramdisks: ramdisk.iter().map(|r| (config.initrd_name.clone(), r.clone())).collect(),
                reproducible: true,
                ..signing::Request::default()
            };
            (
                signing::sign(&kernel.bytes, &signing::load_key(&dev_key)?, &request)?,
                kernel.load_address,
                kernel.mem_size,
            )
        }
    };
    let trusted = match &config.trusted_key {
        Some(path) => signing::load_public(path)?,
        None => std::fs::read(signing::public_path(&dev_key)).map_err(|e| format!("the development key: {e}"))?,
    };
    let pvmfw = firmware::pvmfw_image(&files::read(&fw.pvmfw_elf)?, &trusted, &config.config_files.build()?)?;
    let dt = host_dt(config, Some((kernel_address, kernel.len() as u64)), ramdisk_region)?;
    pack_with_pvmfw(&PvmfwVm {
        pvmfw: &pvmfw,
        kernel: &kernel,
        kernel_address,
        kernel_footprint,
        ramdisk: ramdisk.as_deref(),
        host_dt: &dt,
        virtio_slots: virtio_slots(true),
        vcpus: config.cpus,
    })
}

fn host_dt(config: &RunConfig, kernel: Option<(u64, u64)>, ramdisk: Option<Region>) -> Result<Vec<u8>, String> {
    if let Some(path) = &config.host_dt {
        return files::read(path);
    }
    guest_dt::write(&GuestDtConfig {
        ram_base: GUEST_RAM_BASE,
        ram_size: GUEST_RAM_SIZE,
        bootargs: &config.guest_cmdline(),
        virtio_slots: virtio_slots(config.pvmfw),
        cpus: config.cpus,
        signed_payload: kernel,
        ramdisk,
        restricted_pool: config.restricted_pool,
        avf: config.avf.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(at: u64, mem_size: u64) -> FlatImage {
        FlatImage { load_address: at, bytes: vec![0x14; 64], mem_size, entry: at }
    }

    #[test]
    fn packs_a_payload_hyp_accepts() {
        let bytes = pack(&payload(0x8020_0000, 0x10_0000), Some(&[7; 10]), &[0xd0; 100], 0, 3).unwrap();
        let b = Bundle::parse(&bytes).unwrap();
        assert_eq!(b.entry(EntryKind::Payload).unwrap().load_ipa, 0x8020_0000);
        assert_eq!((b.config().entry_ipa, b.config().vcpus), (0x8020_0000, 3));
        assert_eq!(b.entry(EntryKind::GuestDt).unwrap().data.len(), 100);
        assert_eq!(b.entry(EntryKind::Ramdisk).unwrap().load_ipa, RAMDISK_BASE);
    }

    #[test]
    fn a_pvmfw_vm_loads_kernel_and_ramdisk_where_the_dt_says() {
        let vm = PvmfwVm {
            pvmfw: &[0x14; 8192],
            kernel: &[1; 0x5000],
            kernel_address: 0x8020_0000,
            kernel_footprint: 0x10_0000,
            ramdisk: Some(&[2; 100]),
            host_dt: &[0xd0; 64],
            virtio_slots: 0,
            vcpus: 1,
        };
        let bytes = pack_with_pvmfw(&vm).unwrap();
        let b = Bundle::parse(&bytes).unwrap();
        let kernel = b.entry(EntryKind::Payload).unwrap();
        assert_eq!((kernel.load_ipa, kernel.mem_size, kernel.data.len()), (0x8020_0000, 0x10_0000, 0x5000));
        let ramdisk = b.entry(EntryKind::Ramdisk).unwrap();
        assert_eq!((ramdisk.load_ipa, ramdisk.mem_size), (RAMDISK_BASE, 4096));
        assert_eq!(b.config().entry_ipa, pvmkit_abi::pvmfw::PVMFW_BASE);
        assert_eq!(b.entry(EntryKind::Pvmfw).unwrap().mem_size, pvmkit_abi::pvmfw::PVMFW_SIZE);
        // A kernel whose footprint runs into the ramdisk is refused here, as hyp would.
        let err = pack_with_pvmfw(&PvmfwVm { kernel_footprint: 128 << 20, ..vm }).unwrap_err();
        assert!(err.contains("does not fit"), "{err}");
        let err = pack_with_pvmfw(&PvmfwVm { pvmfw: &[0; 3 << 20], ..vm }).unwrap_err();
        assert!(err.contains("more than"), "{err}");
    }

    #[test]
    fn refuses_payloads_outside_the_map() {
        let err = pack(&payload(0x4008_0000, 0x1000), None, &[0; 8], 0, 1).unwrap_err();
        assert!(err.contains("payload does not fit"), "{err}");
        let err = pack(&payload(0x8000_0000, 0x1000), None, &[0; 8], 0, 1).unwrap_err();
        assert!(err.contains("overlaps"), "{err}");
        let err = pack(&payload(0x8020_0000, 1 << 30), None, &[0; 8], 0, 1).unwrap_err();
        assert!(err.contains("does not fit inside guest RAM"), "{err}");
    }
}
