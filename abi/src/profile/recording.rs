//! Recorded reality: what the real hypervisor answered the conformance probes, kept in
//! the repository (`abi/recordings/`, written by `pvmkit conformance --record`), so
//! that a table can be checked against the release itself without booting anything.
//!
//! test-guest's conformance scenario prints, for every call it probes, two lines:
//!
//! ```text
//! probe-call share-private = hvc 0xc6000003 0x80412000 0x0 0x0 private
//! probe share-private = x0=0x0 x1=0x0 x2=0x0 x3=0x0
//! ```
//!
//! the call as made (conduit, function, x1–x3, and the state of the pages it names as
//! the guest knows it), then what came back. A recording is those lines of one run on
//! the real hypervisor, with `#` comments saying where and when it was made. [`Expected`]
//! is what a table says a recorded call answers, in the probe line's own terms.
//!
//! ```
//! use pvmkit_abi::profile::recording::{Expected, ProbeCall};
//! use pvmkit_abi::profile::{Conduit, Pages, LINUX_7_3_PROTECTED};
//!
//! let call = ProbeCall::parse("hvc 0xc6000002 0x0 0x0 0x0 private").unwrap();
//! assert_eq!((call.conduit, call.function, call.pages), (Conduit::Hvc, 0xc600_0002, Pages::Private));
//! let expected = Expected::of(&LINUX_7_3_PROTECTED, &call);
//! assert!(expected.matches("x0=0x1000 x1=0x0 x2=0x0 x3=0x0"), "MEMINFO: 4 KiB granules");
//! assert!(!expected.matches("x0=0x10000 x1=0x0 x2=0x0 x3=0x0"));
//! ```

use core::fmt;

use super::{Answer, Call, Conduit, Pages, Profile, VmFacts};

/// The start of a probe's result line.
pub const PROBE: &str = "probe ";
/// The start of a probe's call line.
pub const PROBE_CALL: &str = "probe-call ";
/// The start of the line of a probe not run here, with the reason.
pub const PROBE_SKIPPED: &str = "probe-skipped ";

/// One probed call, as test-guest made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeCall {
    /// The conduit.
    pub conduit: Conduit,
    /// w0.
    pub function: u32,
    /// x1–x3.
    pub args: [u64; 3],
    /// The state of the pages x1 names, as the guest knew it.
    pub pages: Pages,
}

fn pages_word(pages: Pages) -> &'static str {
    match pages {
        Pages::Private => "private",
        Pages::Shared => "shared",
        Pages::Mixed => "mixed",
        Pages::Outside => "outside",
    }
}

fn hex(word: &str) -> Option<u64> {
    u64::from_str_radix(word.strip_prefix("0x")?, 16).ok()
}

impl ProbeCall {
    /// Reads `hvc 0xFUNCTION 0xX1 0xX2 0xX3 PAGES`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut words = text.split_whitespace();
        let conduit = match words.next()? {
            "hvc" => Conduit::Hvc,
            "smc" => Conduit::Smc,
            _ => return None,
        };
        let function = u32::try_from(hex(words.next()?)?).ok()?;
        let args = [hex(words.next()?)?, hex(words.next()?)?, hex(words.next()?)?];
        let pages = match words.next()? {
            "private" => Pages::Private,
            "shared" => Pages::Shared,
            "mixed" => Pages::Mixed,
            "outside" => Pages::Outside,
            _ => return None,
        };
        words.next().is_none().then_some(Self { conduit, function, args, pages })
    }
}

impl fmt::Display for ProbeCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let conduit = if self.conduit == Conduit::Hvc { "hvc" } else { "smc" };
        let [x1, x2, x3] = self.args;
        write!(f, "{conduit} {:#x} {x1:#x} {x2:#x} {x3:#x} {}", self.function, pages_word(self.pages))
    }
}

/// x0–x3 as a probe line shows them: `x0=0x0 x1=0x0 x2=0x0 x3=0x0`.
pub struct ShownRegs(pub [u64; 4]);

impl fmt::Display for ShownRegs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [x0, x1, x2, x3] = self.0;
        write!(f, "x0={x0:#x} x1={x1:#x} x2={x2:#x} x3={x3:#x}")
    }
}

