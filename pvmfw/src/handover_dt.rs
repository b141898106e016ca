//! The device tree pvmfw hands the payload, built fresh from the facts it checked:
//! memory, the console and its clock, `/psci` with the HVC conduit, one CPU, the GICv3
//! and the timer, the virtio transports (their interrupts and their DMA bound to the
//! pool), the command line and the verified ramdisk, and `/reserved-memory` with the
//! bounce pool and the DICE handover page (`google,open-dice`, `no-map`).

use alloc::vec::Vec;

use pvmkit_abi::dt;
use pvmkit_abi::memory_map::Region;
use pvmkit_dt::write;
use vm_fdt::{Error, FdtWriter};

use crate::host_dt::HostConfig;

/// Writes the new tree with the command line `bootargs` (what [`crate::bootargs`] lets
/// pass); `debuggable` when the ramdisk matched `initrd_debug`; `dice`, the page holding
/// the payload's DICE handover.
pub fn build(config: &HostConfig<'_>, bootargs: &str, debuggable: bool, dice: Region) -> Result<Vec<u8>, Error> {
    let mut w = FdtWriter::new()?;
    let root = write::begin_root(&mut w, "pvmkit protected VM")?;
    let chosen = write::Chosen {
        bootargs,
        console: config.console.start,
        initrd: config.ramdisk,
        verified_boot: true,
        debuggable,
    };
    write::chosen(&mut w, &chosen)?;
    write::memory(&mut w, config.memory)?;
    let pool = config.bounce_pool.map(|region| write::Reserved {
        name: "restricted_dma_reserved",
        compatible: dt::BOUNCE_POOL,
        region,
        no_map: false,
        phandle: Some(dt::BOUNCE_POOL_PHANDLE),
    });
    let dice =
        write::Reserved { name: dt::DICE_NODE, compatible: dt::OPEN_DICE, region: dice, no_map: true, phandle: None };
    let reserved: Vec<write::Reserved<'_>> = [dice].into_iter().chain(pool).collect();
    write::reserved_memory(&mut w, &reserved)?;
    write::cpus(&mut w, None, config.cpus)?;
    write::psci(&mut w, &[dt::PSCI_1_0])?;
    if config.gic {
        write::gic_v3(&mut w, config.cpus)?;
        write::timer(&mut w)?;
    }
    // Interrupts only through a GIC pvmfw checked; DMA bound to the pool it checked.
    let wiring = write::Wiring { interrupts: config.gic, dma_pool: config.bounce_pool.is_some() };
    write::pl011(&mut w, config.console, wiring)?;
    for &transport in &config.virtio {
        write::virtio_mmio(&mut w, transport, wiring)?;
    }
    w.end_node(root)?;
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host_dt::{check, tests as host};

    #[test]
    fn the_new_tree_passes_pvmfws_own_checks_and_carries_the_ramdisk() {
        let blob = host::build(&host::Spec { ramdisk: Some((0x8900_0000, 0x8912_3000)), ..host::Spec::default() });
        let config = check(&blob, &host::limits()).unwrap();
        let page = Region { start: 0x8008_0000, end: 0x8008_1000 };
        let new = build(&config, config.bootargs, true, page).unwrap();
        let fdt = dtoolkit::fdt::Fdt::new(&new).unwrap();
        let text = alloc::format!("{fdt}");
        for needle in [
            "linux,initrd-start = <0x00 0x89000000>",
            "linux,initrd-end = <0x00 0x89123000>",
            pvmkit_abi::dt::VERIFIED_BOOT,
            pvmkit_abi::dt::DEBUGGABLE,
            "virtio_mmio@a003e00",
            "pvmkit.mode=protected",
            "method = \"hvc\"",
            "restricted_dma_reserved@8fc00000",
            "dice@80080000",
            "google,open-dice",
            "no-map",
            "intc@8000000",
            "arm,gic-v3",
            "arm,armv8-timer",
            "memory-region",
            "clock-names",
            "interrupt-parent",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        // Debuggable only when pvmfw says so.
        let plain = build(&config, config.bootargs, false, page).unwrap();
        let plain = alloc::format!("{}", dtoolkit::fdt::Fdt::new(&plain).unwrap());
        assert!(
            !plain.contains(pvmkit_abi::dt::DEBUGGABLE) && plain.contains(pvmkit_abi::dt::VERIFIED_BOOT),
            "{plain}"
        );
        // Nothing of the host's blob is passed through: /config is gone.
        assert!(!text.contains("kernel-address"), "{text}");
    }
}
