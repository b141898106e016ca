//! Running a guest on the real pKVM: Debian's arm64 Linux (the pKVM host) boots in QEMU
//! with `kvm-arm.mode=protected`; its initramfs holds pvmkit's VMM as `/init` and the
//! same bundle hyp would get, which the VMM runs as a protected (or, for the baseline,
//! ordinary) VM. The verdict reads the VMM's exit line as it reads hyp's.

use std::path::Path;
use std::process::Command;

use pvmkit_abi::hyp_options::VmMode;

use crate::devices::CONSOLE_TO_GUEST;
use crate::firmware::{self, Firmware};
use crate::kernel;
use crate::qemu::{self, QEMU};
use crate::run_config::RunConfig;
use crate::verdict::{self, Expect, RunOutput, Verdict};
use crate::{files, pack};
use crate::{initramfs, Mode, Workspace};

/// The CPU the host runs on: QEMU's `max`, with the vector extensions the pKVM host
/// does not need turned off, and pointer authentication computed with QEMU's fast
/// implementation-defined algorithm instead of QARMA (Debian's kernel signs every
/// return address; under TCG that alone made the host boot three times slower).
const HOST_CPU: &str = "max,sve=off,sme=off,pauth-impdef=on";
/// The host's RAM.
const HOST_RAM: &str = "2G";
/// The host kernel's command line: pKVM, its console on the PL011, quiet, and a panic
/// that stops the host where it stands (`panic=0`: no reset, no power-off), so that a
/// panic can never end QEMU with status 0, as a reset under `-no-reboot` did; pvmkit
/// ends QEMU once the kernel has said so ([`verdict::host_panic_is_over`]).
const HOST_CMDLINE: &str = "console=ttyAMA0 kvm-arm.mode=protected panic=0 quiet";

