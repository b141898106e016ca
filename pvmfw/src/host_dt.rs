//! The host's device tree, treated as hostile: fully validated (dtoolkit) before
//! anything is read, then only the facts pvmfw needs are taken, each checked against
//! the platform: one RAM region inside the VM's limits and clear of pvmfw, the console
//! and virtio transports only where the platform has them, the signed payload inside
//! RAM and clear of the DT area, a printable command line. Nothing of the blob is
//! passed on: [`crate::handover_dt`] builds a new tree from these facts.

use alloc::vec::Vec;
use core::fmt;

use dtoolkit::fdt::{Fdt, FdtNode};
use dtoolkit::standard::NodeStandard;
use dtoolkit::{Node, Property};
use pvmkit_abi::dt;
use pvmkit_abi::memory_map::Region;
use pvmkit_abi::memory_map::{
    redistributors, virtio_mmio_slot, BOUNCE_POOL_COMPATIBLE, GICD_BASE, GICD_SIZE, GUEST_DT_BASE, GUEST_DT_MAX_SIZE,
    QEMU_EARLY_UART, VIRTIO_MMIO_SLOTS, VIRTIO_MMIO_STRIDE,
};
use pvmkit_abi::pvmfw::{PVMFW_BASE, PVMFW_SIZE};

/// The most bytes pvmfw reads as a device tree.
pub const MAX_DT_SIZE: usize = 2 << 20;
/// The longest command line passed on.
pub const MAX_BOOTARGS: usize = 1024;
/// The longest instance id read (AVF's are 64 bytes).
pub const MAX_INSTANCE_ID: usize = 64;

/// What the platform allows.
#[derive(Clone, Copy, Debug)]
pub struct Limits<'a> {
    /// Where guest RAM may be.
    pub ram_window: Region,
    /// The console's register window.
    pub console: Region,
    /// The virtio-mmio transports' windows.
    pub virtio: &'a [Region],
    /// Memory the payload must not get: pvmfw's region.
    pub pvmfw: Region,
    /// The DT area (the new DT and the payload's secret go there).
    pub dt_area: Region,
    /// The GICv3's distributor window (its redistributors follow from the CPUs).
    pub gicd: Region,
    /// The most CPUs the platform gives a VM.
    pub max_cpus: u32,
}

const fn virtio_windows() -> [Region; VIRTIO_MMIO_SLOTS as usize] {
    let mut windows = [Region { start: 0, end: 0 }; VIRTIO_MMIO_SLOTS as usize];
    let mut i = 0;
    while i < VIRTIO_MMIO_SLOTS {
        windows[i as usize] = Region { start: virtio_mmio_slot(i), end: virtio_mmio_slot(i) + VIRTIO_MMIO_STRIDE };
        i += 1;
    }
    windows
}

/// QEMU `virt`'s virtio-mmio transports.
static QEMU_VIRT_VIRTIO: [Region; VIRTIO_MMIO_SLOTS as usize] = virtio_windows();

/// The upper bound of guest RAM pvmfw accepts (IPA).
pub const RAM_WINDOW_END: u64 = 0xc000_0000;

impl Limits<'static> {
    /// The platform pvmfw runs on: QEMU `virt` (machine type pinned by pvmkit) under hyp,
    /// with pvmkit's memory map.
    pub fn qemu_virt() -> Self {
        Limits {
            ram_window: Region { start: PVMFW_BASE + PVMFW_SIZE, end: RAM_WINDOW_END },
            console: Region { start: QEMU_EARLY_UART, end: QEMU_EARLY_UART + 0x1000 },
            virtio: &QEMU_VIRT_VIRTIO,
            pvmfw: Region { start: PVMFW_BASE, end: PVMFW_BASE + PVMFW_SIZE },
            dt_area: Region { start: GUEST_DT_BASE, end: GUEST_DT_BASE + GUEST_DT_MAX_SIZE },
            gicd: Region { start: GICD_BASE, end: GICD_BASE + GICD_SIZE },
            max_cpus: pvmkit_abi::bundle::MAX_VCPUS,
        }
    }
}

