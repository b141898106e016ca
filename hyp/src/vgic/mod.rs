//! The guest's virtual GICv3: the distributor and the one redistributor it sees are
//! emulated here as register files (a guest's accesses to them trap to hyp, as under
//! pKVM, whose vGIC lives at EL2 and needs no MMIO guard); its CPU interface is the
//! hardware's virtual one (ICV_*), fed through the list registers ([`list_register`]).
//!
//! The model holds what a guest configures (groups, enables, priorities, trigger modes,
//! routes) and the interrupts that are pending in software: SGIs the guest sends itself
//! ([`sgi`]) and those it pends by writing ISPENDR. Interrupts of real sources (the
//! virtual timer, the console, the virtio transports) are forwarded by the firmware:
//! their physical enable follows the virtual one ([`Vgic::enabled`]), and when one
//! fires it goes to a list register with the hardware bit, so that the guest's
//! deactivation deactivates the physical interrupt as well.
//!
//! Each vCPU has its own model ([`Vgic::for_vcpu`]: its redistributor names its
//! affinity); the firmware keeps the distributor's registers alike in all. The guest
//! sees security disabled (GICD_CTLR.DS), affinity
//! routing always on, no LPIs, and [`INTIDS`] interrupt IDs. Reserved and unmodelled
//! locations read as zero and ignore writes of any width some GIC register is
//! accessed with (1, 4 or 8 bytes, naturally aligned); a register the model keeps
//! takes only the widths the architecture gives it.
//!
//! The pending and active state of an interrupt already handed to a list register is
//! the list register's: [`delivery`] reads and changes the two together.

pub mod delivery;
pub mod forwarded;
pub mod forwarding;
pub mod list_register;
pub mod sgi;
pub mod vm_interrupts;

use core::ops::Range;

/// Interrupt IDs the guest's distributor implements: SGIs, PPIs and 64 SPIs (QEMU's
/// console is SPI 1 and its virtio-mmio transports SPIs 16..=47).
pub const INTIDS: usize = 96;
/// 32-bit words of one bit per INTID.
pub const WORDS: usize = INTIDS / 32;

pub use pvmkit_abi::gic::FIRST_SPI;

/// Which register frame of the GIC an access falls in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// GICD.
    Distributor,
    /// GICR: the control frame, then the SGI/PPI frame at [`SGI_FRAME`].
    Redistributor,
}

/// The SGI/PPI frame's offset within the redistributor.
pub const SGI_FRAME: u64 = pvmkit_abi::gic::GICR_SGI_FRAME;

/// An access the GIC does not take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadAccess {
    /// The offset within its frame.
    pub offset: u64,
    /// The access width in bytes.
    pub width: u8,
}

/// What a write changed that the firmware must act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing outside the model.
    None,
    /// Interrupt enables (or the distributor's group enables) changed: the physical
    /// enables of forwarded interrupts must follow.
    EnablesChanged,
    /// Interrupts became pending in software: they go to list registers.
    Pended,
}

/// The registers that set or clear an interrupt's pending or active state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateRegister {
    /// ISPENDR.
    SetPending,
    /// ICPENDR.
    ClearPending,
    /// ISACTIVER.
    SetActive,
    /// ICACTIVER.
    ClearActive,
}

/// An interrupt ready for a list register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deliverable {
    /// Its INTID.
    pub intid: u32,
    /// Group 1 (else group 0).
    pub group1: bool,
    /// Its priority.
    pub priority: u8,
}

use pvmkit_abi::gic::{
    CTLR_ARE, CTLR_DS, CTLR_ENABLE_GRP0, CTLR_ENABLE_GRP1, GICD_CTLR, GICD_ICACTIVER, GICD_ICENABLER, GICD_ICFGR,
    GICD_ICPENDR, GICD_IGROUPR, GICD_IIDR, GICD_IPRIORITYR, GICD_IROUTER, GICD_ISACTIVER, GICD_ISENABLER, GICD_ISPENDR,
    GICD_TYPER, GICR_IIDR, GICR_PROPBASER, GICR_TYPER, GICR_WAKER, PIDR2, WAKER_CHILDREN_ASLEEP, WAKER_PROCESSOR_SLEEP,
};

