//! Memory sharing: the pKVM calls raw (every return code), guest-lib's sharing API
//! (ranges, counters, rollback) and the bounce pool.

extern crate alloc;

use alloc::alloc::{alloc_zeroed, dealloc};
use core::alloc::Layout;
use core::ptr::NonNull;
use pvmkit_abi::address::Ipa;

use guest_lib::bounce_pool::{BouncePool, PoolError};
use guest_lib::conduit::{Conduit, SystemConduit};
use guest_lib::harness::{CaseResult, Harness};
use guest_lib::sharing::{MemSharer, ShareError};
use guest_lib::{ensure, ensure_eq, stats, BootInfo};
use pvmkit_abi::kvm;

use pvmkit_abi::profile::{Answer, Pages as State};

use crate::expect::Mode;

const PAGE: usize = 4096;
const NS: u64 = u64::MAX;
const INVAL: u64 = pvmkit_abi::smccc::INVALID_PARAMETER as u64;
/// Neither guest RAM nor a device in any mode.
const OUTSIDE_RAM: u64 = 0xc000_0000;

/// Page-aligned private memory from the heap, freed on drop.
struct Pages {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Pages {
    fn new(count: usize) -> Result<Self, alloc::string::String> {
        let layout = Layout::from_size_align(count * PAGE, PAGE).map_err(|e| alloc::format!("{e}"))?;
        // SAFETY: non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).ok_or("heap exhausted")?;
        Ok(Self { ptr, layout })
    }

