//! The VM's life: read the platform and the bundle, build stage 2, load the guest,
//! enter it, and serve its exits until it powers off.

use core::fmt::Write;

use abi::bundle::{Bundle, EntryKind, GuestLayout, Region};
use abi::hyp_options::{HypOptions, VmMode};
use abi::profile::Conduit;
use hyp::devices::DeviceList;
use hyp::esr::{self, ec, Esr};
use hyp::exit::ExitReason;
use hyp::hypercall::{self, Clock, ExitCounters, Outcome, Services, ShortCounts, VmState};
use hyp::inject::{self, AbortKind, TrapState};
use hyp::memory_calls::GuestMemory;
use hyp::mmio::{self, Access, Decision, DeviceKind, DeviceWindow, Refusal};
use hyp::mmio_guard::GuardTable;
use hyp::ownership::{Ownership, GRANULE};
use hyp::placement::{check_guest_ram, Reserved};
use hyp::platform::{self, Platform};
use hyp::stage2::{self, Attributes, Stage2, Table};
use hyp::virtio::AccessError;

use crate::arch::sysreg::{read_sysreg, write_sysreg};
use crate::arch::{self, tick, GuestRegs};
use crate::console::{hyp_println, CONSOLE};
use crate::single_core::SingleCore;
use crate::virtio_side;

/// HCR_EL2: VM | SWIO | FMO | IMO | AMO | TWI | TWE | TSC | RW.
const HCR: u64 = (1 << 0) | (1 << 1) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 13) | (1 << 14) | (1 << 19) | (1 << 31);
/// CPTR_EL2 (nVHE): RES1 bits, TZ (trap SVE); FP/SIMD not trapped, so the guest uses it freely.
const CPTR: u64 = 0x33ff;
/// CNTHCTL_EL2: EL1PCTEN | EL1PCEN, the guest reads the counter and uses its timers.
const CNTHCTL: u64 = 0b11;
/// SCTLR_EL1 at guest entry: RES1 bits only; MMU and caches off.
const SCTLR_EL1_RESET: u64 = 0x30d0_0800;
/// SPSR_EL2 at guest entry: EL1h with D, A, I, F masked.
const SPSR_EL1H_MASKED: u64 = 0x3c5;
/// hyp's tick: how often it takes control back from a guest that never traps, to
/// deliver device completions (counter ticks: 500 us at QEMU's 62.5 MHz).
const TICK_PERIOD: u64 = 31_250;
/// The seed of the short counts (fixed: a run repeats).
const SHORT_COUNT_SEED: u64 = 0x005e_ed0f_5407_c0de;
/// The guest's VMID.
const VMID: u64 = 1;
/// Stage-2 tables: the root plus one L2 table per GiB of guest RAM, with room for
/// page-granular edges.
const STAGE2_TABLES: usize = 16;

/// The most guest RAM hyp tracks (one ownership word per page).
const MAX_GUEST_RAM: u64 = 1 << 30;

