//! Several vCPUs (`pvmkit run --cpus N`): every secondary started with guest-lib's
//! `smp::start` and checked by PSCI, CPU_ON of a running CPU, a CPU that powers itself
//! off and is started again, MEM_SHARE/MEM_UNSHARE from every CPU at once, of distinct
//! pages and of one page, with the answers the profile gives one CPU, an SGI to each
//! other CPU, and bounced virtio-blk requests from every CPU through one driver.

extern crate alloc;

use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use pvmkit_abi::address::Ipa;

use guest_lib::virtio::{discover, PvmHal};
use virtio_drivers::device::blk::VirtIOBlk;
use virtio_drivers::transport::mmio::MmioTransport;
use virtio_drivers::transport::DeviceType;

use guest_lib::conduit::{Conduit, SystemConduit};
use guest_lib::harness::{CaseResult, Harness};
use guest_lib::psci::{self, AffinityState};
use guest_lib::set_once::SetOnce;
use guest_lib::smp::{self, CpuStack, PerCpu, MAX_CPUS};
use guest_lib::{ensure, ensure_eq, BootInfo};
use pvmkit_abi::kvm;
use pvmkit_abi::profile::Pages as State;

use crate::clock::{counter, frequency};
use crate::expect::Mode;

const PAGE: u64 = 4096;
/// Rounds of the concurrent sharing cases.
const ROUNDS: u32 = 32;

static STACKS: [CpuStack; MAX_CPUS] = [const { CpuStack::new() }; MAX_CPUS];
/// How often each CPU entered `secondary`.
static ARRIVALS: PerCpu<AtomicU32> = PerCpu::new([const { AtomicU32::new(0) }; MAX_CPUS]);
/// What CPU 0 asks each secondary to do next ([`Order`]); the secondary sets it back
/// to `IDLE` when done.
static ORDERS: PerCpu<AtomicU32> = PerCpu::new([const { AtomicU32::new(IDLE) }; MAX_CPUS]);
/// Each CPU's answers of the current round (x0 of its last call).
static ANSWERS: PerCpu<AtomicU64> = PerCpu::new([const { AtomicU64::new(0) }; MAX_CPUS]);
/// Calls a CPU made whose answer was not the one expected.
static WRONG: PerCpu<AtomicU32> = PerCpu::new([const { AtomicU32::new(0) }; MAX_CPUS]);
static BARRIER: Barrier = Barrier { arrived: AtomicU32::new(0), generation: AtomicU32::new(0) };
static CONTEXT: SetOnce<Context> = SetOnce::new();

const IDLE: u32 = 0;
const DISTINCT: u32 = 1;
const ONE_PAGE: u32 = 2;
const OFF: u32 = 3;
/// Set up this CPU's GIC, then wait for [`SGI`] from CPU 0.
const TAKE_SGI: u32 = 4;
/// Write and read back blocks of its own through the one block driver.
const VIRTIO_BLK: u32 = 5;
/// Run the function in [`TASKS`] (`run_on`).
const RUN_TASK: u32 = 6;
/// The function each CPU runs on [`RUN_TASK`].
static TASKS: PerCpu<Locked<fn()>> =
    PerCpu::new([const { Locked { busy: AtomicBool::new(false), value: UnsafeCell::new(None) } }; MAX_CPUS]);

/// The block device, one driver for every CPU, a request at a time.
static BLK: Locked<Blk> = Locked { busy: AtomicBool::new(false), value: UnsafeCell::new(None) };
type Blk = VirtIOBlk<PvmHal, MmioTransport<'static>>;
/// Requests each CPU makes (a write and a read each), 4 KiB apiece.
const BLK_REQUESTS: usize = 4;

/// A value every CPU may use, one at a time (a spin lock).
struct Locked<T> {
    busy: AtomicBool,
    value: UnsafeCell<Option<T>>,
}

// SAFETY: `with` hands the value to one CPU at a time (`busy`); the driver's transport
// is device registers and its queues are memory, which every CPU reaches the same
// (guest-lib's runtime maps RAM and devices 1:1 on every CPU).
unsafe impl<T> Sync for Locked<T> {}

