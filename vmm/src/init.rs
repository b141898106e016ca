//! `/init` of the pKVM host: mount devtmpfs (Debian's kernel does not, and `/dev/kvm`
//! lives there), read what `pvmkit` put in the initramfs, run the VM, print the exit
//! line, power the host off.

use crate::exit::ExitReason;
use crate::{kvm, machine};

/// The initramfs directory `pvmkit` fills.
const DIR: &str = "/pvmkit";

pub fn main() {
    let pid1 = std::process::id() == 1;
    if pid1 {
        if let Err(e) = mount_devtmpfs() {
            println!("{}", ExitReason::VmmError(e));
            power_off();
        }
    }
    let reason = run();
    println!("{reason}");
    if pid1 {
        power_off();
    }
    std::process::exit(if reason == ExitReason::SystemOff { 0 } else { 1 });
}

fn run() -> ExitReason {
    let args = std::fs::read_to_string(format!("{DIR}/args")).unwrap_or_default();
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
            println!(
                "[vmm] pvmkit vmm: {} VM, entry {:#x}",
                if protected { "protected" } else { "ordinary" },
                plan.entry
            );
            let input = std::fs::read(format!("{DIR}/console-input")).unwrap_or_default();
            kvm::run(&plan, protected, &input)
        }
        Err(e) => ExitReason::VmmError(e),
    }
}

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
