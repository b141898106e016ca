//! What a guest reads from the device tree it was given: its console, its conduit,
//! its RAM and its command line. The blob is validated in full before use.
//!
//! ```
//! use guest_lib::device_tree::dt_size;
//!
//! // A DT's header says how long it is; a guest reads those 8 bytes before the rest.
//! assert_eq!(dt_size([0xd0, 0x0d, 0xfe, 0xed, 0, 0, 0x10, 0]), Ok(0x1000));
//! assert!(dt_size([0; 8]).is_err());
//! ```

use core::fmt;

use dtoolkit::fdt::{Fdt, FdtNode};
use dtoolkit::standard::NodeStandard;
use dtoolkit::{Node, Property};

use crate::conduit::SystemConduit;
use pvmkit_abi::dt;

/// The largest device tree guest-lib accepts.
pub const MAX_DT_SIZE: usize = 2 << 20;

/// The facts guest-lib uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestDt<'a> {
    /// The whole blob.
    pub blob: &'a [u8],
    /// The PL011 console's base address, if any.
    pub uart: Option<u64>,
    /// `/psci` `method`, if present.
    pub conduit: Option<SystemConduit>,
    /// First RAM region (base, size), if any.
    pub memory: Option<(u64, u64)>,
    /// `/chosen/bootargs`, empty when absent.
    pub bootargs: &'a str,
}

/// Why the device tree was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtError {
    /// No FDT magic.
    NotADt,
    /// `totalsize` out of range.
    BadSize(u32),
    /// The blob is malformed.
    Malformed,
    /// A property has a value guest-lib cannot use.
    BadProperty(&'static str),
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotADt => write!(f, "no device tree magic"),
            Self::BadSize(n) => write!(f, "device tree totalsize {n} out of range"),
            Self::Malformed => write!(f, "device tree is malformed"),
            Self::BadProperty(p) => write!(f, "device tree property {p} is malformed"),
        }
    }
}

/// The size of a device tree from its first 8 bytes, checked.
pub fn dt_size(header: [u8; 8]) -> Result<usize, DtError> {
    pvmkit_abi::fdt_header::total_size(header, MAX_DT_SIZE).map_err(|e| match e {
        pvmkit_abi::fdt_header::HeaderError::NotADt => DtError::NotADt,
        pvmkit_abi::fdt_header::HeaderError::BadSize(size) => DtError::BadSize(size),
    })
}

fn first_reg(node: FdtNode<'_>, name: &'static str) -> Result<Option<(u64, u64)>, DtError> {
    let region = pvmkit_dt::read::first_region(node).map_err(|_| DtError::BadProperty(name))?;
    Ok(region.map(|r| (r.start, r.size())))
}

impl<'a> GuestDt<'a> {
    /// A tree with nothing in it.
    pub const EMPTY: GuestDt<'static> = GuestDt { blob: &[], uart: None, conduit: None, memory: None, bootargs: "" };

    /// Reads a whole blob (exactly `totalsize` bytes).
    pub fn read(blob: &'a [u8]) -> Result<Self, DtError> {
        let fdt = Fdt::new(blob).map_err(|_| DtError::Malformed)?;
        let root = fdt.root();
        let mut dt = GuestDt { blob, uart: None, conduit: None, memory: None, bootargs: "" };
        for node in root.children() {
            let is_memory = node.property("device_type").is_some_and(|p| p.value() == b"memory\0");
            if is_memory && dt.memory.is_none() {
                dt.memory = first_reg(node, "memory reg")?;
            } else if node.is_compatible(dt::PL011) && dt.uart.is_none() {
                dt.uart = first_reg(node, "pl011 reg")?.map(|(base, _)| base);
            } else if node.name() == "psci" || node.is_compatible(dt::PSCI_1_0) {
                if let Some(method) = node.property("method") {
                    let method = method.value_as::<&str>().map_err(|_| DtError::BadProperty("psci method"))?;
                    dt.conduit = Some(SystemConduit::from_method(method).ok_or(DtError::BadProperty("psci method"))?);
                }
            }
        }
        if let Some(chosen) = root.child("chosen") {
            if let Some(args) = chosen.property(dt::BOOTARGS) {
                dt.bootargs = args.value_as::<&str>().map_err(|_| DtError::BadProperty(dt::BOOTARGS))?;
            }
        }
        Ok(dt)
    }

