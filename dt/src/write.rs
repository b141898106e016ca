//! The nodes every pvmkit guest DT has, written the same way by `pvmkit` (the host's DT)
//! and pvmfw (the payload's): the root, `/chosen`, `/memory`, `/cpus`, `/psci`, the
//! GICv3 and the architected timer, the PL011 and its clock, the virtio-mmio
//! transports, and `/reserved-memory` regions. How the devices are wired (interrupts,
//! the pool their DMA must use) is a [`Wiring`]: what Linux needs to drive them.
//! Each writes one node, properties in a fixed order, so both trees stay comparable.
//!
//! ```
//! use pvmkit_abi::memory_map::Region;
//! use pvmkit_dt::write;
//!
//! let mut w = vm_fdt::FdtWriter::new().unwrap();
//! let root = write::begin_root(&mut w, "my VM").unwrap();
//! write::memory(&mut w, Region { start: 0x8000_0000, end: 0x9000_0000 }).unwrap();
//! let wiring = write::Wiring { interrupts: false, dma_pool: false };
//! write::pl011(&mut w, Region { start: 0x0900_0000, end: 0x0900_1000 }, wiring).unwrap();
//! w.end_node(root).unwrap();
//! let blob = w.finish().unwrap();
//! assert_eq!(&blob[..4], &[0xd0, 0x0d, 0xfe, 0xed]);
//! ```

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use pvmkit_abi::dt;
use pvmkit_abi::dt::{GIC_PPI, GIC_SPI};
use pvmkit_abi::memory_map::{
    redistributors, virtio_mmio_slot_at, virtio_mmio_spi, Region, GICD_BASE, GICD_SIZE, PL011_CLOCK_HZ, PL011_SPI,
    TIMER_PPIS,
};
use vm_fdt::{Error, FdtWriter, FdtWriterNode};

/// How a tree's devices are wired, beyond their registers: what a full OS (Linux) needs
/// to drive them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wiring {
    /// Devices raise interrupts through the GICv3 ([`gic_v3`] is written) and the tree
    /// has the architected timer ([`timer`]).
    pub interrupts: bool,
    /// Every virtio transport's DMA must use the bounce pool (written by
    /// [`reserved_memory`] with the handle [`dt::BOUNCE_POOL_PHANDLE`]).
    pub dma_pool: bool,
}

/// GIC interrupt cells' triggers: level-high and rising-edge.
const LEVEL_HIGH: u32 = 4;
const EDGE_RISING: u32 = 1;

/// Opens the root: 2-cell addresses and sizes, QEMU virt's compatible, `model`.
pub fn begin_root(w: &mut FdtWriter, model: &str) -> Result<FdtWriterNode, Error> {
    let root = w.begin_node("")?;
    w.property_u32(dt::ADDRESS_CELLS, 2)?;
    w.property_u32(dt::SIZE_CELLS, 2)?;
    w.property_string("compatible", "linux,dummy-virt")?;
    w.property_string("model", model)?;
    Ok(root)
}

/// What `/chosen` says.
#[derive(Clone, Copy, Debug, Default)]
pub struct Chosen<'a> {
    /// The command line.
    pub bootargs: &'a str,
    /// The console's base (`stdout-path`).
    pub console: u64,
    /// The ramdisk (`linux,initrd-start`/`-end`).
    pub initrd: Option<Region>,
    /// pvmfw's mark that it verified the payload.
    pub verified_boot: bool,
    /// pvmfw's mark that the ramdisk matched `initrd_debug`.
    pub debuggable: bool,
}

/// `/chosen`.
pub fn chosen(w: &mut FdtWriter, c: &Chosen<'_>) -> Result<(), Error> {
    let chosen = w.begin_node(dt::CHOSEN)?;
    w.property_string(dt::BOOTARGS, c.bootargs)?;
    w.property_string(dt::STDOUT_PATH, &pl011_path(c.console))?;
    if let Some(initrd) = c.initrd {
        w.property_u64(dt::INITRD_START, initrd.start)?;
        w.property_u64(dt::INITRD_END, initrd.end)?;
    }
    if c.verified_boot {
        w.property_null(dt::VERIFIED_BOOT)?;
    }
    if c.debuggable {
        w.property_null(dt::DEBUGGABLE)?;
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
    /// Its handle, for devices that refer to it.
    pub phandle: Option<u32>,
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
        if let Some(phandle) = r.phandle {
            w.property_phandle(phandle)?;
        }
        w.end_node(node)?;
    }
    w.end_node(reserved)
}

