//! What the trap handlers keep between exits, each in a cell that hands out one
//! exclusive borrow at a time (`hyp::exclusive`): the VM (locked: with several vCPUs,
//! one CPU's exit waits for another's to finish with it), the memory hyp gives it for
//! good (ownership words, stage-2 tables), and the summary the exit line reports.

use abi::memory_map::Region;
use hyp::device::devices::DeviceList;
use hyp::exclusive::{Borrowed, Exclusive, LockError};
use hyp::pkvm::hypercall::{ExitCounters, Services, ShortCounts};
use hyp::pkvm::memory_calls::GuestMemory;
use hyp::pkvm::mmio_guard::GuardTable;
use hyp::pkvm::ownership::{Ownership, GRANULE};
use hyp::platform::stage2::Table;
use hyp::trap::mmio::Refusal;
use hyp::vcpus::{Vcpus, MAX_VCPUS};
use hyp::vgic::Vgic;

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
    /// kept alike in all, SPIs are vCPU 0's), and per vCPU which forwarded sources are
    /// physically enabled or held back for want of a list register (one bit per INTID;
    /// SPIs in vCPU 0's).
    pub vgics: [Vgic; MAX_VCPUS],
    pub physically_enabled: [u128; MAX_VCPUS],
    pub deferred: [u128; MAX_VCPUS],
}

/// What hyp refused along the way, summed up before the exit line (printing each as
/// it happens would split the guest's own console lines). Kept apart from [`Vm`] so
/// that the exit path can read it from inside any handler.
pub struct ExitSummary {
    /// External aborts injected for refused accesses, and the last one.
    pub refused: u64,
    pub last_refused: Option<(u64, Refusal)>,
    /// Calls a validator policy refused that the release would have carried out, and
    /// the last policy with its granule.
    pub policy_refusals: u64,
    pub last_policy: Option<(&'static str, u64)>,
}

pub static VM: Exclusive<Vm> = Exclusive::empty();
pub static SUMMARY: Exclusive<ExitSummary> =
    Exclusive::new(ExitSummary { refused: 0, last_refused: None, policy_refusals: 0, last_policy: None });
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

/// Records an injected abort for the summary.
pub fn note_refused(ipa: u64, why: Refusal) {
    if let Ok(mut summary) = SUMMARY.lock(crate::arch::this_cpu() as u8) {
        summary.refused += 1;
        summary.last_refused = Some((ipa, why));
    }
}

/// Records a validator policy's refusal for the summary.
pub fn note_policy(policy: &'static str, ipa: u64) {
    if let Ok(mut summary) = SUMMARY.lock(crate::arch::this_cpu() as u8) {
        summary.policy_refusals += 1;
        summary.last_policy = Some((policy, ipa));
    }
}

/// Guest RAM as hyp writes it: identity mapped, EL2 MMU off.
pub struct IdentityMemory;

impl GuestMemory for IdentityMemory {
    fn zero_page(&mut self, ipa: u64) {
        // SAFETY: callers pass a page-aligned IPA inside guest RAM (checked by the
        // ownership table), which is platform RAM hyp placed the guest in.
        unsafe { (ipa as *mut u8).write_bytes(0, GRANULE as usize) }
    }
}
