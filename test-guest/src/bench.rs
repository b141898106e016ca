//! `--scenario bench`: sequential virtio-blk writes then reads of 4 KiB, 64 KiB and
//! 1 MiB requests, 4 MiB per phase, through virtio-drivers' non-blocking calls so that
//! the wait for the device can be left out of what is counted. One line per phase:
//!
//! `bench op=write size=4096 requests=1024 bytes=4194304 ticks=… guest_instr=…
//! hyp_instr=… hypercalls=… bounced=… mmio_exits=… exits=…`
//!
//! - `ticks`: the virtual counter over the phase (time: under hyp it follows how fast
//!   QEMU's devices answer in real time; under the real pKVM with `-icount` and one
//!   CPU it is the whole machine's work). `median_ticks`: the median request's, which
//!   leaves out the host's own housekeeping (a 16 ms job of the host kernel lands in
//!   one phase or another).
//! - `guest_instr`: the guest's instructions (PMU, EL1 only) submitting and completing
//!   the requests, the wait left out; `n/a` without a counting PMU.
//! - `hyp_instr`: hyp's counted work (`HYP_STATS_WORK`); `n/a` elsewhere.
//! - `hypercalls`, `bounced`: guest-lib's counters; `mmio_exits` and `exits`: hyp's
//!   data-abort and total exit counts (`n/a` elsewhere; on the real pKVM the VMM
//!   appends its own counts to the phase's line and to the `bench start` line before
//!   it).
//!
//! Every block written carries a stamp of its own (`pvmkit_abi::bench`: its sector and the
//! phase's request size, in its first 8 bytes), cleared before each read and checked
//! after it: a device that returns nothing, or another block's data, fails the bench. Stamping and
//! checking are left out of every figure. (`--scenario bench-misread` reads each request
//! one block off: the negative control.)

extern crate alloc;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use core::ptr::NonNull;
use guest_lib::conduit::Conduit;
use guest_lib::harness::CaseResult;
use guest_lib::instructions::InstructionCounter;
use guest_lib::virtio::{discover, PvmHal};
use guest_lib::{println, stats, BootInfo};
use pvmkit_abi::bench::{clear_stamps, stamp_blocks, wrong_stamp};
use pvmkit_abi::hyp_options::{HYP_STATS, HYP_STATS_WORK};
use virtio_drivers::device::blk::{BlkReq, BlkResp, RespStatus, VirtIOBlk, SECTOR_SIZE};
use virtio_drivers::transport::mmio::MmioTransport;
use virtio_drivers::transport::DeviceType;
use virtio_drivers::{BufferDirection, Hal};

use crate::clock::{self, frequency};

const TOTAL: usize = 4 << 20;
const SIZES: [usize; 3] = [4096, 65536, 1 << 20];

type Blk = VirtIOBlk<PvmHal, MmioTransport<'static>>;

/// hyp's counters: (exits, data aborts, counted work), each `None` without hyp's
/// `stats=on` (or, for the work, without its PMU meter).
fn hyp_counters(boot: &BootInfo) -> (Option<u64>, Option<u64>, Option<u64>) {
    let exits = boot.conduit.call(HYP_STATS, [0; 3]);
    let work = boot.conduit.call(HYP_STATS, [HYP_STATS_WORK, 0, 0]);
    let ok = exits[0] == 0;
    (ok.then_some(exits[1]), ok.then_some(exits[2]), (work[0] == 0).then_some(work[1]))
}

fn delta(a: Option<u64>, b: Option<u64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => alloc::format!("{}", b - a),
        _ => "n/a".into(),
    }
}

/// What one request cost the guest, the wait left out.
struct Work {
    instructions: u64,
}

/// One request: submit, wait for the device (not counted), complete.
fn request(
    blk: &mut Blk,
    counter: Option<&InstructionCounter>,
    write: bool,
    sector: usize,
    buf: &mut [u8],
    work: &mut Work,
) -> Result<(), String> {
    let (mut req, mut resp) = (BlkReq::default(), BlkResp::default());
    let read = || counter.map(|c| c.read());
    let start = read();
    // SAFETY: `req`, `buf` and `resp` stay alive and untouched until the completion
    // below, which is awaited before they go out of scope.
    let token = unsafe {
        if write {
            blk.write_blocks_nb(sector, &mut req, buf, &mut resp)
        } else {
            blk.read_blocks_nb(sector, &mut req, buf, &mut resp)
        }
    }
    .map_err(|e| alloc::format!("submitting at sector {sector}: {e}"))?;
    let submitted = read();
    while blk.peek_used() != Some(token) {
        core::hint::spin_loop();
    }
    let done = read();
    // SAFETY: the same buffers as the submission, for its token.
    unsafe {
        if write {
            blk.complete_write_blocks(token, &req, buf, &mut resp)
        } else {
            blk.complete_read_blocks(token, &req, buf, &mut resp)
        }
    }
    .map_err(|e| alloc::format!("completing at sector {sector}: {e}"))?;
    if let (Some(c), Some(start), Some(submitted), Some(done)) = (counter, start, submitted, done) {
        work.instructions += u64::from(submitted.wrapping_sub(start)) + c.since(done);
    }
    if resp.status() != RespStatus::OK {
        return Err(alloc::format!("sector {sector}: status {:?}", resp.status()));
    }
    Ok(())
}