/// `/cpus` with `count` CPUs started by PSCI, `cpu@i` with MPIDR affinity `i`
/// (`compatible`, when given, names their core).
pub fn cpus(w: &mut FdtWriter, compatible: Option<&str>, count: u32) -> Result<(), Error> {
    let cpus = w.begin_node("cpus")?;
    w.property_u32(dt::ADDRESS_CELLS, 1)?;
    w.property_u32(dt::SIZE_CELLS, 0)?;
    for i in 0..count {
        let cpu = w.begin_node(&format!("cpu@{i:x}"))?;
        w.property_string("device_type", "cpu")?;
        if let Some(compatible) = compatible {
            w.property_string("compatible", compatible)?;
        }
        w.property_u32("reg", i)?;
        w.property_string("enable-method", "psci")?;
        w.end_node(cpu)?;
    }
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

/// The platform's GICv3: the distributor and the redistributors of `cpus` vCPUs.
pub fn gic_v3(w: &mut FdtWriter, cpus: u32) -> Result<(), Error> {
    let gic = w.begin_node(&format!("intc@{GICD_BASE:x}"))?;
    w.property_string("compatible", dt::GIC_V3)?;
    w.property_u32("#interrupt-cells", 3)?;
    w.property_null(dt::INTERRUPT_CONTROLLER)?;
    let redistributors = redistributors(cpus);
    w.property_array_u64("reg", &[GICD_BASE, GICD_SIZE, redistributors.start, redistributors.size()])?;
    w.property_phandle(dt::GIC_PHANDLE)?;
    w.end_node(gic)
}

/// The architected timer and its four PPIs (a tree with a GICv3 only).
pub fn timer(w: &mut FdtWriter) -> Result<(), Error> {
    let node = w.begin_node("timer")?;
    w.property_string("compatible", dt::ARMV8_TIMER)?;
    w.property_u32(dt::INTERRUPT_PARENT, dt::GIC_PHANDLE)?;
    let cells: Vec<u32> = TIMER_PPIS.iter().flat_map(|&ppi| [GIC_PPI, ppi, LEVEL_HIGH]).collect();
    w.property_array_u32(dt::INTERRUPTS, &cells)?;
    w.property_null("always-on")?;
    w.end_node(node)
}

/// The PL011 console's node path, for `/chosen/stdout-path`.
pub fn pl011_path(base: u64) -> String {
    format!("/pl011@{base:x}")
}

/// The PL011 console and its fixed reference clock (a driver without the clock has no
/// console); with interrupts, its SPI.
pub fn pl011(w: &mut FdtWriter, uart: Region, wiring: Wiring) -> Result<(), Error> {
    let clock = w.begin_node("apb-pclk")?;
    w.property_string("compatible", dt::FIXED_CLOCK)?;
    w.property_u32("#clock-cells", 0)?;
    w.property_u32("clock-frequency", PL011_CLOCK_HZ)?;
    w.property_string("clock-output-names", "clk24mhz")?;
    w.property_phandle(dt::UART_CLOCK_PHANDLE)?;
    w.end_node(clock)?;
    let node = w.begin_node(&pl011_path(uart.start)[1..])?;
    w.property_string_list("compatible", Vec::from([String::from(dt::PL011), String::from(dt::PRIMECELL)]))?;
    w.property_array_u64("reg", &[uart.start, uart.size()])?;
    w.property_array_u32(dt::CLOCKS, &[dt::UART_CLOCK_PHANDLE, dt::UART_CLOCK_PHANDLE])?;
    w.property_string_list(dt::CLOCK_NAMES, Vec::from([String::from("uartclk"), String::from("apb_pclk")]))?;
    if wiring.interrupts {
        w.property_u32(dt::INTERRUPT_PARENT, dt::GIC_PHANDLE)?;
        w.property_array_u32(dt::INTERRUPTS, &[GIC_SPI, PL011_SPI, LEVEL_HIGH])?;
    }
    w.end_node(node)
}

/// A virtio-mmio transport, its DMA coherent; with interrupts, its SPI (QEMU `virt`'s
/// for that slot); with the pool, its DMA bound to it.
pub fn virtio_mmio(w: &mut FdtWriter, transport: Region, wiring: Wiring) -> Result<(), Error> {
    let node = w.begin_node(&format!("virtio_mmio@{:x}", transport.start))?;
    w.property_string("compatible", dt::VIRTIO_MMIO)?;
    w.property_array_u64("reg", &[transport.start, transport.size()])?;
    w.property_null(dt::DMA_COHERENT)?;
    if let Some(slot) = virtio_mmio_slot_at(transport.start).filter(|_| wiring.interrupts) {
        w.property_u32(dt::INTERRUPT_PARENT, dt::GIC_PHANDLE)?;
        w.property_array_u32(dt::INTERRUPTS, &[GIC_SPI, virtio_mmio_spi(slot), EDGE_RISING])?;
    }
    if wiring.dma_pool {
        w.property_u32(dt::MEMORY_REGION, dt::BOUNCE_POOL_PHANDLE)?;
    }
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
        let initrd = Region { start: 0x8800_0000, end: 0x8800_0bb8 };
        let c = Chosen {
            bootargs: "a=b",
            console: 0x0900_0000,
            initrd: Some(initrd),
            verified_boot: true,
            debuggable: false,
        };
        chosen(&mut w, &c).unwrap();
        memory(&mut w, Region { start: 0x8000_0000, end: 0x9000_0000 }).unwrap();
        let secret = Region { start: 0x801f_f000, end: 0x8020_0000 };
        let pool = Region { start: 0x8fc0_0000, end: 0x9000_0000 };
        reserved_memory(
            &mut w,
            &[
                Reserved { name: "s", compatible: "x,y", region: secret, no_map: true, phandle: None },
                Reserved {
                    name: "pool",
                    compatible: dt::BOUNCE_POOL,
                    region: pool,
                    no_map: false,
                    phandle: Some(dt::BOUNCE_POOL_PHANDLE),
                },
            ],
        )
        .unwrap();
        cpus(&mut w, None, 1).unwrap();
        psci(&mut w, &[dt::PSCI_1_0, dt::PSCI_0_2]).unwrap();
        gic_v3(&mut w, 1).unwrap();
        timer(&mut w).unwrap();
        let wiring = Wiring { interrupts: true, dma_pool: true };
        pl011(&mut w, Region { start: 0x0900_0000, end: 0x0900_1000 }, wiring).unwrap();
        virtio_mmio(&mut w, Region { start: 0x0a00_3e00, end: 0x0a00_4000 }, wiring).unwrap();
        w.end_node(root).unwrap();
        let blob = w.finish().unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        let node = |name: &str| fdt.root().children().find(|n| n.name() == name).unwrap();
        let chosen = node("chosen");
        assert_eq!(chosen.property(dt::STDOUT_PATH).unwrap().value(), b"/pl011@9000000\0");
        assert!(chosen.property(dt::VERIFIED_BOOT).is_some() && chosen.property(dt::DEBUGGABLE).is_none());
        let initrd_at = |p: &str| chosen.property(p).unwrap().value().try_into().map(u64::from_be_bytes).unwrap();
        assert_eq!((initrd_at(dt::INITRD_START), initrd_at(dt::INITRD_END)), (initrd.start, initrd.end));
        assert_eq!(first_region(node("memory@80000000")), Ok(Some(Region { start: 0x8000_0000, end: 0x9000_0000 })));
        let reserved = node(dt::RESERVED_MEMORY).children().next().unwrap();
        assert_eq!(first_region(reserved), Ok(Some(secret)));
        assert!(reserved.property("no-map").is_some());
        assert_eq!(regions(node("intc@8000000")).unwrap().count(), 2);
        assert_eq!(first_region(node("virtio_mmio@a003e00")).unwrap().unwrap().size(), 0x200);
        assert!(node("pl011@9000000").property("compatible").is_some());
        // The wiring Linux needs: handles that resolve, interrupts, clocks, the pool.
        let u32s = |n: &str, p: &str| -> Vec<u32> {
            node(n).property(p).unwrap().value().chunks(4).map(|c| u32::from_be_bytes(c.try_into().unwrap())).collect()
        };
        assert_eq!(u32s("intc@8000000", dt::PHANDLE), [dt::GIC_PHANDLE]);
        assert_eq!(u32s("apb-pclk", dt::PHANDLE), [dt::UART_CLOCK_PHANDLE]);
        assert_eq!(u32s("apb-pclk", "clock-frequency"), [24_000_000]);
        assert_eq!(u32s("pl011@9000000", dt::CLOCKS), [dt::UART_CLOCK_PHANDLE; 2]);
        assert_eq!(u32s("pl011@9000000", dt::INTERRUPTS), [0, 1, 4]);
        assert_eq!(u32s("pl011@9000000", dt::INTERRUPT_PARENT), [dt::GIC_PHANDLE]);
        assert_eq!(u32s("timer", dt::INTERRUPTS), [1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]);
        // Transport 31 (at 0x0a003e00) has SPI 47, a rising edge, as on QEMU `virt`.
        assert_eq!(u32s("virtio_mmio@a003e00", dt::INTERRUPTS), [0, 47, 1]);
        assert_eq!(u32s("virtio_mmio@a003e00", dt::MEMORY_REGION), [dt::BOUNCE_POOL_PHANDLE]);
        let pool_node = node(dt::RESERVED_MEMORY).children().nth(1).unwrap();
        let handle = pool_node.property(dt::PHANDLE).unwrap();
        assert_eq!(handle.value(), dt::BOUNCE_POOL_PHANDLE.to_be_bytes());
    }

    #[test]
    fn without_wiring_no_interrupt_or_pool_is_named() {
        let mut w = FdtWriter::new().unwrap();
        let root = begin_root(&mut w, "test").unwrap();
        let bare = Wiring { interrupts: false, dma_pool: false };
        pl011(&mut w, Region { start: 0x0900_0000, end: 0x0900_1000 }, bare).unwrap();
        virtio_mmio(&mut w, Region { start: 0x0a00_3e00, end: 0x0a00_4000 }, bare).unwrap();
        w.end_node(root).unwrap();
        let blob = w.finish().unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        for n in fdt.root().children() {
            for p in [dt::INTERRUPTS, dt::INTERRUPT_PARENT, dt::MEMORY_REGION] {
                assert!(n.property(p).is_none(), "{} has {p}", n.name());
            }
        }
    }
}