impl<T> Locked<T> {
    /// Runs `f` on the value, holding the lock; `None` when there is no value.
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        while self.busy.swap(true, Ordering::Acquire) {
            core::hint::spin_loop();
        }
        // SAFETY: `busy` was false and is now ours: no other CPU is inside.
        let result = unsafe { (*self.value.get()).as_mut().map(f) };
        self.busy.store(false, Ordering::Release);
        result
    }

    /// Puts `value` in (or takes it out with `None`), returning what was there.
    fn replace(&self, value: Option<T>) -> Option<T> {
        while self.busy.swap(true, Ordering::Acquire) {
            core::hint::spin_loop();
        }
        // SAFETY: as in `with`.
        let old = unsafe { core::mem::replace(&mut *self.value.get(), value) };
        self.busy.store(false, Ordering::Release);
        old
    }
}

/// The SGI CPU 0 sends each other CPU.
const SGI: u32 = 5;
/// Set by a secondary once its GIC is set up and it waits for the SGI (0: not yet; 1:
/// waiting; 2: its set-up failed).
static SGI_READY: PerCpu<AtomicU32> = PerCpu::new([const { AtomicU32::new(0) }; MAX_CPUS]);

/// What every CPU's work needs, set once by CPU 0.
struct Context {
    conduit: SystemConduit,
    cpus: usize,
    /// One private page per CPU, then the page they all share.
    pages: u64,
    /// What MEM_SHARE and MEM_UNSHARE answer for a private page, and for a shared one.
    share: [u64; 2],
    unshare: [u64; 2],
}

impl Context {
    fn own_page(&self, cpu: usize) -> u64 {
        self.pages + cpu as u64 * PAGE
    }

    fn common_page(&self) -> u64 {
        self.pages + MAX_CPUS as u64 * PAGE
    }
}

/// A barrier for the context's CPUs, reusable round after round.
struct Barrier {
    arrived: AtomicU32,
    generation: AtomicU32,
}

impl Barrier {
    fn wait(&self, cpus: usize) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == cpus as u32 {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
        } else {
            while self.generation.load(Ordering::Acquire) == generation {
                core::hint::spin_loop();
            }
        }
    }
}

pub fn run(h: &mut Harness<impl core::fmt::Write>, boot: &BootInfo, mode: Mode) {
    let cpus = boot.dt.cpus();
    const NAMES: [&str; 7] = [
        "smp_every_cpu_starts",
        "smp_cpu_on_of_a_running_cpu",
        "smp_concurrent_share_distinct_pages",
        "smp_concurrent_share_one_page",
        "smp_sgi_to_each_other_cpu",
        "smp_virtio_blk_from_every_cpu",
        "smp_cpu_off_and_on_again",
    ];
    let numbered = cpus.iter().enumerate().all(|(i, &mpidr)| smp::cpu_index(mpidr) == Some(i));
    if cpus.len() < 2 || !numbered {
        NAMES.iter().for_each(|name| h.skip(name, "one vCPU (pvmkit run --cpus N)"));
        return;
    }
    let context = match context(boot, mode, cpus.len()) {
        Ok(context) => context,
        Err(why) => {
            NAMES.iter().for_each(|name| h.run(name, || Err(why.clone())));
            return;
        }
    };
    h.run(NAMES[0], || every_cpu_starts(context));
    h.run(NAMES[1], || cpu_on_of_a_running_cpu(context));
    h.run(NAMES[2], || concurrently(context, DISTINCT));
    if mode.protected() {
        h.run(NAMES[3], || concurrently(context, ONE_PAGE));
    } else {
        h.skip(NAMES[3], "no memory services: every call is NOT_SUPPORTED (smp_concurrent_share_distinct_pages)");
    }
    if boot.dt.gic_v3().is_some() {
        h.run(NAMES[4], || sgi_to_each_other_cpu(context));
    } else {
        h.skip(NAMES[4], "no GIC in the DT");
    }
    // The driver first, outside the case: virtio-drivers logs a line as it opens one.
    let opened = open_blk(boot);
    h.run(NAMES[5], || virtio_blk_from_every_cpu(context, opened));
    h.run(NAMES[6], || off_and_on_again(context));
}

/// Opens the block device into [`BLK`].
fn open_blk(boot: &BootInfo) -> CaseResult {
    let mut devices = discover(&boot.dt, guest_lib::mmio_guard());
    let at = devices.iter().position(|d| d.device_type == DeviceType::Block).ok_or("no block device")?;
    let blk = Blk::new(devices.swap_remove(at).transport).map_err(|e| alloc::format!("{e}"))?;
    BLK.replace(Some(blk));
    Ok(())
}