/// Reads [`ShownRegs`] back.
pub fn parse_regs(text: &str) -> Option<[u64; 4]> {
    let mut regs = [0; 4];
    let mut words = text.split_whitespace();
    for (i, reg) in regs.iter_mut().enumerate() {
        let (name, value) = words.next()?.split_once('=')?;
        if name.strip_prefix('x')?.parse::<usize>().ok()? != i {
            return None;
        }
        *reg = hex(value)?;
    }
    words.next().is_none().then_some(regs)
}

/// What the guest knew of the pages, as a table's facts.
struct Known(Pages);

impl VmFacts for Known {
    fn pages(&self, _ipa: u64, _count: u64) -> Pages {
        self.0
    }
    fn any_ram(&self, _ipa: u64, _count: u64) -> bool {
        self.0 != Pages::Outside
    }
    fn enrolled(&self) -> bool {
        true
    }
}

/// What a table says a probed call answers, in the probe line's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// These registers (`x0=… x1=… x2=… x3=…`).
    Regs([u64; 4]),
    /// The time (KVM PTP): the probe shows `answered`.
    Time,
    /// An external abort at the call, FAR 0: the probe shows `abort … far=0x0 …`.
    AbortAtCall,
    /// The VM would end (power-off, reset): never a probe's answer.
    Ends,
}

impl Expected {
    /// The answer of `profile` to `call`, which walks all the granules it names.
    pub fn of(profile: &Profile, call: &ProbeCall) -> Self {
        let c = Call { conduit: call.conduit, function: call.function, args: call.args };
        let walk = profile.walk(&c);
        let answer = profile.answer(&c, walk, &Known(call.pages)).answer;
        match (answer, answer.registers(call.args, walk)) {
            (_, Some(regs)) => Self::Regs(regs),
            (Answer::Time, None) => Self::Time,
            (Answer::ExternalAbortAtCall, None) => Self::AbortAtCall,
            _ => Self::Ends,
        }
    }

    /// Whether a probe line's result `shown` is this answer.
    pub fn matches(&self, shown: &str) -> bool {
        match self {
            Self::Regs(regs) => parse_regs(shown) == Some(*regs),
            Self::Time => shown == "answered",
            Self::AbortAtCall => shown.starts_with("abort ") && shown.split_whitespace().any(|w| w == "far=0x0"),
            Self::Ends => false,
        }
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Regs(regs) => write!(f, "{}", ShownRegs(*regs)),
            Self::Time => f.write_str("answered"),
            Self::AbortAtCall => f.write_str("abort far=0x0 at the instruction"),
            Self::Ends => f.write_str("(the VM ends)"),
        }
    }
}

/// A recorded probe: its name, what came back, and the call when it was one (MMIO
/// probes have none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recorded<'a> {
    /// The probe's name.
    pub name: &'a str,
    /// What the hypervisor answered, as the probe line shows it.
    pub result: &'a str,
    /// The call.
    pub call: Option<ProbeCall>,
}

/// The `NAME = REST` of a line starting (anywhere) with `prefix`.
fn split<'a>(line: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let at = line.find(prefix)?;
    // `probe ` must not match inside `probe-call ` or `probe-skipped `.
    if prefix == PROBE && (line[at..].starts_with(PROBE_CALL) || line[at..].starts_with(PROBE_SKIPPED)) {
        return None;
    }
    let (name, rest) = line[at + prefix.len()..].split_once(" = ")?;
    Some((name.trim(), rest.trim()))
}

/// The probes of a recording (or of a console's lines), in their order: each result
/// line with the call line of the same name, if one came before it.
pub fn probes<'a>(lines: impl Iterator<Item = &'a str> + Clone) -> impl Iterator<Item = Recorded<'a>> {
    let calls = lines.clone();
    lines.filter(|l| !l.trim_start().starts_with('#')).filter_map(split_probe).map(move |(name, result)| {
        let call = calls.clone().filter_map(|l| split(l, PROBE_CALL)).find(|(n, _)| *n == name);
        Recorded { name, result, call: call.and_then(|(_, spec)| ProbeCall::parse(spec)) }
    })
}

fn split_probe(line: &str) -> Option<(&str, &str)> {
    split(line, PROBE)
}

/// The probes a run skipped, each with its reason.
pub fn skipped<'a>(lines: impl Iterator<Item = &'a str>) -> impl Iterator<Item = (&'a str, &'a str)> {
    lines.filter(|l| !l.trim_start().starts_with('#')).filter_map(|l| split(l, PROBE_SKIPPED))
}