/// PIDR2 of a GICv3 (ArchRev 3).
const PIDR2_GICV3: u64 = 0x3b;
/// GICD_TYPER: ITLinesNumber = INTIDS/32 - 1, IDbits = 9 (10-bit INTIDs), No1N.
const TYPER: u32 = ((WORDS as u32) - 1) | (9 << 19) | (1 << 25);
/// GICD_IIDR and GICR_IIDR: product 'p' (pvmkit), implementer 0, revision 0.
const IIDR: u32 = 0x7000_0000;

/// GICR_TYPER.Last: the last redistributor of the region.
const GICR_TYPER_LAST: u64 = 1 << 4;
/// GICR_ICFGR0: SGIs are edge-triggered, read-only.
const ICFGR0_SGIS: u32 = 0xaaaa_aaaa;
/// IROUTER: Interrupt_Routing_Mode and the four affinity fields.
const IROUTER_MASK: u64 = 0xff_0000_0000 | (1 << 31) | 0xff_ffff;

/// The virtual distributor and redistributor.
#[derive(Clone, Debug)]
pub struct Vgic {
    /// The vCPU whose redistributor this is (GICR_TYPER's affinity and number).
    cpu: u8,
    /// Whether its redistributor is the region's last.
    last: bool,
    ctlr: u32,
    sleeping: bool,
    group: [u32; WORDS],
    enabled: [u32; WORDS],
    pending: [u32; WORDS],
    priority: [u8; INTIDS],
    config: [u32; WORDS * 2],
    route: [u64; INTIDS - FIRST_SPI as usize],
}

impl Default for Vgic {
    fn default() -> Self {
        Self::new()
    }
}

fn bit(intid: u32) -> (usize, u32) {
    ((intid / 32) as usize, 1 << (intid % 32))
}

impl Vgic {
    /// A GIC out of reset: everything disabled, group 0, priority 0, the redistributor
    /// asleep.
    pub const fn new() -> Self {
        Self::for_vcpu(0, 1)
    }

    /// [`Vgic::new`] for vCPU `cpu` (MPIDR affinity `cpu`) of `count`: its
    /// redistributor says so in GICR_TYPER.
    pub const fn for_vcpu(cpu: usize, count: usize) -> Self {
        Self {
            cpu: cpu as u8,
            last: cpu + 1 >= count,
            ctlr: 0,
            sleeping: true,
            group: [0; WORDS],
            enabled: [0; WORDS],
            pending: [0; WORDS],
            priority: [0; INTIDS],
            config: [0; WORDS * 2],
            route: [0; INTIDS - FIRST_SPI as usize],
        }
    }

    /// Whether `intid` is enabled and its group is too: the condition under which a
    /// forwarded interrupt's physical source may signal.
    pub fn enabled(&self, intid: u32) -> bool {
        if intid as usize >= INTIDS {
            return false;
        }
        let (word, mask) = bit(intid);
        let group_enable = if self.group[word] & mask != 0 { CTLR_ENABLE_GRP1 } else { CTLR_ENABLE_GRP0 };
        self.enabled[word] & mask != 0 && self.ctlr & group_enable != 0
    }

    /// Whether the guest enabled any interrupt at all (a guest that did not cannot be
    /// woken from WFI by one).
    pub fn any_enabled(&self) -> bool {
        (0..INTIDS as u32).any(|i| self.enabled(i))
    }

    /// `intid` as a list register needs it, if it may be delivered now.
    pub fn deliverable(&self, intid: u32) -> Option<Deliverable> {
        self.enabled(intid).then(|| {
            let (word, mask) = bit(intid);
            Deliverable { intid, group1: self.group[word] & mask != 0, priority: self.priority[intid as usize] }
        })
    }

    /// Whether any interrupt is pending in software.
    pub fn any_pending(&self) -> bool {
        self.pending.iter().any(|&w| w != 0)
    }

