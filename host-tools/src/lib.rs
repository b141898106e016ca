//! The parts of `pvmkit`, each testable on its own.
//!
//! - [`mod@bench`]: `pvmkit bench`'s parsing and table.
//! - [`devices`]: the virtio devices a guest gets (disk, entropy, console FIFOs).
//! - [`dice`]: DICE on the host: the device's root handover, and verifying a chain.
//! - [`firmware`]: builds the firmware crates and turns ELF files into flat images.
//! - [`guest_dt`]: the device tree `pvmkit`, as the host VMM, writes for the guest.
//! - [`initramfs`]: the pKVM host's initramfs (the VMM as `/init`).
//! - [`kernel`]: the pKVM host's kernel, fetched from Debian and cached.
//! - [`pack`]: the bundle hyp (and the VMM) reads.
//! - [`payload`]: payloads as guests ship them: ELF executables and arm64 Images.
//! - [`pkvm`]: running a guest on the real pKVM (Debian's Linux in QEMU, pvmkit's VMM).
//! - [`signing`]: keys, signed payloads, the development key.
//! - [`qemu`]: finding, installing and running QEMU.
//! - [`toolchain`]: installing the firmware's Rust targets when they are missing.
//! - [`verdict`]: judging a run from its console.
#![forbid(unsafe_code)]

pub mod avb_sign;
pub mod avf_config;
pub mod backend;
pub mod bench;
pub mod conformance;
pub mod devices;
pub mod dice;
pub mod files;
pub mod firmware;
pub mod guest_dt;
pub mod host_packages;
pub mod initramfs;
pub mod kernel;
pub mod linux_guest;
pub mod new_guest;
pub mod pack;
pub mod payload;
pub mod pkvm;
pub mod qemu;
pub mod run_config;
pub mod signing;
pub mod toolchain;
pub mod verdict;

use std::fmt;
use std::path::PathBuf;

use pvmkit_abi::hyp_options::{AbiForm, VmMode};

/// Which hypervisor runs the guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// pvmkit's own EL2 hypervisor under QEMU: fast, strict, names every mistake.
    #[default]
    Hyp,
    /// The real upstream pKVM: Debian's arm64 Linux booted in QEMU with
    /// `kvm-arm.mode=protected`, with pvmkit's VMM as its `/init`.
    Pkvm,
}

impl Backend {
    /// Parses `--backend`.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "hyp" => Ok(Self::Hyp),
            "pkvm" => Ok(Self::Pkvm),
            other => Err(format!("unknown --backend '{other}' (hyp or pkvm)")),
        }
    }

    /// The name `--backend` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hyp => "hyp",
            Self::Pkvm => "pkvm",
        }
    }
}

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

    /// Parses `--mode` and `--abi` for `backend`. The pkvm backend runs Linux 7.3's own
    /// upstream pKVM: `--abi` (a choice of hyp's profiles) and bare mode do not apply.
    pub fn parse_for(backend: Backend, mode: &str, abi: Option<&str>) -> Result<Self, String> {
        match (backend, mode, abi) {
            (Backend::Hyp, ..) => Self::parse(mode, abi),
            (Backend::Pkvm, _, Some(_)) => {
                Err("--abi picks one of hyp's profiles; the pkvm backend runs Linux 7.3's own upstream pKVM".into())
            }
            (Backend::Pkvm, "protected", None) => Ok(Mode::Hyp(VmMode::Protected(AbiForm::Upstream))),
            (Backend::Pkvm, "unprotected", None) => Ok(Mode::Hyp(VmMode::Unprotected)),
            (Backend::Pkvm, "bare", None) => {
                Err("--mode bare runs no hypervisor: it does not apply to --backend pkvm".into())
            }
            (Backend::Pkvm, other, None) => Err(format!("unknown --mode '{other}' (protected or unprotected)")),
        }
    }

    /// The `pvmkit.*` words test-guest reads from its command line.
    pub fn guest_args(self) -> String {
        use pvmkit_abi::guest_console::{ABI, MODE};
        match self {
            Mode::Hyp(VmMode::Protected(AbiForm::Android)) => format!("{MODE}=protected {ABI}=android"),
            Mode::Hyp(VmMode::Protected(AbiForm::Upstream)) => format!("{MODE}=protected {ABI}=upstream"),
            Mode::Hyp(VmMode::Unprotected) => format!("{MODE}=unprotected"),
            Mode::Bare => format!("{MODE}=bare"),
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

/// Names the pvmkit repository `pvmkit` builds hyp, pvmfw and test-guest from, when it
/// is not the one this `pvmkit` was built from.
pub const ROOT_VARIABLE: &str = "PVMKIT_ROOT";

impl Workspace {
    /// The repository `pvmkit` builds its firmware from: `$PVMKIT_ROOT`, else the one
    /// this `pvmkit` was built from (also after `cargo install --path host-tools`, so
    /// that an installed `pvmkit` works as the cargo runner of a guest crate anywhere).
    pub fn locate() -> Result<Self, String> {
        let built_from = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let built_from = built_from.parent().map(PathBuf::from).unwrap_or(built_from);
        let root = std::env::var_os(ROOT_VARIABLE).map(PathBuf::from).unwrap_or(built_from);
        Self::at(root)
    }

    /// The repository at `root`, if it is one.
    pub fn at(root: PathBuf) -> Result<Self, String> {
        if !root.join("hyp").join("Cargo.toml").is_file() || !root.join("pvmfw").join("Cargo.toml").is_file() {
            return Err(format!(
                "{} is not a pvmkit repository (no hyp/ and pvmfw/ crates): set {ROOT_VARIABLE} to one",
                root.display()
            ));
        }
        Ok(Self { root })
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
    fn the_repository_is_found_or_named() {
        let ws = Workspace::locate().unwrap();
        assert!(ws.root.join("guest-lib").is_dir());
        let err = Workspace::at(std::env::temp_dir()).unwrap_err();
        assert!(err.contains("is not a pvmkit repository") && err.contains(ROOT_VARIABLE), "{err}");
    }

    #[test]
    fn modes_parse_and_refuse() {
        assert_eq!(Mode::parse("protected", None), Ok(Mode::ALL[0]));
        assert_eq!(Mode::parse("protected", Some("upstream")), Ok(Mode::ALL[1]));
        assert_eq!(Mode::parse("unprotected", None), Ok(Mode::ALL[2]));
        assert_eq!(Mode::parse("bare", None), Ok(Mode::Bare));
        assert!(Mode::parse("bare", Some("android")).unwrap_err().contains("only to --mode protected"));
        assert!(Mode::parse("fast", None).unwrap_err().contains("unknown --mode"));
        assert!(Mode::parse("protected", Some("x")).unwrap_err().contains("unknown --abi"));
        let pkvm = Backend::Pkvm;
        assert_eq!(Mode::parse_for(pkvm, "protected", None), Ok(Mode::ALL[1]));
        assert_eq!(Mode::parse_for(pkvm, "unprotected", None), Ok(Mode::ALL[2]));
        assert!(Mode::parse_for(pkvm, "protected", Some("android")).unwrap_err().contains("own upstream pKVM"));
        assert!(Mode::parse_for(pkvm, "bare", None).unwrap_err().contains("does not apply to --backend pkvm"));
        assert_eq!(Backend::parse("pkvm"), Ok(Backend::Pkvm));
        assert!(Backend::parse("kvm").unwrap_err().contains("unknown --backend"));
    }
}