/// The QEMU command that boots the pKVM host, for a guest of `guest_cpus` vCPUs.
pub fn command(kernel: &Path, initramfs: &Path, extra: &[String], guest_cpus: u32) -> Command {
    let mut cmd = Command::new(QEMU);
    cmd.args(["-M", &format!("{},virtualization=on,gic-version=3", qemu::MACHINE), "-cpu", HOST_CPU]);
    // Two CPUs, or one per guest vCPU, unless the caller chose (the bench runs the host
    // on one, to repeat).
    if !extra.iter().any(|a| a == "-smp") {
        cmd.args(["-smp", &guest_cpus.max(2).to_string()]);
    }
    cmd.args(["-m", HOST_RAM, "-display", "none", "-nodefaults", "-serial", "stdio", "-no-reboot"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", HOST_CMDLINE])
        .args(extra);
    cmd
}

/// What the options of a run ask that the pkvm backend cannot do, if anything.
pub fn refusal(config: &RunConfig) -> Option<&'static str> {
    if config.hyp_stats {
        return Some("--hyp-stats: hyp's exit counters exist only under --backend hyp");
    }
    if config.allow_inherited_guard {
        return Some("--allow-inherited-guard turns a policy of hyp's off: the real 7.3 pKVM has no MMIO guard");
    }
    if config.disk.is_some() && config.kernel.is_some() {
        return Some(
            "--disk with --kernel: the host needs Debian's virtio-blk module for the disk; use Debian's kernel",
        );
    }
    None
}

/// The host kernel's virtio-blk modules, as initramfs files (`modules/NAME`): for the
/// user's `--disk` and a kept `--instance`, both QEMU virtio-blk disks of the host.
fn disk_modules(kernel: &kernel::Kernel) -> Result<Vec<(String, Vec<u8>)>, String> {
    Ok(kernel::disk_modules(kernel)?.into_iter().map(|(name, bytes)| (format!("modules/{name}"), bytes)).collect())
}

/// Builds the run's files in `dir`, boots the pKVM host and judges the run.
pub fn run_collect(
    ws: &Workspace,
    fw: &Firmware,
    config: &RunConfig,
    dir: &Path,
) -> Result<(Verdict, RunOutput), String> {
    if let Some(why) = refusal(config) {
        return Err(why.to_string());
    }
    let vm_mode = match config.mode {
        Mode::Hyp(VmMode::Protected(_)) => "protected",
        Mode::Hyp(VmMode::Unprotected) => "unprotected",
        Mode::Bare => return Err("--mode bare does not apply to --backend pkvm".into()),
    };
    let kernel = match &config.kernel {
        Some(path) => kernel::user_kernel(path)?,
        None => kernel::debian_kernel()?,
    };
    let vmm = files::read(&firmware::build_vmm(ws)?)?;
    let bundle = match &config.bundle {
        Some(given) => files::read(given)?,
        None => pack::make_bundle(ws, fw, config)?,
    };
    let nonce = qemu::fresh_nonce()?;
    let mut args = format!("mode={vm_mode} {}={nonce}", pvmkit_abi::exit_line::Nonce::OPTION);
    if config.vmm_stats {
        args.push_str(" stats=on");
    }
    if !config.access_platform {
        args.push_str(" access-platform=off");
    }
    let mut extra = Vec::new();
    let mut modules = Vec::new();
    if let Some(disk) = &config.disk {
        // The user's disk reaches the VM through the host: QEMU's virtio-blk, which the
        // VMM opens as /dev/vda and serves the guest's requests from (so they persist).
        crate::devices::create_disk(disk)?;
        modules = disk_modules(&kernel)?;
        args.push_str(" disk=/dev/vda");
        let drive = format!("file={},format=raw,if=none,id=pvmkit-disk", disk.display());
        extra.extend(["-drive".to_string(), drive, "-device".into(), "virtio-blk-device,drive=pvmkit-disk".into()]);
    }
    // pvmfw's instance disk: a kept one reaches the VM through the host (QEMU's
    // virtio-blk, which the VMM finds by its header), a fresh one from the initramfs.
    let mut fresh_instance = Vec::new();
    if config.pvmfw || config.bundle.is_some() {
        match &config.instance {
            Some(path) => {
                crate::devices::create_instance_disk(path)?;
                if modules.is_empty() {
                    modules = disk_modules(&kernel)?;
                }
                args.push_str(" instance=device");
                let drive = format!("file={},format=raw,if=none,id=pvmkit-instance", path.display());
                extra.extend([
                    "-drive".into(),
                    drive,
                    "-device".into(),
                    "virtio-blk-device,drive=pvmkit-instance".into(),
                ]);
            }
            None => {
                fresh_instance = crate::devices::instance_disk_image()?;
                args.push_str(" instance=/pvmkit/instance.img");
            }
        }
    }
    let args = args + "\n";
    let mut files = vec![("bundle.bin", &bundle[..]), ("args", args.as_bytes()), ("console-input", CONSOLE_TO_GUEST)];
    if !fresh_instance.is_empty() {
        files.push(("instance.img", &fresh_instance[..]));
    }
    files.extend(modules.iter().map(|(name, bytes)| (name.as_str(), &bytes[..])));
    let archive = initramfs::for_vmm(&vmm, &files);
    let initrd = dir.join("initramfs.cpio");
    files::write(&initrd, &archive)?;
    if config.echo {
        eprintln!("pvmkit: {} on the real pKVM, host kernel {} ({})", config.mode, kernel.version, dir.display());
    }
    extra.extend(config.extra_args.iter().cloned());
    let mut cmd = command(&kernel.image, &initrd, &extra, config.cpus);
    let output = qemu::execute(&mut cmd, config.timeout, config.echo, Some(nonce), Some(verdict::host_panic_is_over))?;
    std::fs::write(dir.join("console.log"), output.lines.join("\n")).ok();
    let verdict = verdict::judge(Expect::Vmm, &output);
    if config.echo {
        let first = output.lines.iter().position(|l| l.starts_with("[vmm]"));
        let at = |i: Option<usize>| i.and_then(|i| output.times.get(i)).map(|t| format!("{:.1} s", t.as_secs_f64()));
        eprintln!(
            "pvmkit: host kernel {}: the VMM's first line after {}, the run's end after {}",
            kernel.version,
            at(first).unwrap_or_else(|| "never".into()),
            at(output.lines.len().checked_sub(1)).unwrap_or_else(|| "never".into())
        );
        match (output.stopped_dead, output.exit_code) {
            (true, None) => {
                eprintln!("pvmkit: stopped QEMU: the host kernel had panicked (it runs with panic=0: no reset)")
            }
            (_, Some(code)) if !matches!(verdict, Verdict::Pass { .. }) => {
                eprintln!("pvmkit: QEMU exited with status {code}")
            }
            _ => {}
        }
        qemu::print_tail(&verdict, output.lines.len());
    }
    Ok((verdict, output))
}