    /// Marks `intid` pending in software (an SGI, or an ISPENDR write).
    pub fn pend(&mut self, intid: u32) {
        if (intid as usize) < INTIDS {
            let (word, mask) = bit(intid);
            self.pending[word] |= mask;
        }
    }

    /// Whether `intid` is pending in software.
    pub fn is_pending(&self, intid: u32) -> bool {
        (intid as usize) < INTIDS && {
            let (word, mask) = bit(intid);
            self.pending[word] & mask != 0
        }
    }

    /// Whether `intid` is in group 0 (an SGI that ICC_SGI0R and ICC_ASGI1R may send).
    pub fn is_group0(&self, intid: u32) -> bool {
        (intid as usize) < INTIDS && {
            let (word, mask) = bit(intid);
            self.group[word] & mask == 0
        }
    }

    /// The software-pending interrupt to deliver next among those `free` says have no
    /// list register yet: the highest priority (the lowest value), then the lowest
    /// INTID, as a GIC signals them.
    pub fn next_deliverable(&self, free: impl Fn(u32) -> bool) -> Option<Deliverable> {
        (0..INTIDS as u32)
            .filter(|&i| self.is_pending(i) && free(i))
            .filter_map(|i| self.deliverable(i))
            .min_by_key(|d| (d.priority, d.intid))
    }

    /// [`Self::next_deliverable`], taken off the pending set (the list register's from
    /// now on).
    pub fn take_deliverable(&mut self, free: impl Fn(u32) -> bool) -> Option<Deliverable> {
        let d = self.next_deliverable(free)?;
        let (word, mask) = bit(d.intid);
        self.pending[word] &= !mask;
        Some(d)
    }

    /// The state register and its word (of one bit per INTID, from INTID 0) that
    /// `offset` in `frame` addresses, if it is one the model implements.
    pub fn state_register(&self, frame: Frame, offset: u64) -> Option<(StateRegister, usize)> {
        let (offset, first_word) = match frame {
            Frame::Redistributor => (offset.checked_sub(SGI_FRAME)?, 0),
            Frame::Distributor => (offset, 1),
        };
        let register = match self.bank(offset)? {
            (GICD_ISPENDR, word) => (StateRegister::SetPending, word),
            (GICD_ICPENDR, word) => (StateRegister::ClearPending, word),
            (GICD_ISACTIVER, word) => (StateRegister::SetActive, word),
            (GICD_ICACTIVER, word) => (StateRegister::ClearActive, word),
            _ => return None,
        };
        let words = if frame == Frame::Redistributor { 0..1 } else { first_word..WORDS };
        words.contains(&register.1).then_some(register)
    }

    /// A guest load of `width` bytes at `offset` in `frame`, as if no list register held
    /// anything (see [`delivery::read`]).
    pub fn read(&self, frame: Frame, offset: u64, width: u8) -> Result<u64, BadAccess> {
        let bad = BadAccess { offset, width };
        if !self.implements(frame, offset) {
            return reserved_width(offset, width).then_some(0).ok_or(bad);
        }
        match frame {
            Frame::Distributor => self.read_distributor(offset, width).ok_or(bad),
            Frame::Redistributor if offset >= SGI_FRAME => self.read_sgi_frame(offset - SGI_FRAME, width).ok_or(bad),
            Frame::Redistributor => self.read_redistributor(offset, width).ok_or(bad),
        }
    }

    /// A guest store of `width` bytes of `value` at `offset` in `frame`, as if no list
    /// register held anything (see [`delivery::write`]).
    pub fn write(&mut self, frame: Frame, offset: u64, width: u8, value: u64) -> Result<Effect, BadAccess> {
        let bad = BadAccess { offset, width };
        if !self.implements(frame, offset) {
            return reserved_width(offset, width).then_some(Effect::None).ok_or(bad);
        }
        match frame {
            Frame::Distributor => self.write_distributor(offset, width, value).ok_or(bad),
            Frame::Redistributor if offset >= SGI_FRAME => {
                self.write_sgi_frame(offset - SGI_FRAME, width, value).ok_or(bad)
            }
            Frame::Redistributor => self.write_redistributor(offset, width, value).ok_or(bad),
        }
    }

