//! hyp's only assembly and system-register access: entry, vectors, guest entry,
//! system registers, the GIC and its virtual CPU interface, TLB maintenance, device
//! accesses and the PSCI call to QEMU.

pub mod gic;
pub mod pmu;
pub mod register_gaps;
pub mod registers;
pub mod tick;

use core::arch::{asm, global_asm};

use hyp::trap::guest_exit::TrapKind;

global_asm!(include_str!("entry.S"));
// The trap kinds the vectors pass to Rust are the library's enum, not bare numbers.
global_asm!(
    include_str!("vectors.S"),
    SYNCHRONOUS = const TrapKind::Synchronous as u64,
    IRQ = const TrapKind::Irq as u64,
    FIQ = const TrapKind::Fiq as u64,
    SERROR = const TrapKind::SError as u64,
    AARCH32 = const TrapKind::AArch32 as u64,
);

/// The guest's general-purpose registers, as the vectors save them.
#[repr(C)]
pub struct GuestRegs {
    /// x0..x30.
    pub x: [u64; 31],
    _pad: u64,
}

impl GuestRegs {
    /// All zero.
    pub const fn zeroed() -> Self {
        Self { x: [0; 31], _pad: 0 }
    }
}

unsafe extern "C" {
    fn enter_guest(regs: *const GuestRegs) -> !;
    fn secondary_entry();
    static __image_start: u8;
    static __image_end: u8;
    static __stack_top: u8;
}

/// Each CPU's EL2 stack (`hyp.ld`).
const STACK_SIZE: u64 = 0x20000;

/// The index of the CPU this runs on (MPIDR Aff0: QEMU `virt` numbers its CPUs so).
pub fn this_cpu() -> usize {
    use aarch64_cpu::registers::{Readable, MPIDR_EL1};
    (MPIDR_EL1.get() & 0xff) as usize
}

/// Starts physical CPU `cpu` (1 to 7) in `secondary_entry` on its own stack, through
/// QEMU's PSCI CPU_ON (SMC at EL2); QEMU's answer (0: started).
pub fn start_cpu(cpu: usize) -> i64 {
    let top = &raw const __stack_top as u64 - cpu as u64 * STACK_SIZE;
    let entry = secondary_entry as *const () as u64;
    let mut x0 = pvmkit_abi::psci::CPU_ON_64 as u64;
    // SAFETY: CPU_ON starts another CPU at `entry`, hyp's own code, on a stack no other
    // CPU uses; the call clobbers only the declared registers.
    unsafe {
        asm!("smc #0", inout("x0") x0, inout("x1") cpu as u64 => _, inout("x2") entry => _, inout("x3") top => _,
            options(nostack));
    }
    x0 as i64
}

/// Wakes CPUs waiting in [`wait_for_event`].
pub fn send_event() {
    // SAFETY: a hint with no effect on memory; the barrier orders what was written
    // before it.
    unsafe { asm!("dsb ish", "sev", options(nostack, preserves_flags)) }
}

/// Waits for an event (another CPU's [`send_event`]) or an interrupt.
pub fn wait_for_event() {
    // SAFETY: waiting has no effect on memory.
    unsafe { asm!("wfe", options(nomem, nostack, preserves_flags)) }
}

/// Enters the guest at ELR_EL2/SPSR_EL2 with `regs`.
pub fn run_guest(regs: &GuestRegs) -> ! {
    // SAFETY: ELR_EL2, SPSR_EL2 and the stage-2 registers are set by the caller; the
    // asm loads the registers from `regs` and ERETs, never returning here.
    unsafe { enter_guest(regs) }
}

/// hyp's own image, `.bss` and stack included.
pub fn image_region() -> (u64, u64) {
    // Linker-defined symbols: only their addresses are taken, never their contents.
    (&raw const __image_start as u64, &raw const __image_end as u64)
}

/// A hint that this CPU only waits. QEMU's TCG takes `yield` as a cue to leave the
/// CPU loop, which lets its I/O threads finish device requests sooner.
pub fn yield_cpu() {
    // SAFETY: a hint instruction with no architectural effect.
    unsafe { asm!("yield", options(nomem, nostack, preserves_flags)) }
}

/// Invalidates every stage-1 and stage-2 TLB entry of the current VMID.
pub fn flush_guest_tlb() {
    // SAFETY: TLB maintenance and barriers have no memory-safety effect.
    unsafe { asm!("dsb ishst", "tlbi vmalls12e1is", "dsb ish", "isb", options(nostack)) }
}

/// Reads `width` bytes from a device register at `pa` (EL2 runs with its MMU off, so
/// PA = VA and the access is Device-nGnRnE).
///
/// # Safety
/// `pa` must be a register of a device hyp exposes and be aligned for `width`.
pub unsafe fn device_read(pa: u64, width: u8) -> u64 {
    // SAFETY: the caller guarantees a device register of this width.
    unsafe {
        match width {
            1 => (pa as *const u8).read_volatile() as u64,
            2 => (pa as *const u16).read_volatile() as u64,
            4 => (pa as *const u32).read_volatile() as u64,
            _ => (pa as *const u64).read_volatile(),
        }
    }
}

/// Writes `width` bytes of `value` to a device register at `pa`.
///
/// # Safety
/// As for [`device_read`].
pub unsafe fn device_write(pa: u64, width: u8, value: u64) {
    // SAFETY: the caller guarantees a device register of this width.
    unsafe {
        match width {
            1 => (pa as *mut u8).write_volatile(value as u8),
            2 => (pa as *mut u16).write_volatile(value as u16),
            4 => (pa as *mut u32).write_volatile(value as u32),
            _ => (pa as *mut u64).write_volatile(value),
        }
    }
}

/// Powers QEMU off through its PSCI (SMC conduit at EL2). Waits if that ever returns.
pub fn power_off() -> ! {
    // SAFETY: PSCI SYSTEM_OFF does not return on QEMU; if it did, nothing is clobbered
    // beyond the declared registers.
    unsafe {
        asm!("smc #0", inout("x0") pvmkit_abi::psci::SYSTEM_OFF as u64 => _, out("x1") _, out("x2") _, out("x3") _, options(nostack));
    }
    loop {
        // SAFETY: waiting for an event has no effect on memory.
        unsafe { asm!("wfe", options(nomem, nostack)) }
    }
}
