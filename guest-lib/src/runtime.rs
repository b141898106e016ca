//! The guest runtime: from `_start` to the guest's `main` and back to power-off, the
//! exception handler, the heap and the panic handler.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;

use abi::esr::Esr;
use linked_list_allocator::LockedHeap;

use crate::arch::{self, read_sysreg, write_sysreg, Frame};
use crate::conduit::SystemConduit;
use crate::device_tree::{self, GuestDt};
use crate::exceptions::{self, ExceptionReport};
use crate::hypervisor::HypervisorInfo;
use crate::{println, psci, BootInfo};

/// QEMU's documented place for the DTB when it boots a bare-metal ELF (x0 is then 0):
/// the start of RAM on `virt`.
const QEMU_BARE_DTB: u64 = abi::memory_map::QEMU_RAM_BASE;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

unsafe extern "C" {
    static __heap_start: u8;
    static __heap_end: u8;
}

unsafe extern "Rust" {
    fn __pvmkit_guest_main(boot: &BootInfo);
}

/// Set once at boot, before anything can take an exception that needs it.
struct BootCell(UnsafeCell<MaybeUninit<SystemConduit>>);
// SAFETY: written once by the boot CPU before any reader exists; guests are single-core.
unsafe impl Sync for BootCell {}
static CONDUIT: BootCell = BootCell(UnsafeCell::new(MaybeUninit::new(SystemConduit::Hvc)));

fn conduit() -> SystemConduit {
    // SAFETY: initialised (to HVC) statically and overwritten only at boot.
    unsafe { (*CONDUIT.0.get()).assume_init() }
}

/// Powers off with the best conduit known; never returns.
pub fn power_off() -> ! {
    let error = psci::system_off(&conduit());
    println!("[guest] SYSTEM_OFF failed: {error}");
    loop {
        core::hint::spin_loop();
    }
}

fn read_dt(ptr: u64) -> Option<GuestDt<'static>> {
    let ptr = if ptr == 0 { QEMU_BARE_DTB } else { ptr };
    // SAFETY: x0 (or QEMU's bare-metal convention) names the DT; the header is read first.
    let header: [u8; 8] = unsafe { core::ptr::read_volatile(ptr as *const [u8; 8]) };
    let size = device_tree::dt_size(header).ok()?;
    // SAFETY: the header says `size` bytes of device tree start at `ptr`; nothing
    // writes there afterwards (pvmkit places it outside the image).
    let blob = unsafe { core::slice::from_raw_parts(ptr as *const u8, size) };
    GuestDt::read(blob).ok()
}

#[unsafe(no_mangle)]
extern "C" fn pvmkit_guest_entry(dt_ptr: u64) -> ! {
    // SAFETY: the linker script reserves [__heap_start, __heap_end) for the heap.
    unsafe {
        let start = &raw const __heap_start as *mut u8;
        let size = (&raw const __heap_end as usize) - (start as usize);
        HEAP.lock().init(start, size);
    }
    let Some(dt) = read_dt(dt_ptr) else {
        // No console to report on: power off through the pVM conduit.
        power_off()
    };
    if let Some(uart) = dt.uart {
        // SAFETY: the DT names this PL011 as the guest's.
        unsafe { crate::console::init(uart) };
    }
    let conduit = dt.conduit.unwrap_or(SystemConduit::Hvc);
    // SAFETY: boot is single-threaded and nothing has read the conduit yet.
    unsafe { (*CONDUIT.0.get()).write(conduit) };
    crate::console::init_logger(log::LevelFilter::Info);
    let hypervisor = HypervisorInfo::discover(&conduit);
    let dt_ipa = if dt_ptr == 0 { QEMU_BARE_DTB } else { dt_ptr };
    let boot = BootInfo {
        dt,
        dt_ipa,
        conduit,
        hypervisor,
    };
    // SAFETY: defined by the guest's `guest_lib::entry!`.
    unsafe { __pvmkit_guest_main(&boot) };
    power_off()
}

#[unsafe(no_mangle)]
extern "C" fn pvmkit_guest_exception(frame: &mut Frame, kind: u64) {
    let esr = Esr(read_sysreg!("esr_el1"));
    let elr = read_sysreg!("elr_el1");
    let far = read_sysreg!("far_el1");
    if kind == 0 && exceptions::is_probe_abort(elr, esr, arch::probe::sites()) {
        arch::probe::record(esr.0, far);
        frame.x[1] = 1;
        write_sysreg!("elr_el1", elr + 4);
        return;
    }
    let kind = ["synchronous", "IRQ", "FIQ", "SError"]
        .get(kind as usize)
        .copied()
        .unwrap_or("unknown");
    println!(
        "[guest] {}",
        ExceptionReport {
            kind,
            esr,
            far,
            elr
        }
    );
    power_off()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("[guest] panic: {info}");
    power_off()
}