    fn read_distributor(&self, offset: u64, width: u8) -> Option<u64> {
        if let Some(intid) = irouter_intid(offset) {
            let route = intid.checked_sub(FIRST_SPI as usize).and_then(|i| self.route.get(i));
            return half_or_whole(route.copied().unwrap_or(0), offset, width);
        }
        if (GICD_IPRIORITYR..GICD_IPRIORITYR + 1020).contains(&offset) {
            // SGI and PPI priorities live in the redistributor.
            return self.read_priority(offset - GICD_IPRIORITYR, width, FIRST_SPI as usize..INTIDS);
        }
        if width != 4 {
            return None;
        }
        let value = match offset {
            GICD_CTLR => self.ctlr | CTLR_ARE | CTLR_DS,
            GICD_TYPER => TYPER,
            GICD_IIDR => IIDR,
            PIDR2 => PIDR2_GICV3 as u32,
            _ => match self.bank(offset) {
                // Word 0 (SGIs and PPIs) is the redistributor's with affinity routing.
                Some((_, 0)) => 0,
                Some((base, word)) => self.read_bank(base, word),
                None => match icfgr_index(offset) {
                    Some(index) if index >= 2 => self.config[index],
                    _ => 0,
                },
            },
        };
        Some(value as u64)
    }

    fn write_distributor(&mut self, offset: u64, width: u8, value: u64) -> Option<Effect> {
        if let Some(intid) = irouter_intid(offset) {
            let merged = merge_half_or_whole(0, offset, width, value)?;
            if let Some(route) = intid.checked_sub(FIRST_SPI as usize).and_then(|i| self.route.get_mut(i)) {
                *route = merge_half_or_whole(*route, offset, width, value).unwrap_or(merged) & IROUTER_MASK;
            }
            return Some(Effect::None);
        }
        if (GICD_IPRIORITYR..GICD_IPRIORITYR + 1020).contains(&offset) {
            return self.write_priority(offset - GICD_IPRIORITYR, width, value, FIRST_SPI as usize..INTIDS);
        }
        if width != 4 {
            return None;
        }
        let value = value as u32;
        Some(match offset {
            GICD_CTLR => {
                self.ctlr = value & (CTLR_ENABLE_GRP0 | CTLR_ENABLE_GRP1);
                Effect::EnablesChanged
            }
            _ => match self.bank(offset) {
                Some((_, 0)) => Effect::None,
                Some((base, word)) => self.write_bank(base, word, value),
                None => {
                    if let Some(index) = icfgr_index(offset).filter(|&i| i >= 2) {
                        // Bit 1 of each field says edge; bit 0 is reserved.
                        self.config[index] = value & 0xaaaa_aaaa;
                    }
                    Effect::None
                }
            },
        })
    }

    /// GICR_TYPER: Affinity_Value (bits 63:32) and Processor_Number (23:8) the vCPU's,
    /// Last for the region's last.
    fn gicr_typer(&self) -> u64 {
        let last = if self.last { GICR_TYPER_LAST } else { 0 };
        (self.cpu as u64) << 32 | (self.cpu as u64) << 8 | last
    }

    fn read_redistributor(&self, offset: u64, width: u8) -> Option<u64> {
        match (offset, width) {
            (GICR_TYPER, 8) => Some(self.gicr_typer()),
            (GICR_TYPER, 4) => Some(self.gicr_typer() & 0xffff_ffff),
            (o, 4) if o == GICR_TYPER + 4 => Some(self.gicr_typer() >> 32),
            (_, 4) => Some(match offset {
                GICR_IIDR => IIDR as u64,
                GICR_WAKER if self.sleeping => (WAKER_PROCESSOR_SLEEP | WAKER_CHILDREN_ASLEEP) as u64,
                PIDR2 => PIDR2_GICV3,
                _ => 0,
            }),
            // PROPBASER and PENDBASER are 64-bit registers; without LPIs they read as 0.
            (_, 8) => Some(0),
            _ => None,
        }
    }

