//! The bouncing behind [`super::PvmHal`], as plain code that host tests drive: DMA
//! memory from the shared pool, and every buffer the driver shares copied through a
//! bounce buffer from that pool, so the device only ever sees shared addresses.

use alloc::alloc::{alloc_zeroed, dealloc};
use core::alloc::Layout;
use core::ptr::NonNull;

use virtio_drivers::BufferDirection;

use crate::bounce_pool::{BouncePool, PoolError};
use crate::memops;
use crate::stats;

/// Alignment of bounce buffers: a cache block, so that zeroing can use `DC ZVA`.
pub const BOUNCE_ALIGN: usize = 64;
const PAGE: usize = 4096;

/// Where DMA memory comes from: the shared pool in a protected VM, the heap otherwise
/// (nothing to bounce when the host can see all memory).
#[derive(Clone, Copy)]
pub struct Bouncer<'a> {
    /// The shared pool, or `None` when not protected.
    pub pool: Option<&'a BouncePool>,
}

impl Bouncer<'_> {
    /// `pages` zeroed, page-aligned pages for rings: (device address, pointer).
    pub fn dma_alloc(&self, pages: usize) -> Result<(u64, NonNull<u8>), PoolError> {
        let size = pages.checked_mul(PAGE).ok_or(PoolError::BadLayout { size: usize::MAX, align: PAGE })?;
        let ptr = match self.pool {
            Some(pool) => pool.alloc_zeroed(size, PAGE)?,
            None => {
                let layout =
                    Layout::from_size_align(size, PAGE).map_err(|_| PoolError::BadLayout { size, align: PAGE })?;
                if size == 0 {
                    return Err(PoolError::BadLayout { size, align: PAGE });
                }
                // SAFETY: non-zero size.
                NonNull::new(unsafe { alloc_zeroed(layout) }).ok_or(PoolError::NoRegion(size))?
            }
        };
        Ok((ptr.as_ptr() as u64, ptr))
    }

    /// Gives back what `dma_alloc` gave.
    ///
    /// # Safety
    /// `vaddr` and `pages` must come from one `dma_alloc` of this bouncer.
    pub unsafe fn dma_dealloc(&self, vaddr: NonNull<u8>, pages: usize) {
        let size = pages * PAGE;
        match self.pool {
            // SAFETY: guaranteed by the caller.
            Some(pool) => unsafe { pool.free(vaddr, size, PAGE) },
            // SAFETY: guaranteed by the caller; allocated with this layout.
            None => unsafe { dealloc(vaddr.as_ptr(), Layout::from_size_align_unchecked(size, PAGE)) },
        }
    }

    /// The address the device gets for `buffer`: a bounce buffer holding a copy of it
    /// (driver-to-device) or zeroes (device-to-driver), or the buffer itself when not
    /// protected.
    ///
    /// # Safety
    /// `buffer` must be valid for reads for the duration of the call.
    pub unsafe fn share(&self, buffer: NonNull<[u8]>, direction: BufferDirection) -> Result<u64, PoolError> {
        let Some(pool) = self.pool else {
            return Ok(buffer.as_ptr() as *mut u8 as u64);
        };
        let len = buffer.len();
        let bounce = pool.alloc(len, BOUNCE_ALIGN)?;
        match direction {
            BufferDirection::DriverToDevice | BufferDirection::Both => {
                // SAFETY: `buffer` is readable (caller) and `bounce` is `len` bytes of the pool.
                unsafe { memops::copy(bounce.as_ptr(), buffer.as_ptr() as *const u8, len) };
                stats::bytes_bounced_add(len as u64);
            }
            // Stale pool contents must never reach the guest if the device writes less.
            // SAFETY: `bounce` is `len` bytes of the pool.
            BufferDirection::DeviceToDriver => unsafe { memops::zero(bounce.as_ptr(), len) },
        }
        Ok(bounce.as_ptr() as u64)
    }

    /// Copies a device-written bounce buffer back into `buffer` and frees it.
    ///
    /// # Safety
    /// `paddr` must be what `share` returned for this `buffer` and `direction`, and
    /// `buffer` must be valid for writes.
    pub unsafe fn unshare(&self, paddr: u64, buffer: NonNull<[u8]>, direction: BufferDirection) {
        let Some(pool) = self.pool else { return };
        let len = buffer.len();
        let Some(bounce) = NonNull::new(paddr as *mut u8) else {
            return;
        };
        if direction != BufferDirection::DriverToDevice {
            // SAFETY: `bounce` is the `len`-byte buffer `share` made; `buffer` is writable.
            unsafe { memops::copy(buffer.as_ptr() as *mut u8, bounce.as_ptr(), len) };
            stats::bytes_bounced_add(len as u64);
        }
        // SAFETY: allocated by `share` with this size and alignment.
        unsafe { pool.free(bounce, len, BOUNCE_ALIGN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conduit::fake::FakeConduit;
    use crate::hypervisor::{Hypervisor, HypervisorInfo};
    use crate::sharing::MemSharer;
    use pvmkit_abi::kvm::{self, Features};

    /// A protected VM's pool of `size` bytes over a fake hypervisor, unshared and given
    /// back to the heap when the test ends (Miri checks that nothing leaks).
    struct TestPool(Option<BouncePool>);

    fn sharing(run: impl FnOnce(&dyn crate::sharing::MemSharing)) {
        let fake = FakeConduit::new(|f, _| if f == kvm::HYP_MEMINFO { [4096, 0, 0, 0] } else { [0; 4] });
        let info =
            HypervisorInfo { smccc_version: Some((1, 1)), hypervisor: Hypervisor::Kvm(Features([0x1d, 0, 0, 0])) };
        run(&MemSharer::new(&fake, &info).unwrap());
    }

    fn pool(size: usize) -> TestPool {
        let mut pool = None;
        sharing(|sharer| pool = Some(BouncePool::allocate(sharer, size).unwrap()));
        TestPool(pool)
    }

    impl core::ops::Deref for TestPool {
        type Target = BouncePool;
        fn deref(&self) -> &BouncePool {
            self.0.as_ref().unwrap()
        }
    }

    impl Drop for TestPool {
        fn drop(&mut self) {
            if let Some(pool) = self.0.take() {
                sharing(|sharer| assert!(pool.teardown(sharer).is_ok()));
            }
        }
    }

    fn slice(v: &mut [u8]) -> NonNull<[u8]> {
        NonNull::from(v)
    }

    #[test]
    fn driver_to_device_copies_in_and_never_out() {
        let pool = pool(4 * 4096);
        let b = Bouncer { pool: Some(&pool) };
        let mut private = vec![0x5au8; 300];
        let before = stats::snapshot().bytes_bounced;
        // SAFETY: test buffers and pool blocks that stay alive and unaliased for the call.
        let addr = unsafe { b.share(slice(&mut private), BufferDirection::DriverToDevice) }.unwrap();
        assert!(pool.contains(addr, 300), "the device gets a pool address");
        assert_ne!(addr, private.as_ptr() as u64);
        // SAFETY: test buffers and pool blocks that stay alive and unaliased for the call.
        let bounce = unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, 300) };
        assert!(bounce.iter().all(|&x| x == 0x5a));
        bounce.fill(0xee); // the device must not be able to change the driver's buffer
                           // SAFETY: test buffers and pool blocks that stay alive and unaliased for the call.
        unsafe { b.unshare(addr, slice(&mut private), BufferDirection::DriverToDevice) };
        assert!(private.iter().all(|&x| x == 0x5a));
        assert_eq!(stats::snapshot().bytes_bounced - before, 300, "one copy, in");
        assert_eq!(pool.free_bytes(), 4 * 4096);
    }

    #[test]
    fn device_to_driver_zeroes_then_copies_back() {
        let pool = pool(4 * 4096);
        // Leave stale data in the pool.
        let stale = pool.alloc(512, 16).unwrap();
        // SAFETY: test buffers and pool blocks that stay alive and unaliased for the call.
        unsafe { stale.as_ptr().write_bytes(0xcc, 512) };
        // SAFETY: test buffers and pool blocks that stay alive and unaliased for the call.
        unsafe { pool.free(stale, 512, 16) };
        let b = Bouncer { pool: Some(&pool) };
        let mut private = vec![0x11u8; 512];
        // SAFETY: test buffers and pool blocks that stay alive and unaliased for the call.
        let addr = unsafe { b.share(slice(&mut private), BufferDirection::DeviceToDriver) }.unwrap();
        assert!(pool.contains(addr, 512));
        // SAFETY: test buffers and pool blocks that stay alive and unaliased for the call.
        let bounce = unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, 512) };
        assert!(bounce.iter().all(|&x| x == 0), "no stale pool data");
        bounce[..10].fill(0x77); // the device writes only 10 bytes
                                 // SAFETY: test buffers and pool blocks that stay alive and unaliased for the call.
        unsafe { b.unshare(addr, slice(&mut private), BufferDirection::DeviceToDriver) };
        assert!(private[..10].iter().all(|&x| x == 0x77));
        assert!(private[10..].iter().all(|&x| x == 0), "the rest is zero, not stale");
    }

    #[test]
    fn both_directions_copy_both_ways() {
        let pool = pool(4096);
        let b = Bouncer { pool: Some(&pool) };
        let mut private = vec![1u8; 64];
        // SAFETY: test buffers and pool blocks that stay alive and unaliased for the call.
        let addr = unsafe { b.share(slice(&mut private), BufferDirection::Both) }.unwrap();
        // SAFETY: test buffers and pool blocks that stay alive and unaliased for the call.
        unsafe { (addr as *mut u8).write(9) };
        // SAFETY: test buffers and pool blocks that stay alive and unaliased for the call.
        unsafe { b.unshare(addr, slice(&mut private), BufferDirection::Both) };
        assert_eq!(private[0], 9);
        assert_eq!(private[1], 1);
    }

    #[test]
    fn rings_come_from_the_pool_zeroed_and_exhaustion_is_an_error() {
        let pool = pool(2 * 4096);
        let b = Bouncer { pool: Some(&pool) };
        let (addr, ptr) = b.dma_alloc(1).unwrap();
        assert!(pool.contains(addr, 4096) && addr % 4096 == 0);
        // SAFETY: test buffers and pool blocks that stay alive and unaliased for the call.
        assert!(unsafe { core::slice::from_raw_parts(ptr.as_ptr(), 4096) }.iter().all(|&x| x == 0));
        assert!(matches!(b.dma_alloc(2), Err(PoolError::Exhausted { .. })));
        let mut big = vec![0u8; 8192];
        assert!(matches!(
            // SAFETY: test buffers and pool blocks that stay alive and unaliased for the call.
            unsafe { b.share(slice(&mut big), BufferDirection::DriverToDevice) },
            Err(PoolError::Exhausted { .. })
        ));
        // SAFETY: test buffers and pool blocks that stay alive and unaliased for the call.
        unsafe { b.dma_dealloc(ptr, 1) };
        assert_eq!(pool.free_bytes(), 2 * 4096);
    }

    #[test]
    fn without_protection_buffers_are_used_in_place() {
        let b = Bouncer { pool: None };
        let mut private = vec![3u8; 32];
        // SAFETY: test buffers and pool blocks that stay alive and unaliased for the call.
        let addr = unsafe { b.share(slice(&mut private), BufferDirection::DriverToDevice) }.unwrap();
        assert_eq!(addr, private.as_ptr() as u64);
        let (ring, ptr) = b.dma_alloc(1).unwrap();
        assert_eq!(ring % 4096, 0);
        // SAFETY: test buffers and pool blocks that stay alive and unaliased for the call.
        unsafe { b.dma_dealloc(ptr, 1) };
    }
}
