//! Finding (or installing) QEMU, assembling its command line, and running a guest with
//! a wall-clock limit while streaming the console.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pvmkit_abi::exit_line::{Nonce, Shown};
use pvmkit_abi::memory_map::QEMU_RAM_SIZE;

use crate::devices::Devices;
use crate::firmware::Firmware;
use crate::host_packages::Apt;
use crate::run_config::RunConfig;
use crate::verdict::{self, Expect, RunOutput, Verdict};
use crate::{files, pack, Mode, Workspace};

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-aarch64";
/// The Debian/Ubuntu package that has it.
pub const QEMU_PACKAGE: &str = "qemu-system-arm";
/// The machine type, pinned so that a QEMU upgrade cannot move the memory map.
pub const MACHINE: &str = "virt-7.2";
/// The CPU: no SVE, PAuth or MTE to trap, 44-bit PA.
pub const CPU: &str = "cortex-a72";

fn qemu_works() -> bool {
    Command::new(QEMU).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// QEMU's version line (`QEMU emulator version 7.2.22 (…)` → `QEMU 7.2.22`).
pub fn version() -> Option<String> {
    let out = Command::new(QEMU).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.lines().next()?.strip_prefix("QEMU emulator version ")?.split_whitespace().next()?;
    Some(format!("QEMU {version}"))
}

pub(crate) fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Makes sure QEMU is there: as root on Debian/Ubuntu it installs the package itself
/// (and says so); elsewhere it names the package to install.
pub fn ensure_installed() -> Result<(), String> {
    if qemu_works() {
        return Ok(());
    }
    let apt = Path::new("/usr/bin/apt-get").exists();
    if !(apt && is_root()) {
        return Err(format!(
            "{QEMU} not found: install the package {QEMU_PACKAGE} (Debian/Ubuntu: apt-get install --no-install-recommends {QEMU_PACKAGE})"
        ));
    }
    eprintln!("pvmkit: {QEMU} not found; installing {QEMU_PACKAGE} with apt-get");
    Apt::default().install(&[QEMU_PACKAGE]).map_err(|e| format!("installing {QEMU_PACKAGE}: {e}"))?;
    if qemu_works() {
        Ok(())
    } else {
        Err(format!("{QEMU_PACKAGE} is installed but {QEMU} does not run"))
    }
}

/// A fresh nonce for a run, from the host's random source: what hyp's and the VMM's
/// lines must carry for the verdict to take them (`pvmkit_abi::exit_line`).
pub fn fresh_nonce() -> Result<Nonce, String> {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("reading /dev/urandom for the run's nonce: {e}"))?;
    Ok(Nonce(u64::from_le_bytes(bytes)))
}

/// hyp's command line for a run.
fn hyp_cmdline(vm: pvmkit_abi::hyp_options::VmMode, config: &RunConfig, nonce: Nonce) -> String {
    let mut words = vec![vm.as_args().to_string(), format!("{}={nonce}", Nonce::OPTION)];
    if config.hyp_stats {
        words.push("stats=on".into());
    }
    if config.short_counts
        && vm == pvmkit_abi::hyp_options::VmMode::Protected(pvmkit_abi::hyp_options::AbiForm::Android)
    {
        words.push("short-counts=on".into());
    }
    if !config.access_platform {
        words.push("access-platform=off".into());
    }
    if config.allow_inherited_guard {
        words.push("inherited-guard=allow".into());
    }
    words.join(" ")
}

/// The QEMU command for a run whose files are in `dir`; hyp gets `nonce`.
pub fn command(fw: &Firmware, config: &RunConfig, dir: &Path, devices: &Devices, nonce: Nonce) -> Command {
    let mut cmd = Command::new(QEMU);
    let machine = match config.mode {
        Mode::Hyp(_) => format!("{MACHINE},virtualization=on,gic-version=3"),
        Mode::Bare => format!("{MACHINE},gic-version=3"),
    };
    // A CPU per vCPU: hyp runs vCPU i on CPU i (bare mode: QEMU's own PSCI starts them).
    cmd.args(["-M", &machine, "-cpu", CPU, "-smp", &config.cpus.to_string(), "-m"])
        .arg(format!("{}M", QEMU_RAM_SIZE >> 20))
        .args(["-display", "none", "-nodefaults", "-serial", "stdio", "-no-reboot"]);
    match config.mode {
        Mode::Hyp(vm) => {
            cmd.arg("-kernel")
                .arg(&fw.hyp_image)
                .arg("-initrd")
                .arg(dir.join("bundle.bin"))
                .arg("-append")
                .arg(hyp_cmdline(vm, config, nonce));
        }
        Mode::Bare => {
            // QEMU boots the ELF at EL1 with its own DTB at RAM base; the guest's
            // command line reaches it as that DTB's /chosen/bootargs.
            cmd.arg("-kernel").arg(&config.payload).args(["-append", &config.guest_cmdline()]);
            if let Some(initrd) = &config.initrd {
                cmd.arg("-initrd").arg(initrd);
            }
        }
    }
    cmd.args(devices.qemu_args());
    cmd.args(&config.extra_args);
    cmd
}

