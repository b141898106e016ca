//! The nodes every pvmkit guest DT has, written the same way by `pvmkit` (the host's DT)
//! and pvmfw (the payload's): the root, `/chosen`, `/memory`, `/cpus`, `/psci`, the
//! GICv3, the PL011 and the virtio-mmio transports, and `/reserved-memory` regions.
//! Each writes one node, properties in a fixed order, so both trees stay comparable.
//!
//! ```
//! use abi::memory_map::Region;
//! use pvmkit_dt::write;
//!
//! let mut w = vm_fdt::FdtWriter::new().unwrap();
//! let root = write::begin_root(&mut w, "my VM").unwrap();
//! write::memory(&mut w, Region { start: 0x8000_0000, end: 0x9000_0000 }).unwrap();
//! write::pl011(&mut w, Region { start: 0x0900_0000, end: 0x0900_1000 }).unwrap();
//! w.end_node(root).unwrap();
//! let blob = w.finish().unwrap();
//! assert_eq!(&blob[..4], &[0xd0, 0x0d, 0xfe, 0xed]);
//! ```

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use abi::dt;
use abi::memory_map::{Region, GICD_BASE, GICD_SIZE, GICR_BASE, GICR_SIZE};
use vm_fdt::{Error, FdtWriter, FdtWriterNode};

/// Opens the root: 2-cell addresses and sizes, QEMU virt's compatible, `model`.
pub fn begin_root(w: &mut FdtWriter, model: &str) -> Result<FdtWriterNode, Error> {
    let root = w.begin_node("")?;
    w.property_u32(dt::ADDRESS_CELLS, 2)?;
    w.property_u32(dt::SIZE_CELLS, 2)?;
    w.property_string("compatible", "linux,dummy-virt")?;
    w.property_string("model", model)?;
    Ok(root)
}

/// `/chosen`: the command line, the console, and pvmfw's mark when `verified_boot`.
pub fn chosen(w: &mut FdtWriter, bootargs: &str, console: u64, verified_boot: bool) -> Result<(), Error> {
    let chosen = w.begin_node(dt::CHOSEN)?;
    w.property_string(dt::BOOTARGS, bootargs)?;
    w.property_string(dt::STDOUT_PATH, &pl011_path(console))?;
    if verified_boot {
        w.property_null(dt::VERIFIED_BOOT)?;
    }
    w.end_node(chosen)
}

/// `/memory@…`: guest RAM.
pub fn memory(w: &mut FdtWriter, ram: Region) -> Result<(), Error> {
    let memory = w.begin_node(&format!("{}@{:x}", dt::MEMORY, ram.start))?;
    w.property_string("device_type", "memory")?;
    w.property_array_u64("reg", &[ram.start, ram.size()])?;
    w.end_node(memory)
}

/// A `/reserved-memory` region: `name@base`, its compatible, `no-map` if asked.
pub struct Reserved<'a> {
    /// The node name before `@`.
    pub name: &'a str,
    /// Its compatible.
    pub compatible: &'a str,
    /// Where it is.
    pub region: Region,
    /// Whether the OS must not map it at all.
    pub no_map: bool,
}

