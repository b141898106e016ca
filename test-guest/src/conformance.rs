//! The conformance probes (`--scenario conformance`): every call the releases answer,
//! with valid and invalid arguments, and MMIO with and without a syndrome, each printed
//! as one `probe NAME = RESULT` line with the raw result. `pvmkit conformance` runs
//! this on the real pKVM and on hyp's upstream profile and diffs the lines; here each
//! result is also checked against the profile of the run's mode.

extern crate alloc;

use alloc::alloc::{alloc, dealloc};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::Layout;

use guest_lib::conduit::{Conduit, SystemConduit};
use guest_lib::exceptions::{probe, ExternalAbort};
use guest_lib::harness::{CaseResult, Harness};
use guest_lib::{println, BootInfo};
use pvmkit_abi::profile::cpu::ID_FIELDS;
use pvmkit_abi::profile::debug_pmu::{self, RegisterProbe, Shown};
use pvmkit_abi::profile::recording::{ProbeCall, ShownRegs};
use pvmkit_abi::profile::teardown::{self, Page};
use pvmkit_abi::profile::{Action, Answer, Conduit as Via, Pages};
use pvmkit_abi::{kvm, psci, smccc};

use crate::expect::Mode;

use pvmkit_abi::memory_map::GRANULE;
/// x1..x3 preset for calls that must zero or keep them.
const PRESET: [u64; 3] = [0x1111_2222_3333_4444, 0x5555_6666_7777_8888, 0x9999_aaaa_bbbb_cccc];
/// Not guest RAM, not a device (QEMU virt's platform bus, empty).
const NOTHING: u64 = 0x0c00_0000;

/// One probe's outcome.
enum Seen {
    Regs([u64; 4]),
    Abort(ExternalAbort),
}

impl Seen {
    fn show(&self, masked: bool) -> String {
        match self {
            Self::Regs(r) if masked => {
                String::from(if r[0] as i64 == smccc::NOT_SUPPORTED { "-1" } else { "answered" })
            }
            Self::Regs(r) => format!("{}", ShownRegs(*r)),
            Self::Abort(a) => format!("abort esr={:#x} far={:#x} at the instruction", a.esr.0, a.far),
        }
    }
}

struct Probes {
    mode: Mode,
    mismatches: Vec<String>,
    /// The RAM granules the profile says are shared now (the forms differ in which
    /// calls share: Android takes a count in x2 where upstream refuses it).
    shared: Vec<u64>,
}

impl Probes {
    /// Calls `function` and prints the result; checks it against the profile.
    fn call(&mut self, name: &str, via: Via, function: u32, args: [u64; 3], pages: Pages) {
        self.call_masked(name, via, function, args, pages, false);
    }

    fn call_masked(&mut self, name: &str, via: Via, function: u32, args: [u64; 3], pages: Pages, masked: bool) {
        let granule = args[0] & !(GRANULE - 1);
        let pages = match pages {
            Pages::Private | Pages::Shared if self.shared.contains(&granule) => Pages::Shared,
            Pages::Private | Pages::Shared => Pages::Private,
            other => other,
        };
        // The call as made, for a recording of the real hypervisor's answers
        // (`pvmkit_abi::profile::recording`).
        println!("probe-call {name} = {}", ProbeCall { conduit: via, function, args, pages });
        let seen = match via {
            Via::Hvc => match probe::hvc(function, args) {
                Ok(r) => Seen::Regs(r),
                Err(a) => Seen::Abort(a),
            },
            Via::Smc => Seen::Regs(SystemConduit::Smc.call(function, args)),
        };
        let shown = seen.show(masked);
        println!("probe {name} = {shown}");
        let Some((answer, walk)) = self.mode.expect(via, function, args, pages) else { return };
        match answer {
            Answer::Act(Action::Share, _) => self.shared.push(granule),
            Answer::Act(Action::Unshare, _) => self.shared.retain(|&g| g != granule),
            _ => {}
        }
        let matches = match (&seen, answer) {
            (Seen::Abort(a), Answer::ExternalAbortAtCall) => a.is_data_external_abort() && a.far == 0,
            (Seen::Regs(r), Answer::Time) => r[0] as i64 != smccc::NOT_SUPPORTED,
            (Seen::Regs(r), answer) => answer.registers(args, walk).is_some_and(|want| masked || *r == want),
            _ => false,
        };
        if !matches {
            self.mismatches.push(format!("{name}: {shown}; the profile says {answer:?}"));
        }
    }