/// Every CPU at once writes blocks of its own through the one block driver (locked
/// per request, each CPU's buffers its own, bounced through the one pool in a
/// protected VM) and reads them back.
fn virtio_blk_from_every_cpu(context: &Context, opened: CaseResult) -> CaseResult {
    opened?;
    let result = concurrently(context, VIRTIO_BLK);
    BLK.replace(None);
    result
}

/// One CPU's blocks: [`BLK_REQUESTS`] of 4 KiB from sector 2048 + 64 × CPU, each a
/// pattern of its own, written, then read back into another buffer; `false` if any
/// request failed or read back something else.
fn blocks_of(cpu: usize) -> bool {
    let mut ok = true;
    for k in 0..BLK_REQUESTS {
        let sector = 2048 + 64 * cpu + 8 * k;
        let written: Vec<u8> = (0..4096).map(|i| (i as u8) ^ (cpu as u8 * 31) ^ (k as u8 * 7)).collect();
        let mut read = alloc::vec![0u8; 4096];
        ok &= BLK.with(|blk| blk.write_blocks(sector, &written).is_ok()) == Some(true);
        ok &= BLK.with(|blk| blk.read_blocks(sector, &mut read).is_ok()) == Some(true);
        ok &= read == written;
    }
    ok
}

/// CPU 0 sends an SGI to each other CPU in turn (ICC_SGI1R_EL1 naming it); each, its
/// own redistributor set up, takes it.
fn sgi_to_each_other_cpu(context: &Context) -> CaseResult {
    use guest_lib::interrupts;
    ensure_eq!(guest_lib::timer::uses_interrupts(), guest_lib::timer::Wake::Interrupt);
    for cpu in 1..context.cpus {
        if let Some(o) = ORDERS.of(cpu) {
            o.store(TAKE_SGI, Ordering::Release);
        }
        until("the secondary's GIC set-up", || SGI_READY.of(cpu).is_some_and(|r| r.load(Ordering::Acquire) != 0))?;
        let step = SGI_READY.of(cpu).map_or(0, |r| r.load(Ordering::Acquire));
        const STEPS: [&str; 4] =
            ["find its redistributor", "register it with the MMIO guard", "wake it", "enable the SGI"];
        ensure!(step == 1, "CPU {cpu} could not {}", STEPS.get(step as usize - 2).unwrap_or(&"set up its GIC"));
        interrupts::send_sgi(smp::mpidr_of(cpu), SGI).map_err(|e| alloc::format!("{e}"))?;
        until("the SGI's arrival", || ORDERS.of(cpu).is_some_and(|o| o.load(Ordering::Acquire) == IDLE))?;
    }
    Ok(())
}

/// A secondary's part of [`sgi_to_each_other_cpu`].
fn take_sgi(cpu: usize) {
    use guest_lib::interrupts;
    let ready = SGI_READY.of(cpu).expect("a CPU below MAX_CPUS");
    let step = match interrupts::redistributor() {
        Err(_) => 2,
        Ok(gicr) if guest_lib::mmio_guard().map(Ipa(gicr), pvmkit_abi::memory_map::GICR_SIZE).is_err() => 3,
        Ok(_) if interrupts::init_this_cpu().is_err() => 4,
        Ok(_) if interrupts::enable(SGI).is_err() => 5,
        Ok(_) => 1,
    };
    ready.store(step, Ordering::Release);
    if step == 1 {
        interrupts::wait(SGI);
        interrupts::end(SGI);
    }
}

fn context(boot: &BootInfo, mode: Mode, cpus: usize) -> Result<&'static Context, alloc::string::String> {
    let pages: &'static mut [u8] = alloc::vec![0u8; (MAX_CPUS + 2) * PAGE as usize].leak();
    let pages = (pages.as_ptr() as u64).next_multiple_of(PAGE);
    // What one CPU hears, from the profile (or NOT_SUPPORTED where nothing is shared).
    let answer = |function, state| mode.expect_regs(function, [pages, 0, 0], state).map_or(u64::MAX, |regs| regs[0]);
    let context = Context {
        conduit: boot.conduit,
        cpus,
        pages,
        share: [answer(kvm::MEM_SHARE, State::Private), answer(kvm::MEM_SHARE, State::Shared)],
        unshare: [answer(kvm::MEM_UNSHARE, State::Private), answer(kvm::MEM_UNSHARE, State::Shared)],
    };
    if mode.protected() {
        ensure!(context.share[0] == 0 && context.unshare[1] == 0, "the profile refuses sharing a private page");
    }
    Ok(CONTEXT.set(context).unwrap_or_else(|_| CONTEXT.get().expect("set")))
}

