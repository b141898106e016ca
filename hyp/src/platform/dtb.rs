//! What hyp needs from QEMU's device tree: RAM, the PL011, the virtio-mmio slots, the
//! initrd (the bundle) and the command line (hyp's options). The blob is validated in
//! full (dtoolkit) before anything is read from it.

use core::fmt;

use dtoolkit::fdt::Fdt;
use dtoolkit::standard::NodeStandard;
use dtoolkit::{Node, Property};
use pvmkit_abi::dt;
use pvmkit_abi::memory_map::Region;

/// Most RAM regions hyp keeps.
pub const MAX_MEMORY_REGIONS: usize = 8;
/// Most virtio-mmio slots hyp keeps (QEMU `virt` has 32).
pub const MAX_VIRTIO_SLOTS: usize = 32;
/// The largest DTB hyp accepts.
pub const MAX_DTB_SIZE: usize = 2 << 20;

/// The platform as QEMU describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Platform<'a> {
    memory: [Region; MAX_MEMORY_REGIONS],
    memory_count: usize,
    /// The PL011 console's register window.
    pub uart: Region,
    /// The GICv3 distributor and redistributor regions, when the platform has one.
    pub gic_v3: Option<(Region, Region)>,
    virtio: [Region; MAX_VIRTIO_SLOTS],
    virtio_count: usize,
    /// Where QEMU put the initrd (`/chosen/linux,initrd-start/end`).
    pub initrd: Option<Region>,
    /// `/chosen/bootargs` (QEMU `-append`), empty when absent.
    pub bootargs: &'a str,
}

/// Why the DTB could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformError {
    /// No FDT magic at the address hyp was given.
    NotADtb,
    /// `totalsize` is below a header or above [`MAX_DTB_SIZE`].
    BadSize(u32),
    /// The blob is malformed.
    Malformed,
    /// A property hyp needs has a bad value.
    BadProperty(&'static str),
    /// No RAM is described.
    NoMemory,
    /// No `arm,pl011` node.
    NoUart,
    /// More RAM regions or virtio slots than hyp keeps.
    TooMany(&'static str),
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotADtb => write!(f, "x0 does not point at a device tree"),
            Self::BadSize(n) => write!(f, "device tree totalsize {n} is out of range"),
            Self::Malformed => write!(f, "device tree is malformed"),
            Self::BadProperty(p) => write!(f, "device tree property {p} is malformed"),
            Self::NoMemory => write!(f, "device tree describes no memory"),
            Self::NoUart => write!(f, "device tree has no arm,pl011 node"),
            Self::TooMany(what) => write!(f, "device tree has too many {what}"),
        }
    }
}

/// The size of the DTB whose first 8 bytes are `header`, checked for magic and bounds.
pub fn dtb_size(header: [u8; 8]) -> Result<usize, PlatformError> {
    pvmkit_abi::fdt_header::total_size(header, MAX_DTB_SIZE).map_err(|e| match e {
        pvmkit_abi::fdt_header::HeaderError::NotADt => PlatformError::NotADtb,
        pvmkit_abi::fdt_header::HeaderError::BadSize(size) => PlatformError::BadSize(size),
    })
}

fn cells_u64(value: &[u8], name: &'static str) -> Result<u64, PlatformError> {
    pvmkit_dt::read::cells_u64(value).ok_or(PlatformError::BadProperty(name))
}

/// The node's regions; a node the platform reader needs must have a `reg`.
fn regs<'a>(
    node: dtoolkit::fdt::FdtNode<'a>,
    name: &'static str,
) -> Result<impl Iterator<Item = Result<Region, PlatformError>> + 'a, PlatformError> {
    if node.property("reg").is_none() {
        return Err(PlatformError::BadProperty(name));
    }
    let regs = pvmkit_dt::read::regions(node).map_err(|_| PlatformError::BadProperty(name))?;
    Ok(regs.map(move |r| r.map_err(|_| PlatformError::BadProperty(name))))
}

