//! What the trap handlers keep between exits, each in a cell that hands out one
//! exclusive borrow at a time (`hyp::exclusive`): the VM (locked: with several vCPUs,
//! one CPU's exit waits for another's to finish with it), the memory hyp gives it for
//! good (ownership words, stage-2 tables). The summary the exit line reports is
//! `exit_summary`'s.

use hyp::device::devices::DeviceList;
use hyp::exclusive::{Borrowed, Exclusive, LockError};
use hyp::pkvm::hypercall::{ExitCounters, Services, ShortCounts};
use hyp::pkvm::memory_calls::GuestMemory;
use hyp::pkvm::mmio_guard::GuardTable;
use hyp::pkvm::ownership::{Ownership, GRANULE};
use hyp::platform::stage2::Table;
use hyp::vcpus::{Vcpus, MAX_VCPUS};
use hyp::vgic::forwarded::ForwardedSources;
use hyp::vgic::Vgic;
use pvmkit_abi::address::Page;
use pvmkit_abi::memory_map::Region;

use crate::exit_path::fail;

/// The most guest RAM hyp tracks (one ownership word per page).
pub const MAX_GUEST_RAM: u64 = 1 << 30;
/// Stage-2 tables: the root plus one L2 table per GiB of guest RAM, with room for
/// page-granular edges.
pub const STAGE2_TABLES: usize = 16;

/// What the trap handlers need to know about the VM.
pub struct Vm {
    pub services: Services,
    pub ram: Region,
    pub devices: DeviceList,
    pub ownership: Ownership<'static>,
    pub guard: GuardTable,
    pub exits: ExitCounters,
    pub short: ShortCounts,
    /// The vCPUs and their power.
    pub vcpus: Vcpus,
    /// The guest's GIC, one per vCPU (its redistributor; the distributor's registers are
    /// kept alike in all, SPIs are vCPU 0's).
    pub vgics: [Vgic; MAX_VCPUS],
    /// Per vCPU, its forwarded sources' physical side (SPIs in vCPU 0's).
    pub forwarded: [ForwardedSources; MAX_VCPUS],
}

pub static VM: Exclusive<Vm> = Exclusive::empty();
pub static OWNERSHIP: Exclusive<[u16; (MAX_GUEST_RAM / GRANULE) as usize]> =
    Exclusive::new([0; (MAX_GUEST_RAM / GRANULE) as usize]);
pub static STAGE2: Exclusive<[Table; STAGE2_TABLES]> = Exclusive::new([const { Table::EMPTY }; STAGE2_TABLES]);

/// The VM, for one guest exit (waiting while another CPU's exit has it).
pub fn vm() -> Borrowed<'static, Vm> {
    VM.lock(crate::arch::this_cpu() as u8).unwrap_or_else(|e| match e {
        LockError::Unavailable => fail("guest trap before the VM was set up"),
        LockError::Nested => fail("guest trap inside another's handling on the same CPU"),
    })
}

/// Guest RAM as hyp writes it: identity mapped, EL2 MMU off.
pub struct IdentityMemory;

impl GuestMemory for IdentityMemory {
    fn zero_page(&mut self, page: Page) {
        // SAFETY: callers pass a page-aligned IPA inside guest RAM (checked by the
        // ownership table), which is platform RAM hyp placed the guest in.
        unsafe { (page.ipa().get() as *mut u8).write_bytes(0, GRANULE as usize) }
    }
}