/// What the trap handlers need to know about the VM.
struct Vm {
    services: Services,
    ram: Region,
    devices: DeviceList,
    ownership: Ownership<'static>,
    guard: GuardTable,
    refused: RefusedAccesses,
    exits: ExitCounters,
    short: ShortCounts,
    /// How often a validator policy refused what the release would have done.
    policy_refusals: u64,
    /// The last policy that fired, and the granule.
    last_policy: Option<(&'static str, u64)>,
}

/// External aborts hyp injected, summed up before the exit line (printing each as it
/// happens would split the guest's own console lines).
#[derive(Default)]
struct RefusedAccesses {
    count: u64,
    last: Option<(u64, Refusal)>,
}

static VM: SingleCore<Option<Vm>> = SingleCore::new(None);
static OWNERSHIP: SingleCore<[u16; (MAX_GUEST_RAM / GRANULE) as usize]> =
    SingleCore::new([0; (MAX_GUEST_RAM / GRANULE) as usize]);

/// Guest RAM as hyp writes it: identity mapped, EL2 MMU off.
struct IdentityMemory;

impl GuestMemory for IdentityMemory {
    fn zero_page(&mut self, ipa: u64) {
        // SAFETY: callers pass a page-aligned IPA inside guest RAM (checked by the
        // ownership table), which is platform RAM hyp placed the guest in.
        unsafe { (ipa as *mut u8).write_bytes(0, GRANULE as usize) }
    }
}
static STAGE2: SingleCore<[Table; STAGE2_TABLES]> = SingleCore::new([const { Table::EMPTY }; STAGE2_TABLES]);

/// Ends the run: the exit line, then power off.
fn exit(reason: ExitReason<'_>) -> ! {
    if let Some(Some(vm)) = VM.try_get() {
        if let Some((ipa, why)) = vm.refused.last {
            hyp_println!(
                "injected {} external abort(s) for refused accesses; last: IPA {ipa:#x}, {}",
                vm.refused.count,
                why.describe()
            );
        }
        if let Some((policy, ipa)) = vm.last_policy {
            hyp_println!(
                "validator policies refused {} call(s) the release would have carried out; last: policy {policy} at {ipa:#x}",
                vm.policy_refusals
            );
        }
    }
    CONSOLE.break_line();
    let mut out = &CONSOLE;
    let _ = writeln!(out, "{reason}");
    arch::power_off()
}

fn fail(detail: &str) -> ! {
    hyp_println!("error: {detail}");
    exit(ExitReason::HypError { detail })
}

/// Fails with a formatted detail (kept in a small buffer: hyp has no heap).
macro_rules! fail {
    ($($arg:tt)*) => {{
        let mut buf = Line::new();
        let _ = write!(buf, $($arg)*);
        fail(buf.as_str())
    }};
}

/// A fixed buffer for one formatted message.
struct Line {
    bytes: [u8; 160],
    len: usize,
}

impl Line {
    const fn new() -> Self {
        Self { bytes: [0; 160], len: 0 }
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("(message lost)")
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.len < self.bytes.len() && b.is_ascii() {
                self.bytes[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// # Safety
/// `ptr .. ptr + len` must be readable memory that nothing writes while the slice lives.
unsafe fn bytes_at<'a>(ptr: u64, len: usize) -> &'a [u8] {
    // SAFETY: guaranteed by the caller.
    unsafe { core::slice::from_raw_parts(ptr as *const u8, len) }
}

#[unsafe(no_mangle)]
extern "C" fn hyp_main(dtb_ptr: u64) -> ! {
    if read_sysreg!("CurrentEL") >> 2 != 2 {
        fail("hyp must be entered at EL2 (QEMU -M virt,virtualization=on)");
    }
    if dtb_ptr == 0 || !dtb_ptr.is_multiple_of(8) {
        fail!("no device tree from QEMU (x0 = {dtb_ptr:#x}); boot hyp as an arm64 Image with -kernel");
    }
    // SAFETY: QEMU's boot protocol puts a DTB at x0; only its header is read first.
    let header: [u8; 8] = unsafe { bytes_at(dtb_ptr, 8) }.try_into().unwrap_or([0; 8]);
    let dtb_len = platform::dtb_size(header).unwrap_or_else(|e| fail!("{e}"));
    // SAFETY: the header says the blob is `dtb_len` bytes; QEMU placed it in RAM.
    let dtb = unsafe { bytes_at(dtb_ptr, dtb_len) };
    let platform = Platform::read(dtb).unwrap_or_else(|e| fail!("{e}"));
    CONSOLE.set_base(platform.uart.start);
    hyp_println!("pvmkit hyp {}: EL2, DTB at {dtb_ptr:#x}", env!("CARGO_PKG_VERSION"));

    let options = HypOptions::parse(platform.bootargs).unwrap_or_else(|e| fail!("bad hyp options: {e}"));
    let Some(initrd) = platform.initrd else { fail("no bundle: QEMU was given no -initrd") };
    let dtb_region = Region::new(dtb_ptr, dtb_len as u64).unwrap_or(Region { start: dtb_ptr, end: dtb_ptr });
    // SAFETY: QEMU loaded the initrd at this range of RAM (from the DTB it wrote).
    let bundle_bytes = unsafe { bytes_at(initrd.start, initrd.size() as usize) };
    let bundle = Bundle::parse(bundle_bytes).unwrap_or_else(|e| fail!("bad bundle: {e}"));
    let layout = bundle.layout().unwrap_or_else(|e| fail!("bad bundle layout: {e}"));

    let (image_start, image_end) = arch::image_region();
    let reserved = [
        Reserved {
            name: "QEMU's boot stub",
            region: Region { start: abi::memory_map::QEMU_RAM_BASE, end: image_start },
        },
        Reserved { name: "hyp's image", region: Region { start: image_start, end: image_end } },
        Reserved { name: "QEMU's DTB", region: dtb_region },
        Reserved { name: "the bundle", region: initrd },
    ];
    check_guest_ram(layout.ram, platform.memory(), &reserved).unwrap_or_else(|e| fail!("{e}"));
    if layout.ram.size() > MAX_GUEST_RAM {
        fail!("guest RAM of {:#x} bytes is more than hyp tracks ({MAX_GUEST_RAM:#x})", layout.ram.size());
    }

    let devices = DeviceList::new(platform.uart, platform.virtio_slots(), bundle.config().virtio_slots)
        .unwrap_or_else(|e| fail!("{e}"));
    let protected = matches!(options.mode, VmMode::Protected(_));
    let services = Services { mode: options.mode, stats: options.stats, short_counts: options.short_counts };
    virtio_side::setup(&devices, protected).unwrap_or_else(|(slot, e)| fail!("virtio-mmio transport {slot}: {e}"));
    build_stage2(&layout);
    load_guest(&bundle, &layout);

    *VM.get() = Some(Vm {
        services,
        exits: ExitCounters::default(),
        ram: layout.ram,
        devices,
        guard: GuardTable::new(services.profile().guard_enrolled_with_pvmfw && layout.pvmfw.is_some()),
        short: ShortCounts::new(SHORT_COUNT_SEED),
        policy_refusals: 0,
        last_policy: None,
        refused: RefusedAccesses::default(),
        ownership: Ownership::new(layout.ram.start, &mut OWNERSHIP.get()[..(layout.ram.size() / GRANULE) as usize]),
    });
    hyp_println!(
        "guest: {} VM, RAM {:#x}..{:#x}, entry {:#x}, DT {:#x}",
        options.mode,
        layout.ram.start,
        layout.ram.end,
        layout.entry_ipa,
        layout.dt.start
    );

    if let Some((gicd, gicr)) = platform.gic_v3 {
        tick::start(gicd.start, gicr.start, TICK_PERIOD);
    } else if bundle.config().virtio_slots != 0 {
        fail("virtio needs hyp's tick, which needs a GICv3 (QEMU -M virt,gic-version=3)");
    }
    write_sysreg!("cptr_el2", CPTR);
    write_sysreg!("cnthctl_el2", CNTHCTL);
    write_sysreg!("cntvoff_el2", 0);
    write_sysreg!("vpidr_el2", read_sysreg!("midr_el1"));
    write_sysreg!("vmpidr_el2", read_sysreg!("mpidr_el1"));
    write_sysreg!("sctlr_el1", SCTLR_EL1_RESET);
    write_sysreg!("hcr_el2", HCR);
    write_sysreg!("elr_el2", layout.entry_ipa);
    write_sysreg!("spsr_el2", SPSR_EL1H_MASKED);
    let mut regs = GuestRegs::zeroed();
    regs.x[0] = layout.dt.start;
    arch::run_guest(&regs)
}

fn build_stage2(layout: &GuestLayout) {
    let tables = STAGE2.get();
    let base = tables.as_ptr() as u64;
    let Some(mut s2) = Stage2::new(tables, base) else { fail("stage-2 arena is misaligned") };
    let ram = layout.ram;
    s2.map(ram.start, ram.start, ram.size(), Attributes::NORMAL_RW).unwrap_or_else(|e| fail!("stage 2: {e}"));
    write_sysreg!("vtcr_el2", stage2::VTCR);
    write_sysreg!("vttbr_el2", s2.root_pa() | (VMID << 48));
    arch::flush_guest_tlb();
}

/// Copies each loadable entry to its IPA (= PA) and zeroes the rest of its footprint.
fn load_guest(bundle: &Bundle<'_>, layout: &GuestLayout) {
    for entry in bundle.entries().filter(|e| e.kind != EntryKind::VmConfig) {
        // Checked by `layout()`: inside guest RAM, which is checked to be free RAM.
        debug_assert!(layout.ram.contains(&Region { start: entry.load_ipa, end: entry.load_ipa + entry.mem_size }));
        let dst = entry.load_ipa as *mut u8;
        // SAFETY: the destination lies in guest RAM (checked above), which is platform
        // RAM that neither hyp nor QEMU's DTB or the bundle occupy.
        unsafe {
            core::ptr::copy_nonoverlapping(entry.data.as_ptr(), dst, entry.data.len());
            dst.add(entry.data.len()).write_bytes(0, (entry.mem_size as usize) - entry.data.len());
        }
    }
}

fn vm() -> &'static mut Vm {
    match VM.get() {
        Some(vm) => vm,
        None => fail("guest trap before the VM was set up"),
    }
}

#[unsafe(no_mangle)]
extern "C" fn handle_guest_sync(regs: &mut GuestRegs, _kind: u64) {
    collect_completions();
    let esr = Esr(read_sysreg!("esr_el2"));
    let exits = &mut vm().exits;
    exits.total += 1;
    match esr.ec() {
        ec::DABT_LOWER => exits.data_aborts += 1,
        ec::WFX => exits.wfx += 1,
        _ => {}
    }
    match esr.ec() {
        ec::HVC64 => hypercall(regs, Conduit::Hvc),
        ec::SMC64 => hypercall(regs, Conduit::Smc),
        ec::WFX => write_sysreg!("elr_el2", read_sysreg!("elr_el2") + 4), // a yield: nothing else runs
        ec::DABT_LOWER => data_abort(regs, esr),
        ec::IABT_LOWER => {
            // The guest ran off guest RAM: it sees the abort a real pVM would.
            inject_abort(AbortKind::Instruction);
        }
        _ => exit(ExitReason::GuestCrash { esr, far: read_sysreg!("far_el2"), elr: read_sysreg!("elr_el2") }),
    }
}

fn hypercall(regs: &mut GuestRegs, conduit: Conduit) {
    let vm = vm();
    let state = VmState {
        ownership: &mut vm.ownership,
        memory: &mut IdentityMemory,
        guard: &mut vm.guard,
        exits: vm.exits,
        clock,
        short: &mut vm.short,
    };
    // An HVC returns past itself (ELR is the next instruction); a trapped SMC leaves
    // ELR at the SMC, so hyp steps over it on return.
    let elr = read_sysreg!("elr_el2");
    let (call_at, resume_at) = match conduit {
        Conduit::Hvc => (elr - 4, elr),
        Conduit::Smc => (elr, elr + 4),
    };
    let regs_out = match hypercall::dispatch(&vm.services, state, conduit, regs.x[0], [regs.x[1], regs.x[2], regs.x[3]])
    {
        Outcome::Return(out) => out,
        Outcome::Refused { regs: out, policy, ipa } => {
            // Summed up before the exit line, like refused accesses (a line now would
            // split the guest's own).
            vm.policy_refusals += 1;
            vm.last_policy = Some((policy, ipa));
            out
        }
        Outcome::ExternalAbortAtCall => {
            // The real pKVM's answer to MEM_SHARE of an IPA no memslot holds: the
            // guest takes an external abort at the call itself, with FAR = 0.
            inject_abort_at(AbortKind::Data, call_at, 0);
            return;
        }
        Outcome::SystemOff => exit(ExitReason::SystemOff),
        Outcome::SystemReset => exit(ExitReason::Reset),
    };
    regs.x[..4].copy_from_slice(&regs_out);
    write_sysreg!("elr_el2", resume_at);
}

/// The counters KVM PTP reports.
fn clock() -> Clock {
    let physical = read_sysreg!("cntpct_el0");
    let frequency = read_sysreg!("cntfrq_el0").max(1);
    Clock {
        nanoseconds: (physical as u128 * 1_000_000_000 / frequency as u128) as u64,
        virtual_count: physical.wrapping_sub(read_sysreg!("cntvoff_el2")),
        physical_count: physical,
    }
}

fn data_abort(regs: &mut GuestRegs, esr: Esr) {
    let vm = vm();
    let Some(abort) = esr.data_abort() else {
        return;
    };
    let ipa = esr::fault_ipa(read_sysreg!("hpfar_el2"), read_sysreg!("far_el2"));
    if vm.ram.start <= ipa && ipa < vm.ram.end {
        // Guest RAM is mapped whole; a fault there means hyp's tables are wrong.
        fail!("stage-2 fault inside guest RAM at {ipa:#x} ({esr})");
    }
    match mmio::decide(&abort, ipa, vm.devices.windows(), &vm.guard) {
        Decision::Emulate { pa, access, device } => {
            let result = match access {
                Access::Store { reg, width } => {
                    let value = if reg == 31 { 0 } else { mmio::store_value(regs.x[reg as usize], width) };
                    store(&device, pa, width, value, &mut vm.ownership)
                }
                Access::Load { reg, width, sign_extend, sixty_four } => load(&device, pa, width).map(|raw| {
                    if reg != 31 {
                        regs.x[reg as usize] = mmio::load_result(raw, width, sign_extend, sixty_four);
                    }
                }),
            };
            match result {
                Ok(()) => write_sysreg!("elr_el2", read_sysreg!("elr_el2") + 4),
                Err(AccessError::BadWidth) => {
                    vm.refused.count += 1;
                    vm.refused.last = Some((ipa, Refusal::DeviceRefused));
                    inject_abort(AbortKind::Data)
                }
                Err(e) => device_side_stop(device.base, e),
            }
        }
        Decision::Refuse(why) => {
            vm.refused.count += 1;
            vm.refused.last = Some((ipa, why));
            inject_abort(AbortKind::Data)
        }
    }
}

fn load(device: &DeviceWindow, pa: u64, width: u8) -> Result<u64, AccessError> {
    match device.kind {
        // SAFETY: `decide` placed the access inside the console's window.
        DeviceKind::Console => Ok(unsafe { arch::device_read(pa, width) }),
        DeviceKind::Virtio { slot } => virtio_side::read(device, slot, pa, width),
    }
}

fn store(
    device: &DeviceWindow,
    pa: u64,
    width: u8,
    value: u64,
    ownership: &mut Ownership<'_>,
) -> Result<(), AccessError> {
    match device.kind {
        DeviceKind::Console => {
            // SAFETY: `decide` placed the access inside the console's window.
            unsafe { arch::device_write(pa, width, value) };
            if pa == device.base {
                CONSOLE.note_guest_byte(value as u8);
            }
            Ok(())
        }
        DeviceKind::Virtio { slot } => virtio_side::write(device, slot, pa, width, value, ownership),
    }
}

/// A virtio access or completion hyp cannot let pass: a guest's violation, or an
/// inconsistency of hyp's own that must stop the VM rather than be ignored.
fn device_side_stop(device: u64, e: AccessError) -> ! {
    match e {
        AccessError::Violation(v) => exit(ExitReason::Violation {
            ipa: v.ipa,
            device: Some(device),
            queue: Some(v.queue),
            descriptor: v.descriptor,
            what: v.what,
        }),
        AccessError::HypBug { ipa, what } => fail!("virtio-mmio@{device:#x}: {what} (ipa {ipa:#x})"),
        AccessError::NoTransport => fail!("virtio-mmio@{device:#x}: hyp exposed a window it serves no transport for"),
        AccessError::BadWidth => fail!("virtio-mmio@{device:#x}: a completion reported a bad width"),
    }
}

/// Completions the device finished since the last exit go back to the guest now.
fn collect_completions() {
    let vm = vm();
    if let Err((device, e)) = virtio_side::collect_all(&mut vm.ownership, &vm.devices) {
        device_side_stop(device, e);
    }
}

fn inject_abort(kind: AbortKind) {
    inject_abort_at(kind, read_sysreg!("elr_el2"), read_sysreg!("far_el2"));
}

/// Delivers a synchronous external abort taken at `elr` with FAR = `far`.
fn inject_abort_at(kind: AbortKind, elr: u64, far: u64) {
    let state = TrapState { spsr: read_sysreg!("spsr_el2"), elr, far, vbar_el1: read_sysreg!("vbar_el1") };
    let injection = inject::external_abort(kind, state);
    write_sysreg!("esr_el1", injection.esr_el1);
    write_sysreg!("far_el1", injection.far_el1);
    write_sysreg!("elr_el1", injection.elr_el1);
    write_sysreg!("spsr_el1", injection.spsr_el1);
    write_sysreg!("elr_el2", injection.elr_el2);
    write_sysreg!("spsr_el2", injection.spsr_el2);
}

#[unsafe(no_mangle)]
extern "C" fn handle_guest_async(_regs: &mut GuestRegs, kind: u64) {
    let exits = &mut vm().exits;
    exits.total += 1;
    exits.interrupts += 1;
    if kind == 1 {
        let intid = tick::acknowledge();
        if intid == tick::HYP_TIMER_INTID {
            tick::rearm(TICK_PERIOD);
        }
        // 1020..1023 are special INTIDs (spurious): nothing to end.
        if intid < 1020 {
            tick::end(intid);
        }
    }
    collect_completions();
    match kind {
        // Physical interrupts are routed to EL2 (IMO/FMO) but hyp enables none; if one
        // arrives anyway, the guest simply resumes.
        1 | 2 => {}
        3 => exit(ExitReason::GuestCrash {
            esr: Esr(read_sysreg!("esr_el2")),
            far: read_sysreg!("far_el2"),
            elr: read_sysreg!("elr_el2"),
        }),
        _ => fail("the guest switched to AArch32, which hyp does not run"),
    }
}

#[unsafe(no_mangle)]
extern "C" fn hyp_exception(_regs: &mut GuestRegs, kind: u64) -> ! {
    let esr = Esr(read_sysreg!("esr_el2"));
    fail!(
        "hyp took an exception at EL2 (kind {kind}): ESR {esr}, ELR {:#x}, FAR {:#x}",
        read_sysreg!("elr_el2"),
        read_sysreg!("far_el2")
    )
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    fail!("hyp panicked: {}", info.message())
}
