use super::*;
use crate::conduit::fake::FakeConduit;
use crate::hypervisor::{Hypervisor, HypervisorInfo};
use crate::sharing::MemSharer;
use pvmkit_abi::kvm::{self, Features};

fn protected() -> HypervisorInfo {
    HypervisorInfo { smccc_version: Some((1, 1)), hypervisor: Hypervisor::Kvm(Features([0x1d, 0, 0, 0])) }
}

fn upstream_fake() -> FakeConduit<impl Fn(u32, [u64; 3]) -> [u64; 4]> {
    FakeConduit::new(|f, _| if f == kvm::HYP_MEMINFO { [4096, 0, 0, 0] } else { [0, 0, 0, 0] })
}

#[test]
fn the_region_is_shared_once_and_unshared_at_teardown() {
    let fake = upstream_fake();
    let sharer = MemSharer::new(&fake, &protected()).unwrap();
    let pool = BouncePool::allocate(&sharer, 16 * 4096).unwrap();
    let (start, size) = pool.region();
    assert_eq!(start % 4096, 0);
    assert_eq!(size, 16 * 4096);
    let shares: Vec<u64> =
        fake.calls.borrow().iter().filter(|(f, _)| *f == kvm::MEM_SHARE).map(|(_, a)| a[0]).collect();
    assert_eq!(shares, (0..16).map(|i| start + i * 4096).collect::<Vec<_>>());
    // Allocations make no hypercall.
    let before = fake.calls.borrow().len();
    let b = pool.alloc(100, 8).unwrap();
    // SAFETY: allocated just above with this size and alignment.
    unsafe { pool.free(b, 100, 8) };
    assert_eq!(fake.calls.borrow().len(), before);
    assert!(pool.teardown(&sharer).is_ok());
    assert_eq!(fake.calls.borrow().iter().filter(|(f, _)| *f == kvm::MEM_UNSHARE).count(), 16);
}

#[test]
fn a_failed_share_leaves_no_pool() {
    let fake = FakeConduit::new(|f, a| match f {
        kvm::HYP_MEMINFO => [4096, 0, 0, 0],
        kvm::MEM_SHARE if a[0] % (4 * 4096) == 3 * 4096 => [u64::MAX - 2, 0, 0, 0],
        _ => [0, 0, 0, 0],
    });
    let sharer = MemSharer::new(&fake, &protected()).unwrap();
    assert!(matches!(
        BouncePool::allocate(&sharer, 16 * 4096),
        Err(PoolError::Share(ShareError::Refused { code: -3, .. }))
    ));
}

#[test]
fn layouts_and_exhaustion_are_errors() {
    let fake = upstream_fake();
    let sharer = MemSharer::new(&fake, &protected()).unwrap();
    assert_eq!(BouncePool::allocate(&sharer, 1000).err(), Some(PoolError::BadSize(1000)));
    let pool = BouncePool::allocate(&sharer, 4 * 4096).unwrap();
    assert_eq!(pool.alloc(0, 8), Err(PoolError::BadLayout { size: 0, align: 8 }));
    assert_eq!(pool.alloc(8, 8192), Err(PoolError::BadLayout { size: 8, align: 8192 }));
    assert_eq!(pool.alloc(8, 3), Err(PoolError::BadLayout { size: 8, align: 3 }));
    assert_eq!(pool.alloc(5 * 4096, 8), Err(PoolError::Exhausted { size: 5 * 4096, align: 8 }));
    let all = pool.alloc(4 * 4096, 4096).unwrap();
    assert_eq!(pool.alloc(8, 8), Err(PoolError::Exhausted { size: 8, align: 8 }));
    // SAFETY: allocated above with this size and alignment.
    unsafe { pool.free(all, 4 * 4096, 4096) };
    assert!(pool.alloc(4 * 4096, 4096).is_ok(), "fully usable again");
    // Unshared and returned to the heap, blocks and all (Miri checks nothing leaks).
    assert!(pool.teardown(&sharer).is_ok());
}

#[test]
fn zeroed_buffers_are_zero() {
    let fake = upstream_fake();
    let sharer = MemSharer::new(&fake, &protected()).unwrap();
    let pool = BouncePool::allocate(&sharer, 4096).unwrap();
    let a = pool.alloc(256, 8).unwrap();
    // SAFETY: a 256-byte block of the pool, freed just after.
    unsafe { a.as_ptr().write_bytes(0xee, 256) };
    // SAFETY: allocated above with this size and alignment.
    unsafe { pool.free(a, 256, 8) };
    let b = pool.alloc_zeroed(256, 8).unwrap();
    assert_eq!(a, b, "first fit reuses the block");
    // SAFETY: a live 256-byte block of the pool.
    assert!(unsafe { core::slice::from_raw_parts(b.as_ptr(), 256) }.iter().all(|&x| x == 0));
    assert!(pool.teardown(&sharer).is_ok());
}

