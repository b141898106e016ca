//! `/init` of pvmkit's Linux guest (a static binary in the kernel's built-in
//! initramfs). It mounts what it needs, checks that every CPU the VM has came up, runs
//! a few checks of the VM's virtio devices through Linux's own drivers (the disk and
//! entropy ones with a thread on every CPU), prints one line per check and the
//! harness's summary (`N passed, M failed`, the line pvmkit's verdict reads), and
//! powers the VM off.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;

mod bench;

/// One check: `Err` says what went wrong.
type Check = fn() -> Result<(), String>;

/// The disk's last 64 KiB: written, then read back past the page cache.
const DISK_PROBE: u64 = 64 << 10;

fn main() {
    mount("devtmpfs", "/dev", "devtmpfs");
    mount("proc", "/proc", "proc");
    mount("sysfs", "/sys", "sysfs");
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    if cmdline.split_whitespace().any(|w| w == "pvmkit.scenario=bench") {
        let result = bench::run();
        match &result {
            Ok(()) => println!("test bench ... ok"),
            Err(e) => println!("test bench ... FAILED: {e}"),
        }
        println!("{} passed, {} failed", u32::from(result.is_ok()), u32::from(result.is_err()));
        power_off();
    }
    let checks: [(&str, Check); 5] = [
        ("linux_sees_the_pkvm_guest_services", pkvm_services),
        ("linux_brings_up_every_cpu", every_cpu),
        ("virtio_blk_write_read_direct", disk),
        ("virtio_rng_entropy", entropy),
        ("virtio_console_sends", console),
    ];
    let mut failed = 0;
    for (name, check) in checks {
        match check() {
            Ok(()) => println!("test {name} ... ok"),
            Err(e) => {
                failed += 1;
                println!("test {name} ... FAILED: {e}");
            }
        }
    }
    println!("{} passed, {failed} failed", checks.len() - failed);
    power_off();
}

fn power_off() -> ! {
    let _ = std::io::stdout().flush();
    // SAFETY: sync and reboot take no pointers; power-off ends the VM.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    std::process::exit(1)
}

fn mount(source: &str, target: &str, fstype: &str) {
    let _ = std::fs::create_dir_all(target);
    let (s, t, f) = (cstr(source), cstr(target), cstr(fstype));
    // SAFETY: NUL-terminated strings that outlive the call; no data argument.
    unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), 0, std::ptr::null()) };
}

fn cstr(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).unwrap_or_default()
}

/// The kernel found KVM's hypervisor services (its boot log says so; the pKVM guest
/// driver then shares memory with MEM_SHARE).
fn pkvm_services() -> Result<(), String> {
    let mut log = vec![0u8; 1 << 20];
    // SAFETY: `log` is writable for its length (SYSLOG_ACTION_READ_ALL = 3).
    let n = unsafe { libc::klogctl(3, log.as_mut_ptr().cast(), log.len() as libc::c_int) };
    if n < 0 {
        return Err(format!("klogctl: {}", std::io::Error::last_os_error()));
    }
    let log = String::from_utf8_lossy(&log[..n as usize]);
    match log.lines().find(|l| l.contains("hypervisor services detected")) {
        Some(line) => {
            println!("init: {}", line.trim());
            Ok(())
        }
        None => Err("no 'hypervisor services detected' in the kernel log".into()),
    }
}

/// Every CPU the device tree names (`possible`) is `online`; prints them.
fn every_cpu() -> Result<(), String> {
    let read = |what: &str| {
        std::fs::read_to_string(format!("/sys/devices/system/cpu/{what}"))
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("/sys/devices/system/cpu/{what}: {e}"))
    };
    let (possible, online) = (read("possible")?, read("online")?);
    println!("init: CPUs online {online} of {possible}");
    if online != possible {
        return Err(format!("CPUs {possible} possible, only {online} online"));
    }
    Ok(())
}

