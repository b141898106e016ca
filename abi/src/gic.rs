//! The GICv3's memory-mapped registers, as the architecture places them: the offsets
//! within the distributor (GICD) and the redistributor's two frames (GICR: control,
//! then SGI/PPI at [`GICR_SGI_FRAME`]), and the bits pvmkit's parts use. hyp emulates
//! them for its guest and programs them on QEMU's GIC; guest-lib programs them from
//! the guest.

/// The first PPI's INTID (PPIs are 16..32).
pub const FIRST_PPI: u32 = 16;
/// The first SPI's INTID.
pub const FIRST_SPI: u32 = 32;

/// The INTID of PPI `ppi` (as a DT's interrupt specifier numbers it).
pub const fn ppi_intid(ppi: u32) -> u32 {
    FIRST_PPI + ppi
}

/// The INTID of SPI `spi` (as a DT's interrupt specifier numbers it).
pub const fn spi_intid(spi: u32) -> u32 {
    FIRST_SPI + spi
}

/// GICD_CTLR (and GICR_CTLR at the same offset of its frame).
pub const GICD_CTLR: u64 = 0x0000;
/// GICD_TYPER.
pub const GICD_TYPER: u64 = 0x0004;
/// GICD_IIDR.
pub const GICD_IIDR: u64 = 0x0008;
/// `GICD_IGROUPR<n>` (GICR_IGROUPR0 in the SGI frame): one bit per INTID, 1 = group 1.
pub const GICD_IGROUPR: u64 = 0x0080;
/// `GICD_ISENABLER<n>`: write 1 to enable.
pub const GICD_ISENABLER: u64 = 0x0100;
/// `GICD_ICENABLER<n>`: write 1 to disable.
pub const GICD_ICENABLER: u64 = 0x0180;
/// `GICD_ISPENDR<n>`: pending state (a level interrupt's includes its line).
pub const GICD_ISPENDR: u64 = 0x0200;
/// `GICD_ICPENDR<n>`.
pub const GICD_ICPENDR: u64 = 0x0280;
/// `GICD_ISACTIVER<n>`.
pub const GICD_ISACTIVER: u64 = 0x0300;
/// `GICD_ICACTIVER<n>`.
pub const GICD_ICACTIVER: u64 = 0x0380;
/// `GICD_IPRIORITYR<n>`: a byte per INTID.
pub const GICD_IPRIORITYR: u64 = 0x0400;
/// `GICD_ICFGR<n>`: two bits per INTID (bit 1: edge-triggered).
pub const GICD_ICFGR: u64 = 0x0c00;
/// `GICD_IROUTER<n>`: 64 bits per SPI (affinity, or any PE).
pub const GICD_IROUTER: u64 = 0x6000;
/// GICD_PIDR2 and GICR_PIDR2: the architecture revision in bits 7:4.
pub const PIDR2: u64 = 0xffe8;

/// GICD_CTLR.EnableGrp0.
pub const CTLR_ENABLE_GRP0: u32 = 1 << 0;
/// GICD_CTLR.EnableGrp1 (with a single security state).
pub const CTLR_ENABLE_GRP1: u32 = 1 << 1;
/// GICD_CTLR.ARE: affinity routing.
pub const CTLR_ARE: u32 = 1 << 4;
/// GICD_CTLR.DS: security disabled.
pub const CTLR_DS: u32 = 1 << 6;

/// GICR_IIDR.
pub const GICR_IIDR: u64 = 0x0004;
/// GICR_TYPER (64 bits).
pub const GICR_TYPER: u64 = 0x0008;
/// GICR_WAKER.
pub const GICR_WAKER: u64 = 0x0014;
/// GICR_PROPBASER (64 bits; GICR_PENDBASER follows at 0x78). Without LPIs both read 0.
pub const GICR_PROPBASER: u64 = 0x0070;
/// GICR_WAKER.ProcessorSleep.
pub const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
/// GICR_WAKER.ChildrenAsleep.
pub const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// The redistributor's SGI/PPI frame, after its control frame; its registers sit at the
/// distributor's offsets.
pub const GICR_SGI_FRAME: u64 = 0x1_0000;
