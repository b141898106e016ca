//! The probe functions over `probe.S`.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::esr::Esr;

use crate::exceptions::ExternalAbort;

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

/// Records an abort a probe instruction took.
fn record(esr: u64, far: u64) {
    LAST_ESR.store(esr, Ordering::Relaxed);
    LAST_FAR.store(far, Ordering::Relaxed);
    ABORTS.fetch_add(1, Ordering::Relaxed);
}

/// What a synchronous exception handler does with an exception: if it is a data abort
/// on one of the probe instructions, records it and returns the fix-up (resume at the
/// next instruction with x1 = 1, which the probe reports as an abort); otherwise `None`.
pub fn fixup(esr: u64, elr: u64, far: u64) -> Option<crate::exceptions::ProbeFixup> {
    if !crate::exceptions::is_probe_abort(elr, Esr(esr), sites()) {
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
