//! `pvmkit bench`: the cost of protection on virtio-blk. test-guest's `bench` scenario
//! runs in a protected and an unprotected (ordinary) VM, at least twice each, under
//! `-icount shift=0,sleep=off` (one virtual nanosecond per instruction). This module
//! reads its `bench …` lines, checks that the figures meant to repeat did, and makes the
//! tables.
//!
//! What repeats depends on the backend:
//! - **hyp**: QEMU's devices answer in real time, so the guest's clock (`ticks`) is not
//!   a result. The counted work is: the guest's instructions (PMU, EL1, without the wait
//!   for the device), hyp's (PMU, EL2, without its waits), MMIO exits, hypercalls and
//!   bytes bounced.
//! - **pkvm**: the whole machine (host kernel, pKVM, pvmkit's VMM doing the device's
//!   DMA, the guest) runs on one CPU under `-icount`, with the disk in the host's memory:
//!   the guest's clock counts every instruction the machine spent, and repeats.

pub mod pvmfw_cost;

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::Backend;

/// One phase of one run, as the guest printed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    /// "read" or "write".
    pub op: String,
    /// Bytes per request.
    pub size: u64,
    /// Requests made.
    pub requests: u64,
    /// Data bytes moved.
    pub bytes: u64,
    /// Guest counter ticks the phase took.
    pub ticks: u64,
    /// Guest counter ticks of the median request.
    pub median_ticks: Option<u64>,
    /// The guest's instructions submitting and completing requests (None without a PMU).
    pub guest_instr: Option<u64>,
    /// hyp's counted instructions (None without hyp's meter).
    pub hyp_instr: Option<u64>,
    /// Hypercalls the guest made during the phase (None from a guest that cannot count
    /// them: Linux's userspace).
    pub hypercalls: Option<u64>,
    /// Bytes copied through bounce buffers (None likewise).
    pub bounced: Option<u64>,
    /// MMIO exits hyp counted (None without hyp's counters).
    pub mmio_exits: Option<u64>,
    /// Every guest exit hyp counted, its ticks included (None without hyp's counters).
    pub exits: Option<u64>,
}

/// The counter frequency the guest reported, if any.
pub fn parse_frequency(lines: &[String]) -> Option<u64> {
    lines.iter().find_map(|l| l.trim().strip_prefix("bench frequency=")?.split_whitespace().next()?.parse().ok())
}

/// The median cost of one MMIO exit (a read of a virtio register) the guest measured,
/// in counter ticks, if it printed one.
pub fn parse_exit_cost(lines: &[String]) -> Option<u64> {
    // The harness's `test bench ... ` may precede it on its line.
    lines.iter().find_map(|l| l.split("bench mmio_read_ticks=").nth(1)?.split_whitespace().next()?.parse().ok())
}

/// Parses one `bench op=… size=…` line.
pub fn parse_phase(line: &str) -> Option<Phase> {
    let rest = line.trim().strip_prefix("bench op=")?;
    let mut fields = BTreeMap::new();
    for word in format!("op={rest}").split_whitespace() {
        let (k, v) = word.split_once('=')?;
        fields.insert(k.to_string(), v.to_string());
    }
    let num = |k: &str| fields.get(k)?.parse::<u64>().ok();
    Some(Phase {
        op: fields.get("op")?.clone(),
        size: num("size")?,
        requests: num("requests")?,
        bytes: num("bytes")?,
        ticks: num("ticks")?,
        median_ticks: num("median_ticks"),
        guest_instr: num("guest_instr"),
        hyp_instr: num("hyp_instr"),
        hypercalls: num("hypercalls"),
        bounced: num("bounced"),
        mmio_exits: num("mmio_exits"),
        exits: num("exits"),
    })
}

/// The exit counts pvmkit's VMM appended to a `bench ` line: (exits, virtio accesses).
fn vmm_counts(line: &str) -> Option<(u64, u64)> {
    let value = |key: &str| line.split_whitespace().find_map(|w| w.strip_prefix(key)?.parse::<u64>().ok());
    Some((value("vmm_exits=")?, value("vmm_virtio=")?))
}