/// The facts pvmfw keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostConfig<'a> {
    /// Guest RAM.
    pub memory: Region,
    /// The console.
    pub console: Region,
    /// The virtio transports.
    pub virtio: Vec<Region>,
    /// Where the signed kernel is (`/config` `kernel-address`, `kernel-size`).
    pub payload: Region,
    /// Where the ramdisk is (`/chosen` `linux,initrd-start`, `linux,initrd-end`), if any.
    pub ramdisk: Option<Region>,
    /// `/chosen/bootargs`.
    pub bootargs: &'a str,
    /// The `restricted-dma-pool` reserved for bounce buffers, if any.
    pub bounce_pool: Option<Region>,
    /// Whether the host named the platform's GICv3 (distributor, a redistributor per CPU).
    pub gic: bool,
    /// The CPUs (`/cpus/cpu@i`, MPIDR affinity `i`, every `i` below the count).
    pub cpus: u32,
    /// `/avf/untrusted/instance-id`: the VM instance the host says this is.
    pub instance_id: Option<&'a [u8]>,
    /// `/avf/untrusted/defer-rollback-protection`: the host asks for rollback protection
    /// to be left to the payload (honoured only for a payload that can, see
    /// [`crate::rollback`]).
    pub defer_rollback_protection: bool,
}

/// Why the host's device tree was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtError {
    /// No FDT magic.
    NotADt,
    /// totalsize below a header or above [`MAX_DT_SIZE`].
    BadSize(u32),
    /// The blob is malformed (truncated, offsets outside it, bad tokens or names).
    Malformed,
    /// A property has the wrong shape.
    BadProperty(&'static str),
    /// No memory, or more than one region.
    Memory,
    /// RAM outside the VM's limits or over pvmfw.
    MemoryOutsideLimits(Region),
    /// A GICv3 other than the platform's.
    BadGic,
    /// A device at an address the platform does not expose.
    DeviceNotExposed(&'static str, u64),
    /// No console.
    NoConsole,
    /// No `/config` payload location.
    NoPayload,
    /// The payload location is outside RAM or over the DT area.
    PayloadOutsideRam(Region),
    /// The ramdisk is empty, outside RAM, or over the DT area or the kernel.
    RamdiskOutsideRam(Region),
    /// The command line is too long or not printable ASCII.
    BadBootargs,
    /// The bounce pool is unaligned, outside RAM, or over the DT area or the payload.
    BadBouncePool(Region),
    /// No CPU, more than the platform has, or MPIDRs other than 0 to count − 1.
    BadCpus(u32),
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotADt => write!(f, "host device tree: no FDT magic"),
            Self::BadSize(n) => write!(f, "host device tree: totalsize {n} out of range"),
            Self::Malformed => write!(f, "host device tree is malformed (truncated or offsets outside the blob)"),
            Self::BadProperty(p) => write!(f, "host device tree: property {p} is malformed"),
            Self::Memory => write!(f, "host device tree must describe exactly one memory region"),
            Self::MemoryOutsideLimits(r) => {
                write!(f, "host device tree: memory {:#x}..{:#x} is outside the VM's limits", r.start, r.end)
            }
            Self::DeviceNotExposed(what, at) => {
                write!(f, "host device tree: {what} at {at:#x}, where the platform exposes none")
            }
            Self::NoConsole => write!(f, "host device tree has no console"),
            Self::BadGic => write!(f, "host device tree: a GICv3 other than the platform's for its CPUs"),
            Self::BadCpus(n) => {
                write!(f, "host device tree: {n} CPUs, not 1 to the platform's most with MPIDRs 0 up")
            }
            Self::NoPayload => write!(f, "host device tree has no /config kernel-address and kernel-size"),
            Self::PayloadOutsideRam(r) => {
                write!(f, "host device tree: payload {:#x}..{:#x} is outside RAM or over the DT area", r.start, r.end)
            }
            Self::RamdiskOutsideRam(r) => write!(
                f,
                "host device tree: ramdisk {:#x}..{:#x} is empty, outside RAM or over the DT area or the kernel",
                r.start, r.end
            ),
            Self::BadBootargs => write!(f, "host device tree: bootargs too long or not printable"),
            Self::BadBouncePool(r) => write!(
                f,
                "host device tree: bounce pool {:#x}..{:#x} is unaligned, outside RAM or over something else",
                r.start, r.end
            ),
        }
    }
}

