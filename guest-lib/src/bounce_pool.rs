//! The pre-shared bounce pool: one region of private memory, shared with the host once,
//! out of which buffers for device I/O are allocated. Every address it hands out lies
//! inside the shared region, so nothing private ever reaches a device; running out is
//! an error, never a panic; tearing the pool down takes the region back.
//!
//! ```
//! # use guest_lib::conduit::Conduit;
//! /// A conduit with nothing behind it: every call answers NOT_SUPPORTED (-1).
//! struct Nothing;
//! impl Conduit for Nothing {
//!     fn call(&self, _function: u32, _args: [u64; 3]) -> [u64; 4] {
//!         [u64::MAX, 0, 0, 0]
//!     }
//! }
//! use guest_lib::bounce_pool::BouncePool;
//! use guest_lib::hypervisor::HypervisorInfo;
//! use guest_lib::sharing::MemSharer;
//!
//! let sharer = MemSharer::new(Nothing, &HypervisorInfo::discover(&Nothing)).unwrap();
//! // 64 KiB from the heap, shared once (here: nothing to share with).
//! let pool = BouncePool::allocate(&sharer, 16 * 4096).unwrap();
//! let buffer = pool.alloc(512, 64).unwrap();
//! assert!(pool.contains(buffer.as_ptr() as u64, 512));
//! // SAFETY: allocated just above with this size and alignment.
//! unsafe { pool.free(buffer, 512, 64) };
//! assert!(pool.teardown(&sharer).is_ok());
//! ```

use alloc::alloc::{alloc_zeroed, dealloc};
use core::alloc::Layout;
use core::fmt;
use core::ptr::NonNull;

use linked_list_allocator::LockedHeap;

use crate::address::Ipa;
use crate::sharing::{MemSharing, ShareError};

/// The default pool size: enough for the rings of a few devices and a 1 MiB request in
/// flight.
pub const DEFAULT_POOL_SIZE: usize = 4 << 20;
/// The largest alignment a buffer may ask for: one page.
pub const MAX_ALIGN: usize = 4096;

/// Why the pool could not do what was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// No free block of this size and alignment is left.
    Exhausted {
        /// Bytes asked for.
        size: usize,
        /// Alignment asked for.
        align: usize,
    },
    /// A zero size, an alignment that is not a power of two, or one above [`MAX_ALIGN`].
    BadLayout {
        /// Bytes asked for.
        size: usize,
        /// Alignment asked for.
        align: usize,
    },
    /// The region's size is not a multiple of the sharing granule.
    BadSize(usize),
    /// The heap could not give a region that large.
    NoRegion(usize),
    /// Sharing or unsharing the region failed.
    Share(ShareError),
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exhausted { size, align } => {
                write!(f, "bounce pool exhausted ({size} bytes, align {align})")
            }
            Self::BadLayout { size, align } => {
                write!(f, "bad bounce buffer layout ({size} bytes, align {align})")
            }
            Self::BadSize(n) => write!(f, "bounce pool size {n} is not a multiple of the granule"),
            Self::NoRegion(n) => write!(f, "no {n}-byte region left on the heap for a bounce pool"),
            Self::Share(e) => write!(f, "bounce pool: {e}"),
        }
    }
}

/// A region shared with the host and an allocator over it.
///
/// Give it back with [`BouncePool::teardown`]. A pool merely dropped stays shared and its
/// region is never returned to the heap: memory the host can still read must not hold
/// the heap's next contents (Miri reports such a pool's region as leaked, and the tests
/// tear theirs down).
pub struct BouncePool {
    start: u64,
    size: usize,
    heap: LockedHeap,
    /// The heap layout the region came from, when the pool allocated it itself.
    owned: Option<Layout>,
}

// SAFETY: the region is owned by the pool and every access to its allocator goes
// through the heap's spin lock.
unsafe impl Send for BouncePool {}
// SAFETY: as above.
unsafe impl Sync for BouncePool {}

fn check_layout(size: usize, align: usize) -> Result<Layout, PoolError> {
    if size == 0 || align > MAX_ALIGN {
        return Err(PoolError::BadLayout { size, align });
    }
    Layout::from_size_align(size, align).map_err(|_| PoolError::BadLayout { size, align })
}

