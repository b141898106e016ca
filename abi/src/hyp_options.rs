//! The options `pvmkit` passes to hyp on its command line (QEMU `-append`, read by hyp
//! from `/chosen/bootargs`): space-separated `key=value` words.
//!
//! | key | values | meaning |
//! |---|---|---|
//! | `mode` | `protected`, `unprotected` | whether the guest is a pVM with pKVM services |
//! | `abi` | `android`, `upstream` | which pKVM ABI form hyp offers (protected only) |
//! | `stats` | `on`, `off` (default) | whether hyp answers [`HYP_STATS`] |
//! | `short-counts` | `on`, `off` (default) | whether ranged calls stop after a random count (Android) |
//! | `access-platform` | `on` (default), `off` | whether a protected VM's virtio devices offer `VIRTIO_F_ACCESS_PLATFORM` (off: a negative control) |
//! | `inherited-guard` | `refuse` (default), `allow` | whether the payload may use MMIO granules only pvmfw registered (policy `guard-inherited-from-pvmfw`) |
//! | `nonce` | 16 hex digits | the run's secret that starts every line hyp writes ([`crate::exit_line`]) |
//!
//! ```
//! use pvmkit_abi::hyp_options::{AbiForm, HypOptions, VmMode};
//!
//! let options = HypOptions::parse("mode=protected abi=upstream").unwrap();
//! assert_eq!(options.mode, VmMode::Protected(AbiForm::Upstream));
//! assert!(HypOptions::parse("mode=fast").is_err());
//! ```

use core::fmt;

use crate::exit_line::Nonce;

/// Which pKVM ABI form hyp implements for a protected guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbiForm {
    /// The Android Common Kernel form (ranged calls, MMIO guard INFO/ENROLL/MAP/UNMAP).
    Android,
    /// The upstream Linux form (one granule per call, single MMIO_GUARD call).
    Upstream,
}

/// What kind of VM hyp runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmMode {
    /// A protected VM: pKVM services advertised, the rules enforced.
    Protected(AbiForm),
    /// An ordinary VM: no pKVM services, no enforcement; the baseline.
    Unprotected,
}

impl VmMode {
    /// The words `pvmkit` writes for this mode.
    pub const fn as_args(self) -> &'static str {
        match self {
            Self::Protected(AbiForm::Android) => "mode=protected abi=android",
            Self::Protected(AbiForm::Upstream) => "mode=protected abi=upstream",
            Self::Unprotected => "mode=unprotected",
        }
    }
}

impl fmt::Display for VmMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protected(AbiForm::Android) => write!(f, "protected (android ABI)"),
            Self::Protected(AbiForm::Upstream) => write!(f, "protected (upstream ABI)"),
            Self::Unprotected => write!(f, "unprotected"),
        }
    }
}

/// Parsed hyp options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypOptions {
    /// The VM's mode.
    pub mode: VmMode,
    /// Whether hyp answers [`HYP_STATS`] (for `pvmkit bench`; off by default so that
    /// the guest sees exactly the pKVM ABI).
    pub stats: bool,
    /// Whether ranged calls (Android's MEM_SHARE/UNSHARE, RGUARD) stop after a random
    /// number of granules, as the real hypervisor is free to: guests' loops get
    /// exercised.
    pub short_counts: bool,
    /// Whether a protected VM's virtio devices offer `VIRTIO_F_ACCESS_PLATFORM`, as the
    /// VMM of a pVM must (off only for the negative control: a Linux guest then hands
    /// its devices private memory).
    pub access_platform: bool,
    /// Whether the payload may use an MMIO granule that only pvmfw registered before the
    /// handover (off by default: hyp's policy `guard-inherited-from-pvmfw` refuses it).
    pub allow_inherited_guard: bool,
    /// The run's nonce, which tags every line hyp writes (none: lines tagged `[hyp]`,
    /// which `pvmkit` never takes for hyp's).
    pub nonce: Option<Nonce>,
}

/// pvmkit's own call, outside every pKVM and KVM function number (bit 15 of the
/// number set): x0 = 0, x1 = guest exits so far, x2 = of those, data aborts (MMIO),
/// x3 = of those, interrupts. With x1 = [`HYP_STATS_WFX`]: x1 = WFI/WFE exits.
/// Answered only with `stats=on`; NOT_SUPPORTED otherwise.
pub const HYP_STATS: u32 = 0xc600_8001;
/// `HYP_STATS`'s x1 asking for the count of WFI/WFE exits.
pub const HYP_STATS_WFX: u64 = 1;
/// `HYP_STATS`'s x1 asking for hyp's counted work: x1 = the instructions hyp retired
/// on the guest's behalf, without those spent waiting for devices (counted with the
/// PMU, so only under QEMU's `-icount`; NOT_SUPPORTED without a counter).
pub const HYP_STATS_WORK: u64 = 2;

/// Why the options were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionsError<'a> {
    /// A word that is not `key=value` with a known key.
    UnknownOption(&'a str),
    /// A known key with a value it does not take.
    BadValue(&'a str),
    /// `abi=` given for an unprotected VM.
    AbiWithoutProtection,
    /// The same key twice.
    Repeated(&'a str),
}

impl fmt::Display for OptionsError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownOption(w) => write!(f, "unknown option '{w}'"),
            Self::BadValue(w) => write!(f, "bad value in '{w}'"),
            Self::AbiWithoutProtection => write!(f, "abi= applies only to mode=protected"),
            Self::Repeated(k) => write!(f, "option '{k}' given twice"),
        }
    }
}

