//! Finding (or installing) QEMU, assembling its command line, and running a guest with
//! a wall-clock limit while streaming the console.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use abi::exit_line::{Nonce, Shown};
use abi::memory_map::Region;
use abi::memory_map::{GUEST_RAM_BASE, GUEST_RAM_SIZE, QEMU_RAM_SIZE, RAMDISK_BASE};

use crate::devices::{virtio_slots, Devices};
use crate::firmware::{self, Firmware};
use crate::guest_dt::{self, GuestDtConfig};
use crate::host_packages::Apt;
use crate::payload::Payload;
use crate::verdict::{self, Expect, RunOutput, Verdict};
use crate::{pack, signing, Backend, Mode, Workspace};

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

/// One run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// How the guest runs.
    pub mode: Mode,
    /// The guest ELF.
    pub payload: PathBuf,
    /// A bundle to hand hyp exactly as it is, instead of packing `payload`.
    pub bundle: Option<PathBuf>,
    /// The test-guest scenario word.
    pub scenario: String,
    /// More words for the guest's command line.
    pub guest_args: Vec<String>,
    /// A disk image to use (and keep); by default each run gets a fresh one.
    pub disk: Option<PathBuf>,
    /// Boot through pvmfw (hyp modes; the default) rather than enter the payload directly.
    pub pvmfw: bool,
    /// A signed payload to boot exactly as given (instead of signing `payload`).
    pub signed_payload: Option<PathBuf>,
    /// The public key pvmfw trusts, a `.avbpubkey` (default: the development key's).
    pub trusted_key: Option<PathBuf>,
    /// A ramdisk, loaded where the host DT's `/chosen` says (signed with the payload as
    /// `initrd_name` unless the payload comes signed).
    pub initrd: Option<PathBuf>,
    /// The ramdisk's partition name when pvmkit signs it: `initrd_normal` or `initrd_debug`.
    pub initrd_name: String,
    /// The files of pvmfw's configuration data (a test DICE handover by default).
    pub config_files: crate::avf_config::ConfigFiles,
    /// A host device tree to hand over exactly as given.
    pub host_dt: Option<PathBuf>,
    /// Wall-clock limit.
    pub timeout: Duration,
    /// Extra QEMU arguments.
    pub extra_args: Vec<String>,
    /// Print the console as it arrives.
    pub echo: bool,
    /// Turn on hyp's `HYP_STATS` call (for `pvmkit bench`).
    pub hyp_stats: bool,
    /// Have pvmkit's VMM append the exits it sees to the guest's `bench ` lines (for
    /// `pvmkit bench --backend pkvm`).
    pub vmm_stats: bool,
    /// The devices offer VIRTIO_F_ACCESS_PLATFORM to a protected VM (off: the negative
    /// control of `--no-access-platform`).
    pub access_platform: bool,
    /// Bind the virtio transports to the restricted DMA pool in the guest's DT (off:
    /// `--no-restricted-pool`, with `--no-pvmfw`, since pvmfw binds them itself).
    pub restricted_pool: bool,
    /// Let hyp's Android profile stop ranged calls short (hyp option `short-counts=on`).
    pub short_counts: bool,
    /// hyp, or the real pKVM.
    pub backend: Backend,
    /// The pKVM host's kernel (default: Debian's, fetched and cached).
    pub kernel: Option<PathBuf>,
    /// What the host DT's `/avf/untrusted` says (instance id, deferral).
    pub avf: crate::guest_dt::AvfUntrusted,
    /// The instance disk to keep across runs (pvmfw's record); a fresh one by default.
    pub instance: Option<PathBuf>,
    /// The guest's vCPUs (1 to [`abi::bundle::MAX_VCPUS`]); 1 is the fast path.
    pub cpus: u32,
}

/// A fresh nonce for a run, from the host's random source: what hyp's and the VMM's
/// lines must carry for the verdict to take them (`abi::exit_line`).
pub fn fresh_nonce() -> Result<Nonce, String> {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("reading /dev/urandom for the run's nonce: {e}"))?;
    Ok(Nonce(u64::from_le_bytes(bytes)))
}

