//! virtio through the bouncing HAL: block, entropy and console devices of QEMU's,
//! behind hyp's checked device side (or directly, without hyp).

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use guest_lib::harness::{CaseResult, Harness};
use guest_lib::virtio::{discover, drivers, PvmHal, VirtioDevice};
use guest_lib::{ensure, ensure_eq, println, stats, BootInfo};
use virtio_drivers::device::blk::{VirtIOBlk, SECTOR_SIZE};
use virtio_drivers::device::console::VirtIOConsole;
use virtio_drivers::device::rng::VirtIORng;
use virtio_drivers::transport::mmio::MmioTransport;
use virtio_drivers::transport::DeviceType;

use crate::clock::{counter, frequency};
use crate::expect::Mode;
use crate::hals::{LeakyHal, RecordingHal, StaleHal, LAST_RING};
use crate::raw_queue::{self, RawQueue};
use core::ptr::NonNull;
use core::sync::atomic::Ordering;
use guest_lib::conduit::Conduit;
use pvmkit_abi::kvm;

type Blk = VirtIOBlk<PvmHal, MmioTransport<'static>>;

/// The disk pvmkit gives a guest: 8 MiB.
const DISK_SECTORS: u64 = 8 << 20 >> 9;
/// The last 64 KiB of the disk hold the pattern that must survive a restart.
const PERSIST_SECTOR: usize = (DISK_SECTORS - 128) as usize;
/// What pvmkit sends the guest on the virtio console.
const FROM_HOST: &[u8] = b"pvmkit says hello\n";
/// What the guest sends back (pvmkit checks it arrived).
const TO_HOST: &[u8] = b"hello from the guest via virtio-console\n";

/// Why the pinning cases do not run on the real pKVM.
fn take(devices: &mut Vec<VirtioDevice>, kind: DeviceType) -> Option<MmioTransport<'static>> {
    let at = devices.iter().position(|d| d.device_type == kind)?;
    Some(devices.swap_remove(at).transport)
}

/// A pattern unique to (seed, byte offset on disk).
fn pattern(seed: u8, disk_offset: usize, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let x = (disk_offset + i) as u32;
        *b = (x ^ (x >> 8) ^ (x >> 16)).wrapping_mul(31) as u8 ^ seed;
    }
}

