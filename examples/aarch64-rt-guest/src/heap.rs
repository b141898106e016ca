//! This guest's own heap: linked_list_allocator over a static region. guest-lib
//! allocates from whatever `#[global_allocator]` the guest has.

use linked_list_allocator::LockedHeap;

const HEAP_SIZE: usize = 4 << 20;

#[repr(C, align(4096))]
struct Region([u8; HEAP_SIZE]);

static mut REGION: Region = Region([0; HEAP_SIZE]);

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Hands the region to the allocator; called once, first thing.
pub fn init() {
    // SAFETY: called once at boot, before any allocation; nothing else names REGION.
    unsafe { HEAP.lock().init((&raw mut REGION).cast::<u8>(), HEAP_SIZE) };
}
