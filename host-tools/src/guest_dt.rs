//! The guest's device tree, written by `pvmkit` as the host VMM would: memory, the
//! console, `/psci` with the HVC conduit, and the command line.

use abi::dt;
use abi::memory_map::{
    virtio_mmio_slot, BOUNCE_POOL_BASE, BOUNCE_POOL_COMPATIBLE, BOUNCE_POOL_SIZE, GICD_BASE, GICD_SIZE, GICR_BASE,
    GICR_SIZE, VIRTIO_MMIO_SLOTS, VIRTIO_MMIO_STRIDE,
};
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
    /// Where the signed payload is, for pvmfw (`/config` `kernel-address`, `kernel-size`).
    pub signed_payload: Option<(u64, u64)>,
}

/// Writes the device tree blob.
pub fn write(config: &GuestDtConfig<'_>) -> Result<Vec<u8>, String> {
    build(config).map_err(|e| format!("writing the guest device tree: {e}"))
}

fn build(config: &GuestDtConfig<'_>) -> Result<Vec<u8>, vm_fdt::Error> {
    let mut w = FdtWriter::new()?;
    let root = w.begin_node("")?;
    w.property_u32(dt::ADDRESS_CELLS, 2)?;
    w.property_u32(dt::SIZE_CELLS, 2)?;
    w.property_string("compatible", "linux,dummy-virt")?;
    w.property_string("model", "pvmkit guest")?;

    let chosen = w.begin_node("chosen")?;
    w.property_string(dt::BOOTARGS, config.bootargs)?;
    w.property_string(dt::STDOUT_PATH, &format!("/pl011@{PL011_BASE:x}"))?;
    w.end_node(chosen)?;

    // The bounce pool, as crosvm reserves one for pVMs: not `no-map`, guest RAM the
    // guest shares with the host for its device buffers.
    let reserved = w.begin_node("reserved-memory")?;
    w.property_u32(dt::ADDRESS_CELLS, 2)?;
    w.property_u32(dt::SIZE_CELLS, 2)?;
    w.property_null("ranges")?;
    let pool = w.begin_node(&format!("restricted_dma_reserved@{BOUNCE_POOL_BASE:x}"))?;
    w.property_string("compatible", BOUNCE_POOL_COMPATIBLE)?;
    w.property_array_u64("reg", &[BOUNCE_POOL_BASE, BOUNCE_POOL_SIZE])?;
    w.end_node(pool)?;
    w.end_node(reserved)?;

    if let Some((address, size)) = config.signed_payload {
        let node = w.begin_node("config")?;
        w.property_u64(dt::KERNEL_ADDRESS, address)?;
        w.property_u64(dt::KERNEL_SIZE, size)?;
        w.end_node(node)?;
    }

    let memory = w.begin_node(&format!("memory@{:x}", config.ram_base))?;
    w.property_string("device_type", "memory")?;
    w.property_array_u64("reg", &[config.ram_base, config.ram_size])?;
    w.end_node(memory)?;

    let cpus = w.begin_node("cpus")?;
    w.property_u32(dt::ADDRESS_CELLS, 1)?;
    w.property_u32(dt::SIZE_CELLS, 0)?;
    let cpu = w.begin_node("cpu@0")?;
    w.property_string("device_type", "cpu")?;
    w.property_string("compatible", "arm,cortex-a72")?;
    w.property_u32("reg", 0)?;
    w.property_string("enable-method", "psci")?;
    w.end_node(cpu)?;
    w.end_node(cpus)?;

    let psci = w.begin_node("psci")?;
    w.property_string_list("compatible", vec![dt::PSCI_1_0.into(), dt::PSCI_0_2.into()])?;
    w.property_string("method", "hvc")?;
    w.end_node(psci)?;

    // The GICv3 (the guest's timed waits use it where the hypervisor lets them: the
    // real KVM's vGIC; hyp gives none and the guest polls) and the architected timer.
    let gic = w.begin_node(&format!("intc@{GICD_BASE:x}"))?;
    w.property_string("compatible", dt::GIC_V3)?;
    w.property_u32("#interrupt-cells", 3)?;
    w.property_null(dt::INTERRUPT_CONTROLLER)?;
    w.property_array_u64("reg", &[GICD_BASE, GICD_SIZE, GICR_BASE, GICR_SIZE])?;
    w.end_node(gic)?;

    let uart = w.begin_node(&format!("pl011@{PL011_BASE:x}"))?;
    w.property_string_list("compatible", vec![dt::PL011.into(), dt::PRIMECELL.into()])?;
    w.property_array_u64("reg", &[PL011_BASE, PL011_SIZE])?;
    w.end_node(uart)?;

    for slot in (0..VIRTIO_MMIO_SLOTS).filter(|i| config.virtio_slots & (1 << i) != 0) {
        let base = virtio_mmio_slot(slot);
        let node = w.begin_node(&format!("virtio_mmio@{base:x}"))?;
        w.property_string("compatible", dt::VIRTIO_MMIO)?;
        w.property_array_u64("reg", &[base, VIRTIO_MMIO_STRIDE])?;
        w.property_null(dt::DMA_COHERENT)?;
        w.end_node(node)?;
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
            signed_payload: Some((0x8800_0000, 0x1234)),
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
            "restricted-dma-pool",
            "virtio,mmio",
        ] {
            assert!(text.contains(needle), "missing {needle}");
        }
    }
}
