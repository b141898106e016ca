//! The GICv3 as hyp drives it: its bring-up, the physical side of every interrupt hyp
//! takes (its tick's and those it forwards: enable, acknowledge, priority drop,
//! deactivate) and the virtual CPU interface's control and list registers
//! (ICH_*_EL2). hyp runs with EOImode 1, so that dropping an interrupt's priority and
//! deactivating it are two steps: a forwarded interrupt stays active until the guest
//! deactivates its virtual twin.
//!
//! Physical IRQs are routed to EL2 (HCR_EL2.IMO) and taken there whatever the guest's
//! own PSTATE.I; hyp itself runs with interrupts masked.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use pvmkit_abi::gic::{
    CTLR_ARE, CTLR_ENABLE_GRP1, GICD_CTLR, GICD_ICENABLER, GICD_IGROUPR, GICD_IPRIORITYR, GICD_IROUTER, GICD_ISENABLER,
    GICD_ISPENDR, GICR_SGI_FRAME, GICR_WAKER, WAKER_CHILDREN_ASLEEP, WAKER_PROCESSOR_SLEEP,
};

static GICD: AtomicU64 = AtomicU64::new(0);
static GICR: AtomicU64 = AtomicU64::new(0);
/// ICH_VTR_EL2.ListRegs + 1, read once at [`init`] (0 before: no ICH_* access then).
static LIST_REGISTERS: AtomicUsize = AtomicUsize::new(0);

/// The priority hyp gives every interrupt it takes (above its priority mask).
const PRIORITY: u8 = 0x80;
/// ICC_PMR_EL1 at EL2: priorities below (numerically above) this are masked.
const PRIORITY_MASK: u64 = 0xf0;

/// ICC_SRE_EL2: SRE and Enable (EL1 may use its own ICC_SRE_EL1 without trapping).
const SRE_EL2_SRE_ENABLE: u64 = (1 << 0) | (1 << 3);
/// ICC_CTLR_EL1.EOImode.
const CTLR_EOIMODE: u64 = 1 << 1;
/// ICH_HCR_EL2.En: the virtual CPU interface is on.
const ICH_HCR_EN: u64 = 1;

/// One CPU's redistributor frames (RD and SGI): CPU `i`'s follow CPU 0's at `i` times
/// this, as QEMU `virt` lays them out.
const GICR_STRIDE: u64 = pvmkit_abi::memory_map::GICR_SIZE;
/// The SGI one CPU of hyp's sends another to make it look at its vCPU's interrupts
/// (hyp forwards no physical SGI to a guest: every one it takes is such a kick).
use hyp::vgic::vm_interrupts::KICK_SGI;

/// This CPU's redistributor.
fn redistributor() -> u64 {
    GICR.load(Ordering::Relaxed) + super::this_cpu() as u64 * GICR_STRIDE
}

/// Brings the platform's GIC up for hyp (affinity routing and group 1 on) on the boot
/// CPU, then the CPU's own part ([`init_cpu`]).
pub fn init(gicd: u64, gicr: u64) {
    GICD.store(gicd, Ordering::Relaxed);
    GICR.store(gicr, Ordering::Relaxed);
    write32(gicd + GICD_CTLR, read32(gicd + GICD_CTLR) | CTLR_ARE | CTLR_ENABLE_GRP1);
    init_cpu();
}

