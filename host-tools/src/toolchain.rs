//! Making sure the Rust toolchain can build the firmware: the bare-metal targets'
//! standard libraries are installed (with rustup) before the first firmware build.
//!
//! `rust-toolchain.toml` names the targets, but rustup installs nothing by itself where
//! its automatic install is off (`RUSTUP_AUTO_INSTALL=0`), so a fresh clone would fail
//! with "can't find crate for `core`". pvmkit adds what is missing and says so, or stops
//! with the exact command to run.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The toolchain pvmkit builds with: where its `rustc` is and how rustup names it.
#[derive(Clone, Debug)]
pub struct Toolchain {
    /// The `rustc` of the toolchain cargo runs (beside `$CARGO` when cargo started us).
    pub rustc: PathBuf,
    /// The rustup command.
    pub rustup: PathBuf,
    /// rustup's name of the toolchain (`$RUSTUP_TOOLCHAIN`), when rustup chose it.
    pub name: Option<String>,
}

impl Toolchain {
    /// The toolchain of the cargo that runs pvmkit.
    pub fn current() -> Self {
        let rustc = std::env::var_os("CARGO")
            .map(|cargo| PathBuf::from(cargo).with_file_name("rustc"))
            .filter(|rustc| rustc.exists())
            .unwrap_or_else(|| "rustc".into());
        Self { rustc, rustup: "rustup".into(), name: std::env::var("RUSTUP_TOOLCHAIN").ok() }
    }

    /// Whether the standard library for `target` is installed: its `libcore` is in the
    /// directory rustc would link it from.
    pub fn has_target(&self, workdir: &Path, target: &str) -> Result<bool, String> {
        let out = Command::new(&self.rustc)
            .current_dir(workdir)
            .args(["--print", "target-libdir", "--target", target])
            .output()
            .map_err(|e| format!("running {}: {e}", self.rustc.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} does not know the target {target}: {}",
                self.rustc.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let libdir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let entries = match std::fs::read_dir(&libdir) {
            Ok(entries) => entries,
            Err(_) => return Ok(false),
        };
        Ok(entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("libcore-")))
    }

    /// The command that installs `targets` for this toolchain.
    pub fn install_command(&self, targets: &[&str]) -> Vec<String> {
        let mut cmd = vec![self.rustup.display().to_string(), "target".into(), "add".into()];
        if let Some(name) = &self.name {
            cmd.extend(["--toolchain".into(), name.clone()]);
        }
        cmd.extend(targets.iter().map(|t| t.to_string()));
        cmd
    }

    /// Installs every target of `targets` that is missing (saying so), or explains
    /// exactly what to run when it cannot.
    pub fn ensure_targets(&self, workdir: &Path, targets: &[&str]) -> Result<(), String> {
        let mut missing = Vec::new();
        for &target in targets {
            if !self.has_target(workdir, target)? {
                missing.push(target);
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let cmd = self.install_command(&missing);
        let shown = cmd.join(" ");
        eprintln!("pvmkit: the Rust standard library for {} is missing; installing it: {shown}", missing.join(", "));
        let status = Command::new(&cmd[0]).current_dir(workdir).args(&cmd[1..]).status();
        let installed = match status {
            Ok(s) if s.success() => missing.iter().all(|t| self.has_target(workdir, t).unwrap_or(false)),
            _ => false,
        };
        if installed {
            Ok(())
        } else {
            Err(format!(
                "the Rust targets {} are not installed and `{shown}` failed; run it by hand",
                missing.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A fake toolchain in a scratch directory: `rustc --print target-libdir` answers
    /// `<dir>/lib/<target>`, and `rustup target add` records its arguments and, unless
    /// told to fail, creates the target's `libcore`.
    fn fake(name: &str, rustup_works: bool) -> (Toolchain, PathBuf) {
        let dir = std::env::temp_dir().join(format!("pvmkit-toolchain-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let script = |file: &str, body: String| {
            let path = dir.join(file);
            std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        let d = dir.display();
        let rustc = script("rustc", format!("echo {d}/lib/$4\n"));
        let install = if rustup_works {
            format!("for t in \"$@\"; do mkdir -p {d}/lib/$t && touch {d}/lib/$t/libcore-0.rlib; done\n")
        } else {
            "exit 1\n".into()
        };
        let rustup = script("rustup", format!("echo \"$@\" >> {d}/rustup.log\n{install}"));
        (Toolchain { rustc, rustup, name: Some("1.95.0".into()) }, dir)
    }

    #[test]
    fn installs_only_the_missing_targets_with_the_pinned_toolchain() {
        let (tc, dir) = fake("install", true);
        std::fs::create_dir_all(dir.join("lib/present")).unwrap();
        std::fs::write(dir.join("lib/present/libcore-1.rlib"), "").unwrap();
        assert!(!tc.has_target(&dir, "absent").unwrap());
        assert!(tc.has_target(&dir, "present").unwrap());
        tc.ensure_targets(&dir, &["present", "absent"]).unwrap();
        let log = std::fs::read_to_string(dir.join("rustup.log")).unwrap();
        assert_eq!(log, "target add --toolchain 1.95.0 absent\n");
        assert!(tc.has_target(&dir, "absent").unwrap());
        // Nothing missing: rustup is not run again.
        tc.ensure_targets(&dir, &["present", "absent"]).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("rustup.log")).unwrap(), log);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failed_install_names_the_command_to_run() {
        let (tc, dir) = fake("fail", false);
        let err = tc.ensure_targets(&dir, &["aarch64-unknown-none"]).unwrap_err();
        assert!(err.contains("target add --toolchain 1.95.0 aarch64-unknown-none` failed; run it by hand"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
