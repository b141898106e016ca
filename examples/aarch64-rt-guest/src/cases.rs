//! From aarch64-rt's entry to power-off: discovery, the MMIO guard, the console, the
//! page tables, then the checks, each through guest-lib without its runtime.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use guest_lib::bounce_pool::BouncePool;
use guest_lib::conduit::SystemConduit;
use guest_lib::harness::{CaseResult, Harness};
use guest_lib::sharing::MemSharer;
use guest_lib::virtio::{self, DmaSetup};
use guest_lib::{device_tree, GuestDt, HypervisorInfo};
use mmio_guard::MmioGuard;

use crate::{console, platform, say};

use aarch64_rt::entry;

entry!(main);

/// x0 is the DT (the Linux boot protocol, which pvmfw and pvmkit follow).
fn main(dt_address: u64, _: u64, _: u64, _: u64) -> ! {
    crate::heap::init();
    let dt = read_dt(dt_address).unwrap_or_else(|_| platform::fail());
    let conduit = dt.conduit.unwrap_or(SystemConduit::Hvc);
    platform::set_conduit(conduit);
    let hypervisor = HypervisorInfo::discover(&conduit);
    // Under Android's MMIO guard nothing may be touched before it is registered: the
    // console's granule first.
    let guard = MmioGuard::new(conduit, hypervisor.features()).unwrap_or_else(|_| platform::fail());
    if guard.enroll().is_err() {
        platform::fail();
    }
    if let Some(uart) = dt.uart.filter(|&uart| guard.map(guest_lib::Ipa(uart), 0x1000).is_ok()) {
        console::init(uart);
    }
    say!("aarch64-rt-guest: {:?}, protected: {}", hypervisor.hypervisor, hypervisor.is_protected());
    let mut h = Harness::new(console::Uart);
    h.run("aarch64_paging_tables", || {
        let ram = dt.memory.ok_or("the DT has no /memory")?;
        crate::paging::switch(ram).map_err(|e| format!("{e:?}"))
    });
    if hypervisor.is_protected() {
        let sharer = MemSharer::new(conduit, &hypervisor).unwrap_or_else(|_| platform::fail());
        h.run("share_unshare_a_heap_page", || share_a_page(&sharer));
        h.run("bounce_pool_over_the_dt_region", || bounce_pool(&dt, &sharer));
    } else {
        h.skip("share_unshare_a_heap_page", "the VM is not protected");
        let _ = virtio::set_dma(DmaSetup { pool: None, device_ranges: dt.virtio_mmio().collect() });
    }
    h.run("console_registered_with_the_mmio_guard", || {
        let uart = dt.uart.ok_or("the DT names no console")?;
        let users = guard.users(guest_lib::Ipa(uart));
        (users == 1).then_some(()).ok_or_else(|| format!("the console's granule has {users} users, not 1"))
    });
    h.run("probe_nothing_aborts", || {
        // Nothing is at this address: the hypervisor (or the VMM) answers with an external
        // abort, which this guest's own vectors hand to guest-lib's probe fix-up.
        // SAFETY: a read expected to abort, and caught.
        match unsafe { guest_lib::exceptions::probe::read_u32(0x0900_1000) } {
            Err(abort) if abort.is_data_external_abort() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    h.run("virtio_blk_round_trip", || virtio_blk(&dt, &guard));
    let summary = h.finish();
    if summary.failed > 0 {
        platform::fail();
    }
    let error = guest_lib::psci::system_off(&conduit);
    say!("SYSTEM_OFF failed: {error}");
    platform::fail()
}

fn read_dt(address: u64) -> Result<GuestDt<'static>, device_tree::DtError> {
    // SAFETY: x0 names the DT, in RAM; its header is read first.
    let header: [u8; 8] = unsafe { core::ptr::read_volatile(address as *const [u8; 8]) };
    let size = device_tree::dt_size(header)?;
    // SAFETY: the header says `size` bytes of DT start there; nothing writes them.
    GuestDt::read(unsafe { core::slice::from_raw_parts(address as *const u8, size) })
}

fn share_a_page(sharer: &MemSharer<SystemConduit>) -> CaseResult {
    let page = Box::leak(Box::new(Page([0x5a; 4096])));
    let address = guest_lib::ipa_of(page);
    sharer.share(address, 4096).map_err(|e| format!("share: {e}"))?;
    sharer.unshare(address, 4096).map_err(|e| format!("unshare: {e}"))
}

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// The DT's `restricted-dma-pool`, shared and handed to `PvmHal`.
fn bounce_pool(dt: &GuestDt<'static>, sharer: &MemSharer<SystemConduit>) -> CaseResult {
    let (base, size) = dt.reserved_memory("restricted-dma-pool").ok_or("the DT reserves no restricted-dma-pool")?;
    // SAFETY: the DT reserves this RAM for DMA bounce buffers; nothing else uses it.
    let pool = unsafe { BouncePool::from_region(sharer, base, size as usize) }.map_err(|e| format!("{e}"))?;
    let pool: &'static BouncePool = Box::leak(Box::new(pool));
    virtio::set_dma(DmaSetup { pool: Some(pool), device_ranges: dt.virtio_mmio().collect() })
        .map_err(|_| String::from("PvmHal was already set up"))
}

fn virtio_blk(dt: &GuestDt<'_>, guard: &MmioGuard<SystemConduit>) -> CaseResult {
    let mut block = virtio::drivers(dt, guard).block.ok_or("no virtio-blk device")?;
    let sectors = 128; // 64 KiB
    let written: Vec<u8> = (0..sectors * 512).map(|i| (i * 7 + i / 512) as u8).collect();
    block.write_blocks(8, &written).map_err(|e| format!("write: {e}"))?;
    let mut read = vec![0u8; written.len()];
    block.read_blocks(8, &mut read).map_err(|e| format!("read: {e}"))?;
    (read == written).then_some(()).ok_or_else(|| "read back differs from what was written".into())
}
