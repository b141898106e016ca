//! The guest's stage-1 translation: an identity map, so that RAM is Normal write-back
//! memory (coherent with the host's cacheable view of shared pages on real hardware,
//! and the only memory type where exclusives and `DC ZVA` are defined) and everything
//! else is Device memory. 1 GiB blocks from one level-1 table cover the low 4 GiB:
//! every address stays reachable, so a stray access still ends at stage 2 (and in an
//! injected external abort) rather than in a stage-1 fault.

use core::arch::asm;

use crate::stage1::{mair, sctlr_on, tcr};

const BLOCK: u64 = 0b01;
const AF: u64 = 1 << 10;
const INNER_SHAREABLE: u64 = 0b11 << 8;
const NORMAL: u64 = 1 << 2; // AttrIndx 1
const DEVICE: u64 = 0; // AttrIndx 0
const XN: u64 = (1 << 54) | (1 << 53); // UXN | PXN

/// Where RAM may be: the GiB blocks from 0x4000_0000 to 0xc000_0000 (QEMU's RAM,
/// pvmfw's region and guest RAM). Everything else is devices.
const NORMAL_BLOCKS: core::ops::Range<u64> = 1..3;

#[repr(C, align(4096))]
struct Table([u64; 512]);

/// The level-1 table, written once at boot.
struct Level1(core::cell::UnsafeCell<Table>);
// SAFETY: only `enable` touches it, once, on the boot CPU before anything else runs.
unsafe impl Sync for Level1 {}

static LEVEL1: Level1 = Level1(core::cell::UnsafeCell::new(Table([0; 512])));

/// Builds the map and turns the MMU and caches on.
pub fn enable() {
    // SAFETY: called once at boot, before anything else runs: no other reference to
    // the table exists, and the identity map keeps every address where it was.
    unsafe {
        let table = &mut *LEVEL1.0.get();
        for (i, entry) in table.0.iter_mut().enumerate().take(4) {
            let base = (i as u64) << 30;
            let attrs = if NORMAL_BLOCKS.contains(&(i as u64)) { NORMAL | INNER_SHAREABLE } else { DEVICE | XN };
            *entry = base | attrs | AF | BLOCK;
        }
        asm!(
            "msr mair_el1, {mair}",
            "msr tcr_el1, {tcr}",
            "msr ttbr0_el1, {ttbr}",
            "dsb ish",
            "isb",
            "tlbi vmalle1",
            "dsb ish",
            "isb",
            "msr sctlr_el1, {sctlr}",
            "isb",
            mair = in(reg) mair(),
            tcr = in(reg) tcr(),
            ttbr = in(reg) table as *const Table as u64,
            sctlr = in(reg) sctlr_on(),
            options(nostack),
        );
    }
}
