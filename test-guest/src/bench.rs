//! `--scenario bench`: sequential virtio-blk reads and writes of 4 KiB and 64 KiB
//! requests, 4 MiB each, timed with the virtual counter and counted with guest-lib's
//! counters and (when hyp answers it) hyp's exit counter. One line per phase:
//!
//! `bench op=write size=4096 requests=1024 bytes=4194304 ticks=… hypercalls=… bounced=… exits=…`

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use abi::hyp_options::HYP_STATS;
use core::ptr::NonNull;
use guest_lib::conduit::Conduit;
use guest_lib::harness::CaseResult;
use guest_lib::virtio::{discover, PvmHal};
use guest_lib::{println, stats, BootInfo};
use virtio_drivers::device::blk::{VirtIOBlk, SECTOR_SIZE};
use virtio_drivers::transport::DeviceType;

use crate::clock::{counter, frequency};
use virtio_drivers::{BufferDirection, Hal};

const TOTAL: usize = 4 << 20;

/// hyp's exit count, or `None` without hyp (or without `stats=on`).
fn exits(boot: &BootInfo) -> Option<u64> {
    let r = boot.conduit.call(HYP_STATS, [0; 3]);
    (r[0] == 0).then_some(r[1])
}

pub fn run(boot: &BootInfo) -> CaseResult {
    let mut devices = discover(&boot.dt, guest_lib::mmio_guard());
    let at = devices.iter().position(|d| d.device_type == DeviceType::Block).ok_or("no block device")?;
    let mut blk = VirtIOBlk::<PvmHal, _>::new(devices.swap_remove(at).transport).map_err(|e| alloc::format!("{e}"))?;
    println!("bench frequency={}", frequency());
    {
        // What one bounce costs the guest: copying and zeroing 64 KiB.
        let (src, mut dst) = (vec![1u8; 65536], vec![0u8; 65536]);
        let t0 = counter();
        dst.copy_from_slice(core::hint::black_box(&src));
        core::hint::black_box(&mut dst);
        let t1 = counter();
        dst.fill(0);
        core::hint::black_box(&mut dst);
        let t2 = counter();
        // A whole bounce round trip through the HAL, device-to-driver (zero, copy back).
        let buf = NonNull::from(&mut dst[..]);
        // SAFETY: `dst` is ours for the two calls.
        let paddr = unsafe { <PvmHal as Hal>::share(buf, BufferDirection::DeviceToDriver) };
        // SAFETY: paired with the share above.
        unsafe { <PvmHal as Hal>::unshare(paddr, buf, BufferDirection::DeviceToDriver) };
        let t3 = counter();
        println!("bench copy64k={} zero64k={} bounce64k={}", t1 - t0, t2 - t1, t3 - t2);
    }
    for size in [4096usize, 65536] {
        let mut buf: Vec<u8> = vec![0x3c; size];
        for op in ["write", "read"] {
            let requests = TOTAL / size;
            // The counters are read inside the calls to hyp's, so that those calls are
            // not counted as the phase's.
            let (e0, s0, t0) = (exits(boot), stats::snapshot(), counter());
            for i in 0..requests {
                let sector = i * size / SECTOR_SIZE;
                let result =
                    if op == "write" { blk.write_blocks(sector, &buf) } else { blk.read_blocks(sector, &mut buf) };
                result.map_err(|e| alloc::format!("{op} {size} at {sector}: {e}"))?;
            }
            let (t1, s1, e1) = (counter(), stats::snapshot(), exits(boot));
            let exits = match (e0, e1) {
                (Some(a), Some(b)) => alloc::format!("{}", b - a),
                _ => "n/a".into(),
            };
            println!(
                "bench op={op} size={size} requests={requests} bytes={TOTAL} ticks={} hypercalls={} bounced={} exits={exits}",
                t1 - t0,
                s1.hypercalls - s0.hypercalls,
                s1.bytes_bounced - s0.bytes_bounced,
            );
        }
    }
    Ok(())
}