impl<'a> Platform<'a> {
    /// Reads the platform from a whole DTB (exactly `totalsize` bytes).
    pub fn read(dtb: &'a [u8]) -> Result<Self, PlatformError> {
        let fdt = Fdt::new(dtb).map_err(|_| PlatformError::Malformed)?;
        let root = fdt.root();
        let empty = Region { start: 0, end: 0 };
        let mut platform = Platform {
            memory: [empty; MAX_MEMORY_REGIONS],
            memory_count: 0,
            uart: empty,
            gic_v3: None,
            virtio: [empty; MAX_VIRTIO_SLOTS],
            virtio_count: 0,
            initrd: None,
            bootargs: "",
        };
        let mut uart = None;
        for node in root.children() {
            let is_memory = node.property("device_type").is_some_and(|p| p.value() == b"memory\0");
            if is_memory {
                for region in regs(node, "memory reg")? {
                    let region = region?;
                    if region.size() == 0 {
                        continue;
                    }
                    let slot = platform.memory.get_mut(platform.memory_count);
                    *slot.ok_or(PlatformError::TooMany("memory regions"))? = region;
                    platform.memory_count += 1;
                }
            } else if node.is_compatible(dt::PL011) && uart.is_none() {
                uart = regs(node, "pl011 reg")?.next().transpose()?;
            } else if node.is_compatible(dt::GIC_V3) && platform.gic_v3.is_none() {
                let mut frames = regs(node, "gic reg")?;
                if let (Some(gicd), Some(gicr)) = (frames.next(), frames.next()) {
                    platform.gic_v3 = Some((gicd?, gicr?));
                }
            } else if node.is_compatible(dt::VIRTIO_MMIO) {
                if let Some(region) = regs(node, "virtio reg")?.next().transpose()? {
                    let slot = platform.virtio.get_mut(platform.virtio_count);
                    *slot.ok_or(PlatformError::TooMany("virtio slots"))? = region;
                    platform.virtio_count += 1;
                }
            }
        }
        if platform.memory_count == 0 {
            return Err(PlatformError::NoMemory);
        }
        platform.uart = uart.ok_or(PlatformError::NoUart)?;
        if let Some(chosen) = root.child("chosen") {
            if let Some(args) = chosen.property(dt::BOOTARGS) {
                platform.bootargs = args.value_as::<&str>().map_err(|_| PlatformError::BadProperty(dt::BOOTARGS))?;
            }
            let start = chosen.property(dt::INITRD_START).map(|p| cells_u64(p.value(), dt::INITRD_START));
            let end = chosen.property(dt::INITRD_END).map(|p| cells_u64(p.value(), dt::INITRD_END));
            if let (Some(start), Some(end)) = (start, end) {
                let (start, end) = (start?, end?);
                if end < start {
                    return Err(PlatformError::BadProperty(dt::INITRD_END));
                }
                platform.initrd = Some(Region { start, end });
            }
        }
        Ok(platform)
    }

    /// RAM regions.
    pub fn memory(&self) -> &[Region] {
        &self.memory[..self.memory_count]
    }

