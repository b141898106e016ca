//! `pvmkit.scenario=bench`: the virtio-blk workload of test-guest's bench, done the way
//! Linux programs do I/O: `pwrite`/`pread` with O_DIRECT on /dev/vda, so every request
//! goes to the device through Linux's block layer, its virtio driver and, in a protected
//! VM, its swiotlb bounce buffers in the restricted pool. Sequential writes then reads
//! of 4 MiB in 4 KiB, 64 KiB and 1 MiB requests, timed with the virtual counter (the
//! same ticks test-guest reports); one line per phase in test-guest's format. What only
//! a bare-metal guest can count (its instructions, hypercalls, bytes bounced) is `n/a`.
//! Every block carries its stamp (`pvmkit_abi::bench`), cleared before each read and checked
//! after it, outside the timed calls: a device that returns nothing fails.

use pvmkit_abi::bench::{clear_stamps, stamp_blocks, wrong_stamp, BLOCK};
use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

const TOTAL: usize = 4 << 20;
const SIZES: [usize; 3] = [4096, 65536, 1 << 20];

/// The virtual counter (Linux lets EL0 read it).
#[cfg(target_arch = "aarch64")]
fn counter() -> u64 {
    let value: u64;
    // SAFETY: reading the virtual counter has no side effects.
    unsafe { std::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) value, options(nomem, nostack)) };
    value
}

/// The counter's frequency.
#[cfg(target_arch = "aarch64")]
fn frequency() -> u64 {
    let value: u64;
    // SAFETY: reading the counter's frequency has no side effects.
    unsafe { std::arch::asm!("mrs {}, cntfrq_el0", out(reg) value, options(nomem, nostack)) };
    value
}

// The program runs only in the arm64 guest; elsewhere it is built for checks alone.
#[cfg(not(target_arch = "aarch64"))]
fn counter() -> u64 {
    0
}

#[cfg(not(target_arch = "aarch64"))]
fn frequency() -> u64 {
    0
}

pub fn run() -> Result<(), String> {
    let disk = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open("/dev/vda")
        .map_err(|e| format!("/dev/vda: {e}"))?;
    println!("bench frequency={} guest_pmu=no", frequency());
    // O_DIRECT wants aligned memory: a page-aligned 1 MiB inside a larger buffer.
    let mut backing = vec![0x3cu8; (1 << 20) + 4096];
    let offset = backing.as_ptr().align_offset(4096);
    for size in SIZES {
        let buf = &mut backing[offset..offset + size];
        for op in ["write", "read"] {
            let requests = TOTAL / size;
            let mut each = Vec::with_capacity(requests);
            println!("bench start op={op} size={size}");
            let t0 = counter();
            // Ticks spent stamping and checking, left out of the phase's.
            let mut checking = 0;
            for i in 0..requests {
                let at = (i * size) as u64;
                let sector = at / BLOCK as u64;
                let c0 = counter();
                if op == "write" {
                    stamp_blocks(buf, sector, size as u64);
                } else {
                    clear_stamps(buf);
                }
                let started = counter();
                let done = if op == "write" { disk.write_at(buf, at) } else { disk.read_at(buf, at) };
                match done {
                    Ok(n) if n == size => {}
                    Ok(n) => return Err(format!("{op} {size} at {at}: {n} bytes")),
                    Err(e) => return Err(format!("{op} {size} at {at}: {e}")),
                }
                let ended = counter();
                each.push(ended - started);
                if op == "read" {
                    if let Some((at, found, expected)) = wrong_stamp(buf, sector, size as u64) {
                        return Err(format!(
                            "read {size}: read back sector {at}: stamp {found:#x}, expected {expected:#x}"
                        ));
                    }
                }
                checking += (started - c0) + (counter() - ended);
            }
            let ticks = counter() - t0 - checking;
            each.sort_unstable();
            println!(
                "bench op={op} size={size} requests={requests} bytes={TOTAL} ticks={ticks} median_ticks={} guest_instr=n/a hyp_instr=n/a hypercalls=n/a bounced=n/a mmio_exits=n/a exits=n/a",
                each[each.len() / 2]
            );
        }
    }
    Ok(())
}
