//! The device tree pvmfw hands the payload, built fresh from the facts it checked:
//! memory, the console, `/psci` with the HVC conduit, one CPU, the virtio transports,
//! the command line, and `/reserved-memory` with the payload's secret.

use alloc::format;
use alloc::vec::Vec;

use abi::memory_map::Region;
use abi::memory_map::{BOUNCE_POOL_COMPATIBLE, GICD_BASE, GICD_SIZE, GICR_BASE, GICR_SIZE};
use abi::pvmfw::{SECRET_COMPATIBLE, SECRET_SIZE};
use vm_fdt::{Error, FdtWriter};

use crate::host_dt::HostConfig;
use abi::dt;

/// Writes the new tree with the command line `bootargs` (what [`crate::bootargs`] lets
/// pass); `secret` is where the payload's secret lies.
pub fn build(config: &HostConfig<'_>, bootargs: &str, secret: u64) -> Result<Vec<u8>, Error> {
    let mut w = FdtWriter::new()?;
    let root = w.begin_node("")?;
    w.property_u32(dt::ADDRESS_CELLS, 2)?;
    w.property_u32(dt::SIZE_CELLS, 2)?;
    w.property_string("compatible", "linux,dummy-virt")?;
    w.property_string("model", "pvmkit protected VM")?;

    let chosen = w.begin_node("chosen")?;
    w.property_string(dt::BOOTARGS, bootargs)?;
    w.property_string(dt::STDOUT_PATH, &format!("/pl011@{:x}", config.console.start))?;
    w.property_null(dt::VERIFIED_BOOT)?;
    w.end_node(chosen)?;

    let memory = w.begin_node(&format!("memory@{:x}", config.memory.start))?;
    w.property_string("device_type", "memory")?;
    w.property_array_u64("reg", &[config.memory.start, config.memory.size()])?;
    w.end_node(memory)?;

    let reserved = w.begin_node("reserved-memory")?;
    w.property_u32(dt::ADDRESS_CELLS, 2)?;
    w.property_u32(dt::SIZE_CELLS, 2)?;
    w.property_null("ranges")?;
    let node = w.begin_node(&format!("pvmkit-secret@{secret:x}"))?;
    w.property_string("compatible", SECRET_COMPATIBLE)?;
    w.property_array_u64("reg", &[secret, SECRET_SIZE as u64])?;
    w.property_null("no-map")?;
    w.end_node(node)?;
    if let Some(pool) = config.bounce_pool {
        let node = w.begin_node(&format!("restricted_dma_reserved@{:x}", pool.start))?;
        w.property_string("compatible", BOUNCE_POOL_COMPATIBLE)?;
        w.property_array_u64("reg", &[pool.start, pool.size()])?;
        w.end_node(node)?;
    }
    w.end_node(reserved)?;

    let cpus = w.begin_node("cpus")?;
    w.property_u32(dt::ADDRESS_CELLS, 1)?;
    w.property_u32(dt::SIZE_CELLS, 0)?;
    let cpu = w.begin_node("cpu@0")?;
    w.property_string("device_type", "cpu")?;
    w.property_u32("reg", 0)?;
    w.property_string("enable-method", "psci")?;
    w.end_node(cpu)?;
    w.end_node(cpus)?;

    let psci = w.begin_node("psci")?;
    w.property_string("compatible", dt::PSCI_1_0)?;
    w.property_string("method", "hvc")?;
    w.end_node(psci)?;

    if config.gic {
        let gic = w.begin_node(&format!("intc@{GICD_BASE:x}"))?;
        w.property_string("compatible", dt::GIC_V3)?;
        w.property_u32("#interrupt-cells", 3)?;
        w.property_null(dt::INTERRUPT_CONTROLLER)?;
        w.property_array_u64("reg", &[GICD_BASE, GICD_SIZE, GICR_BASE, GICR_SIZE])?;
        w.end_node(gic)?;
    }

    let uart = w.begin_node(&format!("pl011@{:x}", config.console.start))?;
    w.property_string_list("compatible", alloc::vec![dt::PL011.into(), dt::PRIMECELL.into()])?;
    w.property_array_u64("reg", &[config.console.start, config.console.size()])?;
    w.end_node(uart)?;

    for Region { start, end } in &config.virtio {
        let node = w.begin_node(&format!("virtio_mmio@{start:x}"))?;
        w.property_string("compatible", dt::VIRTIO_MMIO)?;
        w.property_array_u64("reg", &[*start, end - start])?;
        w.property_null(dt::DMA_COHERENT)?;
        w.end_node(node)?;
    }
    w.end_node(root)?;
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host_dt::{check, tests as host};

    #[test]
    fn the_new_tree_passes_pvmfws_own_checks_and_carries_the_secret() {
        let blob = host::build(&host::Spec::default());
        let config = check(&blob, &host::limits()).unwrap();
        let new = build(&config, config.bootargs, 0x801f_f000).unwrap();
        let fdt = dtoolkit::fdt::Fdt::new(&new).unwrap();
        let text = alloc::format!("{fdt}");
        for needle in [
            "pvmkit-secret@801ff000",
            SECRET_COMPATIBLE,
            "no-map",
            "virtio_mmio@a003e00",
            "pvmkit.mode=protected",
            "method = \"hvc\"",
            "restricted_dma_reserved@8fc00000",
            "intc@8000000",
            "arm,gic-v3",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        // Nothing of the host's blob is passed through: /config is gone.
        assert!(!text.contains("kernel-address"), "{text}");
    }
}