pub fn run(h: &mut Harness<impl core::fmt::Write>, boot: &BootInfo, mode: Mode, scenario: &str) {
    let mut devices = discover(&boot.dt, guest_lib::mmio_guard());
    if scenario == "leak" {
        h.run("virtio_leak_private_buffer", || leak(&mut devices, mode));
        return;
    }
    if scenario == "stale-bounce" {
        // What the device claims for a read it failed, then the negative control: the
        // stale-data check over a HAL that skips the zeroing.
        h.run("virtio_blk_failed_read_used_length", || {
            let len = failed_read_used_length(take(&mut devices, DeviceType::Block).ok_or("no block device")?)?;
            println!("test-guest: a failed 64 KiB read reported {len} bytes written of the 65537 it offered the device (it wrote only the 1-byte status)");
            Ok(())
        });
        devices = discover(&boot.dt, guest_lib::mmio_guard());
        h.run("virtio_blk_failed_read_hands_back_no_stale_data", || {
            let mut blk =
                VirtIOBlk::<StaleHal, _>::new(take(&mut devices, DeviceType::Block).ok_or("no block device")?)
                    .map_err(|e| alloc::format!("{e}"))?;
            failed_read_leaves_no_stale_data(&mut blk, mode)
        });
        return;
    }
    if scenario == "resize-queue" {
        h.run("virtio_resize_a_ready_queue", || resize_ready_queue(&mut devices, mode));
        return;
    }
    if let Some(attack) = scenario.strip_prefix("attack-") {
        h.run("virtio_attack", || raw_attack(boot, &devices, mode, attack));
        return;
    }

    h.run("virtio_discovery", || {
        let kinds: Vec<DeviceType> = devices.iter().map(|d| d.device_type).collect();
        for want in [DeviceType::Block, DeviceType::EntropySource, DeviceType::Console] {
            ensure!(kinds.contains(&want), "no {want:?} among {kinds:?}");
        }
        Ok(())
    });
    h.run("bounce_pool_is_the_dts_restricted_dma_pool", || {
        let reserved = boot.dt.reserved_memory(pvmkit_abi::memory_map::BOUNCE_POOL_COMPATIBLE);
        let region = guest_lib::virtio::bounce_pool_region().map(|(base, size)| (base, size as u64));
        match (mode.protected(), reserved) {
            (true, Some(reserved)) => ensure_eq!(region, Some(reserved)),
            (true, None) => ensure!(region.is_some(), "no bounce pool in a protected VM"),
            (false, _) => ensure_eq!(region, None),
        }
        Ok(())
    });
    h.run("bounce_round_trips_every_length", bounce_every_length);
    let blk_base = block_base(&devices).ok();
    let mut blk = take(&mut devices, DeviceType::Block).and_then(|t| Blk::new(t).ok());
    match blk.as_mut() {
        Some(blk) => {
            h.run("virtio_blk_capacity", || {
                ensure_eq!(blk.capacity(), DISK_SECTORS);
                Ok(())
            });
            h.run("virtio_blk_patterns_512b_4k_64k_1m", || blk_patterns(blk, mode));
            h.run("virtio_blk_flush", || blk.flush().map_err(|e| alloc::format!("{e}")));
            h.run("virtio_blk_completes_by_interrupt", || blk_by_interrupt(boot, blk, blk_base));
            h.run("virtio_blk_failed_read_hands_back_no_stale_data", || failed_read_leaves_no_stale_data(blk, mode));
            match scenario {
                "persist-write" => h.run("virtio_blk_persist_write", || persist(blk, true)),
                "persist-read" => h.run("virtio_blk_persist_read", || persist(blk, false)),
                _ => {}
            }
        }
        None => h.run("virtio_blk_open", || Err("no usable block device".into())),
    }
    let rng = take(&mut devices, DeviceType::EntropySource);
    match rng.map(VirtIORng::<RecordingHal, _>::new) {
        Some(Ok(mut rng)) => {
            let ring = LAST_RING.load(Ordering::Relaxed) & !0xfff;
            h.run("virtio_rng_entropy", || entropy(&mut rng));
            if mode.protected() {
                h.run("virtio_ring_pages_free_after_the_driver", || ring_after_driver(boot, ring, rng));
            } else {
                h.skip("virtio_ring_pages_free_after_the_driver", "no memory services without protection");
            }
        }
        _ => h.run("virtio_rng_entropy", || Err("no usable entropy device".into())),
    }
    let console = take(&mut devices, DeviceType::Console);
    h.run("virtio_console_both_ways", || {
        let mut console =
            VirtIOConsole::<PvmHal, _>::new(console.ok_or("no console device")?).map_err(|e| alloc::format!("{e}"))?;
        console.send_bytes(TO_HOST).map_err(|e| alloc::format!("{e}"))?;
        let mut got = Vec::new();
        let start = counter();
        while got.len() < FROM_HOST.len() && counter() - start < 10 * frequency() {
            match console.recv(true).map_err(|e| alloc::format!("{e}"))? {
                Some(byte) => got.push(byte),
                // Nothing yet: wait, which also lets hyp deliver completions.
                // SAFETY: waiting has no memory effect.
                None => unsafe { core::arch::asm!("wfe", options(nomem, nostack)) },
            }
        }
        ensure!(got == FROM_HOST, "received {:?}", core::str::from_utf8(&got));
        Ok(())
    });
    // Every device is free again: guest-lib's helper builds all supported drivers.
    drop(blk);
    h.run("virtio_drivers_helper", || {
        let drivers = drivers(&boot.dt, guest_lib::mmio_guard());
        ensure_eq!(drivers.block.as_ref().map(|b| b.capacity()), Some(DISK_SECTORS));
        ensure!(drivers.console.is_some() && drivers.entropy.is_some(), "console or entropy driver missing");
        Ok(())
    });
}