    /// An MMIO access, printed (the profile says nothing of MMIO: the diff judges it).
    fn mmio(&self, name: &str, result: Result<u64, ExternalAbort>) {
        match result {
            Ok(v) => println!("probe {name} = value {v:#x}"),
            Err(a) => println!("probe {name} = {}", Seen::Abort(a).show(false)),
        }
    }
}

/// Page-aligned heap memory the guest has not touched (only the allocator's own
/// bookkeeping, outside the block, is written).
struct Untouched {
    ptr: *mut u8,
    layout: Layout,
}

impl Untouched {
    fn new(pages: usize) -> Result<Self, String> {
        let layout = Layout::from_size_align(pages * GRANULE as usize, GRANULE as usize).map_err(|e| format!("{e}"))?;
        // SAFETY: non-zero size; the block is only handed to the hypervisor by address.
        let ptr = unsafe { alloc(layout) };
        if ptr.is_null() {
            return Err("heap exhausted".into());
        }
        Ok(Self { ptr, layout })
    }

    fn page(&self, i: u64) -> u64 {
        self.ptr as u64 + i * GRANULE
    }
}

impl Drop for Untouched {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr, self.layout) };
    }
}

pub fn run(h: &mut Harness<impl core::fmt::Write>, boot: &BootInfo, mode: Mode) {
    if boot.dt.cpus().len() >= 2 {
        // The vCPU power probes alone: with a second vCPU, the one-vCPU probes' CPU_ON
        // of MPIDR 1 would start it at address 0.
        h.run("conformance_smp_matches_table", || crate::conformance_smp::probe_all(boot));
    } else {
        h.run("conformance_matches_profile", || probe_all(boot, mode));
    }
}

