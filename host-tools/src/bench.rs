//! `pvmkit bench`: the cost of protection on virtio-blk. test-guest's `bench` scenario
//! runs in a protected and an unprotected VM under `-icount shift=0,sleep=off` (one
//! virtual nanosecond per guest instruction, so the guest's counter measures work, not
//! the host's load), several times each; this module reads its `bench …` lines and
//! makes the table.

use std::collections::BTreeMap;
use std::fmt::Write;

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
    /// Hypercalls the guest made during the phase.
    pub hypercalls: u64,
    /// Bytes copied through bounce buffers.
    pub bounced: u64,
    /// Guest exits hyp counted (None without hyp's counter).
    pub exits: Option<u64>,
}

/// The counter frequency the guest reported, if any.
pub fn parse_frequency(lines: &[String]) -> Option<u64> {
    lines.iter().find_map(|l| l.trim().strip_prefix("bench frequency=")?.parse().ok())
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
        hypercalls: num("hypercalls")?,
        bounced: num("bounced")?,
        exits: num("exits"),
    })
}

/// Every phase in a run's console lines.
pub fn parse_run(lines: &[String]) -> Vec<Phase> {
    lines.iter().filter_map(|l| parse_phase(l)).collect()
}

/// The per-phase request header (16 bytes) and status (1 byte) virtio-blk bounces too.
pub const BLK_REQUEST_OVERHEAD: u64 = 17;

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

fn spread(v: &[f64]) -> f64 {
    let m = median(v.to_vec());
    let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    if m == 0.0 || v.is_empty() {
        0.0
    } else {
        100.0 * (hi - lo) / m
    }
}

/// The table: one row per (op, size), protected against unprotected, medians over the
/// runs and the spread (max − min, % of the median) of each throughput.
pub fn table(protected: &[Vec<Phase>], unprotected: &[Vec<Phase>], frequency: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<6} {:>6}  {:>14} {:>14} {:>6}  {:>10} {:>12} {:>12}  {:>12} {:>12}",
        "op",
        "size",
        "prot MiB/s",
        "unprot MiB/s",
        "ratio",
        "hcalls/req",
        "exits/req P",
        "exits/req U",
        "copied/byte",
        "data copies"
    );
    let keys: Vec<(String, u64)> =
        protected.first().map(|r| r.iter().map(|p| (p.op.clone(), p.size)).collect()).unwrap_or_default();
    for (op, size) in keys {
        let pick = |runs: &[Vec<Phase>]| -> Vec<Phase> {
            runs.iter().filter_map(|r| r.iter().find(|p| p.op == op && p.size == size).cloned()).collect()
        };
        let (p, u) = (pick(protected), pick(unprotected));
        let (pt, ut): (Vec<f64>, Vec<f64>) =
            (p.iter().map(|x| mib_per_s(x, frequency)).collect(), u.iter().map(|x| mib_per_s(x, frequency)).collect());
        let per_req = |v: &[Phase], f: &dyn Fn(&Phase) -> Option<u64>| {
            median(v.iter().filter_map(|x| Some(f(x)? as f64 / x.requests.max(1) as f64)).collect())
        };
        let hcalls = per_req(&p, &|x| Some(x.hypercalls));
        let exits_p = per_req(&p, &|x| x.exits);
        let exits_u = per_req(&u, &|x| x.exits);
        let copied = median(p.iter().map(|x| x.bounced as f64 / x.bytes.max(1) as f64).collect());
        // The same without each request's 16-byte header and 1-byte status.
        let data = median(
            p.iter()
                .map(|x| x.bounced.saturating_sub(BLK_REQUEST_OVERHEAD * x.requests) as f64 / x.bytes.max(1) as f64)
                .collect(),
        );
        let ratio = if median(ut.clone()) > 0.0 { median(pt.clone()) / median(ut.clone()) } else { 0.0 };
        let _ = writeln!(
            out,
            "{:<6} {:>6}  {:>8.1} ±{:>3.0}% {:>8.1} ±{:>3.0}% {:>6.3}  {:>10.2} {:>12.1} {:>12.1}  {:>12.4} {:>12.4}",
            op,
            size,
            median(pt.clone()),
            spread(&pt) / 2.0,
            median(ut.clone()),
            spread(&ut) / 2.0,
            ratio,
            hcalls,
            exits_p,
            exits_u,
            copied,
            data
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(op: &str, size: u64, ticks: u64, exits: Option<u64>) -> Phase {
        Phase {
            op: op.into(),
            size,
            requests: 4,
            bytes: 4 * size,
            ticks,
            hypercalls: 0,
            bounced: 4 * (size + 17),
            exits,
        }
    }

    #[test]
    fn parses_the_guest_lines() {
        let line =
            "bench op=write size=4096 requests=1024 bytes=4194304 ticks=625000 hypercalls=0 bounced=4211712 exits=3072";
        assert_eq!(
            parse_phase(line),
            Some(Phase {
                op: "write".into(),
                size: 4096,
                requests: 1024,
                bytes: 4194304,
                ticks: 625000,
                hypercalls: 0,
                bounced: 4211712,
                exits: Some(3072)
            })
        );
        assert_eq!(
            parse_phase("bench op=read size=4096 requests=1 bytes=1 ticks=1 hypercalls=0 bounced=0 exits=n/a")
                .unwrap()
                .exits,
            None
        );
        assert_eq!(parse_phase("bench op=read size=x"), None);
        assert_eq!(parse_phase("test bench ... ok"), None);
        assert_eq!(parse_frequency(&["bench frequency=62500000".to_string()]), Some(62_500_000));
    }

    #[test]
    fn the_table_compares_medians() {
        // 4 requests of 64 KiB = 256 KiB in 1/4 s at 1 MHz: 1 MiB/s; unprotected twice as fast.
        let p = vec![vec![phase("read", 65536, 250_000, Some(12))]; 3];
        let u = vec![vec![phase("read", 65536, 125_000, Some(8))]; 3];
        assert!((mib_per_s(&p[0][0], 1_000_000) - 1.0).abs() < 1e-9);
        let t = table(&p, &u, 1_000_000);
        let row = t.lines().nth(1).unwrap();
        assert!(row.contains("0.500"), "{t}");
        assert!(row.contains("3.0") && row.contains("2.0"), "exits per request: {t}");
        assert!(row.contains("1.0003"), "copied per byte: {t}");
        assert!(row.ends_with("1.0000"), "data copies per data byte: {t}");
    }
}
