//! Negative controls for the race that sharing invites: a guest taking back a page a
//! device still holds. Each stops a protected VM; where nothing stops it, the scenario
//! fails by name.
//!
//! - `racy-hal` (two vCPUs or more): CPU 1 publishes a block write in the available
//!   ring; CPU 0, like a HAL that frees a bounce page without asking who holds it,
//!   unshares the data page; then CPU 1 notifies. From its publication the buffer is
//!   the device's (virtio 1.2, 2.7.13), so hyp stops the VM at CPU 0's MEM_UNSHARE,
//!   naming the page, the device, queue, descriptor and vCPU 0. The real pKVM takes
//!   the page back, and the VMM faults on it when CPU 1's notify makes it read the
//!   data: its violation names the page and vCPU 1.
//! - `unshare-held` (one vCPU is enough): a console receive buffer the device holds
//!   after a notify (nothing more comes from the host), QueueReady=0 (which gives
//!   nothing back), then MEM_UNSHARE of it. hyp stops the VM at the call; the release
//!   takes the page back and, with no input to write, its VMM never notices: hyp only.

extern crate alloc;

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use pvmkit_abi::address::Ipa;

use guest_lib::virtio::VirtioDevice;
use guest_lib::{ensure, println, BootInfo};
use virtio_drivers::transport::DeviceType;

use crate::clock::{counter, frequency};
use crate::expect::Mode;
use crate::raw_queue::{self, QueueHandle, RawQueue};
use guest_lib::harness::CaseResult;

/// Where the race stands: CPU 1 has published, CPU 0 has unshared, CPU 1 has notified.
static STAGE: AtomicU32 = AtomicU32::new(IDLE);
const IDLE: u32 = 0;
const PUBLISHED: u32 = 1;
const UNSHARED: u32 = 2;
const NOTIFIED: u32 = 3;
/// The queue CPU 1 drives ([`QueueHandle`]'s two addresses).
static QUEUE_BASE: AtomicU64 = AtomicU64::new(0);
static QUEUE_MEMORY: AtomicU64 = AtomicU64::new(0);

/// virtio-blk's request type for a write (VIRTIO_BLK_T_OUT).
const BLK_T_OUT: u32 = 1;
/// Descriptor flags.
const NEXT: u16 = 1;
const WRITE: u16 = 2;

/// CPU 0's part of `racy-hal`.
pub fn racy_hal(boot: &BootInfo, mode: Mode) -> CaseResult {
    ensure!(boot.dt.cpus().len() >= 2, "the racy-hal scenario needs two vCPUs (pvmkit run --cpus 2)");
    // Discovery registered the transports with the MMIO guard: kept while in use.
    let devices = guest_lib::virtio::discover(&boot.dt, guest_lib::mmio_guard());
    let base = device_base(&devices, DeviceType::Block)?;
    let sharer = boot.sharer().map_err(|e| alloc::format!("{e}"))?;
    let q = RawQueue::new(base, &sharer)?;
    q.write(raw_queue::reg::STATUS, raw_queue::DRIVER_OK);
    let (header, data) = (q.page(3), q.page(4));
    // SAFETY: the queue's own header page: type, reserved, sector; the status byte
    // follows at +16.
    unsafe {
        (header as *mut u32).write_volatile(BLK_T_OUT);
        ((header + 8) as *mut u64).write_volatile(4096);
        core::ptr::write_bytes(data as *mut u8, 0x5a, 512);
    }
    q.descriptor(0, header, 16, NEXT, 1);
    q.descriptor(1, data, 512, NEXT, 2);
    q.descriptor(2, header + 16, 1, WRITE, 0);
    let handle = q.handle();
    QUEUE_BASE.store(handle.base, Ordering::Relaxed);
    QUEUE_MEMORY.store(handle.memory, Ordering::Relaxed);
    STAGE.store(IDLE, Ordering::Release);
    ensure!(crate::smp_cases::run_on(1, submit_on_this_cpu), "CPU 1 is not waiting for orders");
    until("CPU 1's publication", PUBLISHED)?;
    println!(
        "test-guest: racy HAL: CPU 0 unshares {data:#x}, which CPU 1's published block write holds (descriptor 1)"
    );
    let unshared = sharer.unshare(Ipa(data), 4096);
    STAGE.store(UNSHARED, Ordering::Release);
    until("CPU 1's notify", NOTIFIED)?;
    let start = counter();
    while q.used_idx() == 0 && counter() - start < frequency() {
        core::hint::spin_loop();
    }
    ensure!(!mode.protected(), "the device was given a page the guest took back ({unshared:?}) and the VM goes on");
    Ok(())
}

/// CPU 1's part of `racy-hal`: publish, wait for CPU 0's unshare, notify.
fn submit_on_this_cpu() {
    let handle = QueueHandle { base: QUEUE_BASE.load(Ordering::Relaxed), memory: QUEUE_MEMORY.load(Ordering::Relaxed) };
    handle.publish(0, 0);
    STAGE.store(PUBLISHED, Ordering::Release);
    while STAGE.load(Ordering::Acquire) != UNSHARED {
        core::hint::spin_loop();
    }
    handle.notify(0);
    STAGE.store(NOTIFIED, Ordering::Release);
}

/// `unshare-held`: a receive buffer the console holds is taken back.
pub fn unshare_held(boot: &BootInfo, mode: Mode) -> CaseResult {
    let sharer = boot.sharer().map_err(|e| alloc::format!("{e}"))?;
    let devices = guest_lib::virtio::discover(&boot.dt, guest_lib::mmio_guard());
    let q = RawQueue::new(device_base(&devices, DeviceType::Console)?, &sharer)?;
    q.write(raw_queue::reg::STATUS, raw_queue::DRIVER_OK);
    // The host's input went to the suite's console case: this buffer stays held.
    q.post_receive();
    q.write(raw_queue::reg::QUEUE_READY, 0);
    let data = q.page(4);
    println!("test-guest: unshare-held: unsharing {data:#x}, a receive buffer the console holds (descriptor 0)");
    let unshared = sharer.unshare(Ipa(data), 4096);
    ensure!(
        !mode.answers().pins_device_pages,
        "a page the device holds was taken back ({unshared:?}) and the VM goes on"
    );
    Ok(())
}

fn device_base(devices: &[VirtioDevice], kind: DeviceType) -> Result<u64, &'static str> {
    devices.iter().find(|d| d.device_type == kind).map(|d| d.base).ok_or("no such virtio device")
}

/// Waits (a second at most) until the race reaches `stage`.
fn until(what: &str, stage: u32) -> CaseResult {
    let start = counter();
    while STAGE.load(Ordering::Acquire) < stage {
        if counter() - start > frequency() {
            return Err(alloc::format!("{what} did not come within a second"));
        }
        core::hint::spin_loop();
    }
    Ok(())
}