/// Every phase in a run's console lines. Where pvmkit's VMM appended its counts (the
/// real pKVM backend), a phase's exits are the difference from its `bench start` line.
pub fn parse_run(lines: &[String]) -> Vec<Phase> {
    let mut phases = Vec::new();
    let mut start = None;
    for line in lines {
        if line.trim().starts_with("bench start ") {
            start = vmm_counts(line);
        } else if let Some(mut phase) = parse_phase(line) {
            if let (Some((e0, v0)), Some((e1, v1))) = (start.take(), vmm_counts(line)) {
                phase.exits = phase.exits.or(e1.checked_sub(e0));
                phase.mmio_exits = phase.mmio_exits.or(v1.checked_sub(v0));
            }
            phases.push(phase);
        }
    }
    phases
}

/// The per-request header (16 bytes) and status (1 byte) virtio-blk bounces too.
pub const BLK_REQUEST_OVERHEAD: u64 = 17;

/// How far a figure that must repeat may move between runs: 1 %.
pub const REPEAT_TOLERANCE: f64 = 0.01;

/// How far a whole OS's median request may move between runs: 3 %. Linux's requests
/// go through its block layer and swiotlb, whose state (slot positions, a timer tick
/// landing inside a request) differs from run to run: a CI run measured its protected
/// 64 KiB write at 7380 and then 7462 ticks (1.1 %), where guest-lib's repeat exactly.
pub const WHOLE_OS_TOLERANCE: f64 = 0.03;

/// A figure of a phase that must be the same on every run of one backend and mode.
struct Repeating {
    name: &'static str,
    short: &'static str,
    get: fn(&Phase) -> Option<u64>,
    /// A count over the phase (shown per request), not already a request's.
    per_phase: bool,
}

fn repeating(backend: Backend) -> Vec<Repeating> {
    let mut figures = vec![
        Repeating { name: "guest instructions", short: "guest", get: |p| p.guest_instr, per_phase: true },
        Repeating { name: "hyp instructions", short: "hyp", get: |p| p.hyp_instr, per_phase: true },
        Repeating { name: "MMIO exits", short: "mmio", get: |p| p.mmio_exits, per_phase: true },
        Repeating { name: "hypercalls", short: "hcalls", get: |p| p.hypercalls, per_phase: true },
        Repeating { name: "bytes bounced", short: "bounced", get: |p| p.bounced, per_phase: true },
    ];
    if backend == Backend::Pkvm {
        figures.push(Repeating { name: "guest-time ticks", short: "ticks", get: |p| Some(p.ticks), per_phase: true });
        figures.push(Repeating {
            name: "median request's ticks",
            short: "median",
            get: |p| p.median_ticks,
            per_phase: false,
        });
        figures.push(Repeating { name: "exits to the VMM", short: "exits", get: |p| p.exits, per_phase: true });
    }
    figures
}

fn phase<'a>(run: &'a [Phase], op: &str, size: u64) -> Option<&'a Phase> {
    run.iter().find(|p| p.op == op && p.size == size)
}

fn keys(runs: &[Vec<Phase>]) -> Vec<(String, u64)> {
    runs.first().map(|r| r.iter().map(|p| (p.op.clone(), p.size)).collect()).unwrap_or_default()
}

/// The figures that should have repeated and did not (beyond [`REPEAT_TOLERANCE`]),
/// one line each; also every phase missing from a run. Empty: all repeated.
///
/// A phase's total guest-time ticks are shown but need not repeat: on the real pKVM
/// they hold the host kernel's own work too (its timers, the page cache writing the
/// disk image back), which lands in one phase or another. A CI run measured guest-lib's
/// ordinary 4 KiB write phase at 4 883 176 and then 5 881 442 ticks while its median
/// request stayed at 1808 both times; the median request is what must repeat.
pub fn moved(label: &str, runs: &[Vec<Phase>], backend: Backend) -> Vec<String> {
    moved_of(label, runs, held_to_repeat(backend), REPEAT_TOLERANCE)
}

/// [`moved`] for a whole OS as the guest (Linux): its median request moves with its
/// own background work (kernel threads, timers, swiotlb slot positions), so it is held
/// within [`WHOLE_OS_TOLERANCE`].
pub fn moved_whole_os(label: &str, runs: &[Vec<Phase>], backend: Backend) -> Vec<String> {
    moved_of(label, runs, held_to_repeat(backend), WHOLE_OS_TOLERANCE)
}

/// The figures [`moved`] holds: every one shown run by run except a phase's total
/// ticks.
fn held_to_repeat(backend: Backend) -> Vec<Repeating> {
    repeating(backend).into_iter().filter(|f| f.short != "ticks").collect()
}

