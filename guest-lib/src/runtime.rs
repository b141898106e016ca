//! The guest runtime: from `_start` to the guest's `main` and back to power-off, the
//! exception handler, the heap and the panic handler.
//!
//! Boot order matters under pKVM: the device tree first (it names the conduit and the
//! console), then hypervisor discovery, then the MMIO guard (enrol, register the
//! console's granule), and only then the first console access.

use crate::address::Ipa;
use core::sync::atomic::{AtomicBool, Ordering};

use linked_list_allocator::LockedHeap;
use mmio_guard::MmioGuard;
use pvmkit_abi::esr::Esr;

use aarch64_cpu::registers::{Readable, Writeable, ELR_EL1, ESR_EL1, FAR_EL1};

use crate::arch::{self, Frame};
use crate::bounce_pool::{BouncePool, PoolError, DEFAULT_POOL_SIZE};
use crate::conduit::SystemConduit;
use crate::device_tree::{self, DtError, GuestDt};
use crate::exceptions::ExceptionReport;
use crate::hypervisor::HypervisorInfo;
use crate::set_once::SetOnce;
use crate::sharing::MemSharer;
use crate::virtio::DmaSetup;
use crate::{println, psci, BootInfo};

/// QEMU's documented place for the DTB when it boots a bare-metal ELF (x0 is then 0):
/// the start of RAM on `virt`.
const QEMU_BARE_DTB: u64 = pvmkit_abi::memory_map::QEMU_RAM_BASE;

/// A command-line word that makes guest-lib skip MMIO guard registration. It exists
/// only for the negative control that proves hyp enforces the guard, and only in builds
/// that turn on the `unsafe-test-switches` feature (test-guest): a release guest, and
/// pvmfw, ignore it.
#[cfg(feature = "unsafe-test-switches")]
pub const SKIP_MMIO_GUARD_ARG: &str = "guest-lib.unsafe-skip-mmio-guard";

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

unsafe extern "C" {
    static __guest_start: u8;
    static __heap_start: u8;
    static __heap_end: u8;
}

unsafe extern "Rust" {
    fn __pvmkit_guest_main(boot: &BootInfo);
    fn __pvmkit_guest_platform() -> Option<crate::Platform>;
}

static CONDUIT: SetOnce<SystemConduit> = SetOnce::new();
static MMIO_GUARD: SetOnce<MmioGuard<SystemConduit>> = SetOnce::new();
static DT: SetOnce<GuestDt<'static>> = SetOnce::new();
static DMA_POOL: SetOnce<BouncePool> = SetOnce::new();
static HYPERVISOR: SetOnce<HypervisorInfo> = SetOnce::new();

/// Sets boot state, once (boot runs once: a second set would be a bug, and ends the VM).
fn set_once<T>(cell: &'static SetOnce<T>, value: T) -> &'static T {
    cell.set(value).unwrap_or_else(|_| fatal(format_args!("boot state set twice")))
}

/// Gives the virtio `Hal` its pool (`None` when the VM is not protected) and the DT's
/// device ranges, on first use, so a guest without devices shares nothing. Every DMA
/// buffer of every device comes from this one shared region: the DT's
/// `restricted-dma-pool` when it reserves one inside RAM, else one from the heap.
fn set_up_dma() {
    let hypervisor = HYPERVISOR.get().copied().unwrap_or_else(|| fatal_silent());
    let dt = device_tree();
    let pool = if hypervisor.is_protected() {
        let reserved = dt.reserved_memory(pvmkit_abi::memory_map::BOUNCE_POOL_COMPATIBLE).filter(|&(base, size)| {
            dt.memory
                .is_some_and(|(ram, len)| base >= ram && base.checked_add(size).is_some_and(|end| end <= ram + len))
        });
        let pool = MemSharer::new(conduit(), &hypervisor).map_err(PoolError::Share).and_then(|s| match reserved {
            // SAFETY: the DT reserves this region of RAM for bounce buffers alone.
            Some((base, size)) => unsafe { BouncePool::from_region(&s, base, size as usize) },
            None => BouncePool::allocate(&s, DEFAULT_POOL_SIZE),
        });
        match pool {
            Ok(pool) => Some(set_once(&DMA_POOL, pool)),
            Err(e) => fatal(format_args!("cannot set up the bounce pool: {e}")),
        }
    } else {
        None
    };
    if crate::virtio::set_dma(DmaSetup { pool, device_ranges: dt.virtio_mmio().collect() }).is_err() {
        fatal(format_args!("the virtio Hal was set up twice"));
    }
}

/// The device tree the guest booted with.
pub(crate) fn device_tree() -> &'static GuestDt<'static> {
    DT.get().unwrap_or_else(|| fatal_silent())
}

/// Reports what went wrong and ends the VM (SYSTEM_RESET).
pub(crate) fn fatal(why: core::fmt::Arguments<'_>) -> ! {
    if !REPORTING.swap(true, Ordering::Relaxed) {
        println!("[guest] fatal: {why}");
    }
    fatal_silent()
}

fn conduit() -> SystemConduit {
    CONDUIT.get().copied().unwrap_or(SystemConduit::Hvc)
}

/// The VM's MMIO guard client: register every MMIO range through it before touching it.
pub fn mmio_guard() -> &'static MmioGuard<SystemConduit> {
    MMIO_GUARD.get().unwrap_or_else(|| fatal_silent())
}

/// Powers off after a normal end; never returns.
pub fn power_off() -> ! {
    let error = psci::system_off(&conduit());
    println!("[guest] SYSTEM_OFF failed: {error}");
    fatal_silent()
}