    fn ipa(&self, page: usize) -> u64 {
        self.ptr.as_ptr() as u64 + (page * PAGE) as u64
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the allocation is ours and this many bytes long.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

pub fn run(h: &mut Harness<impl core::fmt::Write>, boot: &BootInfo, mode: Mode) {
    let c = boot.conduit;
    h.run("meminfo_granule", || meminfo(c, mode));
    h.run("share_unshare_one_page", || one_page(c, mode));
    h.run("share_unshare_100_page_range", || hundred_pages(boot, mode));
    if mode.protected() {
        h.run("sharing_error_codes", || error_codes(c, mode));
        h.run("share_rollback_names_the_failing_page", || rollback(boot, c));
    } else {
        h.skip("sharing_error_codes", "no memory services: every call is NOT_SUPPORTED (share_unshare_one_page)");
        h.skip("share_rollback_names_the_failing_page", "sharing is a no-op without protection");
    }
    h.run("relinquish", || relinquish(c, mode));
    h.run("bounce_pool_random_alloc_free", || bounce_pool(boot, mode));
}

fn meminfo(c: SystemConduit, mode: Mode) -> CaseResult {
    let r = c.call(kvm::HYP_MEMINFO, [0; 3]);
    match mode.expect_regs(kvm::HYP_MEMINFO, [0; 3], State::Private) {
        Some(want) => ensure_eq!(r, want),
        None => ensure_eq!(r[0], NS),
    }
    for reserved in [[1, 0, 0], [0, 1, 0], [0, 0, 1]] {
        if let Some(want) = mode.expect_regs(kvm::HYP_MEMINFO, reserved, State::Private) {
            ensure_eq!(c.call(kvm::HYP_MEMINFO, reserved), want);
        }
    }
    Ok(())
}

fn one_page(c: SystemConduit, mode: Mode) -> CaseResult {
    let page = Pages::new(1)?;
    let want = if mode.protected() { 0 } else { NS };
    ensure_eq!(c.call(kvm::MEM_SHARE, [page.ipa(0), 0, 0])[0], want);
    ensure_eq!(c.call(kvm::MEM_UNSHARE, [page.ipa(0), 0, 0])[0], want);
    Ok(())
}

fn hundred_pages(boot: &BootInfo, mode: Mode) -> CaseResult {
    let sharer = boot.sharer().map_err(|e| alloc::format!("{e}"))?;
    ensure_eq!(sharer.is_protected(), mode.protected());
    let pages = Pages::new(100)?;
    let before = stats::snapshot();
    sharer.share(Ipa(pages.ipa(0)), 100 * PAGE as u64).map_err(|e| alloc::format!("{e}"))?;
    let shared = stats::snapshot();
    sharer.unshare(Ipa(pages.ipa(0)), 100 * PAGE as u64).map_err(|e| alloc::format!("{e}"))?;
    let after = stats::snapshot();
    let (calls_share, calls_unshare) = (shared.hypercalls - before.hypercalls, after.hypercalls - shared.hypercalls);
    match mode {
        Mode::Protected("android") => {
            // One call each, or a few more where hyp stops short (short-counts=on).
            ensure!(calls_share < 100 && calls_unshare < 100, "ranged form made {calls_share}/{calls_unshare} calls");
        }
        Mode::Protected(_) => ensure_eq!((calls_share, calls_unshare), (100, 100)),
        _ => ensure_eq!((calls_share, calls_unshare), (0, 0)),
    }
    let want_shared = if mode.protected() { 100 } else { 0 };
    ensure_eq!(shared.pages_shared - before.pages_shared, want_shared);
    ensure_eq!(after.pages_shared, before.pages_shared);
    Ok(())
}

/// One raw call, checked against the profile: `state` is what the guest knows of the
/// pages it names.
fn expect_call(c: SystemConduit, mode: Mode, function: u32, args: [u64; 3], state: State) -> CaseResult {
    let want = mode.expect_regs(function, args, state).ok_or("the profile gives no registers")?;
    let got = c.call(function, args);
    ensure!(got == want, "{function:#x}({args:x?}) on {state:?} pages gave {got:x?}, the profile says {want:x?}");
    Ok(())
}

fn error_codes(c: SystemConduit, mode: Mode) -> CaseResult {
    let page = Pages::new(2)?;
    let (a, b) = (page.ipa(0), page.ipa(1));
    expect_call(c, mode, kvm::MEM_UNSHARE, [a, 0, 0], State::Private)?;
    expect_call(c, mode, kvm::MEM_SHARE, [a, 0, 0], State::Private)?;
    expect_call(c, mode, kvm::MEM_SHARE, [a, 0, 0], State::Shared)?; // double share
    expect_call(c, mode, kvm::MEM_SHARE, [b + 8, 0, 0], State::Private)?; // unaligned
    expect_call(c, mode, kvm::MEM_SHARE, [b, 0, 1], State::Private)?; // x3 reserved in both forms
    expect_call(c, mode, kvm::MEM_SHARE, [OUTSIDE_RAM, 0, 1], State::Outside)?; // arguments first
    expect_call(c, mode, kvm::MEM_UNSHARE, [OUTSIDE_RAM, 0, 0], State::Outside)?;
    match mode.expect(pvmkit_abi::profile::Conduit::Hvc, kvm::MEM_SHARE, [OUTSIDE_RAM, 0, 0], State::Outside) {
        Some((Answer::ExternalAbortAtCall, _)) => {
            // The hypervisor cannot fault the IPA in: the guest takes an external
            // abort at the HVC itself (FSC 0x10, FAR 0).
            let abort = guest_lib::exceptions::probe::hvc(kvm::MEM_SHARE, [OUTSIDE_RAM, 0, 0])
                .err()
                .ok_or("MEM_SHARE outside memory returned instead of aborting")?;
            ensure!(abort.is_data_external_abort(), "not an external abort: {abort}");
            ensure_eq!(abort.far, 0);
        }
        _ => expect_call(c, mode, kvm::MEM_SHARE, [OUTSIDE_RAM, 0, 0], State::Outside)?,
    }
    // x2: reserved upstream, a count on Android (where a range over a shared page
    // fails whole and changes nothing).
    expect_call(c, mode, kvm::MEM_SHARE, [a, 2, 0], State::Mixed)?;
    expect_call(c, mode, kvm::MEM_UNSHARE, [a, 1, 0], State::Shared)?;
    // Android took `a` back with that count; upstream refused the count and `a` is
    // still shared.
    let hvc = pvmkit_abi::profile::Conduit::Hvc;
    if !matches!(mode.expect(hvc, kvm::MEM_UNSHARE, [a, 1, 0], State::Shared), Some((Answer::Act(..), _))) {
        expect_call(c, mode, kvm::MEM_UNSHARE, [a, 0, 0], State::Shared)?;
    }
    expect_call(c, mode, kvm::MEM_SHARE, [a, 0, 0], State::Private)?;
    expect_call(c, mode, kvm::MEM_UNSHARE, [a, 0, 0], State::Shared)?;
    Ok(())
}

fn rollback(boot: &BootInfo, c: SystemConduit) -> CaseResult {
    // More pages than one Android call takes (256), so that both forms have done work
    // before the refusal and must undo it.
    const N: usize = 600;
    const BLOCKER: usize = 550;
    let pages = Pages::new(N)?;
    let sharer: MemSharer<SystemConduit> = boot.sharer().map_err(|e| alloc::format!("{e}"))?;
    ensure_eq!(c.call(kvm::MEM_SHARE, [pages.ipa(BLOCKER), 0, 0])[0], 0);
    let err = sharer.share(Ipa(pages.ipa(0)), (N * PAGE) as u64);
    // One granule per call stops at the blocker; a ranged call (which may stop short
    // anywhere) is refused at the start of the range that holds it.
    match err {
        Err(ShareError::Refused { ipa, code: -3 }) if !sharer.is_ranged() => ensure_eq!(ipa, Ipa(pages.ipa(BLOCKER))),
        Err(ShareError::Refused { ipa, code: -3 }) => {
            ensure!(Ipa(pages.ipa(0)) < ipa && ipa <= Ipa(pages.ipa(BLOCKER)), "refused at {ipa:#x}")
        }
        other => return Err(alloc::format!("sharing over a shared page gave {other:?}")),
    }
    // Rolled back: every page before the refusal is private again, so sharing each
    // succeeds (it would be refused if it were still shared).
    for page in [0, 1, 300, 511, BLOCKER - 1] {
        ensure_eq!(c.call(kvm::MEM_SHARE, [pages.ipa(page), 0, 0])[0], 0);
        ensure_eq!(c.call(kvm::MEM_UNSHARE, [pages.ipa(page), 0, 0])[0], 0);
    }
    ensure_eq!(c.call(kvm::MEM_UNSHARE, [pages.ipa(BLOCKER), 0, 0])[0], 0);
    Ok(())
}

fn relinquish(c: SystemConduit, mode: Mode) -> CaseResult {
    let mut page = Pages::new(1)?;
    page.bytes().fill(0xa5);
    let args = [page.ipa(0), 0, 0];
    match mode.expect(pvmkit_abi::profile::Conduit::Hvc, kvm::MEM_RELINQUISH, args, State::Private) {
        Some((Answer::Act(..), _)) => {
            ensure_eq!(c.call(kvm::MEM_RELINQUISH, args), [0; 4]);
            ensure!(page.bytes().iter().all(|&b| b == 0), "relinquished page still holds data");
            expect_call(c, mode, kvm::MEM_RELINQUISH, [page.ipa(0) + 8, 0, 0], State::Private)?;
            expect_call(c, mode, kvm::MEM_RELINQUISH, [page.ipa(0), 1, 0], State::Private)?;
            expect_call(c, mode, kvm::MEM_RELINQUISH, [OUTSIDE_RAM, 0, 0], State::Outside)?;
        }
        _ => {
            ensure_eq!(c.call(kvm::MEM_RELINQUISH, args)[0], NS);
            ensure!(page.bytes().iter().all(|&b| b == 0xa5), "NOT_SUPPORTED changed the page");
        }
    }
    Ok(())
}

fn bounce_pool(boot: &BootInfo, mode: Mode) -> CaseResult {
    const SIZE: usize = 64 * PAGE;
    let c = boot.conduit;
    let sharer = boot.sharer().map_err(|e| alloc::format!("{e}"))?;
    let pool = BouncePool::allocate(&sharer, SIZE).map_err(|e| alloc::format!("{e}"))?;
    let (start, size) = pool.region();
    ensure_eq!(size, SIZE);
    if mode.protected() {
        // Shared by the pool: sharing it again is refused.
        ensure_eq!(c.call(kvm::MEM_SHARE, [start, 0, 0])[0], INVAL);
        ensure_eq!(c.call(kvm::MEM_SHARE, [start + (SIZE - PAGE) as u64, 0, 0])[0], INVAL);
    }
    let mut live: alloc::vec::Vec<(NonNull<u8>, usize, usize)> = alloc::vec::Vec::new();
    let mut seed = 0x0123_4567_89ab_cdefu64;
    let mut exhausted = 0;
    for _ in 0..4000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        if seed.is_multiple_of(3) && !live.is_empty() {
            let (ptr, len, align) = live.swap_remove((seed >> 8) as usize % live.len());
            // SAFETY: handed out by this pool and not freed since.
            unsafe { pool.free(ptr, len, align) };
            continue;
        }
        let len = 1 + (seed >> 16) as usize % if seed.is_multiple_of(2) { 256 } else { 5 * PAGE };
        let align = 1usize << ((seed >> 40) % 13);
        match pool.alloc_zeroed(len, align) {
            Ok(ptr) => {
                let addr = ptr.as_ptr() as u64;
                ensure!(pool.contains(addr, len), "buffer {addr:#x}+{len} outside the shared region");
                ensure!(addr.is_multiple_of(align as u64), "buffer {addr:#x} not aligned to {align}");
                live.push((ptr, len, align));
            }
            Err(PoolError::Exhausted { .. }) => exhausted += 1,
            Err(e) => return Err(alloc::format!("{e}")),
        }
    }
    ensure!(exhausted > 0, "the stress never reached exhaustion");
    for (ptr, len, align) in live {
        // SAFETY: as above.
        unsafe { pool.free(ptr, len, align) };
    }
    ensure_eq!(pool.free_bytes(), SIZE);
    let whole = pool.alloc(SIZE, PAGE).map_err(|e| alloc::format!("pool not fully usable again: {e}"))?;
    // SAFETY: just allocated.
    unsafe { pool.free(whole, SIZE, PAGE) };
    pool.teardown(&sharer).map_err(|(_, e)| alloc::format!("teardown: {e}"))?;
    if mode.protected() {
        // Unshared by the teardown: sharing it again succeeds (and is undone).
        ensure_eq!(c.call(kvm::MEM_SHARE, [start, 0, 0])[0], 0);
        ensure_eq!(c.call(kvm::MEM_UNSHARE, [start, 0, 0])[0], 0);
    }
    Ok(())
}