fn moved_of(label: &str, runs: &[Vec<Phase>], figures: Vec<Repeating>, tolerance: f64) -> Vec<String> {
    let mut out = Vec::new();
    for (op, size) in keys(runs) {
        let phases: Vec<Option<&Phase>> = runs.iter().map(|r| phase(r, &op, size)).collect();
        if phases.iter().any(Option::is_none) {
            out.push(format!("{label} {op} {size}: missing from a run"));
            continue;
        }
        for figure in &figures {
            let values: Vec<Option<u64>> = phases.iter().flatten().map(|p| (figure.get)(p)).collect();
            if values.iter().all(Option::is_none) {
                continue;
            }
            let Some(values) = values.iter().copied().collect::<Option<Vec<u64>>>() else {
                out.push(format!("{label} {op} {size}: {} present in some runs only", figure.name));
                continue;
            };
            let (lo, hi) = (values.iter().min().copied().unwrap_or(0), values.iter().max().copied().unwrap_or(0));
            if (hi - lo) as f64 > tolerance * lo as f64 {
                out.push(format!("{label} {op} {size}: {} moved: {values:?}", figure.name));
            }
        }
    }
    out
}

/// Every run's figures that must repeat, side by side (per request; one column per
/// run), for one mode.
pub fn runs_side_by_side(label: &str, runs: &[Vec<Phase>], backend: Backend) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{label}, per request, run by run:");
    for (op, size) in keys(runs) {
        let mut cells = Vec::new();
        for figure in repeating(backend) {
            let values: Vec<String> = runs
                .iter()
                .map(|r| {
                    phase(r, &op, size)
                        .and_then(|p| {
                            let value = (figure.get)(p)? as f64;
                            Some(if figure.per_phase { value / p.requests.max(1) as f64 } else { value })
                        })
                        .map_or("n/a".into(), |v| format!("{v:.0}"))
                })
                .collect();
            if values.iter().any(|v| v != "n/a") {
                cells.push(format!("{} {}", figure.short, values.join("/")));
            }
        }
        let _ = writeln!(out, "  {op:<5} {size:>7}  {}", cells.join("  "));
    }
    out
}

/// Throughput in MiB per second of guest (virtual) time.
pub fn mib_per_s(p: &Phase, frequency: u64) -> f64 {
    if p.ticks == 0 {
        return 0.0;
    }
    (p.bytes as f64 / (1 << 20) as f64) / (p.ticks as f64 / frequency as f64)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Half the max–min spread, as % of the median.
fn half_spread(v: &[f64]) -> f64 {
    let m = median(v.to_vec());
    let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    if m == 0.0 || v.is_empty() {
        0.0
    } else {
        50.0 * (hi - lo) / m
    }
}

/// A per-request figure of the first run (the runs agree: [`moved`] checked).
fn per_request(runs: &[Vec<Phase>], op: &str, size: u64, get: impl Fn(&Phase) -> Option<u64>) -> Option<f64> {
    let p = phase(runs.first()?, op, size)?;
    Some(get(p)? as f64 / p.requests.max(1) as f64)
}

/// The median request's ticks of the first run (the runs agree: [`moved`] checked).
fn median_ticks(runs: &[Vec<Phase>], op: &str, size: u64) -> Option<f64> {
    Some(phase(runs.first()?, op, size)?.median_ticks? as f64)
}

fn cell(v: Option<f64>, decimals: usize) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.decimals$}"))
}

/// Bytes copied per data byte, without (`data`) or with each request's header and status.
fn copies(runs: &[Vec<Phase>], op: &str, size: u64, data: bool) -> Option<f64> {
    let p = phase(runs.first()?, op, size)?;
    let bounced = if data { p.bounced?.saturating_sub(BLK_REQUEST_OVERHEAD * p.requests) } else { p.bounced? };
    Some(bounced as f64 / p.bytes.max(1) as f64)
}

