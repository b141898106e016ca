//! Several CPUs: starting a secondary CPU (PSCI CPU_ON, with its own stack and entry),
//! telling CPUs apart, and data kept per CPU.
//!
//! A secondary starts in `pvmkit_secondary_entry` (`arch/secondary.S`), which gives it
//! the starting CPU's EL1 state (translation, vectors, FP/SIMD) from a start block at the
//! top of its stack, then calls the entry on that stack. It needs no runtime: a foreign
//! OS calls [`start`] from its own code, as long as its kernel is identity-mapped (the
//! new CPU turns its MMU on while running at the entry's physical address); an OS with
//! another map brings its own secondary entry and calls [`crate::psci::cpu_on`].
//!
//! What is safe from any CPU at once: the heap and [`crate::bounce_pool::BouncePool`]
//! (locked), [`crate::sharing::MemSharer`] (no state beyond its conduit; the hypervisor
//! serialises the calls), the MMIO guard client's counts (locked), [`crate::stats`]
//! (atomics), the console (a whole `print!` at a time) and everything the runtime sets
//! once at boot. CPU-local: [`crate::exceptions::probe`] (one probe at a time in the VM:
//! its abort record is shared), the timer (each CPU arms its own), and the GIC set-up of
//! [`crate::timer`] and [`crate::interrupts`] (the boot CPU's redistributor).
//!
//! ```
//! use guest_lib::smp::{cpu_index, mpidr_of, PerCpu};
//! use core::sync::atomic::{AtomicU32, Ordering};
//!
//! assert_eq!(cpu_index(mpidr_of(3)), Some(3));
//! static STARTS: PerCpu<AtomicU32> = PerCpu::new([const { AtomicU32::new(0) }; 8]);
//! STARTS.of(3).unwrap().fetch_add(1, Ordering::Relaxed);
//! assert_eq!(STARTS.of(3).unwrap().load(Ordering::Relaxed), 1);
//! assert!(STARTS.of(8).is_none());
//! ```

use core::cell::UnsafeCell;
use core::mem::{offset_of, size_of};

#[cfg(any(target_os = "none", doc))]
use crate::conduit::Conduit;
#[cfg(any(target_os = "none", doc))]
use crate::psci::{self, PsciError};

/// The most CPUs a pvmkit VM has.
pub const MAX_CPUS: usize = pvmkit_abi::bundle::MAX_VCPUS as usize;
/// A secondary CPU's stack.
pub const STACK_SIZE: usize = 16 * 1024;

/// What a secondary CPU runs: its argument in, never returning (it powers itself off
/// with [`crate::psci::cpu_off`], ends the VM, or waits).
pub type Entry = extern "C" fn(u64) -> !;

/// A secondary CPU's stack (its start block at the top).
#[repr(C, align(4096))]
pub struct CpuStack(UnsafeCell<[u8; STACK_SIZE]>);

// SAFETY: the bytes are reached only by the CPU [`start`] gives them to, while it
// runs; `start`'s caller promises no two CPUs use one stack at once.
unsafe impl Sync for CpuStack {}

impl CpuStack {
    /// A zeroed stack (for a `static`).
    pub const fn new() -> Self {
        Self(UnsafeCell::new([0; STACK_SIZE]))
    }
}

impl Default for CpuStack {
    fn default() -> Self {
        Self::new()
    }
}

/// What `pvmkit_secondary_entry` reads, in this order (the offsets are the assembly's).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StartBlock {
    cpacr: u64,
    vbar: u64,
    mair: u64,
    tcr: u64,
    ttbr0: u64,
    sctlr: u64,
    entry: u64,
    arg: u64,
}

const _: () = {
    assert!(offset_of!(StartBlock, cpacr) == 0 && offset_of!(StartBlock, vbar) == 8);
    assert!(offset_of!(StartBlock, mair) == 16 && offset_of!(StartBlock, tcr) == 24);
    assert!(offset_of!(StartBlock, ttbr0) == 32 && offset_of!(StartBlock, sctlr) == 40);
    assert!(offset_of!(StartBlock, entry) == 48 && offset_of!(StartBlock, arg) == 56);
    assert!(size_of::<StartBlock>().is_multiple_of(16));
};

/// The CPU index of MPIDR affinity `mpidr` (Aff0 + 16 × Aff1, as QEMU `virt` and KVM
/// number their CPUs), if below [`MAX_CPUS`].
pub fn cpu_index(mpidr: u64) -> Option<usize> {
    let index = (mpidr & 0xff) + 16 * ((mpidr >> 8) & 0xff);
    (mpidr >> 16 & 0xff == 0 && mpidr >> 32 & 0xff == 0 && (index as usize) < MAX_CPUS).then_some(index as usize)
}

/// The MPIDR affinity of CPU `index` (the inverse of [`cpu_index`]).
pub const fn mpidr_of(index: usize) -> u64 {
    (index as u64 % 16) | (index as u64 / 16) << 8
}

