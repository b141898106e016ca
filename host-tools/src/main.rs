//! `pvmkit`: build the firmware, pack a bundle, run a guest in QEMU through hyp, and
//! judge the result. Run it as `cargo pvmkit <command>` from the repository.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use host_tools::firmware::{self, Firmware};
use host_tools::qemu::{self, RunConfig};
use host_tools::verdict::Verdict;
use host_tools::{Mode, Workspace};

#[derive(Parser)]
#[command(
    name = "pvmkit",
    version,
    about = "Build, run and judge pvmkit guests under hyp in QEMU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// A guest ELF built against guest-lib (default: test-guest).
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
    /// Extra QEMU arguments, after `--`.
    #[arg(last = true)]
    qemu_args: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Build every firmware image (release) and print where they are.
    Build,
    /// Boot a guest through hyp in QEMU and print a verdict.
    Run(RunArgs),
    /// Write the bundle `run` would hand hyp, without running it.
    Pack {
        #[command(flatten)]
        run: RunArgs,
        /// Where to write the bundle.
        #[arg(long, short)]
        output: PathBuf,
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
    let ws = Workspace::locate();
    match cli.command {
        Command::Build => {
            let fw = firmware::build_all(&ws)?;
            println!("hyp:        {}", fw.hyp_image.display());
            println!("test-guest: {}", fw.test_guest_elf.display());
            Ok(true)
        }
        Command::Run(args) => {
            let mode = Mode::parse(&args.mode, args.abi.as_deref())?;
            qemu::ensure_installed()?;
            let fw = firmware::build_all(&ws)?;
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
            let bytes = qemu::make_bundle(&run_config(&fw, mode, &run, false))?;
            std::fs::write(&output, &bytes)
                .map_err(|e| format!("writing {}: {e}", output.display()))?;
            println!("bundle: {} ({} bytes)", output.display(), bytes.len());
            Ok(true)
        }
        Command::Test { timeout } => {
            qemu::ensure_installed()?;
            let fw = firmware::build_all(&ws)?;
            let args = RunArgs {
                payload: None,
                bundle: None,
                mode: String::new(),
                abi: None,
                timeout,
                scenario: "normal".into(),
                guest_args: Vec::new(),
                disk: None,
                qemu_args: Vec::new(),
            };
            let mut all = true;
            for mode in Mode::ALL {
                let verdict = run_one(&ws, &fw, mode, &args, false)?;
                println!("{:<28} {verdict}", mode.to_string());
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
        payload: args
            .payload
            .clone()
            .unwrap_or_else(|| fw.test_guest_elf.clone()),
        bundle: args.bundle.clone(),
        scenario: args.scenario.clone(),
        guest_args: args.guest_args.clone(),
        disk: args.disk.clone(),
        timeout: Duration::from_secs(args.timeout),
        extra_args: args.qemu_args.clone(),
        echo,
    }
}

fn run_one(
    ws: &Workspace,
    fw: &Firmware,
    mode: Mode,
    args: &RunArgs,
    echo: bool,
) -> Result<Verdict, String> {
    qemu::run(ws, fw, &run_config(fw, mode, args, echo))
}