/// The leak: write one sector through a HAL that hands the device private memory.
fn leak(devices: &mut Vec<VirtioDevice>, mode: Mode) -> CaseResult {
    let transport = take(devices, DeviceType::Block).ok_or("no block device")?;
    let mut blk = VirtIOBlk::<LeakyHal, _>::new(transport).map_err(|e| alloc::format!("{e}"))?;
    let data = [0x42u8; SECTOR_SIZE];
    blk.write_blocks(0, &data).map_err(|e| alloc::format!("{e}"))?;
    // Only reached where nothing checks: the leak went unnoticed.
    ensure!(!mode.protected(), "a private buffer reached the device and the VM goes on");
    Ok(())
}

/// A hostile driver: the block device's queue 0 is ready at the size it negotiated;
/// QueueNum is then rewritten to 1024 and a head beyond the old size is posted. hyp
/// must stop the VM at the size write (it once panicked on the head).
fn resize_ready_queue(devices: &mut Vec<VirtioDevice>, mode: Mode) -> CaseResult {
    let device = devices.iter().position(|d| d.device_type == DeviceType::Block).ok_or("no block device")?;
    let device = devices.swap_remove(device);
    let base = device.base;
    let mut blk = VirtIOBlk::<PvmHal, _>::new(device.transport).map_err(|e| alloc::format!("{e}"))?;
    println!("test-guest: resizing queue 0 of the ready block device at {base:#x} to 1024");
    // SAFETY: the transport's registers, registered with the MMIO guard by discovery.
    unsafe {
        ((base + 0x030) as *mut u32).write_volatile(0);
        ((base + 0x038) as *mut u32).write_volatile(1024);
    }
    // Only reached where nothing checks: a request then runs on a queue of two sizes.
    let mut data = [0u8; SECTOR_SIZE];
    blk.read_blocks(0, &mut data).map_err(|e| alloc::format!("{e}"))?;
    ensure!(!mode.protected(), "a ready queue changed size and the VM goes on");
    Ok(())
}

fn block_base(devices: &[VirtioDevice]) -> Result<u64, &'static str> {
    devices.iter().find(|d| d.device_type == DeviceType::Block).map(|d| d.base).ok_or("no block device")
}

/// One attack on hyp's device side through a hand-driven queue; in a protected VM hyp
/// must stop the VM with a named violation before this returns.
fn raw_attack(boot: &BootInfo, devices: &[VirtioDevice], mode: Mode, attack: &str) -> CaseResult {
    let sharer = boot.sharer().map_err(|e| alloc::format!("{e}"))?;
    let q = RawQueue::new(block_base(devices)?, &sharer)?;
    q.write(raw_queue::reg::STATUS, raw_queue::DRIVER_OK);
    println!("test-guest: attack {attack}");
    match attack {
        // A zero-length buffer at hyp's own image: an address all the same.
        "zero-length" => {
            q.descriptor(0, pvmkit_abi::memory_map::HYP_BASE, 0, 0, 0);
            q.post(0, 0, 0);
        }
        // A notify of a queue hyp does not shadow.
        "notify-beyond" => q.write(raw_queue::reg::QUEUE_NOTIFY, 7),
        other => return Err(alloc::format!("unknown attack {other}")),
    }
    ensure!(!mode.protected(), "the attack went unnoticed in a protected VM");
    Ok(())
}

fn entropy(rng: &mut VirtIORng<RecordingHal, MmioTransport<'static>>) -> CaseResult {
    let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
    ensure_eq!(rng.request_entropy(&mut a).map_err(|e| alloc::format!("{e}"))?, 64);
    ensure_eq!(rng.request_entropy(&mut b).map_err(|e| alloc::format!("{e}"))?, 64);
    ensure!(a.iter().any(|&x| x != 0), "entropy is all zero");
    ensure!(a != b, "entropy repeated");
    Ok(())
}

