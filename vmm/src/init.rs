//! `/init` of the pKVM host: mount devtmpfs (Debian's kernel does not, and `/dev/kvm`
//! lives there), read what `pvmkit` put in the initramfs, run the VM, print the exit
//! line, power the host off.

use std::os::fd::AsRawFd;

use pvmkit_abi::exit_line::Nonce;

use crate::exit::{self, ExitReason};
use crate::virtio::block::Disk;
use crate::vmm_println;
use crate::{kvm, machine};

/// The initramfs directory `pvmkit` fills.
const DIR: &str = "/pvmkit";

pub fn main() {
    let args = std::fs::read_to_string(format!("{DIR}/args")).unwrap_or_default();
    if let Some(nonce) = Nonce::from_options(&args) {
        exit::set_nonce(nonce);
    }
    let pid1 = std::process::id() == 1;
    if pid1 {
        if let Err(e) = mount_devtmpfs() {
            vmm_println!("{}", ExitReason::VmmError(e));
            power_off();
        }
    }
    let reason = run(&args);
    vmm_println!("{reason}");
    if pid1 {
        power_off();
    }
    std::process::exit(if reason == ExitReason::SystemOff { 0 } else { 1 });
}

fn run(args: &str) -> ExitReason {
    let protected = match args.split_whitespace().find_map(|w| w.strip_prefix("mode=")) {
        Some("protected") | None => true,
        Some("unprotected") => false,
        Some(other) => return ExitReason::VmmError(format!("unknown mode {other}")),
    };
    let bundle = match std::fs::read(format!("{DIR}/bundle.bin")) {
        Ok(bundle) => bundle,
        Err(e) => return ExitReason::VmmError(format!("reading {DIR}/bundle.bin: {e}")),
    };
    match machine::plan(&bundle) {
        Ok(plan) => {
            vmm_println!(
                "pvmkit vmm: {} VM, entry {:#x}",
                if protected { "protected" } else { "ordinary" },
                plan.entry
            );
            let input = std::fs::read(format!("{DIR}/console-input")).unwrap_or_default();
            // `disk=`: the user's disk, the host's virtio-blk disk that is not an instance disk.
            let disk = match args.split_whitespace().find_map(|w| w.strip_prefix("disk=")) {
                Some(_) => match host_disk(false) {
                    Ok(disk) => Some(disk),
                    Err(e) => return ExitReason::VmmError(e),
                },
                None => None,
            };
            let instance = match args.split_whitespace().find_map(|w| w.strip_prefix("instance=")) {
                Some(source) => match open_instance_disk(source) {
                    Ok(disk) => Some(disk),
                    Err(e) => return ExitReason::VmmError(e),
                },
                None => None,
            };
            let words = || args.split_whitespace();
            let options = kvm::Options {
                protected,
                stats: words().any(|w| w == "stats=on"),
                access_platform: protected && !words().any(|w| w == "access-platform=off"),
            };
            kvm::run(&plan, options, &input, disk, instance)
        }
        Err(e) => ExitReason::VmmError(e),
    }
}

/// The instance disk pvmfw keeps its record on: `device` (the host's virtio-blk disk
/// whose first sector is an instance disk's header, so that the record persists across
/// runs), or a file of the initramfs, served from memory (a fresh instance each run).
fn open_instance_disk(source: &str) -> Result<Disk, String> {
    if source != "device" {
        return std::fs::read(source).map(Disk::Memory).map_err(|e| format!("reading the instance disk {source}: {e}"));
    }
    host_disk(true)
}

/// Loads the host kernel's virtio-mmio and virtio-blk modules from `/pvmkit/modules`
/// (Debian builds them as modules), in name order; loading one twice is no error.
fn load_modules() -> Result<(), String> {
    let mut modules: Vec<_> = std::fs::read_dir(format!("{DIR}/modules"))
        .map_err(|e| format!("{DIR}/modules: {e}"))?
        .flatten()
        .map(|e| e.path())
        .collect();
    modules.sort();
    for module in &modules {
        let file = std::fs::File::open(module).map_err(|e| format!("{}: {e}", module.display()))?;
        let compressed = module.extension().is_some_and(|x| x == "xz");
        let flags = if compressed { MODULE_INIT_COMPRESSED_FILE } else { 0 };
        // SAFETY: a valid fd and an empty, NUL-terminated parameter string.
        let r = unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), c"".as_ptr(), flags) };
        if r != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
            return Err(format!("loading {}: {}", module.display(), std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// The first of the host's virtio-blk disks that is (`instance`) or is not an instance
/// disk, after [`load_modules`]. Which `/dev/vdX` a disk gets depends on probe order, so
/// each is told by its first sector.
fn host_disk(instance: bool) -> Result<Disk, String> {
    load_modules()?;
    // devtmpfs creates the nodes once the driver has probed the devices.
    for _ in 0..500 {
        for name in ["/dev/vda", "/dev/vdb", "/dev/vdc"] {
            let Ok(mut file) = std::fs::OpenOptions::new().read(true).write(true).open(name) else { continue };
            let mut magic = [0u8; 16];
            let is_instance = std::io::Read::read_exact(&mut file, &mut magic).is_ok()
                && magic == pvmkit_abi::instance_disk::HEADER_MAGIC;
            if is_instance == instance {
                // A block device's size is where seeking to its end lands.
                let len = std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0))
                    .map_err(|e| format!("sizing {name}: {e}"))?;
                return Ok(Disk::File(file, len));
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let what = if instance { "an instance disk" } else { "the --disk disk" };
    Err(format!("no host block device holds {what} (no virtio-blk device on the host?)"))
}

/// `finit_module` flag: the kernel decompresses the module itself.
const MODULE_INIT_COMPRESSED_FILE: libc::c_int = 4;

fn mount_devtmpfs() -> Result<(), String> {
    let _ = std::fs::create_dir("/dev");
    let (source, target, fstype) = (c"devtmpfs", c"/dev", c"devtmpfs");
    // SAFETY: valid NUL-terminated strings; no data argument.
    let r = unsafe { libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, core::ptr::null()) };
    if r != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EBUSY) {
        return Err(format!("mounting devtmpfs on /dev: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn power_off() -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: waiting for the console to drain, syncing and powering off have no
    // memory-safety effect. Without the drain the kernel's last words would overtake
    // the exit line's newline, still queued in the tty.
    unsafe {
        libc::tcdrain(1);
        libc::sync();
        libc::reboot(libc::LINUX_REBOOT_CMD_POWER_OFF);
    }
    std::process::exit(1)
}
