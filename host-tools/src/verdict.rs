//! Judging a run. A pass needs the guest's own summary with no failures *and* a clean
//! end seen by something the guest cannot forge: hyp's (or the VMM's) one exit line,
//! carrying the run's nonce (lines without it never reach the verdict as host lines:
//! `pvmkit_abi::exit_line::Shown` marks them), with nothing but the host kernel's log after
//! it; or, without hyp, QEMU's own clean power-off. Semihosting exit codes are never
//! used.

use pvmkit_abi::exit_line::{self, Reason, Writer};
use pvmkit_abi::guest_console::Summary;
use std::fmt;

/// How many console lines a failing verdict shows.
pub const TAIL_LINES: usize = 20;

/// Which clean end to expect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// hyp ran the guest: its exit line must say `system_off`.
    Hyp,
    /// pvmkit's VMM ran the guest on the real pKVM: its exit line (in hyp's words)
    /// must say `system_off`. The host kernel's own log lines around it do not count.
    Vmm,
    /// No hyp: QEMU must have powered off cleanly.
    Bare,
}

/// What a run produced.
#[derive(Clone, Debug, Default)]
pub struct RunOutput {
    /// Console lines, in order.
    pub lines: Vec<String>,
    /// What QEMU itself printed on stderr (not the guest's console).
    pub stderr: Vec<String>,
    /// QEMU's exit code; `None` if it was killed or died by a signal.
    pub exit_code: Option<i32>,
    /// Whether the wall-clock limit ended the run.
    pub timed_out: bool,
    /// Whether pvmkit ended QEMU because the machine in it had stopped for good (the
    /// pKVM host's kernel finished reporting a panic).
    pub stopped_dead: bool,
    /// When each line arrived, from QEMU's start.
    pub times: Vec<std::time::Duration>,
}

/// The verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Everything passed.
    Pass {
        /// Guest cases that passed.
        passed: u32,
    },
    /// Something did not.
    Fail {
        /// Why, in one line.
        reason: String,
        /// The last console lines.
        tail: Vec<String>,
    },
}

impl Verdict {
    /// Whether the run passed.
    pub fn passed(&self) -> bool {
        matches!(self, Verdict::Pass { .. })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Pass { passed } => {
                let cases = if *passed == 1 { "case" } else { "cases" };
                write!(f, "PASS ({passed} guest {cases} passed, clean power-off)")
            }
            Verdict::Fail { reason, .. } => write!(f, "FAIL: {reason}"),
        }
    }
}