/// Once the driver is dropped (its queue unset), the device holds none of its ring
/// pages: the guest may take them back and share them again. (Taking one back while
/// the queue is live is the `unshare-held` kind of mistake: hyp stops the VM.)
fn ring_after_driver(boot: &BootInfo, ring: u64, rng: VirtIORng<RecordingHal, MmioTransport<'static>>) -> CaseResult {
    ensure!(ring != 0, "no ring allocation recorded");
    let c = boot.conduit;
    drop(rng);
    ensure_eq!(c.call(kvm::MEM_UNSHARE, [ring, 0, 0])[0], 0);
    // Give the page back to the pool's shared region.
    ensure_eq!(c.call(kvm::MEM_SHARE, [ring, 0, 0])[0], 0);
    Ok(())
}

/// A request completed by the device's interrupt through the GIC every backend gives
/// (hyp's vGIC, the real KVM's, plain QEMU's): the driver waits in WFI, never polls the
/// used ring, and when the interrupt comes the completion is there, its data intact.
fn blk_by_interrupt(boot: &BootInfo, blk: &mut Blk, base: Option<u64>) -> CaseResult {
    use guest_lib::interrupts;
    use virtio_drivers::device::blk::{BlkReq, BlkResp, RespStatus};
    let base = base.ok_or("no block device")?;
    let Some(intid) = boot.dt.virtio_mmio_interrupt(base) else {
        // A DT without interrupts (a host's may leave the GIC out): drivers poll, and
        // the interrupt API says why it cannot serve.
        ensure!(boot.dt.gic_v3().is_none(), "the DT names a GIC but no interrupt for the block device");
        ensure_eq!(interrupts::enable(48), Err(interrupts::InterruptError::NoGic));
        return Ok(());
    };
    ensure_eq!(guest_lib::timer::uses_interrupts(), guest_lib::timer::Wake::Interrupt);
    const SECTOR: usize = 12_000;
    let mut data = vec![0u8; 4096];
    pattern(0x5a, SECTOR * SECTOR_SIZE, &mut data);
    blk.write_blocks(SECTOR, &data).map_err(|e| alloc::format!("{e}"))?;
    blk.enable_interrupts();
    // The earlier, polled requests left the device's status raised (a level line) and
    // maybe an edge latched at the GIC: quiet the device first; a stale interrupt that
    // still arrives is taken and waited past.
    blk.ack_interrupt();
    interrupts::enable(intid).map_err(|e| alloc::format!("{e}"))?;
    let (mut req, mut resp, mut back) = (BlkReq::default(), BlkResp::default(), vec![0u8; 4096]);
    // SAFETY: `req`, `back` and `resp` stay alive and untouched until the completion
    // below, which is awaited before they go out of scope.
    let token = unsafe { blk.read_blocks_nb(SECTOR, &mut req, &mut back, &mut resp) };
    let token = token.map_err(|e| alloc::format!("{e}"))?;
    let mut taken = 0;
    let status = loop {
        interrupts::wait(intid);
        taken += 1;
        let status = blk.ack_interrupt();
        interrupts::end(intid);
        if blk.peek_used() == Some(token) {
            break status;
        }
        if taken == 2 {
            let _ = interrupts::disable(intid);
            return Err(alloc::format!("{taken} interrupts and the request is not complete"));
        }
    };
    interrupts::disable(intid).map_err(|e| alloc::format!("{e}"))?;
    ensure!(
        status.contains(virtio_drivers::transport::InterruptStatus::QUEUE_INTERRUPT),
        "status {:#x} with the completion",
        status.bits()
    );
    // SAFETY: the same buffers as the submission, for its token.
    unsafe { blk.complete_read_blocks(token, &req, &mut back, &mut resp) }.map_err(|e| alloc::format!("{e}"))?;
    ensure_eq!(resp.status(), RespStatus::OK);
    ensure!(back == data, "the data read by interrupt differs from what was written");
    Ok(())
}