/// Ends the VM after a failure: SYSTEM_RESET, so the host sees a reset, not a clean
/// power-off (hyp then reports `reset`).
fn fatal_silent() -> ! {
    let _ = psci::system_reset(&conduit());
    loop {
        core::hint::spin_loop();
    }
}

fn read_dt(ptr: u64) -> Result<GuestDt<'static>, DtError> {
    // SAFETY: x0 (or QEMU's bare-metal convention) names the DT; the header is read first.
    let header: [u8; 8] = unsafe { core::ptr::read_volatile(ptr as *const [u8; 8]) };
    let size = device_tree::dt_size(header)?;
    // SAFETY: the header says `size` bytes of device tree start at `ptr`; nothing
    // writes there afterwards (pvmkit places it outside the image).
    let blob = unsafe { core::slice::from_raw_parts(ptr as *const u8, size) };
    GuestDt::read(blob)
}

#[unsafe(no_mangle)]
extern "C" fn pvmkit_guest_entry(dt_ptr: u64) -> ! {
    arch::mmu::enable();
    // SAFETY: the linker script reserves [__heap_start, __heap_end) for the heap.
    unsafe {
        let start = &raw const __heap_start as *mut u8;
        let size = (&raw const __heap_end as usize) - (start as usize);
        HEAP.lock().init(start, size);
    }
    // Without a device tree there is no console to report on: end through the pVM conduit.
    let dt_ipa = if dt_ptr == 0 { QEMU_BARE_DTB } else { dt_ptr };
    // A guest whose DT is unusable still runs, told why, with no console: it may know
    // its platform better (pvmfw does) or end the VM.
    let (dt, dt_error) = match read_dt(dt_ipa) {
        Ok(dt) => (dt, None),
        Err(e) => (GuestDt::EMPTY, Some(e)),
    };
    // SAFETY: defined by the guest's `guest_lib::entry!`.
    let platform = unsafe { __pvmkit_guest_platform() };
    // A guest that declares its platform acts on nothing the DT says about the conduit
    // or the console: that DT may not have been checked yet.
    let (conduit, uart) = match platform {
        Some(p) => (p.conduit, Some(p.console)),
        None => (dt.conduit.unwrap_or(SystemConduit::Hvc), dt.uart),
    };
    let conduit = *set_once(&CONDUIT, conduit);
    let hypervisor = HypervisorInfo::discover(&conduit);
    let guard =
        set_once(&MMIO_GUARD, MmioGuard::new(conduit, hypervisor.features()).unwrap_or_else(|_| fatal_silent()));
    if guard.enroll().is_err() {
        fatal_silent();
    }
    if let Some(uart) = uart {
        #[cfg(feature = "unsafe-test-switches")]
        let skip = platform.is_none() && dt.bootargs.split_ascii_whitespace().any(|w| w == SKIP_MMIO_GUARD_ARG);
        #[cfg(not(feature = "unsafe-test-switches"))]
        let skip = false;
        // The console's granule stays registered for the VM's whole life. If the
        // hypervisor refuses it, the guest runs without a console (`console::base()`
        // stays 0) rather than fault on its first byte.
        if skip || guard.map(Ipa(uart), 0x1000).is_ok() {
            // SAFETY: the DT names this PL011 as the guest's, and it is registered.
            unsafe { crate::console::init(uart) };
        }
    }
    crate::console::init_logger(log::LevelFilter::Info);
    set_once(&DT, dt);
    set_once(&HYPERVISOR, hypervisor);
    // The virtio Hal's pool is set up on first use, so a guest without devices shares
    // nothing: the runtime hands the virtio module its set-up rather than be called up.
    if crate::virtio::set_dma_on_first_use(set_up_dma).is_err() {
        fatal(format_args!("the virtio Hal's set-up was registered twice"));
    }
    // The GIC likewise, on the first timed wait or interrupt call.
    if crate::timer::init_on_first_use(|| crate::timer::init(device_tree(), crate::mmio_guard())).is_err() {
        fatal(format_args!("the GIC's set-up was registered twice"));
    }
    let image_base = &raw const __guest_start as u64;
    let boot = BootInfo { dt, dt_error, dt_ipa, conduit, hypervisor, image_base };
    // SAFETY: defined by the guest's `guest_lib::entry!`.
    unsafe { __pvmkit_guest_main(&boot) };
    power_off()
}

/// Set while an unexpected exception is being reported: a second one means the
/// report itself failed, and the VM ends without another word.
static REPORTING: AtomicBool = AtomicBool::new(false);

#[unsafe(no_mangle)]
extern "C" fn pvmkit_guest_exception(frame: &mut Frame, kind: u64) {
    let esr = Esr(ESR_EL1.get());
    let elr = ELR_EL1.get();
    let far = FAR_EL1.get();
    if let Some(fix) = (kind == 0).then(|| arch::probe::fixup(esr.0, elr, far)).flatten() {
        frame.x[1] = fix.x1;
        ELR_EL1.set(fix.resume_at);
        return;
    }
    if REPORTING.swap(true, Ordering::Relaxed) {
        fatal_silent();
    }
    let console = crate::console::base();
    if console != 0 && far & !0xfff == console & !0xfff && esr.data_abort().is_some() {
        // The console itself was refused: nothing can be printed any more.
        // SAFETY: 0 turns the console off.
        unsafe { crate::console::init(0) };
    }
    let kind = ["synchronous", "IRQ", "FIQ", "SError"].get(kind as usize).copied().unwrap_or("unknown");
    println!("[guest] {}", ExceptionReport { kind, esr, far, elr });
    fatal_silent()
}

// The firmware's only; documentation builds on the host may have std's.
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    if !REPORTING.swap(true, Ordering::Relaxed) {
        println!("[guest] panic: {info}");
    }
    fatal_silent()
}