/// Whether `line` is the Linux host kernel's own log (`[    1.234567] …`).
pub fn is_kernel_log(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('[') else { return false };
    let Some((stamp, _)) = rest.split_once("] ") else { return false };
    let stamp = stamp.trim_start();
    stamp.split_once('.').is_some_and(|(s, us)| {
        !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && us.len() == 6
            && us.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Whether `line` is the pKVM host kernel's last word on a panic (its `---[ end Kernel
/// panic` line): the host runs with `panic=0`, so it never resets or powers off after
/// one, and pvmkit ends QEMU here rather than wait for the timeout.
pub fn host_panic_is_over(line: &str) -> bool {
    kernel_message(line).is_some_and(|m| m.starts_with("---[ end Kernel panic"))
}

/// The message of a kernel log line (after its time stamp), if `line` is one.
fn kernel_message(line: &str) -> Option<&str> {
    is_kernel_log(line).then(|| line.split_once("] ").map_or("", |(_, m)| m))
}

/// What ended the pKVM host before its VMM could say how the VM ended: the kernel's
/// panic or its OOM killer, as the kernel logs them (the guest cannot forge those: its
/// lines reach the console only through the VMM, which never writes a kernel stamp).
pub fn host_failure(lines: &[String]) -> Option<String> {
    let kernel = || lines.iter().filter_map(|l| kernel_message(l));
    if let Some(panic) = kernel().find(|m| m.starts_with("Kernel panic")) {
        return Some(format!("the pKVM host's kernel panicked ({panic})"));
    }
    kernel()
        .find(|m| m.starts_with("Out of memory: Killed process"))
        .map(|m| format!("the pKVM host ran out of memory ({m})"))
}

/// Judges a run.
pub fn judge(expect: Expect, run: &RunOutput) -> Verdict {
    let fail = |reason: String| Verdict::Fail {
        reason,
        tail: run.lines[run.lines.len().saturating_sub(TAIL_LINES)..]
            .iter()
            .cloned()
            .chain(run.stderr.iter().map(|l| format!("[qemu stderr] {l}")))
            .collect(),
    };
    if run.timed_out {
        return fail("timeout: QEMU did not power off in time".into());
    }
    let judge_of = match expect {
        Expect::Hyp => Some((Writer::Hyp, "hyp")),
        Expect::Vmm => Some((Writer::Vmm, "the VMM")),
        Expect::Bare => None,
    };
    if let Some((who, name)) = judge_of {
        let exits: Vec<usize> =
            (0..run.lines.len()).filter(|&i| exit_line::parse(who, &run.lines[i]).is_some()).collect();
        let at = match exits[..] {
            [] if expect == Expect::Vmm => {
                let cause = host_failure(&run.lines).map_or(String::new(), |c| format!(": {c}"));
                return fail(format!("{name} printed no exit line{cause}"));
            }
            [] => return fail(format!("{name} printed no exit line")),
            [at] => at,
            _ => return fail(format!("{name} printed {} exit lines, not one", exits.len())),
        };
        let line = run.lines[at].trim();
        if exit_line::parse(who, line) != Some(Reason::SystemOff.word()) {
            return fail(format!(
                "{name} ended the VM: {}",
                line.trim_start_matches(who.tag()).trim_start_matches(" exit: ")
            ));
        }
        // After a VMM's exit line the host kernel may still log (powering off).
        let after_exit = |l: &String| !(l.trim().is_empty() || expect == Expect::Vmm && is_kernel_log(l));
        if run.lines[at + 1..].iter().any(after_exit) {
            return fail(format!("console output after {name}'s exit line"));
        }
    }
    if run.exit_code != Some(0) {
        return fail(format!("QEMU exited with {:?}, not a clean power-off", run.exit_code));
    }
    match run.lines.iter().rev().find_map(|l| Summary::parse(l)) {
        None => fail("the guest printed no 'N passed, M failed' summary".into()),
        Some(Summary { failed, .. }) if failed > 0 => fail(format!("{failed} guest case(s) failed")),
        Some(Summary { passed: 0, .. }) => fail("the guest ran no case".into()),
        Some(Summary { passed, .. }) => Verdict::Pass { passed },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pvmkit_abi::exit_line::{Nonce, Shown};

    fn run(lines: &[&str], exit_code: Option<i32>) -> RunOutput {
        RunOutput {
            lines: lines.iter().map(|s| s.to_string()).collect(),
            stderr: Vec::new(),
            exit_code,
            ..RunOutput::default()
        }
    }

    fn reason(v: Verdict) -> String {
        match v {
            Verdict::Fail { reason, .. } => reason,
            Verdict::Pass { .. } => panic!("expected a failure"),
        }
    }

    /// A host that dies before its VMM's exit line is a FAIL naming the cause, whatever
    /// QEMU's status and whatever the guest printed (a forged summary and exit line
    /// included).
    #[test]
    fn a_dead_host_is_named() {
        let forged = [
            "1 passed, 0 failed",
            "guest| [vmm] exit: reason=system_off",
            "[   25.100000] Out of memory: Killed process 61 (vmm) total-vm:14000000kB",
            "[   25.200000] Kernel panic - not syncing: System is deadlocked on memory",
        ];
        let r = run(&forged, Some(0));
        assert_eq!(
            reason(judge(Expect::Vmm, &r)),
            "the VMM printed no exit line: the pKVM host's kernel panicked (Kernel panic - not syncing: System is deadlocked on memory)"
        );
        // The kernel's last word on it (under panic=0) ends the run; a guest's line
        // (no kernel stamp: the VMM never writes one) does not.
        assert!(host_panic_is_over(
            "[    3.244612] ---[ end Kernel panic - not syncing: VFS: Unable to mount root fs ]---"
        ));
        assert!(!host_panic_is_over("[    3.244612] Kernel panic - not syncing: VFS: Unable to mount root fs"));
        assert!(!host_panic_is_over("---[ end Kernel panic - not syncing: forged ]---"));
        let r = run(&forged[..3], Some(0));
        assert!(reason(judge(Expect::Vmm, &r))
            .ends_with("the pKVM host ran out of memory (Out of memory: Killed process 61 (vmm) total-vm:14000000kB)"));
        let r = run(&forged[..2], Some(0));
        assert_eq!(reason(judge(Expect::Vmm, &r)), "the VMM printed no exit line");
    }

    #[test]
    fn passes_a_clean_run() {
        let r = run(&["test a ... ok", "1 passed, 0 failed", "[hyp] exit: reason=system_off"], Some(0));
        assert_eq!(judge(Expect::Hyp, &r), Verdict::Pass { passed: 1 });
        let bare = run(&["test a ... ok", "3 passed, 0 failed"], Some(0));
        assert_eq!(judge(Expect::Bare, &bare), Verdict::Pass { passed: 3 });
    }

    #[test]
    fn fails_on_failed_cases_and_missing_summaries() {
        let r = run(&["2 passed, 1 failed", "[hyp] exit: reason=system_off"], Some(0));
        assert_eq!(reason(judge(Expect::Hyp, &r)), "1 guest case(s) failed");
        let r = run(&["test a ... ok", "[hyp] exit: reason=system_off"], Some(0));
        assert!(reason(judge(Expect::Hyp, &r)).contains("no 'N passed, M failed' summary"));
        let r = run(&["0 passed, 0 failed", "[hyp] exit: reason=system_off"], Some(0));
        assert_eq!(reason(judge(Expect::Hyp, &r)), "the guest ran no case");
        let r = run(&["1 passed, 0 failed"], Some(1));
        assert!(reason(judge(Expect::Bare, &r)).contains("QEMU exited with Some(1)"));
    }

    #[test]
    fn hyp_must_end_the_run_cleanly() {
        let r = run(&["1 passed, 0 failed"], Some(0));
        assert_eq!(reason(judge(Expect::Hyp, &r)), "hyp printed no exit line");
        let r = run(&["1 passed, 0 failed", "[hyp] exit: reason=violation ipa=0x80001000 what=\"x\""], Some(0));
        assert_eq!(reason(judge(Expect::Hyp, &r)), "hyp ended the VM: reason=violation ipa=0x80001000 what=\"x\"");
        // A guest that forges a clean exit line and then crashes: its line is marked as
        // the guest's, so the one exit line is hyp's.
        let r = run(
            &["1 passed, 0 failed", "guest| [hyp] exit: reason=system_off", "[hyp] exit: reason=guest_crash esr=0x0"],
            Some(0),
        );
        assert!(reason(judge(Expect::Hyp, &r)).contains("guest_crash"));
        // Output after the exit line means something else wrote after hyp ended the run.
        let r = run(&["[hyp] exit: reason=system_off", "1 passed, 0 failed"], Some(0));
        assert_eq!(reason(judge(Expect::Hyp, &r)), "console output after hyp's exit line");
        // Exactly one exit line.
        let r = run(&["1 passed, 0 failed", "[hyp] exit: reason=system_off", "[hyp] exit: reason=system_off"], Some(0));
        assert_eq!(reason(judge(Expect::Hyp, &r)), "hyp printed 2 exit lines, not one");
        let mut r = run(&["1 passed, 0 failed", "[hyp] exit: reason=system_off"], None);
        r.timed_out = true;
        assert!(reason(judge(Expect::Hyp, &r)).starts_with("timeout"));
    }

    #[test]
    fn the_vmm_ends_a_pkvm_run_like_hyp() {
        let clean =
            run(&["1 passed, 0 failed", "[vmm] exit: reason=system_off", "[   12.345678] reboot: Power down"], Some(0));
        assert_eq!(judge(Expect::Vmm, &clean), Verdict::Pass { passed: 1 });
        let r = run(&["1 passed, 0 failed", "[vmm] exit: reason=reset"], Some(0));
        assert_eq!(reason(judge(Expect::Vmm, &r)), "the VMM ended the VM: reason=reset");
        let r = run(&["1 passed, 0 failed", "[hyp] exit: reason=system_off"], Some(0));
        assert_eq!(reason(judge(Expect::Vmm, &r)), "the VMM printed no exit line", "hyp's line is not the VMM's");
        let r = run(&["[vmm] exit: reason=system_off", "1 passed, 0 failed"], Some(0));
        assert_eq!(reason(judge(Expect::Vmm, &r)), "console output after the VMM's exit line");
        assert!(is_kernel_log("[    0.225688] kvm [1]: Protected hVHE mode initialized successfully"));
        assert!(!is_kernel_log("[vmm] exit: reason=system_off") && !is_kernel_log("[1.5] x"));
    }

    /// The console as `execute` keeps it: every raw line through `Shown` with the run's
    /// nonce.
    fn shown_run(raw: &[&str], nonce: Nonce, exit_code: Option<i32>) -> RunOutput {
        let lines: Vec<String> = raw.iter().map(|l| Shown(l, Some(nonce)).to_string()).collect();
        RunOutput { lines, exit_code, ..RunOutput::default() }
    }

    #[test]
    fn a_forged_exit_line_never_passes() {
        let nonce = Nonce(0x0123_4567_89ab_cdef);
        // The red team's run: the guest prints a summary and a perfect VMM exit line,
        // then the host panics (kernel log only) and QEMU exits 0 under panic=-1.
        for forged in ["[vmm] exit: reason=system_off", "[vmm#0123456789abcdee] exit: reason=system_off"] {
            let r = shown_run(
                &["1 passed, 0 failed", forged, "[   25.000000] Kernel panic - not syncing: Out of memory"],
                nonce,
                Some(0),
            );
            assert_eq!(
                reason(judge(Expect::Vmm, &r)),
                "the VMM printed no exit line: the pKVM host's kernel panicked (Kernel panic - not syncing: Out of memory)",
                "{forged}"
            );
        }
        // The same on hyp, forged with a guessed nonce, and the guest then hangs.
        let mut r = shown_run(&["1 passed, 0 failed", "[hyp#0000000000000001] exit: reason=system_off"], nonce, None);
        assert_eq!(reason(judge(Expect::Hyp, &r)), "hyp printed no exit line");
        r.timed_out = true;
        assert!(reason(judge(Expect::Hyp, &r)).starts_with("timeout"));
        // The real line passes, shown plainly.
        let r = shown_run(&["1 passed, 0 failed", "[vmm#0123456789abcdef] exit: reason=system_off"], nonce, Some(0));
        assert_eq!(r.lines[1], "[vmm] exit: reason=system_off");
        assert_eq!(judge(Expect::Vmm, &r), Verdict::Pass { passed: 1 });
        // A forged line beside the real one does not count as a second.
        let r = shown_run(
            &["1 passed, 0 failed", "[vmm] exit: reason=system_off", "[vmm#0123456789abcdef] exit: reason=system_off"],
            nonce,
            Some(0),
        );
        assert_eq!(judge(Expect::Vmm, &r), Verdict::Pass { passed: 1 });
    }

    #[test]
    fn a_verdict_says_whether_it_passed_and_why() {
        let pass = Verdict::Pass { passed: 3 };
        let fail = Verdict::Fail { reason: "hyp printed no exit line".into(), tail: Vec::new() };
        assert!(pass.passed() && !fail.passed());
        assert_eq!(pass.to_string(), "PASS (3 guest cases passed, clean power-off)");
        let one = Verdict::Pass { passed: 1 };
        assert_eq!(one.to_string(), "PASS (1 guest case passed, clean power-off)");
        assert_eq!(fail.to_string(), "FAIL: hyp printed no exit line");
    }

    #[test]
    fn summary_and_exit_parsing() {
        let summary = |passed, failed| Some(Summary { passed, failed });
        assert_eq!(Summary::parse("12 passed, 0 failed"), summary(12, 0));
        assert_eq!(Summary::parse("12 passed, 0 failed\r"), summary(12, 0));
        assert_eq!(Summary::parse("x 12 passed, 0 failed"), None);
        assert_eq!(Summary::parse("12 passed, 0 failed, 1 skipped"), None);
        assert_eq!(exit_line::parse(Writer::Hyp, "[hyp] exit: reason=reset"), Some("reset"));
        assert_eq!(exit_line::parse(Writer::Hyp, "[hyp] error: no"), None);
    }
}
