//! The probe functions over `probe.S`.

use core::sync::atomic::{AtomicU64, Ordering};

use pvmkit_abi::esr::Esr;

use crate::exceptions::{ExternalAbort, Undefined};
use pvmkit_abi::profile::debug_pmu::Register;

#[repr(C)]
struct ProbeResult {
    value: u64,
    aborted: u64,
}

unsafe extern "C" {
    fn pvmkit_probe_read_u8(addr: u64) -> ProbeResult;
    fn pvmkit_probe_read_u32(addr: u64) -> ProbeResult;
    fn pvmkit_probe_read_u64(addr: u64) -> ProbeResult;
    fn pvmkit_probe_write_u8(addr: u64, value: u64) -> ProbeResult;
    fn pvmkit_probe_write_u32(addr: u64, value: u64) -> ProbeResult;
    fn pvmkit_probe_read_pair(addr: u64) -> ProbeResult;
    fn pvmkit_probe_hvc(regs: *mut [u64; 4]);
    static pvmkit_probe_sites: [u64; 7];
    static pvmkit_register_probe_sites: [u64; 2 * REGISTERS];
    static pvmkit_register_probe_sites_end: u8;
}

/// The registers `register_probe.S` has probes for.
const REGISTERS: usize = 7;

/// One register's read and write probes (`register_probe.S`).
macro_rules! register_probes {
    ($($register:ident => $read:ident, $write:ident;)*) => {
        unsafe extern "C" {
            $(fn $read() -> ProbeResult; fn $write(value: u64) -> ProbeResult;)*
        }
        fn register_read(register: Register) -> ProbeResult {
            // SAFETY: an MRS of a PMU or debug register, which has no side effect; an
            // UNDEFINED exception is caught.
            unsafe { match register { $(Register::$register => $read(),)* } }
        }
        /// # Safety
        /// As [`write_register`].
        unsafe fn register_write(register: Register, value: u64) -> ProbeResult {
            // SAFETY: the caller vouches for the write; an UNDEFINED exception is caught.
            unsafe { match register { $(Register::$register => $write(value),)* } }
        }
    };
}

register_probes! {
    Pmcr => pvmkit_register_read_pmcr_el0, pvmkit_register_write_pmcr_el0;
    Pmccntr => pvmkit_register_read_pmccntr_el0, pvmkit_register_write_pmccntr_el0;
    Mdscr => pvmkit_register_read_mdscr_el1, pvmkit_register_write_mdscr_el1;
    Dbgbvr0 => pvmkit_register_read_dbgbvr0_el1, pvmkit_register_write_dbgbvr0_el1;
    Dbgbvr1 => pvmkit_register_read_dbgbvr1_el1, pvmkit_register_write_dbgbvr1_el1;
    Oslsr => pvmkit_register_read_oslsr_el1, pvmkit_register_write_oslsr_el1;
    Dbgclaimclr => pvmkit_register_read_dbgclaimclr_el1, pvmkit_register_write_dbgclaimclr_el1;
}

/// ESR and FAR of the last abort a probe took (set by the exception handler).
static LAST_ESR: AtomicU64 = AtomicU64::new(0);
static LAST_FAR: AtomicU64 = AtomicU64::new(0);
/// Aborts probes have taken: the HVC probe tells an abort from an answer by it.
static ABORTS: AtomicU64 = AtomicU64::new(0);

/// The addresses of the probe instructions.
pub fn sites() -> &'static [u64; 7] {
    // SAFETY: a read-only table of addresses in the image.
    unsafe { &pvmkit_probe_sites }
}

/// The addresses of the register probes' MRS and MSR instructions.
fn register_sites() -> &'static [u64] {
    // SAFETY: a read-only table of addresses in the image, which `register_probe.S`
    // ends with `pvmkit_register_probe_sites_end`: the length is checked against it.
    let (table, end) = unsafe { (&pvmkit_register_probe_sites, &raw const pvmkit_register_probe_sites_end) };
    let len = (end as usize - table.as_ptr() as usize) / 8;
    &table[..len.min(table.len())]
}

/// Records an abort a probe instruction took.
fn record(esr: u64, far: u64) {
    LAST_ESR.store(esr, Ordering::Relaxed);
    LAST_FAR.store(far, Ordering::Relaxed);
    ABORTS.fetch_add(1, Ordering::Relaxed);
}

/// What a synchronous exception handler does with an exception: if it is a data abort
/// on one of the probe instructions, records it and returns the fix-up (resume at the
/// next instruction with x1 = 1, which the probe reports as an abort); otherwise `None`.
///
/// An UNDEFINED exception (EC 0) on one of the register probes' instructions is fixed
/// up the same way.
pub fn fixup(esr: u64, elr: u64, far: u64) -> Option<crate::exceptions::ProbeFixup> {
    let undefined = crate::exceptions::is_probe_undefined(elr, Esr(esr), register_sites());
    if !undefined && !crate::exceptions::is_probe_abort(elr, Esr(esr), sites()) {
        return None;
    }
    record(esr, far);
    Some(crate::exceptions::ProbeFixup { resume_at: elr + 4, x1: 1 })
}

