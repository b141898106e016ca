//! The guest's device tree, written by `pvmkit` as the host VMM would: memory, the
//! console and its clock, `/psci` with the HVC conduit, the GICv3 and the timer, the
//! virtio transports with their interrupts and the `restricted-dma-pool` their DMA must
//! use, the command line, and `/avf/untrusted` (the instance id, a wish to defer
//! rollback protection) as AVF's host writes it.

use pvmkit_abi::dt;
use pvmkit_abi::memory_map::{
    virtio_mmio_slot, Region, BOUNCE_POOL_BASE, BOUNCE_POOL_SIZE, VIRTIO_MMIO_SLOTS, VIRTIO_MMIO_STRIDE,
};
use pvmkit_dt::write;
use vm_fdt::FdtWriter;

/// QEMU `virt`'s PL011, which hyp exposes to the guest at the same address.
pub const PL011_BASE: u64 = 0x0900_0000;
/// Size of the PL011's register window.
pub const PL011_SIZE: u64 = 0x1000;

/// What goes into the guest's device tree.
#[derive(Clone, Debug)]
pub struct GuestDtConfig<'a> {
    /// Guest RAM base.
    pub ram_base: u64,
    /// Guest RAM size.
    pub ram_size: u64,
    /// `/chosen/bootargs`.
    pub bootargs: &'a str,
    /// The virtio-mmio transports the guest is given (bit `i`: QEMU's transport `i`).
    pub virtio_slots: u32,
    /// The vCPUs (`/cpus/cpu@i`, MPIDR `i`).
    pub cpus: u32,
    /// Where the signed payload is, for pvmfw (`/config` `kernel-address`, `kernel-size`).
    pub signed_payload: Option<(u64, u64)>,
    /// Where the ramdisk is (`/chosen` `linux,initrd-start`, `linux,initrd-end`).
    pub ramdisk: Option<Region>,
    /// Whether each virtio transport's DMA is bound to the `restricted-dma-pool` (off
    /// only for experiments: a Linux guest then bounces through its default swiotlb).
    pub restricted_pool: bool,
    /// What the host says of the VM in `/avf/untrusted`.
    pub avf: AvfUntrusted,
}

/// `/avf/untrusted`: what AVF's host says of the VM, which pvmfw may use but not trust.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AvfUntrusted {
    /// `instance-id`: which VM instance this is (pvmfw derives the instance hash from it).
    pub instance_id: Option<Vec<u8>>,
    /// `defer-rollback-protection`: leave rollback protection to a payload that can.
    pub defer_rollback_protection: bool,
}

/// Writes the device tree blob.
pub fn write(config: &GuestDtConfig<'_>) -> Result<Vec<u8>, String> {
    build(config).map_err(|e| format!("writing the guest device tree: {e}"))
}

fn build(config: &GuestDtConfig<'_>) -> Result<Vec<u8>, vm_fdt::Error> {
    let mut w = FdtWriter::new()?;
    let root = write::begin_root(&mut w, "pvmkit guest")?;
    let chosen =
        write::Chosen { bootargs: config.bootargs, console: PL011_BASE, initrd: config.ramdisk, ..Default::default() };
    write::chosen(&mut w, &chosen)?;
    let pool = Region { start: BOUNCE_POOL_BASE, end: BOUNCE_POOL_BASE + BOUNCE_POOL_SIZE };
    let reserved = [write::Reserved {
        name: "restricted_dma_reserved",
        compatible: dt::BOUNCE_POOL,
        region: pool,
        no_map: false,
        phandle: Some(dt::BOUNCE_POOL_PHANDLE),
    }];
    write::reserved_memory(&mut w, &reserved)?;

    if let Some((address, size)) = config.signed_payload {
        let node = w.begin_node(dt::CONFIG)?;
        w.property_u64(dt::KERNEL_ADDRESS, address)?;
        w.property_u64(dt::KERNEL_SIZE, size)?;
        w.end_node(node)?;
    }

    if config.avf != AvfUntrusted::default() {
        let avf = w.begin_node("avf")?;
        let untrusted = w.begin_node(dt::AVF_UNTRUSTED)?;
        if let Some(id) = &config.avf.instance_id {
            w.property(dt::INSTANCE_ID, id)?;
        }
        if config.avf.defer_rollback_protection {
            w.property_null(dt::DEFER_ROLLBACK_PROTECTION)?;
        }
        w.end_node(untrusted)?;
        w.end_node(avf)?;
    }

    write::memory(&mut w, Region { start: config.ram_base, end: config.ram_base + config.ram_size })?;
    write::cpus(&mut w, Some("arm,cortex-a72"), config.cpus)?;
    write::psci(&mut w, &[dt::PSCI_1_0, dt::PSCI_0_2])?;
    write::gic_v3(&mut w, config.cpus)?;
    write::timer(&mut w)?;
    // What a full OS needs too: interrupts, and every transport's DMA bound to the pool.
    let wiring = write::Wiring { interrupts: true, dma_pool: config.restricted_pool };
    write::pl011(&mut w, Region { start: PL011_BASE, end: PL011_BASE + PL011_SIZE }, wiring)?;
    for slot in (0..VIRTIO_MMIO_SLOTS).filter(|i| config.virtio_slots & (1 << i) != 0) {
        let base = virtio_mmio_slot(slot);
        write::virtio_mmio(&mut w, Region { start: base, end: base + VIRTIO_MMIO_STRIDE }, wiring)?;
    }

    w.end_node(root)?;
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_valid_tree_with_every_part() {
        let blob = write(&GuestDtConfig {
            ram_base: 0x8000_0000,
            ram_size: 256 << 20,
            bootargs: "pvmkit.mode=bare",
            virtio_slots: 1 << 31,
            cpus: 1,
            signed_payload: Some((0x8800_0000, 0x1234)),
            ramdisk: Some(Region { start: 0x8900_0000, end: 0x8900_1000 }),
            restricted_pool: true,
            avf: AvfUntrusted { instance_id: Some(b"vm-one".to_vec()), defer_rollback_protection: true },
        })
        .unwrap();
        assert_eq!(&blob[..4], &[0xd0, 0x0d, 0xfe, 0xed]);
        let text = String::from_utf8_lossy(&blob);
        for needle in [
            "pvmkit.mode=bare",
            "memory@80000000",
            "arm,psci-1.0",
            "hvc",
            "arm,pl011",
            "/pl011@9000000",
            "virtio_mmio@a003e00",
            "kernel-address",
            "linux,initrd-start",
            "instance-id",
            "vm-one",
            "defer-rollback-protection",
            "restricted-dma-pool",
            "virtio,mmio",
            "arm,armv8-timer",
            "memory-region",
            "clock-names",
        ] {
            assert!(text.contains(needle), "missing {needle}");
        }
    }
}