/// The online CPUs' numbers (`/sys/devices/system/cpu/online`: `0-3`, `0,2`, …).
fn online_cpus() -> Vec<usize> {
    let list = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_else(|_| "0".into());
    let mut cpus = Vec::new();
    for part in list.trim().split(',') {
        let mut ends = part.split('-').filter_map(|n| n.parse::<usize>().ok());
        if let Some(first) = ends.next() {
            cpus.extend(first..=ends.next().unwrap_or(first));
        }
    }
    cpus
}

/// Runs `work(i)` on a thread pinned to each online CPU `i`, at once; every error.
fn on_every_cpu(work: fn(usize) -> Result<(), String>) -> Result<(), String> {
    let threads: Vec<_> = online_cpus()
        .into_iter()
        .enumerate()
        .map(|(i, cpu)| {
            std::thread::spawn(move || {
                // SAFETY: a zeroed cpu_set_t with one CPU set, for this thread (pid 0).
                let pinned = unsafe {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut set);
                    libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
                };
                if pinned != 0 {
                    return Err(format!("CPU {cpu}: sched_setaffinity: {}", std::io::Error::last_os_error()));
                }
                work(i).map_err(|e| format!("CPU {cpu}: {e}"))
            })
        })
        .collect();
    let errors: Vec<String> = threads
        .into_iter()
        .filter_map(|t| t.join().unwrap_or_else(|_| Err("a thread panicked".into())).err())
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// From every CPU at once, a pattern written to its own 64 KiB near the end of
/// /dev/vda and read back with O_DIRECT, so both go to the device.
fn disk() -> Result<(), String> {
    on_every_cpu(disk_region)
}

/// The `n`th region from the end of /dev/vda, written and read back.
fn disk_region(n: usize) -> Result<(), String> {
    let mut disk = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT | libc::O_SYNC)
        .open("/dev/vda")
        .map_err(|e| format!("/dev/vda: {e}"))?;
    let size = disk.seek(SeekFrom::End(0)).map_err(|e| format!("size: {e}"))?;
    let Some(at) = size.checked_sub(DISK_PROBE * (n as u64 + 1)) else {
        return Err(format!("/dev/vda has {size} bytes"));
    };
    // O_DIRECT wants aligned memory: a page-aligned region inside a larger buffer.
    let mut backing = vec![0u8; DISK_PROBE as usize + 4096];
    let offset = backing.as_ptr().align_offset(4096);
    let buf = &mut backing[offset..offset + DISK_PROBE as usize];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ 0x5a ^ n as u8;
    }
    let written = buf.to_vec();
    disk.seek(SeekFrom::Start(at)).map_err(|e| format!("seek: {e}"))?;
    disk.write_all(buf).map_err(|e| format!("write: {e}"))?;
    buf.fill(0);
    disk.seek(SeekFrom::Start(at)).map_err(|e| format!("seek: {e}"))?;
    disk.read_exact(buf).map_err(|e| format!("read: {e}"))?;
    if buf != &written[..] {
        return Err("what was read back differs from what was written".into());
    }
    Ok(())
}

/// From every CPU at once, 64 bytes from the virtio entropy device, not all alike,
/// twice different.
fn entropy() -> Result<(), String> {
    on_every_cpu(|_| entropy_twice())
}

fn entropy_twice() -> Result<(), String> {
    let mut rng = File::open("/dev/hwrng").map_err(|e| format!("/dev/hwrng: {e}"))?;
    let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
    rng.read_exact(&mut a).map_err(|e| format!("read: {e}"))?;
    rng.read_exact(&mut b).map_err(|e| format!("read: {e}"))?;
    if a.iter().all(|&x| x == a[0]) || a == b {
        return Err("the entropy is not random".into());
    }
    Ok(())
}

/// A line through the virtio console (the host sees it arrive).
fn console() -> Result<(), String> {
    let mut hvc = OpenOptions::new().write(true).open("/dev/hvc0").map_err(|e| format!("/dev/hvc0: {e}"))?;
    hvc.write_all(b"hello from linux via virtio-console\n").map_err(|e| format!("write: {e}"))?;
    hvc.flush().map_err(|e| format!("flush: {e}"))
}