/// This CPU's part of the GIC: its redistributor awake, the CPU interface through
/// system registers with EOImode 1, the kick SGI enabled, the virtual CPU interface on.
pub fn init_cpu() {
    let gicr = redistributor();
    write32(gicr + GICR_WAKER, read32(gicr + GICR_WAKER) & !WAKER_PROCESSOR_SLEEP);
    while read32(gicr + GICR_WAKER) & WAKER_CHILDREN_ASLEEP != 0 {}
    // SAFETY: GIC control registers of EL2; they change how interrupts are delivered
    // and ended, not memory.
    unsafe {
        asm!(
            "mrs {t}, icc_sre_el2",
            "orr {t}, {t}, {sre}",
            "msr icc_sre_el2, {t}",
            "isb",
            "msr icc_pmr_el1, {pmr}",
            "msr icc_bpr1_el1, xzr",
            "msr icc_igrpen1_el1, {one}",
            "mrs {t}, icc_ctlr_el1",
            "orr {t}, {t}, {eoimode}",
            "msr icc_ctlr_el1, {t}",
            "msr ich_vmcr_el2, xzr",
            "msr ich_hcr_el2, {en}",
            "isb",
            t = out(reg) _,
            pmr = in(reg) PRIORITY_MASK,
            one = in(reg) 1u64,
            sre = in(reg) SRE_EL2_SRE_ENABLE,
            eoimode = in(reg) CTLR_EOIMODE,
            en = in(reg) ICH_HCR_EN,
            options(nostack),
        );
    }
    let vtr: u64;
    // SAFETY: an ID-like register of the virtual CPU interface.
    unsafe { asm!("mrs {}, ich_vtr_el2", out(reg) vtr, options(nomem, nostack)) };
    LIST_REGISTERS.store((vtr & 0x1f) as usize + 1, Ordering::Relaxed);
    for n in 0..list_registers() {
        write_list_register(n, 0);
    }
    set_enabled(KICK_SGI, true);
}

/// Sends [`KICK_SGI`] to physical CPU `cpu` (Aff0 `cpu`, cluster 0).
pub fn kick(cpu: usize) {
    let value = ((KICK_SGI as u64) << 24) | (1u64 << (cpu % 16)) | (((cpu / 16) as u64) << 44);
    // SAFETY: generating an SGI has no effect on memory.
    unsafe { asm!("msr icc_sgi1r_el1, {}", "isb", in(reg) value, options(nostack)) };
}

/// The frame whose registers configure `intid` (the redistributor's SGI/PPI frame for
/// the first 32, else the distributor), once the GIC is up.
fn frame(intid: u32) -> Option<u64> {
    let gicd = GICD.load(Ordering::Relaxed);
    (gicd != 0).then_some(if intid < 32 { redistributor() + GICR_SGI_FRAME } else { gicd })
}

fn write8(addr: u64, value: u8) {
    // SAFETY: a byte-accessible GIC register (IPRIORITYR) of the platform's GIC.
    unsafe { (addr as *mut u8).write_volatile(value) }
}

fn write32(addr: u64, value: u32) {
    // SAFETY: a GIC register of the platform's GIC (from its DTB).
    unsafe { (addr as *mut u32).write_volatile(value) }
}

fn read32(addr: u64) -> u32 {
    // SAFETY: as above.
    unsafe { (addr as *const u32).read_volatile() }
}

/// Enables or disables the physical interrupt `intid` (hyp's tick, or a PPI or SPI it
/// forwards), as group 1 at [`PRIORITY`], routed to this CPU.
pub fn set_enabled(intid: u32, enabled: bool) {
    let Some(frame) = frame(intid) else { return };
    let word = 4 * (intid as u64 / 32);
    let bit = 1 << (intid % 32);
    if enabled {
        write32(frame + GICD_IGROUPR + word, read32(frame + GICD_IGROUPR + word) | bit);
        write8(frame + GICD_IPRIORITYR + intid as u64, PRIORITY);
        if intid >= 32 {
            // SAFETY: IROUTER of an SPI (the frame is the distributor's): affinity
            // 0.0.0.0, the only CPU.
            unsafe { ((frame + GICD_IROUTER + 8 * intid as u64) as *mut u64).write_volatile(0) };
        }
        write32(frame + GICD_ISENABLER + word, bit);
    } else {
        write32(frame + GICD_ICENABLER + word, bit);
    }
}

/// Whether the physical interrupt `intid` is pending (for a level interrupt: whether
/// its source still asserts it).
pub fn is_pending(intid: u32) -> bool {
    frame(intid).is_some_and(|f| read32(f + GICD_ISPENDR + 4 * (intid as u64 / 32)) & (1 << (intid % 32)) != 0)
}

/// Whether the guest's virtual timer asserts its interrupt: enabled, fired, unmasked
/// (CNTV_CTL_EL0 ENABLE, ISTATUS, not IMASK).
pub fn virtual_timer_asserted() -> bool {
    let ctl: u64;
    // SAFETY: reading the guest's timer control has no effect.
    unsafe { asm!("mrs {}, cntv_ctl_el0", out(reg) ctl, options(nomem, nostack)) };
    ctl & 0b111 == 0b101
}

