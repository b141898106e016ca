//! `pvmkit`: build the firmware, pack a bundle, run a guest in QEMU through hyp, and
//! judge the result. Run it as `cargo pvmkit <command>` from the repository.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use host_tools::firmware::{self, Firmware};
use host_tools::qemu;
use host_tools::run_config::RunConfig;
use host_tools::verdict::Verdict;
use host_tools::{backend, files};
use host_tools::{Backend, Mode, Workspace};

#[derive(Parser)]
#[command(name = "pvmkit", version, about = "Build, run and judge pvmkit guests in QEMU, under hyp or the real pKVM")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// The guest: an ELF executable or an arm64 Linux Image (default: test-guest's ELF).
    #[arg(long)]
    payload: Option<PathBuf>,
    /// Hand hyp this bundle exactly as it is (from `pvmkit pack`, perhaps edited).
    #[arg(long, conflicts_with = "payload")]
    bundle: Option<PathBuf>,
    /// protected, unprotected or bare (no hyp: the payload on plain QEMU at EL1).
    #[arg(long, default_value = "protected")]
    mode: String,
    /// The pKVM ABI form hyp offers in protected mode: android or upstream.
    #[arg(long)]
    abi: Option<String>,
    /// Wall-clock limit for QEMU, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// A test-guest scenario: normal, or a negative control: fail-case, no-summary,
    /// crash, hang.
    #[arg(long, default_value = "normal")]
    scenario: String,
    /// A word for the guest's command line (repeatable), e.g.
    /// `guest-lib.unsafe-skip-mmio-guard` for the MMIO guard's negative control.
    #[arg(long = "guest-arg")]
    guest_args: Vec<String>,
    /// A raw disk image for the guest's virtio-blk device, kept after the run (created,
    /// 8 MiB, if missing). By default each run gets a fresh one.
    #[arg(long)]
    disk: Option<PathBuf>,
    /// Enter the payload directly instead of through pvmfw (for tests of guest-lib alone).
    #[arg(long)]
    no_pvmfw: bool,
    /// Boot this signed payload exactly as given (from `pvmkit sign` or avbtool,
    /// perhaps tampered).
    #[arg(long, conflicts_with = "payload")]
    signed_payload: Option<PathBuf>,
    /// The public key (a `.avbpubkey`) pvmfw trusts; default: the development key's.
    #[arg(long)]
    trusted_key: Option<PathBuf>,
    /// A ramdisk for the guest, loaded where the host DT's `/chosen` says; pvmkit signs
    /// it with the payload unless `--signed-payload` is given.
    #[arg(long)]
    initrd: Option<PathBuf>,
    /// The ramdisk's descriptor when pvmkit signs it: initrd_normal or initrd_debug.
    #[arg(long, default_value = "initrd_normal", value_parser = ["initrd_normal", "initrd_debug"])]
    initrd_name: String,
    #[command(flatten)]
    config: ConfigArgs,
    /// Hand pvmfw this host device tree exactly as given (for tests of its checks).
    #[arg(long)]
    host_dt: Option<PathBuf>,
    /// The VM instance id the host DT gives pvmfw (`/avf/untrusted/instance-id`), as
    /// text; pvmfw derives the instance hash and the DICE salt from it.
    #[arg(long)]
    instance_id: Option<String>,
    /// The host DT asks pvmfw to defer rollback protection to the payload
    /// (`/avf/untrusted/defer-rollback-protection`; honoured for a payload with
    /// `secretkeeper_protection`).
    #[arg(long)]
    defer_rollback_protection: bool,
    /// The instance disk pvmfw keeps its record of this VM instance on, kept across
    /// runs (created if missing); by default each run is a new instance.
    #[arg(long)]
    instance: Option<PathBuf>,
    /// Turn on hyp's exit counters (`HYP_STATS`): test-guest then checks that WFI/WFE
    /// trap. Off by default, so that the guest sees exactly the pKVM ABI.
    #[arg(long)]
    hyp_stats: bool,
    /// Under hyp's Android profile, ranged calls stop after a random number of granules
    /// (as the real hypervisor may): `on` (the default) or `off`.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    short_counts: String,
    /// Negative control: the protected VM's virtio devices (hyp's, or the VMM's with
    /// `--backend pkvm`) do not offer VIRTIO_F_ACCESS_PLATFORM, so a Linux guest puts
    /// its rings in private memory, which hyp and the VMM must catch.
    #[arg(long)]
    no_access_platform: bool,
    /// Turn hyp's policy `guard-inherited-from-pvmfw` off: the payload may then use MMIO
    /// granules only pvmfw registered before the handover, as Android's 6.12 lets it.
    #[arg(long)]
    allow_inherited_guard: bool,
    /// Experiment (with --no-pvmfw, since pvmfw binds the pool itself): the guest DT's
    /// virtio nodes do not name the restricted-dma-pool, so a Linux guest bounces its
    /// DMA through its default swiotlb instead.
    #[arg(long, requires = "no_pvmfw")]
    no_restricted_pool: bool,
    /// hyp (pvmkit's own EL2 hypervisor) or pkvm (the real upstream pKVM: Debian's
    /// Linux in QEMU with pvmkit's VMM).
    #[arg(long, default_value = "hyp")]
    backend: String,
    /// The pKVM host kernel, an arm64 Image (default: Debian's, fetched and cached).
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// The guest's vCPUs (1 to 8): vCPU 0 enters the guest, the others wait powered off
    /// for its PSCI CPU_ON.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=pvmkit_abi::bundle::MAX_VCPUS as i64))]
    cpus: u32,
    /// Extra QEMU arguments, after `--`.
    #[arg(last = true)]
    qemu_args: Vec<String>,
}