fn blk_patterns(blk: &mut Blk, mode: Mode) -> CaseResult {
    // (bytes, starting sector), scattered and not overlapping the persistence area.
    let requests = [(512, 7usize), (4096, 1021), (65536, 3001), (1 << 20, 9000), (512, 15000), (4096, 100)];
    let before = stats::snapshot();
    let mut moved = 0u64;
    for (seed, &(len, sector)) in requests.iter().enumerate() {
        let mut data = vec![0u8; len];
        pattern(seed as u8 + 1, sector * SECTOR_SIZE, &mut data);
        blk.write_blocks(sector, &data).map_err(|e| alloc::format!("write {len} at {sector}: {e}"))?;
        let mut back = vec![0u8; len];
        blk.read_blocks(sector, &mut back).map_err(|e| alloc::format!("read {len} at {sector}: {e}"))?;
        let mismatches = data.iter().zip(&back).filter(|(a, b)| a != b).count();
        ensure!(mismatches == 0, "{mismatches} bytes differ in {len} bytes at sector {sector}");
        moved += 2 * len as u64;
    }
    let bounced = stats::snapshot().bytes_bounced - before.bytes_bounced;
    if mode.protected() {
        // Every data byte is copied exactly once, plus the 16-byte request header and
        // the 1-byte status of each request.
        ensure!(bounced >= moved && bounced <= moved + 17 * 2 * requests.len() as u64, "bounced {bounced} for {moved}");
    } else {
        ensure_eq!(bounced, 0);
    }
    Ok(())
}

fn persist(blk: &mut Blk, write: bool) -> CaseResult {
    let mut data = vec![0u8; 64 * 1024];
    pattern(0xa7, PERSIST_SECTOR * SECTOR_SIZE, &mut data);
    if write {
        blk.write_blocks(PERSIST_SECTOR, &data).map_err(|e| alloc::format!("{e}"))?;
        return blk.flush().map_err(|e| alloc::format!("{e}"));
    }
    let mut back = vec![0u8; data.len()];
    blk.read_blocks(PERSIST_SECTOR, &mut back).map_err(|e| alloc::format!("{e}"))?;
    let mismatches = data.iter().zip(&back).filter(|(a, b)| a != b).count();
    ensure!(mismatches == 0, "{mismatches} mismatches after the restart");
    Ok(())
}

/// A read the device fails (past the end of the disk) writes nothing into the bounce
/// buffer, and real devices still report the whole buffer as used (QEMU's virtio-blk
/// does). What the caller gets back must be zeroes (bounced) or its own bytes (in
/// place), never what the pool held before: here, a secret written just before through
/// the same pool.
fn failed_read_leaves_no_stale_data<H: virtio_drivers::Hal>(
    blk: &mut VirtIOBlk<H, MmioTransport<'static>>,
    mode: Mode,
) -> CaseResult {
    const SIZE: usize = 64 << 10;
    const MINE: u8 = 0xab;
    let mut secret = vec![0u8; SIZE];
    pattern(0x5e, 0, &mut secret);
    secret.iter_mut().for_each(|b| *b |= 1); // never zero, never all MINE
    let sector = (DISK_SECTORS as usize - SIZE / SECTOR_SIZE) - 256;
    blk.write_blocks(sector, &secret).map_err(|e| alloc::format!("writing the secret: {e}"))?;
    let mut buf = vec![MINE; SIZE];
    let past_the_end = DISK_SECTORS as usize;
    ensure!(blk.read_blocks(past_the_end, &mut buf).is_err(), "a read past the end of the disk succeeded");
    let stale = buf.iter().zip(&secret).filter(|(a, b)| a == b).count();
    ensure!(stale < SIZE / 64, "stale pool data reached the caller: {stale} bytes of the secret written before");
    let expected = if mode.protected() { 0 } else { MINE };
    ensure!(
        buf.iter().all(|&b| b == expected),
        "the failed read handed back bytes other than {expected:#x} (first {:#x})",
        buf.iter().find(|&&b| b != expected).copied().unwrap_or(0)
    );
    Ok(())
}