/// The counted-work table (figures that repeat), protected against unprotected.
///
/// On hyp: instructions per request of the guest and of hyp, and the work ratio
/// (unprotected work / protected work: what protection costs in instructions, QEMU's
/// own device work not included). On the real pKVM, from the median request of each
/// phase: instructions of the whole machine (the guest's clock at one instruction per
/// virtual nanosecond), throughput in guest time and its ratio; and the exits the VMM
/// saw per request.
pub fn work_table(backend: Backend, protected: &[Vec<Phase>], unprotected: &[Vec<Phase>], frequency: u64) -> String {
    let mut out = String::new();
    let ns_per_tick = 1e9 / frequency.max(1) as f64;
    match backend {
        Backend::Hyp => {
            let _ = writeln!(
                out,
                "{:<6} {:>8}  {:>11} {:>11}  {:>11} {:>11}  {:>10}  {:>10} {:>10}  {:>11} {:>11}",
                "op",
                "size",
                "guest P",
                "guest U",
                "hyp P",
                "hyp U",
                "work U/P",
                "hcalls/req",
                "mmio/req",
                "copied/byte",
                "data copies"
            );
        }
        Backend::Pkvm => {
            let _ = writeln!(
                out,
                "{:<6} {:>8}  {:>11} {:>11}  {:>12} {:>12}  {:>6}  {:>10}  {:>11} {:>11}  {:>11} {:>11}",
                "op",
                "size",
                "machine P",
                "machine O",
                "P MiB/s",
                "O MiB/s",
                "ratio",
                "hcalls/req",
                "exits/req P",
                "exits/req O",
                "copied/byte",
                "data copies"
            );
        }
    }
    for (op, size) in keys(protected) {
        let (p, u) = (protected, unprotected);
        let hcalls = per_request(p, &op, size, |x| x.hypercalls);
        let (copied, data) = (copies(p, &op, size, false), copies(p, &op, size, true));
        match backend {
            Backend::Hyp => {
                let work = |runs: &[Vec<Phase>]| {
                    Some(
                        per_request(runs, &op, size, |x| x.guest_instr)?
                            + per_request(runs, &op, size, |x| x.hyp_instr)?,
                    )
                };
                let ratio = work(u).zip(work(p)).map(|(u, p)| u / p);
                let _ = writeln!(
                    out,
                    "{:<6} {:>8}  {:>11} {:>11}  {:>11} {:>11}  {:>10}  {:>10} {:>10}  {:>11} {:>11}",
                    op,
                    size,
                    cell(per_request(p, &op, size, |x| x.guest_instr), 0),
                    cell(per_request(u, &op, size, |x| x.guest_instr), 0),
                    cell(per_request(p, &op, size, |x| x.hyp_instr), 0),
                    cell(per_request(u, &op, size, |x| x.hyp_instr), 0),
                    cell(ratio, 3),
                    cell(hcalls, 2),
                    cell(per_request(p, &op, size, |x| x.mmio_exits), 2),
                    cell(copied, 4),
                    cell(data, 4)
                );
            }
            Backend::Pkvm => {
                // The median request: the host's own housekeeping lands in one phase or
                // another, not in the median.
                let median = |runs: &[Vec<Phase>]| median_ticks(runs, &op, size);
                let machine = |runs: &[Vec<Phase>]| median(runs).map(|t| t * ns_per_tick);
                let speed = |runs: &[Vec<Phase>]| {
                    median(runs).filter(|&t| t > 0.0).map(|t| size as f64 / (1 << 20) as f64 / (t / frequency as f64))
                };
                let ratio = speed(p).zip(speed(u)).map(|(p, u)| p / u);
                let _ = writeln!(
                    out,
                    "{:<6} {:>8}  {:>11} {:>11}  {:>12} {:>12}  {:>6}  {:>10}  {:>11} {:>11}  {:>11} {:>11}",
                    op,
                    size,
                    cell(machine(p), 0),
                    cell(machine(u), 0),
                    cell(speed(p), 1),
                    cell(speed(u), 1),
                    cell(ratio, 3),
                    cell(hcalls, 2),
                    cell(per_request(p, &op, size, |x| x.exits), 2),
                    cell(per_request(u, &op, size, |x| x.exits), 2),
                    cell(copied, 4),
                    cell(data, 4)
                );
            }
        }
    }
    out
}