/// The configuration data `pvmkit`, as the bootloader, appends to pvmfw.
#[derive(Args, Clone, Debug, Default)]
struct ConfigArgs {
    /// Entry 0, the DICE handover (CBOR `{1: CDI_Attest, 2: CDI_Seal, 3: chain}`);
    /// default: a test handover.
    #[arg(long)]
    dice_handover: Option<PathBuf>,
    /// Entry 1, a debug-policy DTBO (pvmfw says it does not apply it).
    #[arg(long)]
    debug_policy: Option<PathBuf>,
    /// Entry 2, a VM DTBO (pvmfw says it does not apply it).
    #[arg(long)]
    vm_dtbo: Option<PathBuf>,
    /// Entry 3, the VM reference DT pvmfw holds the host's DT to.
    #[arg(long)]
    vm_reference_dt: Option<PathBuf>,
}

impl ConfigArgs {
    fn files(&self) -> host_tools::avf_config::ConfigFiles {
        host_tools::avf_config::ConfigFiles {
            dice_handover: self.dice_handover.clone(),
            debug_policy: self.debug_policy.clone(),
            vm_dtbo: self.vm_dtbo.clone(),
            vm_reference_dt: self.vm_reference_dt.clone(),
        }
    }
}

impl RunArgs {
    /// test-guest in a scenario, through pvmfw, everything else default (the mode is
    /// passed separately).
    fn test_guest(timeout: u64, scenario: &str, qemu_args: Vec<String>) -> Self {
        Self {
            payload: None,
            bundle: None,
            mode: String::new(),
            abi: None,
            timeout,
            scenario: scenario.into(),
            guest_args: Vec::new(),
            disk: None,
            no_pvmfw: false,
            signed_payload: None,
            trusted_key: None,
            initrd: None,
            initrd_name: "initrd_normal".into(),
            config: ConfigArgs::default(),
            host_dt: None,
            instance_id: None,
            defer_rollback_protection: false,
            instance: None,
            hyp_stats: false,
            short_counts: "on".into(),
            no_access_platform: false,
            allow_inherited_guard: false,
            no_restricted_pool: false,
            backend: "hyp".into(),
            kernel: None,
            cpus: 1,
            qemu_args,
        }
    }
}