fn last_abort() -> ExternalAbort {
    ExternalAbort { esr: Esr(LAST_ESR.load(Ordering::Relaxed)), far: LAST_FAR.load(Ordering::Relaxed) }
}

/// An SMCCC call over HVC (x0 = `function`, x1..x3 = `args`) that reports an external
/// abort taken at the HVC itself instead of stopping the VM: the real pKVM answers a
/// MEM_SHARE of an IPA outside memory that way.
pub fn hvc(function: u32, args: [u64; 3]) -> Result<[u64; 4], ExternalAbort> {
    let mut regs = [function as u64, args[0], args[1], args[2]];
    let before = ABORTS.load(Ordering::Relaxed);
    // SAFETY: an SMCCC call over HVC with a pointer to four words it reads and writes.
    unsafe { pvmkit_probe_hvc(&mut regs) };
    if ABORTS.load(Ordering::Relaxed) == before {
        Ok(regs)
    } else {
        Err(last_abort())
    }
}

fn finish(result: ProbeResult) -> Result<u64, ExternalAbort> {
    if result.aborted == 0 {
        Ok(result.value)
    } else {
        Err(last_abort())
    }
}

/// Reads one byte at `addr`.
///
/// # Safety
/// `addr` must be safe to read (typically a device register or an address expected to
/// abort): the read is not checked against anything.
pub unsafe fn read_u8(addr: u64) -> Result<u8, ExternalAbort> {
    // SAFETY: the caller vouches for the address; an abort is caught.
    finish(unsafe { pvmkit_probe_read_u8(addr) }).map(|v| v as u8)
}

/// Reads a 32-bit word at `addr` (4-byte aligned).
///
/// # Safety
/// As for [`read_u8`].
pub unsafe fn read_u32(addr: u64) -> Result<u32, ExternalAbort> {
    // SAFETY: as above.
    finish(unsafe { pvmkit_probe_read_u32(addr) }).map(|v| v as u32)
}

/// Reads a 64-bit word at `addr` (8-byte aligned).
///
/// # Safety
/// As for [`read_u8`].
pub unsafe fn read_u64(addr: u64) -> Result<u64, ExternalAbort> {
    // SAFETY: as above.
    finish(unsafe { pvmkit_probe_read_u64(addr) })
}

/// Writes one byte at `addr`.
///
/// # Safety
/// `addr` must be safe to write.
pub unsafe fn write_u8(addr: u64, value: u8) -> Result<(), ExternalAbort> {
    // SAFETY: the caller vouches for the address; an abort is caught.
    finish(unsafe { pvmkit_probe_write_u8(addr, value as u64) }).map(|_| ())
}

/// Writes a 32-bit word at `addr` (4-byte aligned).
///
/// # Safety
/// As for [`write_u8`].
pub unsafe fn write_u32(addr: u64, value: u32) -> Result<(), ExternalAbort> {
    // SAFETY: as above.
    finish(unsafe { pvmkit_probe_write_u32(addr, value as u64) }).map(|_| ())
}

/// Loads a pair of 64-bit words at `addr` (16-byte aligned) with one `ldp`, an access
/// with no syndrome that no hypervisor can emulate; returns the first word.
///
/// # Safety
/// As for [`read_u8`].
pub unsafe fn read_pair(addr: u64) -> Result<u64, ExternalAbort> {
    // SAFETY: as above.
    finish(unsafe { pvmkit_probe_read_pair(addr) })
}

fn finish_register(result: ProbeResult) -> Result<u64, Undefined> {
    if result.aborted == 0 {
        Ok(result.value)
    } else {
        Err(Undefined { esr: Esr(LAST_ESR.load(Ordering::Relaxed)) })
    }
}

/// Reads `register`, or reports that the read was UNDEFINED (a hypervisor that hides
/// the PMU or the debug architecture may make it so).
pub fn read_register(register: Register) -> Result<u64, Undefined> {
    finish_register(register_read(register))
}

/// Writes `value` to `register`, or reports that the write was UNDEFINED.
///
/// # Safety
/// The write must not change how the guest runs in a way it does not expect (a
/// breakpoint enabled, a counter it relies on reset).
pub unsafe fn write_register(register: Register, value: u64) -> Result<(), Undefined> {
    // SAFETY: guaranteed by the caller.
    finish_register(unsafe { register_write(register, value) }).map(|_| ())
}