impl HypOptions {
    /// Parses the command line. No words means a protected VM with the Android ABI,
    /// the form Android devices ship.
    pub fn parse(cmdline: &str) -> Result<Self, OptionsError<'_>> {
        let mut protected = None;
        let mut abi = None;
        let mut stats = None;
        let mut short_counts = None;
        let mut access_platform = None;
        let mut allow_inherited_guard = None;
        let mut nonce = None;
        for word in cmdline.split_ascii_whitespace() {
            let (key, value) = word.split_once('=').ok_or(OptionsError::UnknownOption(word))?;
            match key {
                "mode" => {
                    if protected.is_some() {
                        return Err(OptionsError::Repeated(key));
                    }
                    protected = Some(match value {
                        "protected" => true,
                        "unprotected" => false,
                        _ => return Err(OptionsError::BadValue(word)),
                    });
                }
                "abi" => {
                    if abi.is_some() {
                        return Err(OptionsError::Repeated(key));
                    }
                    abi = Some(match value {
                        "android" => AbiForm::Android,
                        "upstream" => AbiForm::Upstream,
                        _ => return Err(OptionsError::BadValue(word)),
                    });
                }
                "stats" | "short-counts" | "access-platform" => {
                    let slot = match key {
                        "stats" => &mut stats,
                        "short-counts" => &mut short_counts,
                        _ => &mut access_platform,
                    };
                    if slot.is_some() {
                        return Err(OptionsError::Repeated(key));
                    }
                    *slot = Some(match value {
                        "on" => true,
                        "off" => false,
                        _ => return Err(OptionsError::BadValue(word)),
                    });
                }
                "inherited-guard" => {
                    if allow_inherited_guard.is_some() {
                        return Err(OptionsError::Repeated(key));
                    }
                    allow_inherited_guard = Some(match value {
                        "refuse" => false,
                        "allow" => true,
                        _ => return Err(OptionsError::BadValue(word)),
                    });
                }
                Nonce::OPTION => {
                    if nonce.is_some() {
                        return Err(OptionsError::Repeated(key));
                    }
                    nonce = Some(Nonce::parse(value).ok_or(OptionsError::BadValue(word))?);
                }
                _ => return Err(OptionsError::UnknownOption(word)),
            }
        }
        let mode = match (protected.unwrap_or(true), abi) {
            (true, abi) => VmMode::Protected(abi.unwrap_or(AbiForm::Android)),
            (false, None) => VmMode::Unprotected,
            (false, Some(_)) => return Err(OptionsError::AbiWithoutProtection),
        };
        Ok(Self {
            mode,
            stats: stats.unwrap_or(false),
            short_counts: short_counts.unwrap_or(false),
            access_platform: access_platform.unwrap_or(true),
            allow_inherited_guard: allow_inherited_guard.unwrap_or(false),
            nonce,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_mode_and_round_trips() {
        for mode in [VmMode::Protected(AbiForm::Android), VmMode::Protected(AbiForm::Upstream), VmMode::Unprotected] {
            let defaults = HypOptions {
                mode,
                stats: false,
                short_counts: false,
                access_platform: true,
                allow_inherited_guard: false,
                nonce: None,
            };
            assert_eq!(HypOptions::parse(mode.as_args()), Ok(defaults));
        }
        assert_eq!(HypOptions::parse("").unwrap().mode, VmMode::Protected(AbiForm::Android));
        assert!(HypOptions::parse("mode=unprotected stats=on").unwrap().stats);
        assert_eq!(HypOptions::parse("stats=yes"), Err(OptionsError::BadValue("stats=yes")));
        assert!(HypOptions::parse("abi=android short-counts=on").unwrap().short_counts);
        assert_eq!(HypOptions::parse("short-counts=on short-counts=off"), Err(OptionsError::Repeated("short-counts")));
        assert!(!HypOptions::parse("access-platform=off").unwrap().access_platform);
        assert!(HypOptions::parse("inherited-guard=allow").unwrap().allow_inherited_guard);
        assert!(!HypOptions::parse("inherited-guard=refuse").unwrap().allow_inherited_guard);
        assert_eq!(HypOptions::parse("inherited-guard=on"), Err(OptionsError::BadValue("inherited-guard=on")));
        assert_eq!(HypOptions::parse("access-platform=no"), Err(OptionsError::BadValue("access-platform=no")));
        assert_eq!(HypOptions::parse("nonce=00000000000000ff").unwrap().nonce, Some(Nonce(0xff)));
        assert_eq!(HypOptions::parse("nonce=ff"), Err(OptionsError::BadValue("nonce=ff")));
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        assert_eq!(HypOptions::parse("mode=fast"), Err(OptionsError::BadValue("mode=fast")));
        assert_eq!(HypOptions::parse("verbose"), Err(OptionsError::UnknownOption("verbose")));
        assert_eq!(HypOptions::parse("x=1"), Err(OptionsError::UnknownOption("x=1")));
        assert_eq!(HypOptions::parse("mode=unprotected abi=android"), Err(OptionsError::AbiWithoutProtection));
        assert_eq!(HypOptions::parse("abi=android abi=upstream"), Err(OptionsError::Repeated("abi")));
    }
}