fn probe_all(boot: &BootInfo, mode: Mode) -> CaseResult {
    let mut p = Probes { mode, mismatches: Vec::new(), shared: Vec::new() };
    let (ram, ram_size) = boot.dt.memory.ok_or("no memory in the DT")?;
    let device = boot.dt.virtio_mmio().next().map(|(base, _)| base).ok_or("no virtio transport")?;
    let private = Untouched::new(16)?;
    // Touch two pages: these are private and in use.
    // SAFETY: inside the block just allocated.
    unsafe {
        private.ptr.write_volatile(1);
        private.ptr.add(GRANULE as usize).write_volatile(2);
    }
    let (a, b, never) = (private.page(0), private.page(1), private.page(8));
    let above = ram + ram_size + 0x10_0000;

    // Discovery, over both conduits.
    for (via, tag) in [(Via::Hvc, "hvc"), (Via::Smc, "smc")] {
        p.call(&format!("uid-{tag}"), via, kvm::VENDOR_HYP_CALL_UID, [0; 3], Pages::Private);
        p.call(&format!("features-{tag}"), via, kvm::KVM_FEATURES, [0; 3], Pages::Private);
        p.call(&format!("smccc-version-{tag}"), via, smccc::SMCCC_VERSION, [0; 3], Pages::Private);
        p.call(&format!("psci-version-{tag}"), via, psci::PSCI_VERSION, [0; 3], Pages::Private);
    }
    let arch = [
        ("smccc-version", smccc::SMCCC_VERSION),
        ("arch-features", smccc::SMCCC_ARCH_FEATURES),
        ("soc-id", smccc::SMCCC_ARCH_SOC_ID),
        ("workaround-1", smccc::ARCH_WORKAROUND_1),
        ("workaround-2", smccc::ARCH_WORKAROUND_2),
        ("workaround-3", smccc::ARCH_WORKAROUND_3),
        ("pv-time-features", smccc::PV_TIME_FEATURES),
        ("kvm-features", kvm::KVM_FEATURES),
        ("unknown", 0x8000_0123),
    ];
    for (name, id) in arch {
        p.call(
            &format!("arch-features-{name}"),
            Via::Hvc,
            smccc::SMCCC_ARCH_FEATURES,
            [id as u64, 0, 0],
            Pages::Private,
        );
    }
    let psci_functions = [
        ("psci-version", psci::PSCI_VERSION),
        ("cpu-suspend", psci::CPU_SUSPEND),
        ("cpu-suspend-64", psci::CPU_SUSPEND_64),
        ("cpu-off", psci::CPU_OFF),
        ("cpu-on", psci::CPU_ON),
        ("cpu-on-64", psci::CPU_ON_64),
        ("affinity-info", psci::AFFINITY_INFO),
        ("affinity-info-64", psci::AFFINITY_INFO_64),
        ("migrate-info-type", psci::MIGRATE_INFO_TYPE),
        ("system-off", psci::SYSTEM_OFF),
        ("system-reset", psci::SYSTEM_RESET),
        ("psci-features", psci::PSCI_FEATURES),
        ("system-suspend", psci::SYSTEM_SUSPEND),
        ("system-suspend-64", psci::SYSTEM_SUSPEND_64),
        ("system-reset2", psci::SYSTEM_RESET2),
        ("system-reset2-64", psci::SYSTEM_RESET2_64),
        ("system-off2", psci::SYSTEM_OFF2),
        ("system-off2-64", psci::SYSTEM_OFF2_64),
        ("smccc-version", smccc::SMCCC_VERSION),
        ("unknown", 0x8400_00ff),
    ];
    for (name, id) in psci_functions {
        p.call(&format!("psci-features-{name}"), Via::Hvc, psci::PSCI_FEATURES, [id as u64, 0, 0], Pages::Private);
    }
    p.call("cpu-on-self", Via::Hvc, psci::CPU_ON_64, [0, 0, 0], Pages::Private);
    p.call("cpu-on-other", Via::Hvc, psci::CPU_ON_64, [1, 0, 0], Pages::Private);
    p.call("cpu-on-bad-mpidr", Via::Hvc, psci::CPU_ON_64, [1 << 41, 0, 0], Pages::Private);
    p.call("affinity-info-self", Via::Hvc, psci::AFFINITY_INFO_64, [0, 0, 0], Pages::Private);
    p.call("affinity-info-other", Via::Hvc, psci::AFFINITY_INFO_64, [1, 0, 0], Pages::Private);
    p.call("migrate-info-type", Via::Hvc, psci::MIGRATE_INFO_TYPE, [0; 3], Pages::Private);
    p.call_masked("ptp-virtual", Via::Hvc, kvm::KVM_PTP, [kvm::PTP_VIRTUAL, 0, 0], Pages::Private, true);
    p.call_masked("ptp-physical", Via::Hvc, kvm::KVM_PTP, [kvm::PTP_PHYSICAL, 0, 0], Pages::Private, true);
    p.call("ptp-bad-counter", Via::Hvc, kvm::KVM_PTP, [2, 0, 0], Pages::Private);
    p.call("pv-time-features", Via::Hvc, smccc::PV_TIME_FEATURES, [smccc::PV_TIME_ST as u64, 0, 0], Pages::Private);
    p.call("trng-version", Via::Hvc, smccc::TRNG_VERSION, [0; 3], Pages::Private);
    p.call("trng-features", Via::Hvc, smccc::TRNG_FEATURES, [smccc::TRNG_RND64 as u64, 0, 0], Pages::Private);

    // The memory calls.
    p.call("meminfo", Via::Hvc, kvm::HYP_MEMINFO, [0; 3], Pages::Private);
    for (i, reg) in ["x1", "x2", "x3"].iter().enumerate() {
        let mut args = [0; 3];
        args[i] = 1;
        p.call(&format!("meminfo-{reg}-set"), Via::Hvc, kvm::HYP_MEMINFO, args, Pages::Private);
    }
    p.call("meminfo-smc", Via::Smc, kvm::HYP_MEMINFO, [0; 3], Pages::Private);
    p.call("share-unaligned", Via::Hvc, kvm::MEM_SHARE, [a + 8, 0, 0], Pages::Private);
    p.call("share-x2-set", Via::Hvc, kvm::MEM_SHARE, [a, 1, 0], Pages::Private);
    p.call("share-x3-set", Via::Hvc, kvm::MEM_SHARE, [a, 0, 1], Pages::Private);
    p.call("share-smc", Via::Smc, kvm::MEM_SHARE, [a, 0, 0], Pages::Private);
    p.call("share-smc32-id", Via::Hvc, 0x8600_0003, [a, 0, 0], Pages::Private);
    p.call("unshare-private", Via::Hvc, kvm::MEM_UNSHARE, [a, 0, 0], Pages::Private);
    p.call("share-private", Via::Hvc, kvm::MEM_SHARE, [a, 0, 0], Pages::Private);
    p.call("share-shared", Via::Hvc, kvm::MEM_SHARE, [a, 0, 0], Pages::Shared);
    p.call("unshare-x2-set", Via::Hvc, kvm::MEM_UNSHARE, [a, 1, 0], Pages::Shared);
    p.call("unshare-shared", Via::Hvc, kvm::MEM_UNSHARE, [a, 0, 0], Pages::Shared);
    p.call("unshare-never-touched", Via::Hvc, kvm::MEM_UNSHARE, [never, 0, 0], Pages::Private);
    p.call("share-never-touched", Via::Hvc, kvm::MEM_SHARE, [never, 0, 0], Pages::Private);
    p.call("unshare-never-touched-after-share", Via::Hvc, kvm::MEM_UNSHARE, [never, 0, 0], Pages::Shared);
    p.call("unshare-outside-memory", Via::Hvc, kvm::MEM_UNSHARE, [above, 0, 0], Pages::Outside);
    p.call("unshare-device", Via::Hvc, kvm::MEM_UNSHARE, [device & !0xfff, 0, 0], Pages::Outside);
    p.call("share-outside-memory", Via::Hvc, kvm::MEM_SHARE, [above, 0, 0], Pages::Outside);
    p.call("share-device", Via::Hvc, kvm::MEM_SHARE, [device & !0xfff, 0, 0], Pages::Outside);
    p.call("relinquish", Via::Hvc, kvm::MEM_RELINQUISH, [b, 0, 0], Pages::Private);
    // Whatever the form left shared goes back before the memory is freed.
    for granule in core::mem::take(&mut p.shared) {
        let _ = SystemConduit::Hvc.call(kvm::MEM_UNSHARE, [granule, 0, 0]);
    }
    // Every MMIO-guard id of both forms, at the transport and at nothing.
    for n in 5..=11u32 {
        let id = 0xc600_0000 | n;
        p.call(&format!("guard-{n}-device"), Via::Hvc, id, [device & !0xfff, 1, 0], Pages::Outside);
    }
    // Unknown ids in each range, x1..x3 preset.
    for id in [
        0x8000_0123u32,
        0x8200_0000,
        0x8400_00ff,
        0xc400_00ff,
        0x8500_0042,
        0x8600_0042,
        0xc600_0030,
        0xc600_ff00,
        0xbf00_0000,
    ] {
        p.call(&format!("unknown-{id:#x}"), Via::Hvc, id, PRESET, Pages::Private);
        p.call(&format!("unknown-{id:#x}-smc"), Via::Smc, id, PRESET, Pages::Private);
    }

    // MMIO: loads and stores with a syndrome and without one, at the transport and at
    // an address where the VM has nothing.
    // SAFETY (each probe): a virtio-mmio identification register (reads without side
    // effects; a store to the read-only MagicValue is ignored), or an address with
    // nothing behind it; the probes catch the abort either way.
    // SAFETY: a probe access: it completes or its abort is caught.
    p.mmio("mmio-load-device", unsafe { probe::read_u32(device) }.map(u64::from));
    // SAFETY: a probe access: it completes or its abort is caught.
    p.mmio("mmio-store-device", unsafe { probe::write_u32(device, 0) }.map(|()| 0));
    // SAFETY: a probe access: it completes or its abort is caught.
    p.mmio("mmio-load-nothing", unsafe { probe::read_u32(NOTHING) }.map(u64::from));
    // SAFETY: a probe access: it completes or its abort is caught.
    p.mmio("mmio-store-nothing", unsafe { probe::write_u32(NOTHING, 0) }.map(|()| 0));
    if mode.answers().pair_access_aborts {
        // SAFETY: a probe access: it completes or its abort is caught.
        p.mmio("mmio-pair-device", unsafe { probe::read_pair(device) });
        // SAFETY: a probe access: it completes or its abort is caught.
        p.mmio("mmio-pair-nothing", unsafe { probe::read_pair(NOTHING) });
    } else {
        let why = "an ordinary VM's vCPU stops on an access without a syndrome (KVM_RUN: ENOSYS)";
        for name in ["mmio-pair-device", "mmio-pair-nothing"] {
            println!("{}{name} = {why}", pvmkit_abi::profile::recording::PROBE_SKIPPED);
        }
    }
    drop(private);

    // What the VM sees of its CPU: the ID fields pKVM sanitizes, checked against the
    // profile where it makes a claim.
    let claims = mode.profile().map_or(&[][..], |profile| profile.id_fields);
    for field in ID_FIELDS {
        let value = field.value(crate::cpu_id::read(field.register));
        println!("probe {} = value {value:#x}", field.probe);
        if let Some((_, want)) = claims.iter().find(|(name, _)| *name == field.probe) {
            if value != *want {
                p.mismatches.push(format!("{}: {value:#x}; the profile says {want:#x}", field.probe));
            }
        }
    }
    probe_registers(&mut p);
    mark_for_teardown(&mut p)?;
    if p.mismatches.is_empty() {
        Ok(())
    } else {
        Err(p.mismatches.join("; "))
    }
}