/// The size of the device tree whose first 8 bytes are `header`, checked.
pub fn dt_size(header: [u8; 8]) -> Result<usize, DtError> {
    pvmkit_abi::fdt_header::total_size(header, MAX_DT_SIZE).map_err(|e| match e {
        pvmkit_abi::fdt_header::HeaderError::NotADt => DtError::NotADt,
        pvmkit_abi::fdt_header::HeaderError::BadSize(size) => DtError::BadSize(size),
    })
}

fn regs(node: FdtNode<'_>, name: &'static str) -> Result<Vec<Region>, DtError> {
    let bad = |_| DtError::BadProperty(name);
    pvmkit_dt::read::regions(node).map_err(bad)?.map(|r| r.map_err(bad)).collect()
}

fn u64_prop(node: &FdtNode<'_>, name: &'static str) -> Result<Option<u64>, DtError> {
    node.property(name).map(|p| pvmkit_dt::read::cells_u64(p.value()).ok_or(DtError::BadProperty(name))).transpose()
}

/// Checks a whole blob (exactly `totalsize` bytes) against the platform's limits.
pub fn check<'a>(blob: &'a [u8], limits: &Limits<'_>) -> Result<HostConfig<'a>, DtError> {
    let fdt = Fdt::new(blob).map_err(|_| DtError::Malformed)?;
    let root = fdt.root();
    let (mut memory, mut console, mut virtio, mut payload, mut bootargs) = (Vec::new(), None, Vec::new(), None, "");
    let mut pools = Vec::new();
    let mut gic = None;
    let mut cpus: Vec<u64> = Vec::new();
    let (mut initrd_start, mut initrd_end) = (None, None);
    let (mut instance_id, mut defer_rollback_protection) = (None, false);
    for node in root.children() {
        if node.property("device_type").is_some_and(|p| p.value() == b"memory\0") {
            memory.extend(regs(node, "memory reg")?.into_iter().filter(|r| r.size() > 0));
        } else if node.is_compatible(dt::PL011) {
            for r in regs(node, "pl011 reg")? {
                if !limits.console.contains(&r) || console.is_some() {
                    return Err(DtError::DeviceNotExposed("console", r.start));
                }
                console = Some(r);
            }
        } else if node.is_compatible(dt::GIC_V3) {
            if gic.is_some() {
                return Err(DtError::BadGic);
            }
            gic = Some(regs(node, "gic-v3 reg")?);
        } else if node.name() == "cpus" {
            for cpu in node.children().filter(|c| c.property("device_type").is_some_and(|p| p.value() == b"cpu\0")) {
                if cpus.len() as u32 >= limits.max_cpus {
                    return Err(DtError::BadCpus(cpus.len() as u32 + 1));
                }
                let reg = cpu.property("reg").ok_or(DtError::BadProperty("cpu reg"))?;
                cpus.push(pvmkit_dt::read::cells_u64(reg.value()).ok_or(DtError::BadProperty("cpu reg"))?);
            }
        } else if node.is_compatible(dt::VIRTIO_MMIO) {
            for r in regs(node, "virtio reg")? {
                if !limits.virtio.iter().any(|w| w.contains(&r)) || virtio.contains(&r) {
                    return Err(DtError::DeviceNotExposed("virtio-mmio transport", r.start));
                }
                virtio.push(r);
            }
        } else if node.name() == "config" {
            let (start, size) = (u64_prop(&node, dt::KERNEL_ADDRESS)?, u64_prop(&node, dt::KERNEL_SIZE)?);
            if let (Some(start), Some(size)) = (start, size) {
                payload = Some(Region::new(start, size).ok_or(DtError::BadProperty(dt::KERNEL_SIZE))?);
            }
        } else if node.name() == "reserved-memory" {
            for child in node.children().filter(|c| c.is_compatible(BOUNCE_POOL_COMPATIBLE)) {
                pools.extend(regs(child, "restricted-dma-pool reg")?);
            }
        } else if node.name() == "chosen" {
            if let Some(args) = node.property(dt::BOOTARGS) {
                bootargs = args.value_as::<&str>().map_err(|_| DtError::BadBootargs)?;
            }
            initrd_start = u64_prop(&node, dt::INITRD_START)?;
            initrd_end = u64_prop(&node, dt::INITRD_END)?;
        } else if node.name() == "avf" {
            for untrusted in node.children().filter(|c| c.name() == dt::AVF_UNTRUSTED) {
                if let Some(id) = untrusted.property(dt::INSTANCE_ID) {
                    let id: &[u8] = id.value_as().map_err(|_| DtError::BadProperty(dt::INSTANCE_ID))?;
                    if id.is_empty() || id.len() > MAX_INSTANCE_ID {
                        return Err(DtError::BadProperty(dt::INSTANCE_ID));
                    }
                    instance_id = Some(id);
                }
                defer_rollback_protection |= untrusted.property(dt::DEFER_ROLLBACK_PROTECTION).is_some();
            }
        }
    }
    // Every CPU's MPIDR affinity is its index, as the platform numbers its vCPUs.
    cpus.sort_unstable();
    if cpus.is_empty() || cpus.iter().enumerate().any(|(i, &mpidr)| mpidr != i as u64) {
        return Err(DtError::BadCpus(cpus.len() as u32));
    }
    let cpu_count = cpus.len() as u32;
    let gic = match gic {
        None => false,
        Some(regs) if regs == [limits.gicd, redistributors(cpu_count)] => true,
        Some(_) => return Err(DtError::BadGic),
    };
    let [memory] = memory[..] else {
        return Err(DtError::Memory);
    };
    if !limits.ram_window.contains(&memory) || memory.overlaps(&limits.pvmfw) || !memory.contains(&limits.dt_area) {
        return Err(DtError::MemoryOutsideLimits(memory));
    }
    let console = console.ok_or(DtError::NoConsole)?;
    let payload = payload.ok_or(DtError::NoPayload)?;
    if payload.size() == 0 || !memory.contains(&payload) || payload.overlaps(&limits.dt_area) {
        return Err(DtError::PayloadOutsideRam(payload));
    }
    let ramdisk = match (initrd_start, initrd_end) {
        (None, None) => None,
        (Some(start), Some(end)) => {
            let ramdisk = Region { start, end };
            let placed = start < end && memory.contains(&ramdisk);
            if !placed || ramdisk.overlaps(&limits.dt_area) || ramdisk.overlaps(&payload) {
                return Err(DtError::RamdiskOutsideRam(ramdisk));
            }
            Some(ramdisk)
        }
        (Some(_), None) => return Err(DtError::BadProperty(dt::INITRD_END)),
        (None, Some(_)) => return Err(DtError::BadProperty(dt::INITRD_START)),
    };
    if bootargs.len() > MAX_BOOTARGS || !bootargs.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(DtError::BadBootargs);
    }
    let bounce_pool = match pools[..] {
        [] => None,
        [pool] => {
            let aligned = pool.start.is_multiple_of(4096) && pool.size().is_multiple_of(4096) && pool.size() > 0;
            let over = |other: Option<Region>| other.is_some_and(|r| pool.overlaps(&r));
            if !aligned || !memory.contains(&pool) || over(Some(limits.dt_area)) || over(Some(payload)) || over(ramdisk)
            {
                return Err(DtError::BadBouncePool(pool));
            }
            Some(pool)
        }
        [first, ..] => return Err(DtError::BadBouncePool(first)),
    };
    Ok(HostConfig {
        memory,
        console,
        virtio,
        payload,
        ramdisk,
        bootargs,
        bounce_pool,
        gic,
        cpus: cpu_count,
        instance_id,
        defer_rollback_protection,
    })
}

#[cfg(test)]
pub(crate) mod tests;