    fn write_redistributor(&mut self, offset: u64, width: u8, value: u64) -> Option<Effect> {
        match (offset, width) {
            (GICR_WAKER, 4) => {
                self.sleeping = value as u32 & WAKER_PROCESSOR_SLEEP != 0;
                Some(Effect::None)
            }
            (_, 4) | (_, 8) => Some(Effect::None),
            _ => None,
        }
    }

    fn read_sgi_frame(&self, offset: u64, width: u8) -> Option<u64> {
        if (GICD_IPRIORITYR..GICD_IPRIORITYR + FIRST_SPI as u64).contains(&offset) {
            return self.read_priority(offset - GICD_IPRIORITYR, width, 0..FIRST_SPI as usize);
        }
        if width != 4 {
            return None;
        }
        let value = match offset {
            o if o == GICD_ICFGR => ICFGR0_SGIS,
            o if o == GICD_ICFGR + 4 => self.config[1],
            _ => match self.bank(offset) {
                Some((base, 0)) => self.read_bank(base, 0),
                _ => 0,
            },
        };
        Some(value as u64)
    }

    fn write_sgi_frame(&mut self, offset: u64, width: u8, value: u64) -> Option<Effect> {
        if (GICD_IPRIORITYR..GICD_IPRIORITYR + FIRST_SPI as u64).contains(&offset) {
            return self.write_priority(offset - GICD_IPRIORITYR, width, value, 0..FIRST_SPI as usize);
        }
        if width != 4 {
            return None;
        }
        Some(match offset {
            o if o == GICD_ICFGR + 4 => {
                self.config[1] = value as u32 & 0xaaaa_aaaa;
                Effect::None
            }
            _ => match self.bank(offset) {
                Some((base, 0)) => self.write_bank(base, 0, value as u32),
                _ => Effect::None,
            },
        })
    }

    /// Whether `offset` in `frame` holds a register the model keeps or answers with a
    /// fixed value (everything else is reserved: [`reserved_width`]).
    fn implements(&self, frame: Frame, offset: u64) -> bool {
        let within = |base: u64, len: u64| (base..base + len).contains(&offset);
        match frame {
            Frame::Distributor => {
                matches!(offset, GICD_CTLR | GICD_TYPER | GICD_IIDR | PIDR2)
                    // Word 0 of each bank and of ICFGR's pair is the redistributor's.
                    || self.bank(offset).is_some_and(|(_, word)| word > 0)
                    || icfgr_index(offset).is_some_and(|i| i >= 2)
                    || within(GICD_IPRIORITYR + FIRST_SPI as u64, INTIDS as u64 - FIRST_SPI as u64)
                    || irouter_intid(offset).is_some_and(|i| (FIRST_SPI as usize..INTIDS).contains(&i))
            }
            Frame::Redistributor if offset >= SGI_FRAME => {
                let offset = offset - SGI_FRAME;
                self.bank(offset).is_some_and(|(_, word)| word == 0)
                    || (GICD_ICFGR..GICD_ICFGR + 8).contains(&offset)
                    || (GICD_IPRIORITYR..GICD_IPRIORITYR + FIRST_SPI as u64).contains(&offset)
            }
            Frame::Redistributor => {
                matches!(offset, GICD_CTLR | GICR_IIDR | GICR_WAKER | PIDR2)
                    || within(GICR_TYPER, 8)
                    || within(GICR_PROPBASER, 16)
            }
        }
    }

    /// For the one-bit-per-interrupt registers: which one (by its base offset) and
    /// which word of it.
    fn bank(&self, offset: u64) -> Option<(u64, usize)> {
        [GICD_IGROUPR, GICD_ISENABLER, GICD_ICENABLER, GICD_ISPENDR, GICD_ICPENDR, GICD_ISACTIVER, GICD_ICACTIVER]
            .into_iter()
            .find(|&base| (base..base + 4 * WORDS as u64).contains(&offset))
            .map(|base| (base, ((offset - base) / 4) as usize))
    }