/// PMU and debug register accesses (`pvmkit_abi::profile::debug_pmu`): each read, after a
/// write where the probe has one (put back to 0 after), printed as `undefined` or
/// `value 0xN` and checked against the profile where it makes a claim.
fn probe_registers(p: &mut Probes) {
    let rules = p.mode.profile().and_then(|profile| profile.register_access);
    for probe in debug_pmu::PROBES {
        let seen = read_after(probe);
        println!("probe {} = {seen}", probe.probe);
        if let Some(want) = rules.and_then(|r| r.expected(probe)) {
            if seen != want {
                p.mismatches.push(format!("{}: {seen}; the profile says {want}", probe.probe));
            }
        }
    }
}

/// Runs `probe`: its write (if any), the read, and the write of 0 after.
fn read_after(p: &RegisterProbe) -> Shown {
    if let Some(value) = p.write {
        // SAFETY: the probes' writes are harmless (`debug_pmu::PROBES`): MDSCR_EL1.MDE
        // with no breakpoint enabled, a disabled breakpoint's address.
        if let Err(refused) = unsafe { probe::write_register(p.register, value) } {
            return Shown::Undefined(refused.esr.0);
        }
    }
    let seen = match probe::read_register(p.register) {
        Ok(value) => Shown::Value(value),
        Err(refused) => Shown::Undefined(refused.esr.0),
    };
    if p.write.is_some() {
        // SAFETY: as above; 0 is the register's reset state.
        let _ = unsafe { probe::write_register(p.register, 0) };
    }
    seen
}

/// Fills one private page and one page it shares (and leaves shared) with their
/// marks (`pvmkit_abi::profile::teardown`), for the VMM to look for once the VM is torn down.
/// Both are leaked: nothing may overwrite them before the end. Under an ordinary VM
/// the share is refused and the page is the host's anyway.
fn mark_for_teardown(p: &mut Probes) -> CaseResult {
    for page in [Page::Private, Page::Shared] {
        let block = Untouched::new(1)?;
        let words = block.ptr as *mut u64;
        if page == Page::Shared && p.mode.profile().is_some() {
            let _ = SystemConduit::Hvc.call(kvm::MEM_SHARE, [block.page(0), 0, 0]);
        }
        for i in 0..teardown::PAGE_WORDS {
            // SAFETY: inside the page just allocated.
            unsafe { words.add(i).write_volatile(teardown::mark(page, i)) };
        }
        core::mem::forget(block);
        println!("teardown mark: {} page at {:#x}", page.probe(), words as u64);
    }
    Ok(())
}
