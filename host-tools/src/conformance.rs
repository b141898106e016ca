//! The differential conformance run: the same probe guest (test-guest's
//! `--scenario conformance`) on the real pKVM and on hyp's upstream profile, its
//! `probe NAME = RESULT` lines set side by side. A difference not listed in
//! [`abi::profile::INTENDED_DIFFERENCES`] (with its reason) fails the run.

use std::collections::BTreeMap;

use abi::profile::INTENDED_DIFFERENCES;

/// The probes one run printed: name → result, in name order.
pub type Probes = BTreeMap<String, String>;

/// Reads the `probe NAME = RESULT` lines of a console (a line may carry text before
/// `probe`, e.g. the harness's case name).
pub fn parse(lines: &[String]) -> Probes {
    lines
        .iter()
        .filter_map(|line| {
            let at = line.find("probe ")?;
            let (name, result) = line[at + "probe ".len()..].split_once(" = ")?;
            Some((name.trim().to_string(), result.trim().to_string()))
        })
        .collect()
}

/// How one probe compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Row {
    /// Both gave this.
    Same(String, String),
    /// They differ, and the difference is listed with this reason.
    Intended { name: String, real: String, hyp: String, why: &'static str },
    /// They differ and nothing says why (a missing result shows as "(missing)").
    Differs { name: String, real: String, hyp: String },
}

/// Sets the real hypervisor's probes beside hyp's.
pub fn compare(real: &Probes, hyp: &Probes) -> Vec<Row> {
    let names: std::collections::BTreeSet<&String> = real.keys().chain(hyp.keys()).collect();
    let missing = || "(missing)".to_string();
    names
        .into_iter()
        .map(|name| {
            let r = real.get(name).cloned().unwrap_or_else(missing);
            let h = hyp.get(name).cloned().unwrap_or_else(missing);
            if r == h {
                Row::Same(name.clone(), r)
            } else if let Some(d) = INTENDED_DIFFERENCES.iter().find(|d| d.probe == name) {
                Row::Intended { name: name.clone(), real: r, hyp: h, why: d.why }
            } else {
                Row::Differs { name: name.clone(), real: r, hyp: h }
            }
        })
        .collect()
}

/// The side-by-side report; the second value says whether it passes (no unlisted
/// difference, and the runs printed probes at all).
pub fn report(rows: &[Row]) -> (String, bool) {
    let mut out = String::new();
    let (mut same, mut intended, mut differs) = (0, 0, 0);
    for row in rows {
        match row {
            Row::Same(name, result) => {
                same += 1;
                out += &format!("  {name:<36} {result}\n");
            }
            Row::Intended { name, real, hyp, why } => {
                intended += 1;
                out += &format!("~ {name:<36} real: {real}\n  {:<36} hyp:  {hyp}\n  {:<36} intended: {why}\n", "", "");
            }
            Row::Differs { name, real, hyp } => {
                differs += 1;
                out += &format!("! {name:<36} real: {real}\n  {:<36} hyp:  {hyp}\n", "");
            }
        }
    }
    out += &format!("{same} probes agree, {intended} differ as listed, {differs} differ unexplained\n");
    (out, differs == 0 && same > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    #[test]
    fn parses_probe_lines_anywhere_in_a_line() {
        let probes = parse(&lines(
            "test-guest: hello\ntest conformance ... probe uid-hvc = x0=0x1 x1=0x0\nprobe meminfo = x0=0x1000\nnoise",
        ));
        assert_eq!(probes.len(), 2);
        assert_eq!(probes["uid-hvc"], "x0=0x1 x1=0x0");
        assert_eq!(probes["meminfo"], "x0=0x1000");
    }

    #[test]
    fn an_unlisted_difference_fails_and_a_listed_one_does_not() {
        let real = parse(&lines("probe a = 1\nprobe trng-version = x0=0x10000\nprobe b = 2"));
        let same = parse(&lines("probe a = 1\nprobe trng-version = x0=0x10000\nprobe b = 2"));
        assert!(report(&compare(&real, &same)).1);
        let listed = parse(&lines("probe a = 1\nprobe trng-version = x0=-1\nprobe b = 2"));
        let rows = compare(&real, &listed);
        assert!(matches!(rows[2], Row::Intended { .. }), "{rows:?}");
        assert!(report(&rows).1);
        let wrong = parse(&lines("probe a = 1\nprobe trng-version = x0=0x10000\nprobe b = 3"));
        let (text, ok) = report(&compare(&real, &wrong));
        assert!(!ok);
        assert!(text.contains("! b"), "{text}");
        let short = parse(&lines("probe a = 1\nprobe trng-version = x0=0x10000"));
        assert!(!report(&compare(&real, &short)).1, "a missing probe is a difference");
        assert!(!report(&compare(&Probes::new(), &Probes::new())).1, "no probes at all is no pass");
    }
}
