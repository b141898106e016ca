//! Installing the host packages pvmkit needs (QEMU, the Linux guest's build tools) with
//! apt, without ever taking away what the machine already has: the install runs with
//! `--no-remove`, and when apt could only install by removing a package (one installed
//! from another suite, say), pvmkit stops, names the packages apt would remove and the
//! command to run once the user has decided.

use std::ffi::OsString;
use std::process::Command;

/// Why an install did not happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstallError {
    /// apt would have to remove these installed packages.
    WouldRemove {
        /// What was to be installed.
        packages: Vec<String>,
        /// What apt would remove.
        removals: Vec<String>,
    },
    /// apt failed otherwise (no such package, no network, a held package).
    Failed {
        /// The command that failed.
        command: String,
    },
}

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WouldRemove { packages, removals } => write!(
                f,
                "installing {} would remove {} already on this machine; pvmkit removes nothing: \
                 decide, then run `{}` yourself",
                packages.join(" "),
                removals.join(" "),
                install_line(packages)
            ),
            Self::Failed { command } => write!(f, "`{command}` failed"),
        }
    }
}

impl std::error::Error for InstallError {}

fn install_line(packages: &[String]) -> String {
    format!("apt-get install --no-install-recommends {}", packages.join(" "))
}

/// The packages a simulated install (`apt-get install -s`) says it would remove: its
/// `Remv NAME [VERSION]` lines.
pub fn removals(simulation: &str) -> Vec<String> {
    simulation
        .lines()
        .filter_map(|line| line.strip_prefix("Remv "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// `apt-get` (or a stand-in for tests).
pub struct Apt {
    program: OsString,
}

impl Default for Apt {
    fn default() -> Self {
        Self { program: "apt-get".into() }
    }
}

impl Apt {
    /// Runs `program` in apt-get's place.
    pub fn with_program(program: impl Into<OsString>) -> Self {
        Self { program: program.into() }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.env("DEBIAN_FRONTEND", "noninteractive");
        command
    }

    /// `apt-get update`, then installs `packages` without recommends and without
    /// removing anything.
    pub fn install(&self, packages: &[&str]) -> Result<(), InstallError> {
        let packages: Vec<String> = packages.iter().map(|p| p.to_string()).collect();
        if !self.command().arg("update").status().is_ok_and(|s| s.success()) {
            return Err(InstallError::Failed { command: "apt-get update".into() });
        }
        let installed = self
            .command()
            .args(["install", "-y", "--no-install-recommends", "--no-remove"])
            .args(&packages)
            .status()
            .is_ok_and(|s| s.success());
        if installed {
            return Ok(());
        }
        // Why not: a simulation (which changes nothing) says what apt wanted to remove.
        let simulation = self.command().args(["install", "-s", "--no-install-recommends"]).args(&packages).output();
        let removals = simulation.map(|o| removals(&String::from_utf8_lossy(&o.stdout))).unwrap_or_default();
        if removals.is_empty() {
            Err(InstallError::Failed { command: install_line(&packages) })
        } else {
            Err(InstallError::WouldRemove { packages, removals })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn reads_the_removals_of_a_simulation() {
        // The shape of `apt-get install -s` output (apt 2.6).
        let out = "Reading package lists...\nThe following packages will be REMOVED:\n  qemu-utils\n\
                   Remv qemu-utils [1:9.2.0+ds-1]\nInst qemu-system-arm (1:7.2+dfsg-7 Debian:12/stable [amd64])\n\
                   Conf qemu-system-arm (1:7.2+dfsg-7 Debian:12/stable [amd64])\n";
        assert_eq!(removals(out), ["qemu-utils"]);
        assert!(removals("Inst a (1)\nConf a (1)\n").is_empty());
    }

    /// A stand-in for apt-get that logs every call and behaves as apt does when the
    /// install needs a removal: `--no-remove` refuses, a plain install removes.
    fn fake_apt(dir: &std::path::Path) -> std::path::PathBuf {
        let program = dir.join("apt-get");
        let log = dir.join("calls");
        std::fs::write(
            &program,
            format!(
                r#"#!/bin/sh
echo "$*" >> {log}
case "$*" in
  update) exit 0 ;;
  *" -s "*) echo "Remv qemu-utils [1:9.2.0+ds-1]"; echo "Inst qemu-system-arm (1:7.2)"; exit 0 ;;
  *--no-remove*) echo "E: Packages need to be removed but remove is disabled." >&2; exit 100 ;;
  *) echo removed qemu-utils >> {log}; exit 0 ;;
esac
"#,
                log = log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        program
    }

    #[test]
    fn an_install_that_would_remove_a_package_stops_and_names_it() {
        let dir = std::env::temp_dir().join(format!("pvmkit-apt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let apt = Apt::with_program(fake_apt(&dir));
        let err = apt.install(&["qemu-system-arm"]).unwrap_err();
        assert_eq!(
            err,
            InstallError::WouldRemove { packages: vec!["qemu-system-arm".into()], removals: vec!["qemu-utils".into()] }
        );
        let message = err.to_string();
        assert!(message.contains("would remove qemu-utils"), "{message}");
        assert!(message.contains("apt-get install --no-install-recommends qemu-system-arm"), "{message}");
        let calls = std::fs::read_to_string(dir.join("calls")).unwrap();
        assert!(!calls.contains("removed"), "pvmkit let apt remove a package:\n{calls}");
        assert!(calls.lines().any(|l| l.contains("--no-remove")), "{calls}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