/// Submits one 64 KiB read past the end of the disk on a bare virtqueue and returns the
/// used length the device reports for it (what a bounce design trusting that length
/// would copy back).
fn failed_read_used_length(mut transport: MmioTransport<'static>) -> Result<u32, alloc::string::String> {
    use virtio_drivers::queue::VirtQueue;
    use virtio_drivers::transport::{DeviceStatus, Transport};
    const VERSION_1: u64 = 1 << 32;
    transport.set_status(DeviceStatus::empty());
    transport.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
    let offered = transport.read_device_features();
    transport.write_driver_features(offered & VERSION_1);
    transport.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER | DeviceStatus::FEATURES_OK);
    let mut queue =
        VirtQueue::<PvmHal, 4>::new(&mut transport, 0, false, false).map_err(|e| alloc::format!("queue: {e}"))?;
    transport.finish_init();
    let mut header = [0u8; 16]; // type IN (0), reserved, sector
    header[8..].copy_from_slice(&DISK_SECTORS.to_le_bytes());
    let (mut data, mut status) = (vec![0u8; 65536], [0xffu8; 1]);
    let inputs = [&header[..]];
    let mut outputs = [&mut data[..], &mut status[..]];
    // SAFETY: the buffers outlive the request, which is completed below.
    let token = unsafe { queue.add(&inputs, &mut outputs) }.map_err(|e| alloc::format!("add: {e}"))?;
    if queue.should_notify() {
        transport.notify(0);
    }
    let start = counter();
    while !queue.can_pop() {
        ensure!(counter() - start < 10 * frequency(), "the device never completed the read");
        core::hint::spin_loop();
    }
    // SAFETY: the same buffers as `add`.
    let len = unsafe { queue.pop_used(token, &inputs, &mut outputs) }.map_err(|e| alloc::format!("pop: {e}"))?;
    ensure!(status[0] != 0, "a read past the end of the disk succeeded");
    Ok(len)
}

/// `PvmHal`'s bounce copies and zeroing, on the firmware's SIMD and `DC ZVA` paths and
/// their tails: every length from 0 to 9 blocks of 64 bytes plus 0, 1, 17 and 63 bytes,
/// at two alignments. Driver-to-device must reach the bounce buffer exactly and leave
/// the caller's buffer alone; device-to-driver must start as zeroes and come back exactly.
fn bounce_every_length() -> CaseResult {
    use virtio_drivers::{BufferDirection, Hal};
    let mut backing = vec![0u8; 9 * 64 + 63 + 16];
    for offset in [0usize, 16] {
        for blocks in 0..=9 {
            for tail in [0usize, 1, 17, 63] {
                let len = blocks * 64 + tail;
                if len == 0 {
                    continue;
                }
                let buf = &mut backing[offset..offset + len];
                pattern(blocks as u8, tail, buf);
                let ptr = NonNull::from(&mut *buf);
                // SAFETY: `buf` stays alive and untouched between share and unshare.
                let paddr = unsafe { <PvmHal as Hal>::share(ptr, BufferDirection::DriverToDevice) };
                // SAFETY: `share` returned `len` readable bytes there.
                let bounced = unsafe { core::slice::from_raw_parts(paddr as *const u8, len) };
                ensure!(bounced == &*buf, "driver-to-device copy of {len} bytes at +{offset} differs");
                // SAFETY: paired with the share above.
                unsafe { <PvmHal as Hal>::unshare(paddr, ptr, BufferDirection::DriverToDevice) };
                // SAFETY: as above.
                let paddr = unsafe { <PvmHal as Hal>::share(ptr, BufferDirection::DeviceToDriver) };
                // SAFETY: `share` returned `len` writable bytes there, ours until unshare.
                let device = unsafe { core::slice::from_raw_parts_mut(paddr as *mut u8, len) };
                if paddr != buf.as_ptr() as u64 {
                    ensure!(
                        device.iter().all(|&b| b == 0),
                        "a {len}-byte device-to-driver bounce did not start zeroed"
                    );
                }
                pattern(0xc3, len, device);
                let mut want = vec![0u8; len];
                pattern(0xc3, len, &mut want);
                // SAFETY: paired with the share above.
                unsafe { <PvmHal as Hal>::unshare(paddr, ptr, BufferDirection::DeviceToDriver) };
                ensure!(
                    backing[offset..offset + len] == want[..],
                    "device-to-driver copy of {len} bytes at +{offset} differs"
                );
            }
        }
    }
    Ok(())
}
