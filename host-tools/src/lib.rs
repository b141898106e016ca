//! The parts of `pvmkit`, each testable on its own.
//!
//! - [`mod@bench`]: `pvmkit bench`'s parsing and table.
//! - [`devices`]: the virtio devices a guest gets (disk, entropy, console FIFOs).
//! - [`firmware`]: builds the firmware crates and turns ELF files into flat images.
//! - [`guest_dt`]: the device tree `pvmkit`, as the host VMM, writes for the guest.
//! - [`pack`]: the bundle hyp reads.
//! - [`signing`]: keys, signed payloads, the development key, the per-VM secret.
//! - [`qemu`]: finding, installing and running QEMU.
//! - [`toolchain`]: installing the firmware's Rust targets when they are missing.
//! - [`verdict`]: judging a run from its console.

pub mod bench;
pub mod devices;
pub mod firmware;
pub mod guest_dt;
pub mod pack;
pub mod qemu;
pub mod signing;
pub mod toolchain;
pub mod verdict;

use std::fmt;
use std::path::PathBuf;

use abi::hyp_options::{AbiForm, VmMode};

/// How a guest runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Under hyp, in one of its VM modes.
    Hyp(VmMode),
    /// On plain QEMU at EL1, no hypervisor at all.
    Bare,
}

impl Mode {
    /// Every mode, in the order `pvmkit test` runs them.
    pub const ALL: [Mode; 4] = [
        Mode::Hyp(VmMode::Protected(AbiForm::Android)),
        Mode::Hyp(VmMode::Protected(AbiForm::Upstream)),
        Mode::Hyp(VmMode::Unprotected),
        Mode::Bare,
    ];

    /// Parses `--mode` and `--abi`.
    pub fn parse(mode: &str, abi: Option<&str>) -> Result<Self, String> {
        let abi_form = match abi {
            None | Some("android") => AbiForm::Android,
            Some("upstream") => AbiForm::Upstream,
            Some(other) => return Err(format!("unknown --abi '{other}' (android or upstream)")),
        };
        match (mode, abi) {
            ("protected", _) => Ok(Mode::Hyp(VmMode::Protected(abi_form))),
            ("unprotected", None) => Ok(Mode::Hyp(VmMode::Unprotected)),
            ("bare", None) => Ok(Mode::Bare),
            ("unprotected" | "bare", Some(_)) => Err(format!("--abi applies only to --mode protected, not {mode}")),
            (other, _) => Err(format!("unknown --mode '{other}' (protected, unprotected or bare)")),
        }
    }

    /// The `pvmkit.*` words test-guest reads from its command line.
    pub fn guest_args(self) -> &'static str {
        match self {
            Mode::Hyp(VmMode::Protected(AbiForm::Android)) => "pvmkit.mode=protected pvmkit.abi=android",
            Mode::Hyp(VmMode::Protected(AbiForm::Upstream)) => "pvmkit.mode=protected pvmkit.abi=upstream",
            Mode::Hyp(VmMode::Unprotected) => "pvmkit.mode=unprotected",
            Mode::Bare => "pvmkit.mode=bare",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Hyp(vm) => write!(f, "{vm}"),
            Mode::Bare => write!(f, "bare (no hypervisor)"),
        }
    }
}

/// Where the repository and pvmkit's outputs are.
#[derive(Clone, Debug)]
pub struct Workspace {
    /// The repository root (the workspace's `Cargo.toml`).
    pub root: PathBuf,
}

impl Workspace {
    /// The workspace this `pvmkit` was built from.
    pub fn locate() -> Self {
        let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        Self { root: here.parent().map(PathBuf::from).unwrap_or(here) }
    }

    /// Firmware builds go to their own target directory, so that a `pvmkit` started by
    /// `cargo test` or `cargo run` never waits on the lock of the cargo that started it.
    pub fn firmware_target_dir(&self) -> PathBuf {
        self.root.join("target").join("firmware")
    }

    /// pvmkit's own outputs.
    pub fn out_dir(&self) -> PathBuf {
        self.root.join("target").join("pvmkit")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_refuse() {
        assert_eq!(Mode::parse("protected", None), Ok(Mode::ALL[0]));
        assert_eq!(Mode::parse("protected", Some("upstream")), Ok(Mode::ALL[1]));
        assert_eq!(Mode::parse("unprotected", None), Ok(Mode::ALL[2]));
        assert_eq!(Mode::parse("bare", None), Ok(Mode::Bare));
        assert!(Mode::parse("bare", Some("android")).unwrap_err().contains("only to --mode protected"));
        assert!(Mode::parse("fast", None).unwrap_err().contains("unknown --mode"));
        assert!(Mode::parse("protected", Some("x")).unwrap_err().contains("unknown --abi"));
    }
}
