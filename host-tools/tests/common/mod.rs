//! Running `pvmkit` from the end-to-end tests.

use std::process::{Command, Output};
use std::sync::Mutex;

/// Runs are serialised: each builds firmware first (cargo serialises that anyway) and
/// QEMU under TCG wants a core of its own on a two-core machine.
pub static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub fn pvmkit(args: &[&str]) -> (bool, String) {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Output { status, stdout, stderr } =
        Command::new(env!("CARGO_BIN_EXE_pvmkit")).args(args).output().expect("pvmkit runs");
    let text = format!("{}{}", String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&stderr));
    (status.success(), text)
}

/// What pvmfw handed the payload, as test-guest's `dice_handover` case printed it: the
/// fingerprints of CDI_Attest and CDI_Seal, and the DICE chain.
#[allow(dead_code)] // not every test binary reads DICE output
#[derive(Debug, PartialEq, Eq)]
pub struct DiceOutput {
    pub attest: String,
    pub seal: String,
    pub chain: Vec<u8>,
}

#[allow(dead_code)]
pub fn dice_output(out: &str) -> Option<DiceOutput> {
    let line = out.lines().find_map(|l| l.split_once("[test-guest] dice: ").map(|(_, r)| r.to_string()))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let (attest, seal) = (words.get(1)?.to_string(), words.get(3)?.to_string());
    let mut hex = String::new();
    for l in out.lines() {
        if let Some((_, rest)) = l.split_once("[test-guest] dice-chain ") {
            hex.push_str(rest.split_whitespace().nth(1)?);
        }
    }
    let chain =
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect::<Option<_>>()?;
    Some(DiceOutput { attest, seal, chain })
}

/// test-guest's SMP cases (guest_lib::smp, PSCI, concurrent sharing, SGIs), which run
/// where the VM has several vCPUs.
#[allow(dead_code)] // not every test binary runs them
pub const SMP_CASES: [&str; 7] = [
    "smp_every_cpu_starts",
    "smp_cpu_on_of_a_running_cpu",
    "smp_concurrent_share_distinct_pages",
    "smp_concurrent_share_one_page",
    "smp_cpu_off_and_on_again",
    "smp_sgi_to_each_other_cpu",
    "smp_virtio_blk_from_every_cpu",
];