    fn read_bank(&self, base: u64, word: usize) -> u32 {
        match base {
            GICD_IGROUPR => self.group[word],
            GICD_ISENABLER | GICD_ICENABLER => self.enabled[word],
            GICD_ISPENDR | GICD_ICPENDR => self.pending[word],
            // Active state lives in the list registers, which the model does not read.
            _ => 0,
        }
    }

    fn write_bank(&mut self, base: u64, word: usize, value: u32) -> Effect {
        match base {
            GICD_IGROUPR => {
                self.group[word] = value;
                Effect::EnablesChanged
            }
            GICD_ISENABLER => {
                self.enabled[word] |= value;
                Effect::EnablesChanged
            }
            GICD_ICENABLER => {
                self.enabled[word] &= !value;
                Effect::EnablesChanged
            }
            GICD_ISPENDR if value != 0 => {
                self.pending[word] |= value;
                Effect::Pended
            }
            GICD_ICPENDR => {
                self.pending[word] &= !value;
                Effect::None
            }
            _ => Effect::None,
        }
    }

    /// IPRIORITYR: a byte per INTID from `first`; those outside `kept` (another
    /// frame's, or unimplemented) read as zero and ignore writes.
    fn read_priority(&self, first: u64, width: u8, kept: Range<usize>) -> Option<u64> {
        let first = first as usize;
        if !(width == 1 || width == 4) || !first.is_multiple_of(width as usize) {
            return None;
        }
        Some((first..first + width as usize).rev().fold(0u64, |acc, intid| {
            let byte = if kept.contains(&intid) { self.priority[intid] } else { 0 };
            acc << 8 | byte as u64
        }))
    }

    fn write_priority(&mut self, first: u64, width: u8, value: u64, kept: Range<usize>) -> Option<Effect> {
        let first = first as usize;
        if !(width == 1 || width == 4) || !first.is_multiple_of(width as usize) {
            return None;
        }
        for (i, intid) in (first..first + width as usize).enumerate() {
            if kept.contains(&intid) {
                self.priority[intid] = (value >> (8 * i)) as u8;
            }
        }
        Some(Effect::None)
    }
}

/// Whether a reserved location takes an access of `width` bytes at `offset`: any width
/// a GIC register has (bytes for the priorities, words, doublewords for the routes),
/// naturally aligned.
fn reserved_width(offset: u64, width: u8) -> bool {
    matches!(width, 1 | 4 | 8) && offset.is_multiple_of(width as u64)
}

/// The INTID an IROUTER offset routes (only SPIs have one: the first 32 are reserved).
fn irouter_intid(offset: u64) -> Option<usize> {
    (GICD_IROUTER..GICD_IROUTER + 8 * 1020).contains(&offset).then(|| ((offset - GICD_IROUTER) / 8) as usize)
}

/// The word of GICD_ICFGR at `offset`, if it is one the model keeps.
fn icfgr_index(offset: u64) -> Option<usize> {
    (GICD_ICFGR..GICD_ICFGR + 8 * WORDS as u64).contains(&offset).then(|| ((offset - GICD_ICFGR) / 4) as usize)
}

/// A 64-bit register read whole, or either half.
fn half_or_whole(value: u64, offset: u64, width: u8) -> Option<u64> {
    match (width, offset % 8) {
        (8, 0) => Some(value),
        (4, 0) => Some(value & 0xffff_ffff),
        (4, 4) => Some(value >> 32),
        _ => None,
    }
}

/// A 64-bit register written whole, or either half.
fn merge_half_or_whole(old: u64, offset: u64, width: u8, value: u64) -> Option<u64> {
    match (width, offset % 8) {
        (8, 0) => Some(value),
        (4, 0) => Some((old & !0xffff_ffff) | (value & 0xffff_ffff)),
        (4, 4) => Some((old & 0xffff_ffff) | (value << 32)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