/// hyp's command line for a run.
fn hyp_cmdline(vm: abi::hyp_options::VmMode, config: &RunConfig, nonce: Nonce) -> String {
    let mut words = vec![vm.as_args().to_string(), format!("{}={nonce}", Nonce::OPTION)];
    if config.hyp_stats {
        words.push("stats=on".into());
    }
    if config.short_counts && vm == abi::hyp_options::VmMode::Protected(abi::hyp_options::AbiForm::Android) {
        words.push("short-counts=on".into());
    }
    if !config.access_platform {
        words.push("access-platform=off".into());
    }
    words.join(" ")
}

impl RunConfig {
    /// The guest's command line (`/chosen/bootargs`): the mode, the scenario and any
    /// extra words.
    pub fn guest_cmdline(&self) -> String {
        use abi::guest_console::{BACKEND, SCENARIO};
        let mut words = vec![self.mode.guest_args(), format!("{SCENARIO}={}", self.scenario)];
        if self.backend == Backend::Pkvm {
            words.push(format!("{BACKEND}=pkvm"));
        }
        words.extend(self.guest_args.iter().cloned());
        words.join(" ")
    }
}

pub(crate) fn run_dir(ws: &Workspace, mode: Mode) -> Result<PathBuf, String> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{}-{}-{}",
        mode.guest_args().replace([' ', '=', '.'], "_"),
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    );
    let dir = ws.out_dir().join("runs").join(name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(dir)
}

pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
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

/// Packs the bundle for a run under hyp (or the VMM): through pvmfw unless
/// `--no-pvmfw` (pvmfw with its trusted key and configuration data, the signed kernel
/// and the ramdisk where the host DT says), and the host DT pvmkit writes (or the one
/// given with `--host-dt`).
pub fn make_bundle(ws: &Workspace, fw: &Firmware, config: &RunConfig) -> Result<Vec<u8>, String> {
    let payload = || Payload::read(&config.payload);
    let ram = crate::payload::GUEST_RAM;
    let ramdisk = config.initrd.as_deref().map(firmware::read).transpose()?;
    let ramdisk_region = ramdisk.as_ref().map(|r| Region { start: RAMDISK_BASE, end: RAMDISK_BASE + r.len() as u64 });
    if !config.pvmfw {
        let dt = host_dt(config, None, ramdisk_region)?;
        let placed = payload()?.placed(ram).map_err(|e| format!("payload {}: {e}", config.payload.display()))?;
        return pack::pack(&placed, ramdisk.as_deref(), &dt, virtio_slots(false), config.cpus);
    }
    let dev_key = signing::dev_key(ws)?;
    let (kernel, kernel_address, kernel_footprint) = match &config.signed_payload {
        Some(path) => {
            let signed = firmware::read(path)?;
            let (at, footprint) = crate::payload::signed_placement(&signed, ram);
            (signed, at, footprint)
        }
        None => {
            let (_, kernel) = crate::payload::read_kernel(&config.payload)?;
            let request = signing::Request {
                ramdisks: ramdisk.iter().map(|r| (config.initrd_name.clone(), r.clone())).collect(),
                reproducible: true,
                ..signing::Request::default()
            };
            (
                signing::sign(&kernel.bytes, &signing::load_key(&dev_key)?, &request)?,
                kernel.load_address,
                kernel.mem_size,
            )
        }
    };
    let trusted = match &config.trusted_key {
        Some(path) => signing::load_public(path)?,
        None => std::fs::read(signing::public_path(&dev_key)).map_err(|e| format!("the development key: {e}"))?,
    };
    let pvmfw = firmware::pvmfw_image(&firmware::read(&fw.pvmfw_elf)?, &trusted, &config.config_files.build()?)?;
    let dt = host_dt(config, Some((kernel_address, kernel.len() as u64)), ramdisk_region)?;
    pack::pack_with_pvmfw(&pack::PvmfwVm {
        pvmfw: &pvmfw,
        kernel: &kernel,
        kernel_address,
        kernel_footprint,
        ramdisk: ramdisk.as_deref(),
        host_dt: &dt,
        virtio_slots: virtio_slots(true),
        vcpus: config.cpus,
    })
}