/// Writes the start block at the top of `stack` (16-byte aligned: the new CPU's first
/// stack pointer) and returns its address.
#[cfg_attr(not(any(target_os = "none", test)), allow(dead_code))]
fn write_block(stack: &CpuStack, block: StartBlock) -> u64 {
    let at = stack.0.get() as u64 + (STACK_SIZE - size_of::<StartBlock>()) as u64;
    // SAFETY: inside the stack, aligned (the stack is page-aligned, the block a multiple
    // of 16 bytes); `start`'s caller promises no CPU runs on this stack now.
    unsafe { (at as *mut StartBlock).write_volatile(block) };
    at
}

/// Starts the powered-off CPU `mpidr` on `stack` at `entry(arg)`, with this CPU's EL1
/// state. Returns once CPU_ON is accepted; the CPU may not have run yet. The errors are
/// PSCI's (`AlreadyOn`, `OnPending`, `InvalidParameters` for a CPU that does not exist).
///
/// # Safety
/// No CPU runs on `stack`: it was never given to one, or the CPU it was given to is off
/// ([`crate::psci::affinity_info`] says `Off`). This CPU's kernel is identity-mapped.
#[cfg(any(target_os = "none", doc))]
pub unsafe fn start<C: Conduit>(
    conduit: &C,
    mpidr: u64,
    stack: &'static CpuStack,
    entry: Entry,
    arg: u64,
) -> Result<(), PsciError> {
    let state = crate::arch::secondary::el1_state();
    let block = StartBlock {
        cpacr: state[0],
        vbar: state[1],
        mair: state[2],
        tcr: state[3],
        ttbr0: state[4],
        sctlr: state[5],
        entry: entry as usize as u64,
        arg,
    };
    let at = write_block(stack, block);
    crate::arch::secondary::clean_to_poc(at, size_of::<StartBlock>() as u64);
    psci::cpu_on(conduit, mpidr, crate::arch::secondary::entry_address(), at)
}

/// The index of the CPU this runs on.
#[cfg(any(target_os = "none", doc))]
pub fn this_cpu() -> usize {
    use aarch64_cpu::registers::{Readable, MPIDR_EL1};
    cpu_index(MPIDR_EL1.get()).unwrap_or(0)
}

/// One `T` per CPU, indexed by CPU index; `T` is shared (`Sync`) since another CPU may
/// read a CPU's slot.
pub struct PerCpu<T>([T; MAX_CPUS]);

impl<T: Sync> PerCpu<T> {
    /// Slots holding `values`, CPU 0's first.
    pub const fn new(values: [T; MAX_CPUS]) -> Self {
        Self(values)
    }

    /// CPU `index`'s slot.
    pub fn of(&self, index: usize) -> Option<&T> {
        self.0.get(index)
    }

    /// This CPU's slot.
    #[cfg(any(target_os = "none", doc))]
    pub fn this(&self) -> &T {
        &self.0[this_cpu().min(MAX_CPUS - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conduit::fake::FakeConduit;
    use crate::psci;

    #[test]
    fn cpus_are_numbered_as_qemu_and_kvm_number_them() {
        for i in 0..MAX_CPUS {
            assert_eq!(cpu_index(mpidr_of(i)), Some(i));
        }
        // MPIDR_EL1's own bits (U, MT, RES1) are not affinity.
        assert_eq!(cpu_index(0x8000_0003), Some(3));
        assert_eq!(cpu_index(8), None);
        assert_eq!(cpu_index(0x1_0000), None, "Aff2");
        assert_eq!(cpu_index(0x1_0000_0000), None, "Aff3");
        assert_eq!(mpidr_of(17), 0x101);
    }

    /// The block lies at the stack's top, 16-byte aligned, as the assembly reads it.
    #[test]
    fn the_start_block_tops_the_stack() {
        static STACK: CpuStack = CpuStack::new();
        let block = StartBlock { cpacr: 1, vbar: 2, mair: 3, tcr: 4, ttbr0: 5, sctlr: 6, entry: 7, arg: 8 };
        let at = write_block(&STACK, block);
        let base = STACK.0.get() as u64;
        assert_eq!(at, base + STACK_SIZE as u64 - 64);
        assert_eq!(at % 16, 0);
        // SAFETY: just written, inside the stack.
        let words = unsafe { core::slice::from_raw_parts(at as *const u64, 8) };
        assert_eq!(words, [1, 2, 3, 4, 5, 6, 7, 8]);
        // CPU_ON gets the entry and the block (psci::cpu_on, as start calls it).
        let fake = FakeConduit::new(|_, _| [0; 4]);
        assert_eq!(psci::cpu_on(&fake, mpidr_of(2), 0x8020_1000, at), Ok(()));
        assert_eq!(fake.calls.borrow()[0], (0xc400_0003, [2, 0x8020_1000, at]));
    }
}
