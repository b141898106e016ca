//! The differential conformance run: the same probe guest (test-guest's
//! `--scenario conformance`) on the real pKVM and on hyp's upstream profile, its
//! `probe NAME = RESULT` lines set side by side. A difference not listed in
//! [`pvmkit_abi::profile::INTENDED_DIFFERENCES`] with exactly these two answers fails the run.
//! Both are also held against the recording of the real release in the repository
//! (`abi/recordings/`, [`pvmkit_abi::profile::recording`]), which says which side changed:
//! the real pKVM, hyp, or the table (the last is a host test as well).

use std::collections::BTreeMap;

use pvmkit_abi::profile::recording::{self, Expected};
use pvmkit_abi::profile::teardown::Page;
use pvmkit_abi::profile::{Profile, INTENDED_DIFFERENCES};

/// The probes one run printed: name → result, in name order.
pub type Probes = BTreeMap<String, String>;

/// Reads the `probe NAME = RESULT` lines of a console (a line may carry text before
/// `probe`, e.g. the harness's case name).
pub fn parse(lines: &[String]) -> Probes {
    recording::probes(lines.iter().map(String::as_str)).map(|p| (p.name.to_string(), p.result.to_string())).collect()
}

/// The probes the host side answers (pvmkit's VMM, once the VM is gone), with why hyp
/// has none.
pub const HOST_SIDE: [(&str, &str); 2] = [(Page::Private.probe(), NO_HOST), (Page::Shared.probe(), NO_HOST)];
const NO_HOST: &str = "no host tears hyp's VM down and reads its memory";

/// `probes` without the ones `names`.
pub fn without(probes: &Probes, names: &[&str]) -> Probes {
    probes.iter().filter(|(name, _)| !names.contains(&name.as_str())).map(|(n, r)| (n.clone(), r.clone())).collect()
}

/// The teardown probes whose outcome `profile` leaves open: the release wipes the page
/// in some runs and not in others, so a change from the recording says nothing.
pub fn varying(profile: &Profile) -> Vec<&'static str> {
    [Page::Private, Page::Shared]
        .into_iter()
        .filter(|&page| profile.teardown.is_some_and(|t| t.expected(page).is_none()))
        .map(Page::probe)
        .collect()
}

/// A recording of a run's probes: `heading` as `#` comments, then each probe's call
/// line (if it had one) and result line, in the run's order.
pub fn recording(lines: &[String], heading: &str) -> String {
    let mut out: String = heading.lines().map(|l| format!("# {l}\n")).collect();
    for probe in recording::probes(lines.iter().map(String::as_str)) {
        if let Some(call) = probe.call {
            out += &format!("{}{} = {call}\n", recording::PROBE_CALL, probe.name);
        }
        out += &format!("{}{} = {}\n", recording::PROBE, probe.name, probe.result);
    }
    for (name, why) in recording::skipped(lines.iter().map(String::as_str)) {
        out += &format!("{}{name} = {why}\n", recording::PROBE_SKIPPED);
    }
    out
}

/// The probes a run skipped, with their reasons, one line each.
pub fn skipped(lines: &[String]) -> Vec<String> {
    recording::skipped(lines.iter().map(String::as_str)).map(|(name, why)| format!("{name}: {why}")).collect()
}

/// Where `live` departs from `recorded`: each probe whose answer changed, or that one
/// of them lacks (`expected_differences` are probes allowed to differ, with the value
/// `live` must give instead).
pub fn changed_since(recorded: &Probes, live: &Probes, expected: impl Fn(&str) -> Option<&'static str>) -> Vec<String> {
    let names: std::collections::BTreeSet<&String> = recorded.keys().chain(live.keys()).collect();
    let missing = "(missing)".to_string();
    names
        .into_iter()
        .filter_map(|name| {
            let (was, is) = (recorded.get(name).unwrap_or(&missing), live.get(name).unwrap_or(&missing));
            let want = expected(name).map(str::to_string).unwrap_or_else(|| was.clone());
            (is != &want).then(|| format!("{name}: recorded {was}, now {is}"))
        })
        .collect()
}

/// Where `profile` departs from a recording: each recorded call whose recorded answer
/// the table does not give, then each other claim (ID fields, PMU and debug registers,
/// teardown) the recording does not bear out.
pub fn table_departures(profile: &Profile, recorded_text: &str) -> Vec<String> {
    let calls = recording::probes(recorded_text.lines()).filter_map(|p| {
        let expected = Expected::of(profile, &p.call?);
        (!expected.matches(p.result)).then(|| format!("{}: recorded {}, the table says {expected}", p.name, p.result))
    });
    calls.chain(recording::claims_departing(profile, recorded_text).map(|d| d.to_string())).collect()
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
            } else if let Some(d) =
                INTENDED_DIFFERENCES.iter().find(|d| d.probe == name && d.release == r && d.hyp == h)
            {
                Row::Intended { name: name.clone(), real: r, hyp: h, why: d.why }
            } else {
                Row::Differs { name: name.clone(), real: r, hyp: h }
            }
        })
        .collect()
}