/// A claim of a profile beyond its calls: an ID field's value, a PMU or debug
/// register probe's outcome ([`super::debug_pmu`]), a teardown probe's
/// ([`super::teardown`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// `value 0xN`.
    Value(u64),
    /// A register probe's outcome.
    Register(super::debug_pmu::Shown),
    /// A teardown probe's outcome.
    Teardown(super::teardown::Found),
}

impl Claim {
    /// Whether a probe line's result `shown` bears the claim out.
    pub fn matches(&self, shown: &str) -> bool {
        FmtEq(shown).is(self)
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Value(v) => write!(f, "value {v:#x}"),
            Self::Register(s) => write!(f, "{s}"),
            Self::Teardown(t) => write!(f, "{t}"),
        }
    }
}

/// A probe line's result compared with a `Display` value, without allocating.
struct FmtEq<'a>(&'a str);

impl FmtEq<'_> {
    fn is(&self, value: &impl fmt::Display) -> bool {
        struct Cmp<'a> {
            rest: &'a str,
            same: bool,
        }
        impl fmt::Write for Cmp<'_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                match self.rest.strip_prefix(s) {
                    Some(rest) => self.rest = rest,
                    None => self.same = false,
                }
                Ok(())
            }
        }
        let mut cmp = Cmp { rest: self.0, same: true };
        let _ = fmt::write(&mut cmp, format_args!("{value}"));
        cmp.same && cmp.rest.is_empty()
    }
}

/// One claim a recording does not bear out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Departure<'a> {
    /// The probe.
    pub probe: &'static str,
    /// What the recording holds (`None`: the probe is not in it).
    pub recorded: Option<&'a str>,
    /// What the profile claims.
    pub claim: Claim,
}

impl fmt::Display for Departure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: recorded {}, the table says {}", self.probe, self.recorded.unwrap_or("(missing)"), self.claim)
    }
}

/// Every claim `profile` makes beyond its calls: the ID fields, the PMU and debug
/// register probes, the teardown probes. A probe the profile makes no claim on is
/// left out: a register read as the CPU has it (its value, or even whether the CPU
/// implements it, is the CPU's), a page the release does not wipe reliably.
pub fn claims(profile: &Profile) -> impl Iterator<Item = (&'static str, Claim)> + '_ {
    use super::debug_pmu::PROBES;
    use super::teardown::Page;
    let fields = profile.id_fields.iter().map(|&(name, value)| (name, Claim::Value(value)));
    let registers = profile
        .register_access
        .into_iter()
        .flat_map(|rules| PROBES.iter().filter_map(move |p| Some((p.probe, Claim::Register(rules.expected(p)?)))));
    let teardown = profile.teardown.into_iter().flat_map(|t| {
        [Page::Private, Page::Shared]
            .into_iter()
            .filter_map(move |page| Some((page.probe(), Claim::Teardown(t.expected(page)?))))
    });
    fields.chain(registers).chain(teardown)
}

/// Where `profile`'s [`claims`] depart from a recording.
pub fn claims_departing<'a>(profile: &'a Profile, recording: &'a str) -> impl Iterator<Item = Departure<'a>> + 'a {
    claims(profile).filter_map(move |(probe, claim)| {
        let recorded = probes(recording.lines()).find(|p| p.name == probe).map(|p| p.result);
        (!recorded.is_some_and(|r| claim.matches(r))).then_some(Departure { probe, recorded, claim })
    })
}

/// The recordings in the repository (`abi/recordings/`), each a run of test-guest's
/// conformance probes on Debian's Linux 7.3.4 under QEMU with `kvm-arm.mode=protected`.
pub mod recorded {
    /// A protected VM.
    pub const PROTECTED: &str = include_str!("../../recordings/linux-7.3.4-protected.txt");
    /// An ordinary VM on the same host.
    pub const ORDINARY: &str = include_str!("../../recordings/linux-7.3.4-ordinary.txt");
    /// A protected VM of two vCPUs: the vCPU power probes only
    /// ([`crate::profile::vcpu_power`]).
    pub const SMP: &str = include_str!("../../recordings/linux-7.3.4-smp.txt");
}

#[cfg(test)]
mod tests;