/// `/reserved-memory` with `regions`.
pub fn reserved_memory(w: &mut FdtWriter, regions: &[Reserved<'_>]) -> Result<(), Error> {
    let reserved = w.begin_node(dt::RESERVED_MEMORY)?;
    w.property_u32(dt::ADDRESS_CELLS, 2)?;
    w.property_u32(dt::SIZE_CELLS, 2)?;
    w.property_null("ranges")?;
    for r in regions {
        let node = w.begin_node(&format!("{}@{:x}", r.name, r.region.start))?;
        w.property_string("compatible", r.compatible)?;
        w.property_array_u64("reg", &[r.region.start, r.region.size()])?;
        if r.no_map {
            w.property_null("no-map")?;
        }
        w.end_node(node)?;
    }
    w.end_node(reserved)
}

/// `/cpus` with one CPU started by PSCI (`compatible`, when given, names its core).
pub fn cpus(w: &mut FdtWriter, compatible: Option<&str>) -> Result<(), Error> {
    let cpus = w.begin_node("cpus")?;
    w.property_u32(dt::ADDRESS_CELLS, 1)?;
    w.property_u32(dt::SIZE_CELLS, 0)?;
    let cpu = w.begin_node("cpu@0")?;
    w.property_string("device_type", "cpu")?;
    if let Some(compatible) = compatible {
        w.property_string("compatible", compatible)?;
    }
    w.property_u32("reg", 0)?;
    w.property_string("enable-method", "psci")?;
    w.end_node(cpu)?;
    w.end_node(cpus)
}

/// `/psci` over HVC, claiming `compatibles` (one is written as a string, more as a list).
pub fn psci(w: &mut FdtWriter, compatibles: &[&str]) -> Result<(), Error> {
    let psci = w.begin_node(dt::PSCI)?;
    match compatibles {
        [one] => w.property_string("compatible", one)?,
        many => w.property_string_list("compatible", many.iter().map(|c| String::from(*c)).collect())?,
    }
    w.property_string("method", "hvc")?;
    w.end_node(psci)
}

/// The platform's GICv3 (distributor and redistributors).
pub fn gic_v3(w: &mut FdtWriter) -> Result<(), Error> {
    let gic = w.begin_node(&format!("intc@{GICD_BASE:x}"))?;
    w.property_string("compatible", dt::GIC_V3)?;
    w.property_u32("#interrupt-cells", 3)?;
    w.property_null(dt::INTERRUPT_CONTROLLER)?;
    w.property_array_u64("reg", &[GICD_BASE, GICD_SIZE, GICR_BASE, GICR_SIZE])?;
    w.end_node(gic)
}

/// The PL011 console's node path, for `/chosen/stdout-path`.
pub fn pl011_path(base: u64) -> String {
    format!("/pl011@{base:x}")
}

/// The PL011 console.
pub fn pl011(w: &mut FdtWriter, uart: Region) -> Result<(), Error> {
    let node = w.begin_node(&pl011_path(uart.start)[1..])?;
    w.property_string_list("compatible", Vec::from([String::from(dt::PL011), String::from(dt::PRIMECELL)]))?;
    w.property_array_u64("reg", &[uart.start, uart.size()])?;
    w.end_node(node)
}

/// A virtio-mmio transport, its DMA coherent.
pub fn virtio_mmio(w: &mut FdtWriter, transport: Region) -> Result<(), Error> {
    let node = w.begin_node(&format!("virtio_mmio@{:x}", transport.start))?;
    w.property_string("compatible", dt::VIRTIO_MMIO)?;
    w.property_array_u64("reg", &[transport.start, transport.size()])?;
    w.property_null(dt::DMA_COHERENT)?;
    w.end_node(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::{first_region, regions};
    use dtoolkit::fdt::Fdt;
    use dtoolkit::{Node, Property};

    #[test]
    fn what_is_written_reads_back() {
        let mut w = FdtWriter::new().unwrap();
        let root = begin_root(&mut w, "test").unwrap();
        chosen(&mut w, "a=b", 0x0900_0000, true).unwrap();
        memory(&mut w, Region { start: 0x8000_0000, end: 0x9000_0000 }).unwrap();
        let secret = Region { start: 0x801f_f000, end: 0x8020_0000 };
        reserved_memory(&mut w, &[Reserved { name: "s", compatible: "x,y", region: secret, no_map: true }]).unwrap();
        cpus(&mut w, None).unwrap();
        psci(&mut w, &[dt::PSCI_1_0, dt::PSCI_0_2]).unwrap();
        gic_v3(&mut w).unwrap();
        pl011(&mut w, Region { start: 0x0900_0000, end: 0x0900_1000 }).unwrap();
        virtio_mmio(&mut w, Region { start: 0x0a00_3e00, end: 0x0a00_4000 }).unwrap();
        w.end_node(root).unwrap();
        let blob = w.finish().unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        let node = |name: &str| fdt.root().children().find(|n| n.name() == name).unwrap();
        let chosen = node("chosen");
        assert_eq!(chosen.property(dt::STDOUT_PATH).unwrap().value(), b"/pl011@9000000\0");
        assert!(chosen.property(dt::VERIFIED_BOOT).is_some());
        assert_eq!(first_region(node("memory@80000000")), Ok(Some(Region { start: 0x8000_0000, end: 0x9000_0000 })));
        let reserved = node(dt::RESERVED_MEMORY).children().next().unwrap();
        assert_eq!(first_region(reserved), Ok(Some(secret)));
        assert!(reserved.property("no-map").is_some());
        assert_eq!(regions(node("intc@8000000")).unwrap().count(), 2);
        assert_eq!(first_region(node("virtio_mmio@a003e00")).unwrap().unwrap().size(), 0x200);
        assert!(node("pl011@9000000").property("compatible").is_some());
    }
}