fn host_dt(config: &RunConfig, kernel: Option<(u64, u64)>, ramdisk: Option<Region>) -> Result<Vec<u8>, String> {
    if let Some(path) = &config.host_dt {
        return firmware::read(path);
    }
    guest_dt::write(&GuestDtConfig {
        ram_base: GUEST_RAM_BASE,
        ram_size: GUEST_RAM_SIZE,
        bootargs: &config.guest_cmdline(),
        virtio_slots: virtio_slots(config.pvmfw),
        cpus: config.cpus,
        signed_payload: kernel,
        ramdisk,
        restricted_pool: config.restricted_pool,
        avf: config.avf.clone(),
    })
}

/// Builds the run's files, runs QEMU and judges the result.
pub fn run(ws: &Workspace, fw: &Firmware, config: &RunConfig) -> Result<Verdict, String> {
    run_collect(ws, fw, config).map(|(verdict, _)| verdict)
}

/// Like [`run`], also returning the console lines.
pub fn run_collect(ws: &Workspace, fw: &Firmware, config: &RunConfig) -> Result<(Verdict, RunOutput), String> {
    let dir = run_dir(ws, config.mode)?;
    if config.backend == Backend::Pkvm {
        return crate::pkvm::run_collect(ws, fw, config, &dir);
    }
    match (config.mode, &config.bundle) {
        (Mode::Hyp(_), Some(given)) => write(&dir.join("bundle.bin"), &firmware::read(given)?)?,
        (Mode::Hyp(_), None) => write(&dir.join("bundle.bin"), &make_bundle(ws, fw, config)?)?,
        (Mode::Bare, Some(_)) => return Err("--bundle needs hyp: bare mode has no bundle".into()),
        (Mode::Bare, None) => {}
    }
    // pvmfw's instance disk, for a run through pvmfw or a given bundle (which may hold
    // pvmfw; hyp exposes the transport only if the bundle lists it).
    let through_pvmfw = config.pvmfw || config.bundle.is_some();
    let instance = (through_pvmfw && matches!(config.mode, Mode::Hyp(_))).then_some(config.instance.as_deref());
    let mut devices = Devices::create(&dir, config.disk.as_deref(), instance)?;
    let nonce = fresh_nonce()?;
    let mut cmd = command(fw, config, &dir, &devices, nonce);
    if config.echo {
        eprintln!("pvmkit: {} ({})", config.mode, dir.display());
    }
    // Bare mode has no host writer: every line is the guest's.
    let host_nonce = matches!(config.mode, Mode::Hyp(_)).then_some(nonce);
    let output = execute(&mut cmd, config.timeout, config.echo, host_nonce)?;
    std::fs::write(dir.join("console.log"), output.lines.join("\n")).ok();
    let from_guest = devices.console_output();
    std::fs::write(dir.join("virtio-console.received"), &from_guest).ok();
    if config.echo {
        println!("pvmkit: virtio-console received {:?}", String::from_utf8_lossy(&from_guest));
    }
    let expect = match config.mode {
        Mode::Hyp(_) => Expect::Hyp,
        Mode::Bare => Expect::Bare,
    };
    let verdict = verdict::judge(expect, &output);
    if config.echo {
        print_tail(&verdict);
    }
    Ok((verdict, output))
}

/// Prints a failing verdict's last console lines (`pvmkit run`'s echo).
pub fn print_tail(verdict: &Verdict) {
    if let Verdict::Fail { tail, .. } = verdict {
        eprintln!("pvmkit: last console lines:");
        tail.iter().for_each(|l| eprintln!("    | {l}"));
    }
}

/// Runs QEMU, collecting console lines until it exits or the limit passes. Each line is
/// kept and echoed as shown (`abi::exit_line::Shown`): hyp's and the VMM's with `nonce`
/// in their plain form, anything else that could pass for theirs marked as not.
pub fn execute(cmd: &mut Command, timeout: Duration, echo: bool, nonce: Option<Nonce>) -> Result<RunOutput, String> {
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
                output.lines.push(line);
                output.times.push(start.elapsed());
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