/// Rounds of the random stress: under Miri, which interprets every step, enough to
/// reach exhaustion several times.
const STRESS_ROUNDS: usize = if cfg!(miri) { 400 } else { 20_000 };

/// Random alloc/free sequences: no two live buffers overlap, each is inside the region
/// and aligned as asked, and once everything is freed the whole pool can be taken again.
#[test]
fn stress_random_alloc_free() {
    let fake = upstream_fake();
    let sharer = MemSharer::new(&fake, &protected()).unwrap();
    let pool = BouncePool::allocate(&sharer, 64 * 4096).unwrap();
    let mut live: Vec<(NonNull<u8>, usize, usize)> = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut failures = 0;
    for _ in 0..STRESS_ROUNDS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        if seed.is_multiple_of(3) && !live.is_empty() {
            let (block, size, align) = live.swap_remove((seed >> 8) as usize % live.len());
            // SAFETY: a block this test allocated with this size and alignment.
            unsafe { pool.free(block, size, align) };
            continue;
        }
        let size = match seed % 4 {
            0 => 1 + (seed >> 20) as usize % 64,
            1 => 1 + (seed >> 20) as usize % 4096,
            2 => 4096 * (1 + (seed >> 20) as usize % 8),
            _ => 1 + (seed >> 20) as usize % 40_000,
        };
        let align = 1usize << ((seed >> 40) % 13);
        match pool.alloc(size, align) {
            Ok(ptr) => {
                let addr = ptr.as_ptr() as u64;
                assert!(pool.contains(addr, size), "outside the region");
                assert_eq!(addr % align as u64, 0, "misaligned");
                for &(b, s, _) in &live {
                    let a = b.as_ptr() as u64;
                    assert!(addr + size as u64 <= a || a + s as u64 <= addr, "overlap");
                }
                live.push((ptr, size, align));
            }
            Err(PoolError::Exhausted { .. }) => failures += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(failures > 0, "the stress reached exhaustion at least once");
    for (block, size, align) in live.drain(..) {
        // SAFETY: a block this test allocated with this size and alignment.
        unsafe { pool.free(block, size, align) };
    }
    assert_eq!(pool.free_bytes(), 64 * 4096);
    assert!(pool.alloc(64 * 4096, 4096).is_ok());
    assert!(pool.teardown(&sharer).is_ok());
}

/// The refusals of `allocate`, the region `contains` answers for, and the default size
/// (cargo-mutants found these unpinned).
#[test]
fn sizes_the_region_and_its_bounds_are_checked() {
    let fake = upstream_fake();
    let sharer = MemSharer::new(&fake, &protected()).unwrap();
    assert_eq!(BouncePool::allocate(&sharer, 0).err(), Some(PoolError::BadSize(0)));
    assert_eq!(BouncePool::allocate(&sharer, 4096 + 8).err(), Some(PoolError::BadSize(4104)));
    assert_eq!(PoolError::BadSize(8).to_string(), "bounce pool size 8 is not a multiple of the granule");
    let pool = BouncePool::allocate(&sharer, 4 * 4096).unwrap();
    let (start, size) = pool.region();
    assert!(pool.contains(start, size) && pool.contains(start + 8, 100));
    assert!(!pool.contains(start - 1, 8), "below");
    assert!(!pool.contains(start, size + 1), "runs past the end");
    assert!(!pool.contains(start + size as u64, 1), "just after");
    assert!(!pool.contains(u64::MAX - 4, 8), "wraps");
    assert!(pool.teardown(&sharer).is_ok());
    // The default pool holds a 1 MiB request beside the rings of a few devices.
    let pool = BouncePool::allocate(&sharer, DEFAULT_POOL_SIZE).unwrap();
    let request = pool.alloc(1 << 20, 4096).unwrap();
    let rings = pool.alloc(3 * 4 * 4096, 4096).unwrap();
    // SAFETY: allocated just above with these sizes and alignments.
    unsafe {
        pool.free(request, 1 << 20, 4096);
        pool.free(rings, 3 * 4 * 4096, 4096);
    }
    assert!(pool.teardown(&sharer).is_ok());
}