    /// The `virtio,mmio` transports (base, size), in DT order.
    pub fn virtio_mmio(&self) -> impl Iterator<Item = (u64, u64)> + 'a {
        let root = Fdt::new(self.blob).ok().map(|fdt| fdt.root());
        root.into_iter().flat_map(|root| {
            root.children()
                .filter(|node| node.is_compatible(dt::VIRTIO_MMIO))
                .filter_map(|node| first_reg(node, "virtio reg").ok().flatten())
                .collect::<alloc::vec::Vec<_>>()
        })
    }

    /// The INTID of the `virtio,mmio` transport at `base`, from its `interrupts`.
    pub fn virtio_mmio_interrupt(&self, base: u64) -> Option<u32> {
        let fdt = Fdt::new(self.blob).ok()?;
        let node = fdt
            .root()
            .children()
            .filter(|n| n.is_compatible(dt::VIRTIO_MMIO))
            .find(|n| first_reg(*n, "virtio reg").ok().flatten().is_some_and(|(b, _)| b == base))?;
        pvmkit_dt::read::first_intid(node.property(dt::INTERRUPTS)?.value())
    }

    /// The first `reg` (base, size) of a `/reserved-memory` child with this compatible.
    pub fn reserved_memory(&self, compatible: &str) -> Option<(u64, u64)> {
        let fdt = Fdt::new(self.blob).ok()?;
        let reserved = fdt.root().child("reserved-memory")?;
        let node = reserved.children().find(|n| n.is_compatible(compatible))?;
        first_reg(node, "reserved-memory reg").ok().flatten()
    }

    /// The GICv3 (`arm,gic-v3`): its distributor's and first redistributor's bases.
    pub fn gic_v3(&self) -> Option<(u64, u64)> {
        let fdt = Fdt::new(self.blob).ok()?;
        let node = fdt.root().children().find(|n| n.is_compatible(dt::GIC_V3))?;
        let mut regs = node.reg().ok()??;
        let mut base = || regs.next()?.address::<u64>().ok();
        Some((base()?, base()?))
    }

    /// The MPIDR affinities of `/cpus`' CPUs (their `reg`), in DT order; empty without
    /// `/cpus`.
    pub fn cpus(&self) -> alloc::vec::Vec<u64> {
        let Some(cpus) = Fdt::new(self.blob).ok().and_then(|fdt| fdt.root().child("cpus")) else {
            return alloc::vec::Vec::new();
        };
        cpus.children()
            .filter(|n| n.property("device_type").is_some_and(|p| p.value() == b"cpu\0"))
            .filter_map(|n| pvmkit_dt::read::cells_u64(n.property("reg")?.value()))
            .collect()
    }

    /// Whether `/chosen` has a property of this name.
    pub fn chosen_has(&self, name: &str) -> bool {
        Fdt::new(self.blob).ok().and_then(|fdt| fdt.root().child("chosen")).is_some_and(|c| c.property(name).is_some())
    }

    /// The value of `key=value` in the command line, if present.
    pub fn bootarg(&self, key: &str) -> Option<&'a str> {
        self.bootargs
            .split_ascii_whitespace()
            .find_map(|word| word.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_fdt::FdtWriter;

    fn tree(method: &str, bootargs: &str) -> Vec<u8> {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let chosen = w.begin_node("chosen").unwrap();
        w.property_string("bootargs", bootargs).unwrap();
        w.end_node(chosen).unwrap();
        let mem = w.begin_node("memory@80000000").unwrap();
        w.property_string("device_type", "memory").unwrap();
        w.property_array_u64("reg", &[0x8000_0000, 0x1000_0000]).unwrap();
        w.end_node(mem).unwrap();
        let uart = w.begin_node("pl011@9000000").unwrap();
        w.property_string_list("compatible", vec!["arm,pl011".into(), "arm,primecell".into()]).unwrap();
        w.property_array_u64("reg", &[0x0900_0000, 0x1000]).unwrap();
        w.end_node(uart).unwrap();
        for base in [0x0a00_3c00u64, 0x0a00_3e00] {
            let node = w.begin_node(&format!("virtio_mmio@{base:x}")).unwrap();
            w.property_string("compatible", "virtio,mmio").unwrap();
            w.property_array_u64("reg", &[base, 0x200]).unwrap();
            w.end_node(node).unwrap();
        }
        let psci = w.begin_node("psci").unwrap();
        w.property_string("compatible", "arm,psci-1.0").unwrap();
        w.property_string("method", method).unwrap();
        w.end_node(psci).unwrap();
        let cpus = w.begin_node("cpus").unwrap();
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 0).unwrap();
        for reg in [0u32, 1, 0x100] {
            let cpu = w.begin_node(&format!("cpu@{reg:x}")).unwrap();
            w.property_string("device_type", "cpu").unwrap();
            w.property_u32("reg", reg).unwrap();
            w.end_node(cpu).unwrap();
        }
        let map = w.begin_node("cpu-map").unwrap();
        w.end_node(map).unwrap();
        w.end_node(cpus).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn reads_console_conduit_memory_and_args() {
        let blob = tree("hvc", "pvmkit.mode=protected pvmkit.scenario=normal");
        assert_eq!(dt_size(blob[..8].try_into().unwrap()), Ok(blob.len()));
        let dt = GuestDt::read(&blob).unwrap();
        assert_eq!(dt.uart, Some(0x0900_0000));
        assert_eq!(dt.conduit, Some(SystemConduit::Hvc));
        assert_eq!(dt.memory, Some((0x8000_0000, 0x1000_0000)));
        assert_eq!(dt.bootarg("pvmkit.mode"), Some("protected"));
        assert_eq!(dt.bootarg("pvmkit.scenario"), Some("normal"));
        assert_eq!(dt.bootarg("pvmkit"), None);
        let virtio: Vec<(u64, u64)> = dt.virtio_mmio().collect();
        assert_eq!(virtio, vec![(0x0a00_3c00, 0x200), (0x0a00_3e00, 0x200)]);
        assert_eq!(dt.cpus(), vec![0, 1, 0x100], "cpu nodes only, their MPIDRs");
        let smc = tree("smc", "");
        assert_eq!(GuestDt::read(&smc).unwrap().conduit, Some(SystemConduit::Smc));
    }

    #[test]
    fn refuses_bad_blobs() {
        let bad_method = tree("svc", "");
        assert_eq!(GuestDt::read(&bad_method), Err(DtError::BadProperty("psci method")));
        assert_eq!(dt_size([0; 8]), Err(DtError::NotADt));
        let blob = tree("hvc", "");
        assert_eq!(GuestDt::read(&blob[..blob.len() - 4]), Err(DtError::Malformed));
        for at in 0..blob.len() {
            let mut b = blob.clone();
            b[at] ^= 0x5a;
            let _ = GuestDt::read(&b);
        }
    }
}