/// Waits until `done` holds, for up to 5 seconds of guest time.
fn until(what: &str, done: impl Fn() -> bool) -> CaseResult {
    let deadline = counter() + 5 * frequency();
    while !done() {
        ensure!(counter() < deadline, "{what}: still not after 5 seconds");
        core::hint::spin_loop();
    }
    Ok(())
}

fn affinity(context: &Context, cpu: usize) -> Result<AffinityState, alloc::string::String> {
    psci::affinity_info(&context.conduit, smp::mpidr_of(cpu)).map_err(|e| alloc::format!("AFFINITY_INFO({cpu}): {e}"))
}

fn start(context: &Context, cpu: usize) -> CaseResult {
    // SAFETY: each secondary has its own stack, given only while the CPU is off (the
    // callers check AFFINITY_INFO first); guest-lib's runtime maps RAM 1:1.
    unsafe { smp::start(&context.conduit, smp::mpidr_of(cpu), &STACKS[cpu], secondary, cpu as u64) }
        .map_err(|e| alloc::format!("CPU_ON({cpu}): {e}"))
}

fn every_cpu_starts(context: &Context) -> CaseResult {
    ensure_eq!(smp::this_cpu(), 0);
    ensure_eq!(affinity(context, 0)?, AffinityState::On);
    for cpu in 1..context.cpus {
        ensure_eq!(affinity(context, cpu)?, AffinityState::Off);
        start(context, cpu)?;
        until("the secondary's first instruction", || {
            ARRIVALS.of(cpu).is_some_and(|a| a.load(Ordering::Acquire) == 1)
        })?;
        ensure_eq!(affinity(context, cpu)?, AffinityState::On);
    }
    Ok(())
}

fn cpu_on_of_a_running_cpu(context: &Context) -> CaseResult {
    for cpu in 0..context.cpus {
        let again = psci::cpu_on(&context.conduit, smp::mpidr_of(cpu), 0, 0);
        ensure_eq!(again.map_err(|e| e.0), Err(pvmkit_abi::psci::ALREADY_ON));
    }
    Ok(())
}

/// Every CPU (this one too) runs `order`'s rounds at once; the counts of answers that
/// were not the profile's must stay 0.
fn concurrently(context: &Context, order: u32) -> CaseResult {
    for cpu in 0..context.cpus {
        if let Some(w) = WRONG.of(cpu) {
            w.store(0, Ordering::Relaxed);
        }
    }
    for cpu in 1..context.cpus {
        if let Some(o) = ORDERS.of(cpu) {
            o.store(order, Ordering::Release);
        }
    }
    let mut mixed = Vec::new();
    work(context, 0, order, &mut mixed);
    until("the secondaries' rounds", || {
        (1..context.cpus).all(|c| ORDERS.of(c).is_some_and(|o| o.load(Ordering::Acquire) == IDLE))
    })?;
    let wrong: Vec<u32> = (0..context.cpus).filter_map(|c| WRONG.of(c)).map(|w| w.load(Ordering::Relaxed)).collect();
    ensure!(wrong.iter().all(|&w| w == 0), "answers other than the profile's, per CPU: {wrong:?}");
    ensure!(mixed.is_empty(), "rounds where the CPUs' answers did not add up: {mixed:?}");
    Ok(())
}