/// Linux beside guest-lib on the same workload (real pKVM): per phase, the median
/// request's machine instructions of each guest, protected (P) and ordinary (O), each
/// one's P/O ratio, and guest-lib's speed-up over Linux when protected (Linux's
/// instructions ÷ guest-lib's: above 1, guest-lib is faster).
pub fn peer_table(
    guest_lib: (&[Vec<Phase>], &[Vec<Phase>]),
    linux: (&[Vec<Phase>], &[Vec<Phase>]),
    frequency: u64,
) -> String {
    let mut out = String::new();
    let ns_per_tick = 1e9 / frequency.max(1) as f64;
    let _ = writeln!(
        out,
        "{:<6} {:>8}  {:>11} {:>11} {:>6}  {:>11} {:>11} {:>6}  {:>13}",
        "op", "size", "guest-lib P", "guest-lib O", "P/O", "Linux P", "Linux O", "P/O", "guest-lib gain"
    );
    for (op, size) in keys(guest_lib.0) {
        let median = |runs: &[Vec<Phase>]| Some(median_ticks(runs, &op, size)? * ns_per_tick);
        let (gp, go, lp, lo) = (median(guest_lib.0), median(guest_lib.1), median(linux.0), median(linux.1));
        let ratio = |p: Option<f64>, o: Option<f64>| o.zip(p).map(|(o, p)| o / p);
        let _ = writeln!(
            out,
            "{:<6} {:>8}  {:>11} {:>11} {:>6}  {:>11} {:>11} {:>6}  {:>13}",
            op,
            size,
            cell(gp, 0),
            cell(go, 0),
            cell(ratio(gp, go), 3),
            cell(lp, 0),
            cell(lo, 0),
            cell(ratio(lp, lo), 3),
            cell(lp.zip(gp).map(|(l, g)| l / g), 3)
        );
    }
    out
}

/// Linux beside guest-lib under hyp, where only time can be had of Linux (its
/// userspace counts no instructions) and time follows QEMU's devices in real time:
/// per phase, each guest's median throughput protected (P) and ordinary (U), each
/// one's P/U ratio, and guest-lib's protected throughput over Linux's (above 1,
/// guest-lib is faster).
pub fn peer_time_table(
    guest_lib: (&[Vec<Phase>], &[Vec<Phase>]),
    linux: (&[Vec<Phase>], &[Vec<Phase>]),
    frequency: u64,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<6} {:>8}  {:>13} {:>13} {:>6}  {:>13} {:>13} {:>6}  {:>13}",
        "op", "size", "guest-lib P", "guest-lib U", "P/U", "Linux P", "Linux U", "P/U", "guest-lib gain"
    );
    for (op, size) in keys(guest_lib.0) {
        let speed = |runs: &[Vec<Phase>]| {
            let v: Vec<f64> =
                runs.iter().filter_map(|r| phase(r, &op, size)).map(|x| mib_per_s(x, frequency)).collect();
            (!v.is_empty()).then(|| median(v))
        };
        let (gp, gu, lp, lu) = (speed(guest_lib.0), speed(guest_lib.1), speed(linux.0), speed(linux.1));
        let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).filter(|(_, b)| *b > 0.0).map(|(a, b)| a / b);
        let _ = writeln!(
            out,
            "{:<6} {:>8}  {:>13} {:>13} {:>6}  {:>13} {:>13} {:>6}  {:>13}",
            op,
            size,
            cell(gp, 1),
            cell(gu, 1),
            cell(ratio(gp, gu), 3),
            cell(lp, 1),
            cell(lu, 1),
            cell(ratio(lp, lu), 3),
            cell(ratio(gp, lp), 3)
        );
    }
    out
}

/// The figures that follow real time (hyp backend): throughput in guest time and exits
/// per request (hyp's tick included), medians over the runs with their spread.
pub fn time_table(protected: &[Vec<Phase>], unprotected: &[Vec<Phase>], frequency: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<6} {:>8}  {:>15} {:>15}  {:>6}  {:>11} {:>11}",
        "op", "size", "P MiB/s", "U MiB/s", "ratio", "exits/req P", "exits/req U"
    );
    for (op, size) in keys(protected) {
        let pick =
            |runs: &[Vec<Phase>]| -> Vec<Phase> { runs.iter().filter_map(|r| phase(r, &op, size).cloned()).collect() };
        let (p, u) = (pick(protected), pick(unprotected));
        let speeds = |v: &[Phase]| -> Vec<f64> { v.iter().map(|x| mib_per_s(x, frequency)).collect() };
        let (ps, us) = (speeds(&p), speeds(&u));
        let exits = |v: &[Phase]| {
            let e: Vec<f64> = v.iter().filter_map(|x| Some(x.exits? as f64 / x.requests.max(1) as f64)).collect();
            (!e.is_empty()).then(|| median(e))
        };
        let ratio = if median(us.clone()) > 0.0 { median(ps.clone()) / median(us.clone()) } else { 0.0 };
        let _ = writeln!(
            out,
            "{:<6} {:>8}  {:>9.1} ±{:>3.0}% {:>9.1} ±{:>3.0}%  {:>6.3}  {:>11} {:>11}",
            op,
            size,
            median(ps.clone()),
            half_spread(&ps),
            median(us.clone()),
            half_spread(&us),
            ratio,
            cell(exits(&p), 2),
            cell(exits(&u), 2)
        );
    }
    out
}