impl BouncePool {
    /// Takes `size` bytes (a multiple of the granule) from the heap, zeroed and
    /// granule-aligned, and shares them.
    pub fn allocate(sharer: &(impl MemSharing + ?Sized), size: usize) -> Result<Self, PoolError> {
        let granule = sharer.granule() as usize;
        if size == 0 || !size.is_multiple_of(granule) {
            return Err(PoolError::BadSize(size));
        }
        let layout = Layout::from_size_align(size, granule).map_err(|_| PoolError::BadSize(size))?;
        // SAFETY: the layout has a non-zero size.
        let region = NonNull::new(unsafe { alloc_zeroed(layout) }).ok_or(PoolError::NoRegion(size))?;
        // SAFETY: the region was just allocated for the pool alone.
        match unsafe { Self::from_region(sharer, region.as_ptr() as u64, size) } {
            Ok(mut pool) => {
                pool.owned = Some(layout);
                Ok(pool)
            }
            Err(e) => {
                // SAFETY: allocated above with this layout and not shared.
                unsafe { dealloc(region.as_ptr(), layout) };
                Err(e)
            }
        }
    }

    /// Shares `[start, start + size)` and manages it.
    ///
    /// # Safety
    /// The region must be memory nobody else uses for as long as the pool lives, and
    /// identity mapped (its address is what devices are given).
    pub unsafe fn from_region(sharer: &(impl MemSharing + ?Sized), start: u64, size: usize) -> Result<Self, PoolError> {
        let granule = sharer.granule();
        if size == 0 || !(size as u64).is_multiple_of(granule) || !start.is_multiple_of(granule) {
            return Err(PoolError::BadSize(size));
        }
        sharer.share(Ipa(start), size as u64).map_err(PoolError::Share)?;
        // SAFETY: the caller gives the region to the pool alone.
        let heap = unsafe { LockedHeap::new(start as *mut u8, size) };
        Ok(Self { start, size, heap, owned: None })
    }

    /// Allocates `size` bytes aligned to `align` (≤ [`MAX_ALIGN`]); contents are
    /// whatever the last user left (use [`Self::alloc_zeroed`] for device-written buffers).
    pub fn alloc(&self, size: usize, align: usize) -> Result<NonNull<u8>, PoolError> {
        let layout = check_layout(size, align)?;
        self.heap.lock().allocate_first_fit(layout).map_err(|()| PoolError::Exhausted { size, align })
    }

    /// Allocates and zeroes, so stale pool data never reaches a guest or a device.
    pub fn alloc_zeroed(&self, size: usize, align: usize) -> Result<NonNull<u8>, PoolError> {
        let ptr = self.alloc(size, align)?;
        // SAFETY: the block is `size` bytes the pool just handed out.
        unsafe { ptr.as_ptr().write_bytes(0, size) };
        Ok(ptr)
    }

    /// Returns a block.
    ///
    /// # Safety
    /// `ptr`, `size` and `align` must be those of a block this pool handed out and that
    /// was not freed since.
    pub unsafe fn free(&self, ptr: NonNull<u8>, size: usize, align: usize) {
        if let Ok(layout) = check_layout(size, align) {
            // SAFETY: guaranteed by the caller.
            unsafe { self.heap.lock().deallocate(ptr, layout) };
        }
    }

    /// Whether `[addr, addr + len)` lies inside the shared region.
    pub fn contains(&self, addr: u64, len: usize) -> bool {
        addr >= self.start && addr.checked_add(len as u64).is_some_and(|end| end <= self.start + self.size as u64)
    }

    /// The shared region: (start, size).
    pub fn region(&self) -> (u64, usize) {
        (self.start, self.size)
    }

    /// Bytes not allocated right now.
    pub fn free_bytes(&self) -> usize {
        self.heap.lock().free()
    }

    /// Takes the region back from the host (and returns it to the heap if the pool
    /// allocated it). On failure the pool is handed back, still shared.
    pub fn teardown(self, sharer: &(impl MemSharing + ?Sized)) -> Result<(), (Self, ShareError)> {
        if let Err(e) = sharer.unshare(Ipa(self.start), self.size as u64) {
            return Err((self, e));
        }
        if let Some(layout) = self.owned {
            // SAFETY: allocated by `allocate` with this layout; no longer shared, and
            // the pool (with every block) is consumed here.
            unsafe { dealloc(self.start as *mut u8, layout) };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
