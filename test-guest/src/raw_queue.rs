//! A virtio queue (block or console) driven by hand, register by register, so that test-guest can do
//! what no well-behaved driver does: the attacks on hyp's device side. Its five pages
//! (descriptors, available ring, used ring, a spare page, data) are shared
//! with the host for the queue's life.

extern crate alloc;

use alloc::alloc::{alloc_zeroed, dealloc, Layout};

use guest_lib::conduit::SystemConduit;
use guest_lib::sharing::MemSharer;

use pvmkit_abi::memory_map::GRANULE;
const PAGES: u64 = 5;

/// virtio-mmio registers.
pub use pvmkit_abi::virtio_mmio as reg;

/// STATUS bits.
const ACKNOWLEDGE: u32 = 1;
const DRIVER: u32 = 2;
const FEATURES_OK: u32 = 8;
/// STATUS with DRIVER_OK.
pub const DRIVER_OK: u32 = ACKNOWLEDGE | DRIVER | FEATURES_OK | 4;

/// The queue size used.
pub const SIZE: u32 = 8;

/// One hand-driven queue 0 of the transport at `base`.
pub struct RawQueue<'a> {
    base: u64,
    memory: *mut u8,
    sharer: &'a MemSharer<SystemConduit>,
}

impl<'a> RawQueue<'a> {
    /// Resets the device, negotiates VERSION_1 only, and makes queue 0 ready with
    /// rings in freshly shared pages; DRIVER_OK is left to the caller.
    pub fn new(base: u64, sharer: &'a MemSharer<SystemConduit>) -> Result<Self, &'static str> {
        // SAFETY: a non-zero size and a power-of-two alignment.
        let memory = unsafe { alloc_zeroed(Self::layout()) };
        if memory.is_null() {
            return Err("out of memory");
        }
        if sharer.share(guest_lib::ipa_of(memory), PAGES * GRANULE).is_err() {
            // SAFETY: allocated just above with this layout.
            unsafe { dealloc(memory, Self::layout()) };
            return Err("could not share the queue's pages");
        }
        let q = Self { base, memory, sharer };
        q.write(reg::STATUS, 0);
        q.write(reg::STATUS, ACKNOWLEDGE | DRIVER);
        q.write(reg::DRIVER_FEATURES_SEL, 1);
        q.write(reg::DRIVER_FEATURES, 1); // VERSION_1
        q.write(reg::DRIVER_FEATURES_SEL, 0);
        q.write(reg::DRIVER_FEATURES, 0);
        q.write(reg::STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
        q.write(reg::QUEUE_SEL, 0);
        q.write(reg::QUEUE_NUM, SIZE);
        for (low, page) in [(reg::QUEUE_DESC_LOW, 0), (reg::QUEUE_DRIVER_LOW, 1), (reg::QUEUE_DEVICE_LOW, 2)] {
            let addr = q.page(page);
            q.write(low, addr as u32);
            q.write(low + 4, (addr >> 32) as u32);
        }
        q.write(reg::QUEUE_READY, 1);
        Ok(q)
    }

    fn layout() -> Layout {
        Layout::from_size_align((PAGES * GRANULE) as usize, GRANULE as usize).unwrap_or(Layout::new::<u8>())
    }

    /// The IPA of page `n` of the queue's memory: 0 descriptors, 1 available ring,
    /// 2 used ring, 3 request header (and status at +16), 4 data.
    pub fn page(&self, n: u64) -> u64 {
        self.memory as u64 + n * GRANULE
    }

    /// Writes a transport register.
    pub fn write(&self, offset: u64, value: u32) {
        // SAFETY: the transport's registers, registered with the MMIO guard by discovery.
        unsafe { ((self.base + offset) as *mut u32).write_volatile(value) }
    }

    /// Writes descriptor `index`.
    pub fn descriptor(&self, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = self.page(0) + 16 * index as u64;
        // SAFETY: inside the queue's descriptor page, which this queue owns.
        unsafe {
            (at as *mut u64).write_volatile(addr);
            ((at + 8) as *mut u32).write_volatile(len);
            ((at + 12) as *mut u16).write_volatile(flags);
            ((at + 14) as *mut u16).write_volatile(next);
        }
    }

    /// Makes `head` the next available chain (slot `slot`) and notifies queue `notify`.
    pub fn post(&self, slot: u16, head: u16, notify: u32) {
        self.publish(slot, head);
        self.write(reg::QUEUE_NOTIFY, notify);
    }

    /// Makes `head` the next available chain (slot `slot`), without a notify: from
    /// here on the device may use its buffers.
    pub fn publish(&self, slot: u16, head: u16) {
        self.handle().publish(slot, head);
    }

    /// The addresses another CPU needs to publish and notify on this queue while it
    /// lives.
    pub fn handle(&self) -> QueueHandle {
        QueueHandle { base: self.base, memory: self.memory as u64 }
    }

    /// The used ring's index: how many chains the device has completed.
    pub fn used_idx(&self) -> u16 {
        // SAFETY: inside the used-ring page, which this queue owns.
        unsafe { ((self.page(2) + 2) as *const u16).read_volatile() }
    }

    /// Posts the data page as one writable buffer (descriptor 0): on a console's
    /// receive queue the device holds it until the host sends something.
    pub fn post_receive(&self) {
        self.descriptor(0, self.page(4), 512, 2, 0);
        self.post(0, 0, 0);
    }
}

/// A [`RawQueue`]'s transport and memory, for a CPU that does not own it.
#[derive(Clone, Copy, Debug)]
pub struct QueueHandle {
    /// The transport's registers.
    pub base: u64,
    /// The queue's pages ([`RawQueue::page`]).
    pub memory: u64,
}

impl QueueHandle {
    /// [`RawQueue::publish`].
    pub fn publish(self, slot: u16, head: u16) {
        let avail = self.memory + GRANULE;
        // SAFETY: inside the available-ring page of a queue that lives while its owner
        // lets another CPU use this handle.
        unsafe {
            ((avail + 4 + 2 * (slot as u64 % SIZE as u64)) as *mut u16).write_volatile(head);
            core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
            ((avail + 2) as *mut u16).write_volatile(slot.wrapping_add(1));
        }
    }

    /// Notifies queue `queue`.
    pub fn notify(self, queue: u32) {
        // SAFETY: the transport's registers, registered with the MMIO guard by discovery.
        unsafe { ((self.base + reg::QUEUE_NOTIFY) as *mut u32).write_volatile(queue) }
    }
}

impl Drop for RawQueue<'_> {
    fn drop(&mut self) {
        // A reset gives every buffer back; only then are the pages taken back.
        self.write(reg::STATUS, 0);
        if self.sharer.unshare(guest_lib::ipa_of(self.memory), PAGES * GRANULE).is_ok() {
            // SAFETY: allocated in `new` with this layout, no longer shared.
            unsafe { dealloc(self.memory, Self::layout()) };
        }
    }
}