/// The runs of one guest in both VMs: (protected, unprotected or ordinary).
pub type RunPair<'a> = (&'a [Vec<Phase>], &'a [Vec<Phase>]);

/// The project's performance targets, each judged from this run's figures: met or
/// not, with the figures it rests on. On the real pKVM `linux` is Linux's runs
/// (protected, ordinary), for the target against Linux's swiotlb.
pub fn targets(
    backend: Backend,
    protected: &[Vec<Phase>],
    unprotected: &[Vec<Phase>],
    linux: Option<RunPair<'_>>,
) -> String {
    let mut out = String::new();
    let phases = keys(protected);
    let mut judge = |what: &str, figures: Vec<(String, Option<f64>)>, ok: &dyn Fn(f64) -> bool, decimals: usize| {
        let met = !figures.is_empty() && figures.iter().all(|(_, v)| v.is_some_and(ok));
        let shown: Vec<String> = figures.iter().map(|(k, v)| format!("{k} {}", cell(*v, decimals))).collect();
        let _ = writeln!(out, "target {what}: {} ({})", if met { "met" } else { "NOT MET" }, shown.join(", "));
    };
    let each = |get: &dyn Fn(&str, u64) -> Option<f64>| -> Vec<(String, Option<f64>)> {
        phases.iter().map(|(op, size)| (format!("{op} {size}"), get(op, *size))).collect()
    };
    judge(
        "0 hypercalls per request, protected",
        each(&|op, size| per_request(protected, op, size, |x| x.hypercalls)),
        &|v| v == 0.0,
        2,
    );
    judge(
        "1 copy per data byte, protected",
        each(&|op, size| copies(protected, op, size, true)),
        &|v| (v - 1.0).abs() < 1e-4,
        4,
    );
    if backend == Backend::Pkvm {
        let ratio = |op: &str, size: u64| {
            let (p, u) = (median_ticks(protected, op, size)?, median_ticks(unprotected, op, size)?);
            (p > 0.0).then(|| u / p)
        };
        let at_64k: Vec<(String, Option<f64>)> =
            ["write", "read"].iter().map(|op| (format!("{op} 65536"), ratio(op, 65536))).collect();
        judge("protected at least 0.9 x ordinary at 64 KiB", at_64k, &|v| v >= 0.9, 3);
        if let Some((lp, _)) = linux {
            judge(
                "guest-lib's protected request at least as fast as Linux's, every size",
                each(&|op, size| Some(median_ticks(lp, op, size)? / median_ticks(protected, op, size)?)),
                &|v| v >= 1.0,
                3,
            );
        }
    }
    out
}

/// The markers a markdown document holds the bench's report between, for `backend`.
pub fn markers(backend: &str) -> (String, String) {
    (format!("<!-- pvmkit bench --backend {backend} -->"), format!("<!-- end of pvmkit bench --backend {backend} -->"))
}

/// `doc` with the text between `backend`'s markers replaced by `report` (fenced),
/// after a `stamp` line saying which run it is. The markers must be there, once each,
/// in order: the document says where the bench's tables go.
pub fn splice_markdown(doc: &str, backend: &str, stamp: &str, report: &str) -> Result<String, String> {
    let (begin, end) = markers(backend);
    let (Some(b), Some(e)) = (doc.find(&begin), doc.find(&end)) else {
        return Err(format!("the document has no '{begin}' … '{end}' markers"));
    };
    if e < b || doc.matches(&begin).count() != 1 || doc.matches(&end).count() != 1 {
        return Err(format!("the document's '{begin}' markers are out of order or repeated"));
    }
    let block = format!("{begin}\n{stamp}:\n\n```text\n{}\n```\n", report.trim_end());
    Ok(format!("{}{block}{}", &doc[..b], &doc[e..]))
}

#[cfg(test)]
mod tests;