/// Acknowledges the highest-priority pending interrupt; returns its INTID (1020 and
/// above: none).
pub fn acknowledge() -> u32 {
    let intid: u64;
    // SAFETY: reading IAR acknowledges the interrupt hyp is about to handle.
    unsafe { asm!("mrs {}, icc_iar1_el1", out(reg) intid, options(nostack)) };
    intid as u32
}

/// Drops the running priority of `intid` (with EOImode 1 it stays active).
pub fn drop_priority(intid: u32) {
    // SAFETY: EOIR ends the priority of the interrupt acknowledged above.
    unsafe { asm!("msr icc_eoir1_el1, {}", "isb", in(reg) intid as u64, options(nostack)) };
}

/// Deactivates `intid`: it may signal again.
pub fn deactivate(intid: u32) {
    // SAFETY: DIR deactivates an interrupt hyp acknowledged.
    unsafe { asm!("msr icc_dir_el1, {}", "isb", in(reg) intid as u64, options(nostack)) };
}

/// How many list registers the virtual CPU interface has; none before [`init`] (a
/// platform without a GICv3 has no ICH_* registers at all).
pub fn list_registers() -> usize {
    LIST_REGISTERS.load(Ordering::Relaxed)
}

/// The list registers that hold nothing, one bit each (ICH_ELRSR_EL2).
pub fn empty_list_registers() -> u16 {
    let elrsr: u64;
    // SAFETY: a status register of the virtual CPU interface.
    unsafe { asm!("mrs {}, ich_elrsr_el2", out(reg) elrsr, options(nomem, nostack)) };
    elrsr as u16
}

macro_rules! list_register_access {
    ($n:expr, $value:expr, $($i:literal => $reg:literal),*) => {
        match $n {
            $(
                // SAFETY: a list register of the virtual CPU interface; it changes
                // what the guest's CPU interface presents, not memory.
                $i => unsafe { asm!(concat!("msr ", $reg, ", {}"), in(reg) $value, options(nostack)) },
            )*
            _ => {}
        }
    };
}

macro_rules! list_register_read {
    ($n:expr, $($i:literal => $reg:literal),*) => {
        match $n {
            $(
                // SAFETY: as above; reading has no effect.
                $i => { let v: u64; unsafe { asm!(concat!("mrs {}, ", $reg), out(reg) v, options(nomem, nostack)) }; v }
            )*
            _ => 0,
        }
    };
}

/// Writes list register `n`.
pub fn write_list_register(n: usize, value: u64) {
    list_register_access!(n, value,
        0 => "ich_lr0_el2", 1 => "ich_lr1_el2", 2 => "ich_lr2_el2", 3 => "ich_lr3_el2",
        4 => "ich_lr4_el2", 5 => "ich_lr5_el2", 6 => "ich_lr6_el2", 7 => "ich_lr7_el2",
        8 => "ich_lr8_el2", 9 => "ich_lr9_el2", 10 => "ich_lr10_el2", 11 => "ich_lr11_el2",
        12 => "ich_lr12_el2", 13 => "ich_lr13_el2", 14 => "ich_lr14_el2", 15 => "ich_lr15_el2");
    // SAFETY: a barrier.
    unsafe { asm!("isb", options(nomem, nostack)) };
}

/// Reads list register `n`.
pub fn read_list_register(n: usize) -> u64 {
    list_register_read!(n,
        0 => "ich_lr0_el2", 1 => "ich_lr1_el2", 2 => "ich_lr2_el2", 3 => "ich_lr3_el2",
        4 => "ich_lr4_el2", 5 => "ich_lr5_el2", 6 => "ich_lr6_el2", 7 => "ich_lr7_el2",
        8 => "ich_lr8_el2", 9 => "ich_lr9_el2", 10 => "ich_lr10_el2", 11 => "ich_lr11_el2",
        12 => "ich_lr12_el2", 13 => "ich_lr13_el2", 14 => "ich_lr14_el2", 15 => "ich_lr15_el2")
}

/// Waits until a physical interrupt is pending (hyp keeps them masked: the guest takes
/// its exit for it as soon as it runs again).
pub fn wait_for_interrupt() {
    // SAFETY: waiting has no effect on memory.
    unsafe { asm!("dsb sy", "wfi", options(nomem, nostack)) };
}