/// What one 64 KiB bounce costs the guest, in counter ticks and (with a PMU)
/// instructions: a plain copy, a plain zeroing, and a device-to-driver round trip
/// through the HAL.
fn bounce_cost(counter: Option<&InstructionCounter>) {
    let (src, mut dst) = (vec![1u8; 65536], vec![0u8; 65536]);
    let measure = |f: &mut dyn FnMut()| {
        let (t0, i0) = (clock::counter(), counter.map(|c| c.read()));
        f();
        let instructions = match (counter, i0) {
            (Some(c), Some(i0)) => alloc::format!("{}", c.since(i0)),
            _ => "n/a".into(),
        };
        (clock::counter() - t0, instructions)
    };
    let copy = measure(&mut || {
        dst.copy_from_slice(core::hint::black_box(&src));
        core::hint::black_box(&mut dst);
    });
    let zero = measure(&mut || {
        dst.fill(0);
        core::hint::black_box(&mut dst);
    });
    let bounce = measure(&mut || {
        let buf = NonNull::from(&mut dst[..]);
        // SAFETY: `dst` is ours for the two calls.
        let paddr = unsafe { <PvmHal as Hal>::share(buf, BufferDirection::DeviceToDriver) };
        // SAFETY: paired with the share above.
        unsafe { <PvmHal as Hal>::unshare(paddr, buf, BufferDirection::DeviceToDriver) };
    });
    println!(
        "bench copy64k={} zero64k={} bounce64k={} copy64k_instr={} zero64k_instr={} bounce64k_instr={}",
        copy.0, zero.0, bounce.0, copy.1, zero.1, bounce.1
    );
}

/// What one exit to the device's emulation costs: the median of 255 reads of the
/// transport's MagicValue register, in counter ticks (whole-machine work under the real
/// pKVM with `-icount`).
fn exit_cost(base: u64) {
    let mut each = [0u64; 255];
    for tick in each.iter_mut() {
        let start = clock::counter();
        // SAFETY: the transport's first register, mapped and registered by `discover`;
        // reading it has no side effect.
        unsafe { core::ptr::read_volatile(base as *const u32) };
        *tick = clock::counter() - start;
    }
    each.sort_unstable();
    println!("bench mmio_read_ticks={}", each[each.len() / 2]);
}

/// Runs the bench; with `misread`, each read asks for the block after the one it
/// checks (the negative control of the read-back check).
pub fn run(boot: &BootInfo, misread: bool) -> CaseResult {
    let mut devices = discover(&boot.dt, guest_lib::mmio_guard());
    let at = devices.iter().position(|d| d.device_type == DeviceType::Block).ok_or("no block device")?;
    exit_cost(devices[at].base);
    let mut blk: Blk = VirtIOBlk::new(devices.swap_remove(at).transport).map_err(|e| alloc::format!("{e}"))?;
    let counter = InstructionCounter::start();
    println!("bench frequency={} guest_pmu={}", frequency(), if counter.is_some() { "yes" } else { "no" });
    bounce_cost(counter.as_ref());
    for size in SIZES {
        let mut buf: Vec<u8> = vec![0x3c; size];
        for op in ["write", "read"] {
            let requests = TOTAL / size;
            let mut work = Work { instructions: 0 };
            let mut each: Vec<u64> = Vec::with_capacity(requests);
            // The VMM (real pKVM backend) appends its exit counts to this line and the
            // phase's: their difference is the phase's.
            println!("bench start op={op} size={size}");
            // hyp's counters are read outside guest-lib's and the clock's window, so
            // that those calls are not the phase's.
            let h0 = hyp_counters(boot);
            let (s0, t0) = (stats::snapshot(), clock::counter());
            // Counter ticks spent stamping and checking, left out of the phase's.
            let mut checking = 0;
            for i in 0..requests {
                let sector = i * size / SECTOR_SIZE;
                let write = op == "write";
                let c0 = clock::counter();
                if write {
                    stamp_blocks(&mut buf, sector as u64, size as u64);
                } else {
                    clear_stamps(&mut buf);
                }
                let started = clock::counter();
                let asked = if !write && misread { sector + 1 } else { sector };
                request(&mut blk, counter.as_ref(), write, asked, &mut buf, &mut work)
                    .map_err(|e| alloc::format!("{op} {size}: {e}"))?;
                let ended = clock::counter();
                each.push(ended - started);
                if let Some((at, found, expected)) =
                    (!write).then(|| wrong_stamp(&buf, sector as u64, size as u64)).flatten()
                {
                    return Err(alloc::format!(
                        "read {size}: read back sector {at}: stamp {found:#x}, expected {expected:#x}"
                    ));
                }
                checking += (started - c0) + (clock::counter() - ended);
            }
            let (t1, s1) = (clock::counter(), stats::snapshot());
            each.sort_unstable();
            let median = each[each.len() / 2];
            let h1 = hyp_counters(boot);
            let guest = if counter.is_some() { alloc::format!("{}", work.instructions) } else { "n/a".into() };
            println!(
                "bench op={op} size={size} requests={requests} bytes={TOTAL} ticks={} median_ticks={median} guest_instr={guest} hyp_instr={} hypercalls={} bounced={} mmio_exits={} exits={}",
                t1 - t0 - checking,
                delta(h0.2, h1.2),
                s1.hypercalls - s0.hypercalls,
                s1.bytes_bounced - s0.bytes_bounced,
                delta(h0.1, h1.1),
                delta(h0.0, h1.0),
            );
        }
    }
    Ok(())
}
