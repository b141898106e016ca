//! HALs for tests built on guest-lib's `PvmHal`: one that records where rings were put,
//! and two broken on purpose for negative controls: one leaks private memory to the
//! device, one hands stale pool data back to the caller.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use guest_lib::println;
use guest_lib::virtio::PvmHal;
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

/// The last ring allocation `RecordingHal` made.
pub static LAST_RING: AtomicU64 = AtomicU64::new(0);

/// `PvmHal`, remembering the last ring allocation.
pub struct RecordingHal;

// SAFETY: every method delegates to `PvmHal`, which upholds the contract.
unsafe impl Hal for RecordingHal {
    fn dma_alloc(pages: usize, direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let (paddr, vaddr) = PvmHal::dma_alloc(pages, direction);
        LAST_RING.store(paddr, Ordering::Relaxed);
        (paddr, vaddr)
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        // SAFETY: as guaranteed by our caller.
        unsafe { PvmHal::dma_dealloc(paddr, vaddr, pages) }
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        // SAFETY: as guaranteed by our caller.
        unsafe { PvmHal::mmio_phys_to_virt(paddr, size) }
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        // SAFETY: as guaranteed by our caller.
        unsafe { PvmHal::share(buffer, direction) }
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        // SAFETY: as guaranteed by our caller.
        unsafe { PvmHal::unshare(paddr, buffer, direction) }
    }
}

/// A broken HAL: rings come from the shared pool, but every buffer is handed to the
/// device where it is, in private memory. hyp must stop the VM at the first notify.
pub struct LeakyHal;

// SAFETY: memory safety holds (buffers are valid for the request); what this HAL
// breaks on purpose is the pVM rule that the device sees only shared memory.
unsafe impl Hal for LeakyHal {
    fn dma_alloc(pages: usize, direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        PvmHal::dma_alloc(pages, direction)
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        // SAFETY: as guaranteed by our caller.
        unsafe { PvmHal::dma_dealloc(paddr, vaddr, pages) }
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        // SAFETY: as guaranteed by our caller.
        unsafe { PvmHal::mmio_phys_to_virt(paddr, size) }
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let addr = buffer.as_ptr() as *mut u8 as u64;
        println!("leak: handing the device private buffer {addr:#x} (page {:#x})", addr & !0xfff);
        addr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// A broken HAL: it bounces like `PvmHal` but skips zeroing device-to-driver bounce
/// buffers, so whatever the pool held before reaches the caller wherever the device
/// writes nothing (the leak class of Linux's CVE-2022-0854). The stale-data case must
/// catch it.
pub struct StaleHal;

// SAFETY: memory safety holds (bounce buffers come from the pool, valid and exclusive
// until `unshare`); what this HAL breaks on purpose is the no-stale-data guarantee.
unsafe impl Hal for StaleHal {
    fn dma_alloc(pages: usize, direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        PvmHal::dma_alloc(pages, direction)
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        // SAFETY: as guaranteed by our caller.
        unsafe { PvmHal::dma_dealloc(paddr, vaddr, pages) }
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        // SAFETY: as guaranteed by our caller.
        unsafe { PvmHal::mmio_phys_to_virt(paddr, size) }
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let Some(pool) = guest_lib::virtio::bounce_pool() else {
            return buffer.as_ptr() as *mut u8 as u64;
        };
        let bounce = pool.alloc(buffer.len(), guest_lib::virtio::BOUNCE_ALIGN).expect("pool exhausted");
        if direction != BufferDirection::DeviceToDriver {
            // SAFETY: the caller's buffer is readable; the bounce is `len` bytes of the pool.
            unsafe { bounce.as_ptr().copy_from_nonoverlapping(buffer.as_ptr() as *const u8, buffer.len()) };
        }
        bounce.as_ptr() as u64
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        // SAFETY: `share` took the bounce buffer from PvmHal's pool, with its size and
        // alignment, as PvmHal's own `share` does; the rest is as our caller guarantees.
        unsafe { PvmHal::unshare(paddr, buffer, direction) }
    }
}