/// One CPU's part of `order`. For one page shared by all, CPU 0 also checks each round:
/// exactly one CPU's MEM_SHARE succeeds and every other hears what a second share of a
/// shared page hears; the same for MEM_UNSHARE.
fn work(context: &Context, cpu: usize, order: u32, mixed: &mut Vec<(u32, usize, usize)>) {
    let c = context.conduit;
    let wrong = |answer: u64, want: &[u64]| {
        if !want.contains(&answer) {
            if let Some(w) = WRONG.of(cpu) {
                w.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    if order == VIRTIO_BLK {
        BARRIER.wait(context.cpus);
        if !blocks_of(cpu) {
            if let Some(w) = WRONG.of(cpu) {
                w.fetch_add(1, Ordering::Relaxed);
            }
        }
        return;
    }
    for round in 0..ROUNDS {
        BARRIER.wait(context.cpus);
        match order {
            DISTINCT => {
                let page = context.own_page(cpu);
                wrong(c.call(kvm::MEM_SHARE, [page, 0, 0])[0], &[context.share[0]]);
                wrong(c.call(kvm::MEM_UNSHARE, [page, 0, 0])[0], &[context.unshare[1]]);
            }
            _ => {
                let page = context.common_page();
                for (function, answers) in [(kvm::MEM_SHARE, context.share), (kvm::MEM_UNSHARE, context.unshare)] {
                    let answer = c.call(function, [page, 0, 0])[0];
                    wrong(answer, &answers);
                    if let Some(a) = ANSWERS.of(cpu) {
                        a.store(answer, Ordering::Relaxed);
                    }
                    BARRIER.wait(context.cpus);
                    if cpu == 0 {
                        let all: Vec<u64> = (0..context.cpus)
                            .filter_map(|c| ANSWERS.of(c))
                            .map(|a| a.load(Ordering::Relaxed))
                            .collect();
                        let succeeded = all.iter().filter(|&&a| a == 0).count();
                        if succeeded != 1 {
                            mixed.push((round, function as usize, succeeded));
                        }
                    }
                    BARRIER.wait(context.cpus);
                }
            }
        }
    }
}

fn off_and_on_again(context: &Context) -> CaseResult {
    let cpu = context.cpus - 1;
    let before = ARRIVALS.of(cpu).map_or(0, |a| a.load(Ordering::Acquire));
    if let Some(o) = ORDERS.of(cpu) {
        o.store(OFF, Ordering::Release);
    }
    until("the secondary powering itself off", || affinity(context, cpu) == Ok(AffinityState::Off))?;
    start(context, cpu)?;
    until("the restarted secondary", || ARRIVALS.of(cpu).is_some_and(|a| a.load(Ordering::Acquire) == before + 1))?;
    ensure_eq!(affinity(context, cpu)?, AffinityState::On);
    Ok(())
}

/// Has running, idle secondary `cpu` run `task` (and returns at once); `false` if it
/// is not waiting for orders (the SMP cases start the secondaries).
pub fn run_on(cpu: usize, task: fn()) -> bool {
    let (Some(_), Some(slot), Some(order)) = (CONTEXT.get(), TASKS.of(cpu), ORDERS.of(cpu)) else { return false };
    if order.load(Ordering::Acquire) != IDLE {
        return false;
    }
    slot.replace(Some(task));
    order.compare_exchange(IDLE, RUN_TASK, Ordering::AcqRel, Ordering::Acquire).is_ok()
}

/// Orders every running secondary off, waits until each is, then powers this vCPU off:
/// returns only if that fails.
pub fn power_everything_off(boot: &BootInfo) {
    let c = boot.conduit;
    for cpu in 1..boot.dt.cpus().len().min(MAX_CPUS) {
        if psci::affinity_info(&c, smp::mpidr_of(cpu)) == Ok(AffinityState::On) {
            if let Some(o) = ORDERS.of(cpu) {
                o.store(OFF, Ordering::Release);
            }
            while psci::affinity_info(&c, smp::mpidr_of(cpu)) != Ok(AffinityState::Off) {
                core::hint::spin_loop();
            }
        }
    }
    let error = psci::cpu_off(&c);
    guest_lib::println!("test-guest: CPU_OFF of the last vCPU failed: {error}");
}

/// A secondary's life: count its arrival, then do what CPU 0 orders.
extern "C" fn secondary(cpu: u64) -> ! {
    let cpu = cpu as usize;
    if let Some(a) = ARRIVALS.of(cpu) {
        a.fetch_add(1, Ordering::AcqRel);
    }
    let Some(context) = CONTEXT.get() else {
        loop {
            core::hint::spin_loop();
        }
    };
    let order = ORDERS.of(cpu).expect("a CPU below MAX_CPUS");
    loop {
        match order.load(Ordering::Acquire) {
            IDLE => core::hint::spin_loop(),
            TAKE_SGI => {
                take_sgi(cpu);
                order.store(IDLE, Ordering::Release);
            }
            RUN_TASK => {
                if let Some(task) = TASKS.of(cpu).and_then(|t| t.replace(None)) {
                    task();
                }
                order.store(IDLE, Ordering::Release);
            }
            OFF => {
                order.store(IDLE, Ordering::Release);
                // Returns only if the CPU could not be powered off.
                let _ = psci::cpu_off(&context.conduit);
            }
            work_order => {
                work(context, cpu, work_order, &mut Vec::new());
                order.store(IDLE, Ordering::Release);
            }
        }
    }
}
