//! The device tree pvmfw hands the payload, built fresh from the facts it checked:
//! memory, the console and its clock, `/psci` with the HVC conduit, one CPU, the GICv3
//! and the timer, the virtio transports (their interrupts and their DMA bound to the
//! pool), the command line, and `/reserved-memory` with the payload's secret.

use alloc::vec::Vec;

use abi::dt;
use abi::memory_map::Region;
use abi::pvmfw::SECRET_SIZE;
use pvmkit_dt::write;
use vm_fdt::{Error, FdtWriter};

use crate::host_dt::HostConfig;

/// Writes the new tree with the command line `bootargs` (what [`crate::bootargs`] lets
/// pass); `secret` is where the payload's secret lies.
pub fn build(config: &HostConfig<'_>, bootargs: &str, secret: u64) -> Result<Vec<u8>, Error> {
    let mut w = FdtWriter::new()?;
    let root = write::begin_root(&mut w, "pvmkit protected VM")?;
    write::chosen(&mut w, bootargs, config.console.start, true)?;
    write::memory(&mut w, config.memory)?;
    let secret = write::Reserved {
        name: "pvmkit-secret",
        compatible: dt::PAYLOAD_SECRET,
        region: Region { start: secret, end: secret + SECRET_SIZE as u64 },
        no_map: true,
        phandle: None,
    };
    let pool = config.bounce_pool.map(|region| write::Reserved {
        name: "restricted_dma_reserved",
        compatible: dt::BOUNCE_POOL,
        region,
        no_map: false,
        phandle: Some(dt::BOUNCE_POOL_PHANDLE),
    });
    let reserved: Vec<write::Reserved<'_>> = core::iter::once(secret).chain(pool).collect();
    write::reserved_memory(&mut w, &reserved)?;
    write::cpus(&mut w, None)?;
    write::psci(&mut w, &[dt::PSCI_1_0])?;
    if config.gic {
        write::gic_v3(&mut w)?;
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
    fn the_new_tree_passes_pvmfws_own_checks_and_carries_the_secret() {
        let blob = host::build(&host::Spec::default());
        let config = check(&blob, &host::limits()).unwrap();
        let new = build(&config, config.bootargs, 0x801f_f000).unwrap();
        let fdt = dtoolkit::fdt::Fdt::new(&new).unwrap();
        let text = alloc::format!("{fdt}");
        for needle in [
            "pvmkit-secret@801ff000",
            abi::pvmfw::SECRET_COMPATIBLE,
            "no-map",
            "virtio_mmio@a003e00",
            "pvmkit.mode=protected",
            "method = \"hvc\"",
            "restricted_dma_reserved@8fc00000",
            "intc@8000000",
            "arm,gic-v3",
            "arm,armv8-timer",
            "memory-region",
            "clock-names",
            "interrupt-parent",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        // The secret's reservation is exactly the secret (reg = <0 base 0 size>).
        let size = abi::pvmfw::SECRET_SIZE as u32;
        let reg = alloc::format!("reg = <0x00 0x801ff000 0x00 {size:#x}>");
        assert!(text.contains(&reg), "missing {reg} in\n{text}");
        // Nothing of the host's blob is passed through: /config is gone.
        assert!(!text.contains("kernel-address"), "{text}");
    }
}