/// Runs a guest under hyp or on bare QEMU with the run's files in `dir`, and judges
/// the result (the real pKVM is `pkvm`'s).
pub fn run_collect(
    ws: &Workspace,
    fw: &Firmware,
    config: &RunConfig,
    dir: &Path,
) -> Result<(Verdict, RunOutput), String> {
    match (config.mode, &config.bundle) {
        (Mode::Hyp(_), Some(given)) => files::write(&dir.join("bundle.bin"), &files::read(given)?)?,
        (Mode::Hyp(_), None) => files::write(&dir.join("bundle.bin"), &pack::make_bundle(ws, fw, config)?)?,
        (Mode::Bare, Some(_)) => return Err("--bundle needs hyp: bare mode has no bundle".into()),
        (Mode::Bare, None) => {}
    }
    // pvmfw's instance disk, for a run through pvmfw or a given bundle (which may hold
    // pvmfw; hyp exposes the transport only if the bundle lists it).
    let through_pvmfw = config.pvmfw || config.bundle.is_some();
    let instance = (through_pvmfw && matches!(config.mode, Mode::Hyp(_))).then_some(config.instance.as_deref());
    let mut devices = Devices::create(dir, config.disk.as_deref(), instance)?;
    let nonce = fresh_nonce()?;
    let mut cmd = command(fw, config, dir, &devices, nonce);
    if config.echo {
        eprintln!("pvmkit: {} ({})", config.mode, dir.display());
    }
    // Bare mode has no host writer: every line is the guest's.
    let host_nonce = matches!(config.mode, Mode::Hyp(_)).then_some(nonce);
    let output = execute(&mut cmd, config.timeout, config.echo, host_nonce, None)?;
    std::fs::write(dir.join("console.log"), output.lines.join("\n")).ok();
    let from_guest = devices.console_output();
    std::fs::write(dir.join("virtio-console.received"), &from_guest).ok();
    if config.echo && !from_guest.is_empty() {
        println!("pvmkit: virtio-console received {:?}", String::from_utf8_lossy(&from_guest));
    }
    let expect = match config.mode {
        Mode::Hyp(_) => Expect::Hyp,
        Mode::Bare => Expect::Bare,
    };
    let verdict = verdict::judge(expect, &output);
    if config.echo {
        print_tail(&verdict, output.lines.len());
    }
    Ok((verdict, output))
}

/// Prints a failing verdict's last console lines (`pvmkit run`'s echo).
/// Only when the console had more lines than the tail: a shorter one is on the screen
/// whole already.
pub fn print_tail(verdict: &Verdict, console_lines: usize) {
    if let Verdict::Fail { tail, .. } = verdict {
        if console_lines <= tail.len() {
            return;
        }
        eprintln!("pvmkit: last console lines:");
        tail.iter().for_each(|l| eprintln!("    | {l}"));
    }
}

/// How long a machine that has stopped for good may take to end QEMU by itself before
/// pvmkit ends it.
const DEAD_GRACE: Duration = Duration::from_secs(1);

/// Runs QEMU, collecting console lines until it exits or the limit passes. Each line is
/// kept and echoed as shown (`pvmkit_abi::exit_line::Shown`): hyp's and the VMM's with `nonce`
/// in their plain form, anything else that could pass for theirs marked as not. A line
/// `dead` says ends the machine for good (the pKVM host's panic) ends QEMU too.
pub fn execute(
    cmd: &mut Command,
    timeout: Duration,
    echo: bool,
    nonce: Option<Nonce>,
    dead: Option<fn(&str) -> bool>,
) -> Result<RunOutput, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {QEMU}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no QEMU stdout")?;
    let mut stderr = child.stderr.take().ok_or("no QEMU stderr")?;
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let raw = String::from_utf8_lossy(&line);
            let text = Shown(raw.trim_end_matches('\r'), nonce).to_string();
            if tx.send(text).is_err() {
                break;
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let start = Instant::now();
    let deadline = start + timeout;
    let mut output = RunOutput::default();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) => {
                if echo {
                    println!("{line}");
                }
                let over = dead.is_some_and(|dead| dead(&line));
                output.lines.push(line);
                output.times.push(start.elapsed());
                if over {
                    // Nothing can run in the machine again: end QEMU now, not at the
                    // timeout, once it has had a moment to end by itself (which it must
                    // not: its status then says how it ended).
                    output.stopped_dead = true;
                    let grace = Instant::now() + DEAD_GRACE;
                    while child.try_wait().ok().flatten().is_none() && Instant::now() < grace {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    let _ = child.kill();
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) if left.is_zero() => {
                output.timed_out = true;
                let _ = child.kill();
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    let status = child.wait().map_err(|e| format!("waiting for {QEMU}: {e}"))?;
    let _ = reader.join();
    output.lines.extend(rx.try_iter());
    let errors = err_reader.join().unwrap_or_default();
    output.stderr = errors.lines().filter(|l| !l.trim().is_empty()).map(String::from).collect();
    output.exit_code = if output.timed_out { None } else { status.code() };
    Ok(output)
}
