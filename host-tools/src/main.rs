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
#[command(name = "pvmkit", version, about = "Build, run and judge pvmkit guests under hyp in QEMU")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// A guest ELF built against guest-lib (default: test-guest).
    #[arg(long)]
    payload: Option<PathBuf>,
    /// protected, unprotected or bare (no hyp: the payload on plain QEMU at EL1).
    #[arg(long, default_value = "protected")]
    mode: String,
    /// The pKVM ABI form hyp offers in protected mode: android or upstream.
    #[arg(long)]
    abi: Option<String>,
    /// Wall-clock limit for QEMU, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// A test-guest scenario: normal, fail-case or no-summary.
    #[arg(long, default_value = "normal")]
    scenario: String,
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
        Command::Test { timeout } => {
            qemu::ensure_installed()?;
            let fw = firmware::build_all(&ws)?;
            let args = RunArgs {
                payload: None,
                mode: String::new(),
                abi: None,
                timeout,
                scenario: "normal".into(),
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

fn run_one(ws: &Workspace, fw: &Firmware, mode: Mode, args: &RunArgs, echo: bool) -> Result<Verdict, String> {
    let payload = args.payload.clone().unwrap_or_else(|| fw.test_guest_elf.clone());
    let config = RunConfig {
        mode,
        payload,
        scenario: args.scenario.clone(),
        timeout: Duration::from_secs(args.timeout),
        extra_args: args.qemu_args.clone(),
        echo,
    };
    qemu::run(ws, fw, &config)
}