/// The side-by-side report; the second value says whether it passes: no unlisted
/// difference, and exactly `expected` probes (the recording's count) compared.
pub fn report(rows: &[Row], expected: usize) -> (String, bool) {
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
    let count = same + intended + differs;
    if count != expected {
        out += &format!("{count} probes compared, not the {expected} the recording holds\n");
    }
    (out, differs == 0 && count == expected && expected > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    #[test]
    fn the_vmms_teardown_probes_are_left_out_of_hyps_comparison_and_the_varying_one_out_of_change() {
        use pvmkit_abi::profile::{LINUX_7_3_ORDINARY, LINUX_7_3_PROTECTED};
        let probes = parse(&lines(
            "[vmm] probe teardown-private = kept\n[vmm] probe teardown-shared = kept\nprobe reg-pmcr-el0 = undefined esr=0x2000000\n",
        ));
        let names = HOST_SIDE.map(|(name, _)| name);
        assert_eq!(without(&probes, &names).keys().collect::<Vec<_>>(), ["reg-pmcr-el0"]);
        // Measured: a protected VM's private page is wiped in some runs only; an
        // ordinary VM's never.
        assert_eq!(varying(&LINUX_7_3_PROTECTED), ["teardown-private"]);
        assert!(varying(&LINUX_7_3_ORDINARY).is_empty());
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
        let release = INTENDED_DIFFERENCES[0].release;
        let hyp = INTENDED_DIFFERENCES[0].hyp;
        let real = parse(&lines(&format!("probe a = 1\nprobe trng-version = {release}\nprobe b = 2")));
        let same = real.clone();
        assert!(report(&compare(&real, &same), 3).1);
        assert!(!report(&compare(&real, &same), 4).1, "the pass bar is the exact count");
        let listed = parse(&lines(&format!("probe a = 1\nprobe trng-version = {hyp}\nprobe b = 2")));
        let rows = compare(&real, &listed);
        assert!(matches!(rows[2], Row::Intended { .. }), "{rows:?}");
        assert!(report(&rows, 3).1);
        // A listed probe with another value than pinned is a difference like any.
        let other = parse(&lines("probe a = 1\nprobe trng-version = x0=0x1\nprobe b = 2"));
        assert!(!report(&compare(&real, &other), 3).1);
        let wrong = parse(&lines(&format!("probe a = 1\nprobe trng-version = {release}\nprobe b = 3")));
        let (text, ok) = report(&compare(&real, &wrong), 3);
        assert!(!ok);
        assert!(text.contains("! b"), "{text}");
        let short = parse(&lines(&format!("probe a = 1\nprobe trng-version = {release}")));
        assert!(!report(&compare(&real, &short), 3).1, "a missing probe is a difference");
        assert!(!report(&compare(&Probes::new(), &Probes::new()), 0).1, "no probes at all is no pass");
    }

    #[test]
    fn a_recording_holds_calls_and_results_and_says_what_changed() {
        let console = lines(
            "test conformance_matches_profile ... probe-call m = hvc 0xc6000002 0x0 0x0 0x0 private\n\
             probe m = x0=0x1000 x1=0x0 x2=0x0 x3=0x0\nprobe mmio = value 0x1\nok",
        );
        let text = recording(&console, "Linux 7.3.4\nprotected");
        assert_eq!(
            text,
            "# Linux 7.3.4\n# protected\nprobe-call m = hvc 0xc6000002 0x0 0x0 0x0 private\n\
             probe m = x0=0x1000 x1=0x0 x2=0x0 x3=0x0\nprobe mmio = value 0x1\n"
        );
        let recorded = parse(&lines(&text));
        assert_eq!(recorded, parse(&console));
        assert!(changed_since(&recorded, &parse(&console), |_| None).is_empty());
        let mut live = recorded.clone();
        live.insert("mmio".into(), "abort".into());
        assert_eq!(changed_since(&recorded, &live, |_| None), ["mmio: recorded value 0x1, now abort"]);
        assert!(changed_since(&recorded, &live, |n| (n == "mmio").then_some("abort")).is_empty());
        // The table against the real recording: nothing departs; a recorded answer
        // altered, or a register probe's, departs alone.
        let real = pvmkit_abi::profile::recording::recorded::PROTECTED;
        let table = &pvmkit_abi::profile::LINUX_7_3_PROTECTED;
        assert!(table_departures(table, real).is_empty(), "{:?}", table_departures(table, real));
        let wrong = real.replace("probe meminfo = x0=0x1000", "probe meminfo = x0=0x10000");
        assert_eq!(
            table_departures(table, &wrong),
            ["meminfo: recorded x0=0x10000 x1=0x0 x2=0x0 x3=0x0, the table says x0=0x1000 x1=0x0 x2=0x0 x3=0x0"]
        );
        let wrong =
            real.replace("probe reg-dbgbvr1-el1 = undefined esr=0x2000000", "probe reg-dbgbvr1-el1 = value 0x0");
        assert_eq!(
            table_departures(table, &wrong),
            ["reg-dbgbvr1-el1: recorded value 0x0, the table says undefined esr=0x2000000"]
        );
    }
}