    /// virtio-mmio slots, in DT order.
    pub fn virtio_slots(&self) -> &[Region] {
        &self.virtio[..self.virtio_count]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_fdt::FdtWriter;

    /// A tree shaped like QEMU `virt`'s.
    fn qemu_like(initrd: Option<(u64, u64)>, bootargs: Option<&str>, uart: bool) -> Vec<u8> {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        w.property_string("compatible", "linux,dummy-virt").unwrap();
        let chosen = w.begin_node("chosen").unwrap();
        if let Some((start, end)) = initrd {
            w.property_u64("linux,initrd-start", start).unwrap();
            w.property_u64("linux,initrd-end", end).unwrap();
        }
        if let Some(args) = bootargs {
            w.property_string("bootargs", args).unwrap();
        }
        w.end_node(chosen).unwrap();
        let mem = w.begin_node("memory@40000000").unwrap();
        w.property_string("device_type", "memory").unwrap();
        w.property_array_u64("reg", &[0x4000_0000, 2 << 30]).unwrap();
        w.end_node(mem).unwrap();
        for i in 0..4u64 {
            let addr = 0x0a00_0000 + i * 0x200;
            let node = w.begin_node(&format!("virtio_mmio@{addr:x}")).unwrap();
            w.property_string("compatible", "virtio,mmio").unwrap();
            w.property_array_u64("reg", &[addr, 0x200]).unwrap();
            w.end_node(node).unwrap();
        }
        let gic = w.begin_node("intc@8000000").unwrap();
        w.property_string("compatible", "arm,gic-v3").unwrap();
        w.property_array_u64("reg", &[0x0800_0000, 0x1_0000, 0x080a_0000, 0xf6_0000]).unwrap();
        w.end_node(gic).unwrap();
        if uart {
            let pl011 = w.begin_node("pl011@9000000").unwrap();
            w.property_string_list("compatible", vec!["arm,pl011".into(), "arm,primecell".into()]).unwrap();
            w.property_array_u64("reg", &[0x0900_0000, 0x1000]).unwrap();
            w.end_node(pl011).unwrap();
        }
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn reads_what_hyp_needs() {
        let dtb = qemu_like(Some((0x4800_0000, 0x4803_0000)), Some("mode=protected abi=upstream"), true);
        let header: [u8; 8] = dtb[..8].try_into().unwrap();
        assert_eq!(dtb_size(header), Ok(dtb.len()));
        let p = Platform::read(&dtb).unwrap();
        assert_eq!(p.memory(), &[Region { start: 0x4000_0000, end: 0xc000_0000 }]);
        assert_eq!(p.uart, Region { start: 0x0900_0000, end: 0x0900_1000 });
        assert_eq!(p.virtio_slots().len(), 4);
        assert_eq!(p.virtio_slots()[3].start, 0x0a00_0600);
        assert_eq!(p.initrd, Some(Region { start: 0x4800_0000, end: 0x4803_0000 }));
        assert_eq!(p.bootargs, "mode=protected abi=upstream");
        assert_eq!(
            p.gic_v3,
            Some((Region { start: 0x0800_0000, end: 0x0801_0000 }, Region { start: 0x080a_0000, end: 0x0900_0000 }))
        );
    }

    #[test]
    fn optional_parts_may_be_missing() {
        let dtb = qemu_like(None, None, true);
        let p = Platform::read(&dtb).unwrap();
        assert_eq!(p.initrd, None);
        assert_eq!(p.bootargs, "");
        // QEMU writes an empty initrd's start and end equal (no -initrd data): empty,
        // not malformed.
        let dtb = qemu_like(Some((0x4800_0000, 0x4800_0000)), None, true);
        let empty = Platform::read(&dtb).unwrap();
        assert_eq!(empty.initrd, Some(Region { start: 0x4800_0000, end: 0x4800_0000 }));
    }

    #[test]
    fn refuses_bad_trees() {
        assert_eq!(Platform::read(&qemu_like(None, None, false)).unwrap_err(), PlatformError::NoUart);
        assert_eq!(
            Platform::read(&qemu_like(Some((2, 1)), None, true)).unwrap_err(),
            PlatformError::BadProperty("linux,initrd-end")
        );
        assert_eq!(dtb_size(*b"\xd0\x0d\xfe\xed\x00\x00\x00\x10"), Err(PlatformError::BadSize(16)));
        assert_eq!(dtb_size(*b"\xd0\x0d\xfe\xed\x7f\x00\x00\x00"), Err(PlatformError::BadSize(0x7f00_0000)));
        assert_eq!(dtb_size([0; 8]), Err(PlatformError::NotADtb));
        let dtb = qemu_like(None, None, true);
        for len in [0, 8, 40, dtb.len() - 1] {
            assert!(Platform::read(&dtb[..len]).is_err());
        }
        // Byte flips anywhere: an error or a result, never a panic.
        for at in 0..dtb.len() {
            let mut bad = dtb.clone();
            bad[at] ^= 0xa5;
            let _ = Platform::read(&bad);
        }
    }
}