#[derive(Subcommand)]
enum DiceCommand {
    /// Write the DICE handover a device's bootloader gives pvmfw: a chain rooted in the
    /// UDS with one bootloader layer, and its CDIs (`pvmkit run`'s default handover
    /// comes from a fixed test UDS).
    Root {
        /// The Unique Device Secret: a file of exactly 32 bytes (default: pvmkit's
        /// test UDS, which everyone knows).
        #[arg(long)]
        uds: Option<PathBuf>,
        /// Where to write the handover (CBOR).
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Verify a DICE chain (or a whole handover) and print each layer.
    Verify {
        /// The chain or handover (CBOR).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Write a new guest crate at PATH that `cargo run` builds and boots with pvmkit (on
    /// hyp, or `cargo run -- --backend pkvm`): guest-lib from this repository, the
    /// toolchain pinned, a `main` that shares a page, reads a block and registers an
    /// MMIO range, reporting through the harness.
    New {
        /// Where to write it (must not exist).
        path: PathBuf,
    },
    /// Build every firmware image (release) and print where they are.
    Build,
    /// Boot a guest (under hyp, or the real pKVM with `--backend pkvm`) and print a verdict.
    Run(RunArgs),
    /// Make an RSA-4096 signing key: KEY (PEM, what openssl and avbtool read) and
    /// KEY.avbpubkey (AVB's public-key format, what pvmfw embeds).
    Keygen {
        /// Where to write the private key (the public one goes beside it, `.avbpubkey`).
        key: PathBuf,
    },
    /// Sign a guest (an arm64 Image, or an ELF whose flat image is one) for pvmfw, as
    /// `avbtool add_hash_footer --partition_name boot --dynamic_partition_size` does.
    Sign {
        /// The guest: an arm64 Image or an ELF executable.
        #[arg(long)]
        payload: PathBuf,
        /// The signing key, PEM (default: the development key).
        #[arg(long)]
        key: Option<PathBuf>,
        /// Where to write the signed payload.
        #[arg(long, short)]
        output: PathBuf,
        /// The signature algorithm (avbtool's names; default: SHA256 with the key's size).
        #[arg(long)]
        algorithm: Option<String>,
        /// The rollback index (DICE's security version).
        #[arg(long, default_value_t = 0)]
        rollback_index: u64,
        /// A vbmeta property, KEY:VALUE (repeatable), e.g. com.android.virt.name:demo.
        #[arg(long = "prop")]
        properties: Vec<String>,
        /// A ramdisk the kernel vouches for (repeatable; each with an --initrd-name).
        #[arg(long = "initrd")]
        initrds: Vec<PathBuf>,
        /// Its descriptor: initrd_normal or initrd_debug (one per --initrd, in order).
        #[arg(long = "initrd-name", value_parser = ["initrd_normal", "initrd_debug"])]
        initrd_names: Vec<String>,
        /// Salt the hash descriptors with a hash of each partition instead of random
        /// bytes (avbtool's default), so that signing again gives the same file.
        #[arg(long)]
        reproducible: bool,
    },
    /// DICE: play the device's boot stages, or check a chain as a relying party would.
    #[command(subcommand)]
    Dice(DiceCommand),
    /// Write pvmfw's image as a bootloader loads it: the payload key embedded, the
    /// configuration data appended.
    Pvmfw {
        /// The public key (`.avbpubkey`) pvmfw trusts (default: the development key's).
        #[arg(long)]
        trusted_key: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArgs,
        /// Where to write the image.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Write the bundle `run` would hand hyp, without running it.
    Pack {
        #[command(flatten)]
        run: RunArgs,
        /// Where to write the bundle.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Measure virtio-blk in a protected and an unprotected VM (see docs/performance.md).
    /// Fails when a figure that must repeat moved between runs.
    Bench {
        /// Runs per mode (at least 2: the figures must repeat).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(2..))]
        runs: u64,
        /// hyp (counted instructions; QEMU's devices) or pkvm (the real pKVM, the whole
        /// machine on one CPU in guest time, pvmkit's VMM doing the device's work).
        #[arg(long, default_value = "hyp")]
        backend: String,
        /// Wall-clock limit per run, in seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Write the report, stamped with the commit, the date and QEMU's version, into
        /// this markdown file between its `<!-- pvmkit bench --backend NAME -->` markers
        /// (docs/performance.md): the docs' tables are the bench's own output. Only a
        /// run whose figures repeated is written.
        #[arg(long)]
        markdown: Option<PathBuf>,
    },
    /// Build the Linux guest (Debian's linux-source-7.3 with linux-guest/pvm.config) into
    /// pvmkit's cache, or find it there, write its ramdisk (linux-guest/init as /init),
    /// and print both paths, the Image's first: `pvmkit run --payload IMAGE --initrd
    /// RAMDISK` signs the ramdisk with the kernel and pvmfw verifies both.
    LinuxGuest,
    /// Run the conformance probes on the real pKVM and on hyp's upstream profile and
    /// diff them, and both against the recording of the real release in the repository
    /// (abi/recordings/); also check hyp's Android profile against its table.
    Conformance {
        /// Wall-clock limit per run, in seconds.
        #[arg(long, default_value_t = 180)]
        timeout: u64,
        /// Record the real pKVM's answers (a protected and an ordinary VM) into
        /// abi/recordings/ instead of comparing with what is there.
        #[arg(long)]
        record: bool,
    },
    /// Run test-guest in every mode and print one verdict line per mode.
    Test {
        /// Wall-clock limit per run, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("pvmkit: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<bool, String> {
    let ws = Workspace::locate()?;
    match cli.command {
        Command::New { path } => {
            let name = host_tools::new_guest::create(&ws, &path)?;
            println!("pvmkit: wrote the guest crate {name} in {}", path.display());
            println!(
                "  cargo install --path {}/host-tools   # once: pvmkit on PATH, its cargo runner",
                ws.root.display()
            );
            println!(
                "  cd {} && cargo run                   # under hyp; `cargo run -- --backend pkvm` on the real pKVM",
                path.display()
            );
            Ok(true)
        }
        Command::Build => {
            let fw = firmware::build_all(&ws)?;
            println!("hyp:        {}", fw.hyp_image.display());
            println!("test-guest: {}", fw.test_guest_elf.display());
            println!(
                "test-guest: {} (the same suite as a position-independent arm64 Image)",
                fw.test_guest_image.display()
            );
            println!(
                "pvmfw:      {} (`cargo pvmkit pvmfw` writes its image with a trusted key)",
                fw.pvmfw_elf.display()
            );
            Ok(true)
        }
        Command::Run(args) => {
            let backend = Backend::parse(&args.backend)?;
            let mode = Mode::parse_for(backend, &args.mode, args.abi.as_deref())?;
            if backend == Backend::Hyp && args.kernel.is_some() {
                return Err("--kernel is the pKVM host's kernel: it applies only to --backend pkvm".into());
            }
            qemu::ensure_installed()?;
            // test-guest only when it is what runs.
            let own = args.payload.is_some() || args.signed_payload.is_some() || args.bundle.is_some();
            let fw = firmware::build(&ws, !own)?;
            let verdict = run_one(&ws, &fw, mode, &args, true)?;
            println!("pvmkit: {verdict}");
            Ok(verdict.passed())
        }
        Command::Pack { run, output } => {
            let mode = Mode::parse(&run.mode, run.abi.as_deref())?;
            if mode == Mode::Bare {
                return Err("bare mode has no bundle: it runs the payload without hyp".into());
            }
            let fw = firmware::build_all(&ws)?;
            let bytes = host_tools::pack::make_bundle(&ws, &fw, &run_config(&fw, mode, &run, false))?;
            std::fs::write(&output, &bytes).map_err(|e| format!("writing {}: {e}", output.display()))?;
            println!("bundle: {} ({} bytes)", output.display(), bytes.len());
            Ok(true)
        }
        Command::Dice(DiceCommand::Root { uds, output }) => {
            use host_tools::dice;
            let uds = match uds {
                Some(path) => {
                    let bytes = host_tools::files::read(&path)?;
                    <[u8; 32]>::try_from(&bytes[..]).map_err(|_| {
                        format!("{}: a UDS is 32 bytes, this file holds {}", path.display(), bytes.len())
                    })?
                }
                None => dice::test_uds(),
            };
            let handover = dice::root_handover(&uds);
            std::fs::write(&output, &handover).map_err(|e| format!("writing {}: {e}", output.display()))?;
            println!("DICE handover: {} ({} bytes)", output.display(), handover.len());
            Ok(true)
        }
        Command::Dice(DiceCommand::Verify { file }) => {
            use host_tools::dice;
            let chain = dice::chain_of(&host_tools::files::read(&file)?)?;
            match dice::verify(&chain) {
                Ok(layers) => {
                    for (i, layer) in layers.iter().enumerate() {
                        println!("layer {}: {layer}", i + 1);
                    }
                    println!("the chain verifies: {} certificates, each signed by the layer before it", layers.len());
                    Ok(true)
                }
                Err(e) => {
                    println!("the chain does not verify: {e}");
                    Ok(false)
                }
            }
        }
        Command::Keygen { key } => {
            host_tools::signing::keygen(&key)?;
            println!("key: {} (public: {})", key.display(), host_tools::signing::public_path(&key).display());
            Ok(true)
        }
        Command::Sign {
            payload,
            key,
            output,
            algorithm,
            rollback_index,
            properties,
            initrds,
            initrd_names,
            reproducible,
        } => {
            use host_tools::signing;
            let key = match key {
                Some(key) => key,
                None => signing::dev_key(&ws)?,
            };
            if initrds.len() != initrd_names.len() {
                return Err("give each --initrd its --initrd-name (initrd_normal or initrd_debug)".into());
            }
            let (image, kernel) = host_tools::payload::read_kernel(&payload)?;
            let request = signing::Request {
                algorithm: algorithm.as_deref().map(signing::parse_algorithm).transpose()?,
                rollback_index,
                properties: properties.iter().map(|p| signing::parse_property(p)).collect::<Result<_, _>>()?,
                ramdisks: initrd_names
                    .into_iter()
                    .zip(&initrds)
                    .map(|(name, path)| files::read(path).map(|bytes| (name, bytes)))
                    .collect::<Result<_, _>>()?,
                reproducible,
            };
            let blob = signing::sign(&kernel.bytes, &signing::load_key(&key)?, &request)?;
            std::fs::write(&output, &blob).map_err(|e| format!("writing {}: {e}", output.display()))?;
            println!(
                "signed payload: {} ({}, {} bytes, key {})",
                output.display(),
                image.format_name(),
                blob.len(),
                key.display()
            );
            Ok(true)
        }
        Command::Pvmfw { trusted_key, config, output } => {
            let fw = firmware::build_all(&ws)?;
            let key = match trusted_key {
                Some(path) => host_tools::signing::load_public(&path)?,
                None => files::read(&host_tools::signing::public_path(&host_tools::signing::dev_key(&ws)?))?,
            };
            let image = firmware::pvmfw_image(&files::read(&fw.pvmfw_elf)?, &key, &config.files().build()?)?;
            std::fs::write(&output, &image).map_err(|e| format!("writing {}: {e}", output.display()))?;
            println!(
                "pvmfw: {} ({} bytes with its configuration data, loads at {:#x})",
                output.display(),
                image.len(),
                pvmkit_abi::pvmfw::PVMFW_BASE
            );
            Ok(true)
        }
        Command::Bench { runs, backend, timeout, markdown } => {
            let backend = Backend::parse(&backend)?;
            qemu::ensure_installed()?;
            let fw = firmware::build_all(&ws)?;
            bench(&ws, &fw, backend, runs as usize, timeout, markdown.as_deref())
        }
        Command::LinuxGuest => {
            let guest = host_tools::linux_guest::build(&ws)?;
            if !guest.built {
                eprintln!("pvmkit: the Linux guest is up to date in the cache");
            }
            println!("{}", guest.image.display());
            println!("{}", guest.ramdisk.display());
            Ok(true)
        }
        Command::Conformance { timeout, record } => {
            qemu::ensure_installed()?;
            let fw = firmware::build_all(&ws)?;
            conformance(&ws, &fw, timeout, record)
        }
        Command::Test { timeout } => {
            qemu::ensure_installed()?;
            let fw = firmware::build_all(&ws)?;
            let hyp = RunArgs::test_guest(timeout, "normal", Vec::new());
            let pkvm = RunArgs { backend: "pkvm".into(), ..hyp.clone() };
            let rows = Mode::ALL.map(|mode| (mode, &hyp, "hyp", mode.to_string())).into_iter().chain([
                (Mode::ALL[1], &pkvm, "pkvm", "protected (Linux pKVM)".to_string()),
                (Mode::ALL[2], &pkvm, "pkvm", "unprotected (Linux KVM)".to_string()),
            ]);
            let mut all = true;
            for (mode, args, backend, label) in rows {
                let verdict = run_one(&ws, &fw, mode, args, false)?;
                println!("{backend:<6} {label:<28} {verdict}");
                if let Verdict::Fail { tail, .. } = &verdict {
                    tail.iter().for_each(|l| println!("    | {l}"));
                }
                all &= verdict.passed();
            }
            Ok(all)
        }
    }
}

fn run_config(fw: &Firmware, mode: Mode, args: &RunArgs, echo: bool) -> RunConfig {
    RunConfig {
        mode,
        payload: args.payload.clone().unwrap_or_else(|| fw.test_guest_elf.clone()),
        bundle: args.bundle.clone(),
        scenario: args.scenario.clone(),
        guest_args: args.guest_args.clone(),
        disk: args.disk.clone(),
        pvmfw: !args.no_pvmfw && args.bundle.is_none(),
        signed_payload: args.signed_payload.clone(),
        trusted_key: args.trusted_key.clone(),
        initrd: args.initrd.clone(),
        initrd_name: args.initrd_name.clone(),
        config_files: args.config.files(),
        host_dt: args.host_dt.clone(),
        timeout: Duration::from_secs(args.timeout),
        extra_args: args.qemu_args.clone(),
        echo,
        hyp_stats: args.hyp_stats,
        vmm_stats: false,
        access_platform: !args.no_access_platform,
        allow_inherited_guard: args.allow_inherited_guard,
        restricted_pool: !args.no_restricted_pool,
        short_counts: args.short_counts == "on",
        backend: Backend::parse(&args.backend).unwrap_or_default(),
        kernel: args.kernel.clone(),
        avf: host_tools::guest_dt::AvfUntrusted {
            instance_id: args.instance_id.as_ref().map(|id| id.as_bytes().to_vec()),
            defer_rollback_protection: args.defer_rollback_protection,
        },
        instance: args.instance.clone(),
        cpus: args.cpus,
    }
}

fn run_one(ws: &Workspace, fw: &Firmware, mode: Mode, args: &RunArgs, echo: bool) -> Result<Verdict, String> {
    backend::run(ws, fw, &run_config(fw, mode, args, echo))
}

/// The conformance run: real pKVM and hyp upstream side by side, each against the
/// recording of the real release (or, with `record`, a new recording); hyp Android
/// against its table (the guest checks every probe against the profile and fails on a
/// mismatch). Every run's own verdict counts.
fn conformance(ws: &Workspace, fw: &Firmware, timeout: u64, record: bool) -> Result<bool, String> {
    use host_tools::conformance;
    use pvmkit_abi::hyp_options::{AbiForm, VmMode};
    use pvmkit_abi::profile::recording::recorded;
    use pvmkit_abi::profile::{ANDROID_6_12, INTENDED_DIFFERENCES, LINUX_7_3_ORDINARY, LINUX_7_3_PROTECTED};
    let hyp = RunArgs::test_guest(timeout, "conformance", Vec::new());
    let pkvm = RunArgs { backend: "pkvm".into(), ..hyp.clone() };
    let upstream = Mode::Hyp(VmMode::Protected(AbiForm::Upstream));
    let mut verdicts = true;
    let mut collect = |args: &RunArgs, mode: Mode, label: &str| -> Result<Vec<String>, String> {
        let (verdict, output) = backend::run_collect(ws, fw, &run_config(fw, mode, args, false))?;
        eprintln!("pvmkit: conformance on {label}: {verdict}");
        verdicts &= verdict.passed();
        Ok(output.lines)
    };
    let real_lines = collect(&pkvm, upstream, "the real pKVM")?;
    if record {
        let ordinary_lines = collect(&pkvm, Mode::Hyp(VmMode::Unprotected), "the real KVM, ordinary VM")?;
        let two = RunArgs { cpus: 2, ..pkvm.clone() };
        let smp_lines = collect(&two, upstream, "the real pKVM, two vCPUs")?;
        let kernel = host_tools::kernel::debian_kernel()?.version;
        let commit = git_commit(ws);
        for (lines, vm, file) in [
            (&real_lines, "a protected VM", "linux-7.3.4-protected.txt"),
            (&ordinary_lines, "an ordinary VM", "linux-7.3.4-ordinary.txt"),
            (&smp_lines, "a protected VM of two vCPUs (--cpus 2)", "linux-7.3.4-smp.txt"),
        ] {
            let heading = format!(
                "What Debian's Linux {kernel} (kvm-arm.mode=protected, under QEMU) answered test-guest's\n\
                 conformance probes in {vm}: `pvmkit conformance --record` at pvmkit {commit}.\n\
                 Data: the abi crate's tests hold its Linux 7.3.4 tables against it."
            );
            let path = ws.root.join("abi/recordings").join(file);
            std::fs::write(&path, conformance::recording(lines, &heading))
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            println!("conformance: recorded {} probes in {}", conformance::parse(lines).len(), path.display());
            for skipped in conformance::skipped(lines) {
                println!("  skipped {skipped}");
            }
        }
        return Ok(verdicts);
    }
    let ours_lines = collect(&hyp, upstream, "hyp, upstream profile")?;
    let (real, ours) = (conformance::parse(&real_lines), conformance::parse(&ours_lines));
    let recorded_probes = conformance::parse(&recorded::PROTECTED.lines().map(String::from).collect::<Vec<_>>());
    // The teardown probes are the VMM's: hyp's VM has no host to tear it down.
    let host_side = conformance::HOST_SIDE.map(|(name, _)| name);
    let (real_for_hyp, recorded_for_hyp) =
        (conformance::without(&real, &host_side), conformance::without(&recorded_probes, &host_side));
    let (text, same) = conformance::report(&conformance::compare(&real_for_hyp, &ours), recorded_for_hyp.len());
    println!("conformance: Linux 7.3.4 pKVM (real) vs hyp's upstream profile");
    print!("{text}");
    let recorded_lines: Vec<String> = recorded::ORDINARY.lines().map(String::from).collect();
    for (side, lines) in
        [("the real pKVM", &real_lines), ("hyp", &ours_lines), ("the ordinary VM's recording", &recorded_lines)]
    {
        for skipped in conformance::skipped(lines) {
            println!("skipped on {side}: {skipped}");
        }
    }
    for (name, why) in conformance::HOST_SIDE {
        println!("skipped on hyp: {name}: {why}");
    }
    // Which side moved, against the recording; a probe the release answers differently
    // from run to run is shown, not compared.
    let varying = conformance::varying(&LINUX_7_3_PROTECTED);
    let without = |probes: &conformance::Probes| conformance::without(probes, &varying);
    for name in &varying {
        let shown = |p: &conformance::Probes| p.get(*name).cloned().unwrap_or_else(|| "(missing)".into());
        println!(
            "varies from run to run on the real pKVM: {name}: now {}, recorded {}",
            shown(&real),
            shown(&recorded_probes)
        );
    }
    let hyp_value = |name: &str| INTENDED_DIFFERENCES.iter().find(|d| d.probe == name).map(|d| d.hyp);
    let sides = [
        ("the real pKVM", conformance::changed_since(&without(&recorded_probes), &without(&real), |_| None)),
        ("hyp", conformance::changed_since(&recorded_for_hyp, &ours, hyp_value)),
        ("the Linux 7.3.4 protected table", conformance::table_departures(&LINUX_7_3_PROTECTED, recorded::PROTECTED)),
        ("the Linux 7.3.4 ordinary table", conformance::table_departures(&LINUX_7_3_ORDINARY, recorded::ORDINARY)),
    ];
    let mut unchanged = true;
    for (side, changes) in &sides {
        if changes.is_empty() {
            println!("against the recording: {side} unchanged");
        } else {
            unchanged = false;
            println!("against the recording: {side} CHANGED:");
            changes.iter().for_each(|c| println!("  {c}"));
        }
    }
    let android = RunArgs::test_guest(timeout, "conformance", Vec::new());
    let verdict = run_one(ws, fw, Mode::Hyp(VmMode::Protected(AbiForm::Android)), &android, false)?;
    println!("hyp's Android profile against its table: {verdict}");
    // No Android hypervisor runs here: the table is read from ACK 6.12's source, and
    // where that leaves the answer to something outside EL2, it is inference.
    let rows = ANDROID_6_12.rules.iter().map(|t| t.len()).sum::<usize>();
    let inferred: Vec<_> = pvmkit_abi::profile::inference_rows(&ANDROID_6_12).collect();
    println!(
        "hyp's Android profile: {rows} rows read from ACK android16-6.12's source, not measured; {} of them inference:",
        inferred.len()
    );
    for rule in inferred {
        println!("  {:#x?}: {}", rule.functions, rule.source);
    }
    Ok(same && unchanged && verdicts && verdict.passed())
}

/// Signs `payload` (and `ramdisk`, as `initrd_normal`) with the development key into
/// pvmkit's outputs, for runs that must all boot the same bytes.
fn sign_once(
    ws: &Workspace,
    payload: &std::path::Path,
    ramdisk: Option<&std::path::Path>,
    name: &str,
) -> Result<PathBuf, String> {
    use host_tools::signing;
    let (_, kernel) = host_tools::payload::read_kernel(payload)?;
    let request = signing::Request {
        ramdisks: ramdisk
            .map(|r| files::read(r).map(|b| vec![("initrd_normal".to_string(), b)]))
            .transpose()?
            .unwrap_or_default(),
        ..signing::Request::default()
    };
    let signed = signing::sign(&kernel.bytes, &signing::load_key(&signing::dev_key(ws)?)?, &request)?;
    let path = ws.out_dir().join(format!("bench-{name}.signed"));
    std::fs::write(&path, signed).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

/// The heading of the bench's Linux-beside-guest-lib table, on either backend.
const LINUX_PEER: &str = "Linux 7.3 (O_DIRECT on /dev/vda, its swiotlb in the restricted pool) beside guest-lib";

/// The work tree's commit, short (`unknown` outside git).
fn git_commit(ws: &Workspace) -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(&ws.root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Today's date, UTC, as `YYYY-MM-DD`.
fn today() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn bench(
    ws: &Workspace,
    fw: &Firmware,
    backend: Backend,
    runs: usize,
    timeout: u64,
    markdown: Option<&std::path::Path>,
) -> Result<bool, String> {
    use host_tools::bench;
    use pvmkit_abi::hyp_options::{AbiForm, VmMode};
    let (modes, qemu_args) = match backend {
        Backend::Hyp => (
            [Mode::Hyp(VmMode::Protected(AbiForm::Android)), Mode::Hyp(VmMode::Unprotected)],
            &["-icount", "shift=0,sleep=off"][..],
        ),
        // One CPU: with two, the host's scheduling moves the figures by a few percent.
        // No randomness: QEMU's random DT seeds and RNDR (from a fixed seed here) change
        // the host kernel's layout and with it its work, by up to 16 ms in a phase.
        Backend::Pkvm => (
            [Mode::Hyp(VmMode::Protected(AbiForm::Upstream)), Mode::Hyp(VmMode::Unprotected)],
            &[
                "-icount",
                "shift=0,sleep=off,align=off",
                "-smp",
                "1",
                "-seed",
                "1",
                "-machine",
                "dtb-randomness=off",
                "-rtc",
                "base=2026-01-01T00:00:00,clock=vm",
            ][..],
        ),
    };
    let mut results: Vec<Vec<Vec<bench::Phase>>> = vec![Vec::new(), Vec::new()];
    let mut exit_costs: Vec<Vec<u64>> = vec![Vec::new(), Vec::new()];
    let mut frequency = None;
    // The guests: test-guest (guest-lib), and Linux beside it.
    let linux = host_tools::linux_guest::build(ws)?;
    let mut linux_results: Vec<Vec<Vec<bench::Phase>>> = vec![Vec::new(), Vec::new()];
    // pvmfw's verification cost, from the protected runs: test-guest's and Linux's.
    let mut pvmfw_costs: [Vec<bench::pvmfw_cost::Cost>; 2] = [Vec::new(), Vec::new()];
    // Each payload is signed once, so that every run boots the same bytes (a signature
    // draws a random salt).
    let signed_test_guest = sign_once(ws, &fw.test_guest_elf, None, "test-guest")?;
    let signed_linux = sign_once(ws, &linux.image, Some(&linux.ramdisk), "linux")?;
    for run in 0..runs {
        for (which, payload) in [("guest-lib", None), ("Linux", Some(&linux))] {
            for (i, mode) in modes.into_iter().enumerate() {
                let mut args = RunArgs::test_guest(timeout, "bench", qemu_args.iter().map(|a| a.to_string()).collect());
                args.backend = backend.name().into();
                args.signed_payload = Some(if payload.is_some() { &signed_linux } else { &signed_test_guest }.clone());
                args.initrd = payload.map(|l| l.ramdisk.clone());
                let mut config = run_config(fw, mode, &args, false);
                config.hyp_stats = backend == Backend::Hyp;
                config.vmm_stats = backend == Backend::Pkvm;
                let (verdict, output) = backend::run_collect(ws, fw, &config)?;
                if !verdict.passed() {
                    return Err(format!("bench run {} of {which} in {mode} failed: {verdict}", run + 1));
                }
                frequency = frequency.or(bench::parse_frequency(&output.lines));
                if let (0, Some(cost)) = (i, bench::pvmfw_cost::Cost::parse(&output.lines)) {
                    pvmfw_costs[usize::from(payload.is_some())].push(cost);
                }
                let phases = bench::parse_run(&output.lines);
                eprintln!(
                    "pvmkit: bench run {}/{runs} on {}, {which}, {mode}: {} phases",
                    run + 1,
                    backend.name(),
                    phases.len()
                );
                if payload.is_some() {
                    linux_results[i].push(phases);
                } else {
                    exit_costs[i].extend(bench::parse_exit_cost(&output.lines));
                    results[i].push(phases);
                }
            }
        }
    }
    let frequency = frequency.ok_or("the bench guest printed no counter frequency")?;
    let (p, u) = (&results[0], &results[1]);
    // The report, printed and, with --markdown, written into the docs as it is.
    let mut report = String::new();
    macro_rules! out {
        ($($arg:tt)*) => {{
            use std::fmt::Write as _;
            let _ = writeln!(report, $($arg)*);
        }};
    }
    out!(
        "virtio-blk, 4 MiB sequential per phase, {runs} runs per mode, on {}, QEMU {}",
        backend.name(),
        qemu_args.join(" ")
    );
    match backend {
        Backend::Hyp => {
            out!("counted work (repeats): instructions per request, P = protected, U = unprotected");
            out!("{}", bench::work_table(backend, p, u, frequency).trim_end());
            out!("time (follows QEMU's devices in real time; median ± half the spread):");
            out!("{}", bench::time_table(p, u, frequency).trim_end());
            out!("{}", bench::targets(backend, p, u, None).trim_end());
            out!("{LINUX_PEER}, MiB/s (time: does not repeat):");
            out!("{}", bench::peer_time_table((p, u), (&linux_results[0], &linux_results[1]), frequency).trim_end());
        }
        Backend::Pkvm => {
            out!("the whole machine in guest time, median request (repeats): P = protected, O = ordinary VM");
            out!("{}", bench::work_table(backend, p, u, frequency).trim_end());
            let instructions = |costs: &[u64]| {
                costs.first().map_or("n/a".into(), |t| format!("{:.0}", *t as f64 * 1e9 / frequency as f64))
            };
            out!(
                "one MMIO exit to the VMM and back (median of 255 register reads): P {} instructions, O {}",
                instructions(&exit_costs[0]),
                instructions(&exit_costs[1])
            );
            out!("{}", bench::targets(backend, p, u, Some((&linux_results[0], &linux_results[1]))).trim_end());
            out!("{LINUX_PEER}, machine instructions per median request:");
            out!("{}", bench::peer_table((p, u), (&linux_results[0], &linux_results[1]), frequency).trim_end());
        }
    }
    let [guest_costs, linux_costs] = pvmfw_costs;
    out!("{}", bench::pvmfw_cost::table(backend, &[("test-guest", guest_costs), ("Linux", linux_costs)]).trim_end());
    out!("{}", bench::runs_side_by_side("protected", p, backend).trim_end());
    out!("{}", bench::runs_side_by_side("unprotected", u, backend).trim_end());
    let mut moved: Vec<String> = [bench::moved("protected", p, backend), bench::moved("unprotected", u, backend)]
        .into_iter()
        .flatten()
        .collect();
    // Under hyp Linux's figures are time alone and an exit's cost follows QEMU's
    // devices in real time: shown, not held to repeat. Under pKVM both repeat.
    if backend == Backend::Pkvm {
        let (lp, lu) = (&linux_results[0], &linux_results[1]);
        out!("{}", bench::runs_side_by_side("Linux protected", lp, backend).trim_end());
        out!("{}", bench::runs_side_by_side("Linux ordinary", lu, backend).trim_end());
        moved.extend(bench::moved_whole_os("Linux protected", lp, backend));
        moved.extend(bench::moved_whole_os("Linux ordinary", lu, backend));
        for (label, costs) in ["protected", "unprotected"].iter().zip(&exit_costs) {
            if costs.iter().min() != costs.iter().max() {
                moved.push(format!("{label}: the MMIO exit's cost moved: {costs:?}"));
            }
        }
    }
    for line in &moved {
        out!("NOT REPEATED: {line}");
    }
    if !moved.is_empty() {
        out!("pvmkit: {} figure(s) that must repeat moved between runs", moved.len());
    }
    print!("{report}");
    if let (Some(doc), true) = (markdown, moved.is_empty()) {
        let stamp = format!(
            "`pvmkit bench --backend {} --runs {runs}` at pvmkit {}, {}, {}",
            backend.name(),
            git_commit(ws),
            today(),
            qemu::version().unwrap_or_else(|| "QEMU (version unknown)".into())
        );
        let text = std::fs::read_to_string(doc).map_err(|e| format!("reading {}: {e}", doc.display()))?;
        let text = bench::splice_markdown(&text, backend.name(), &stamp, &report)?;
        std::fs::write(doc, text).map_err(|e| format!("writing {}: {e}", doc.display()))?;
        println!("pvmkit: the {} tables in {} are this run's", backend.name(), doc.display());
    }
    Ok(moved.is_empty())
}
